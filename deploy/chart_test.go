package deploy_test

// The Helm chart in chart/podguard renders, object by object, what the
// kustomize overlays and components render: TestChartMatchesOverlays and
// TestChartMatchesComponents compare them, and TestChartChecks holds the
// chart's renders to the same checks as the overlays. The two are kept in
// sync by these tests only; neither is generated from the other.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	podguard "github.com/podguard/podguard"
	"github.com/podguard/podguard/config"
)

const (
	chartDir    = "chart/podguard"
	releaseName = "podguard"
)

// chartValues are the values that make the chart render what overlay o
// renders. namespace.create is on: an overlay holds its Namespace, while the
// chart leaves it to `helm install --create-namespace` by default.
func chartValues(o overlay) map[string]any {
	return map[string]any{
		"scope":     string(o.scope),
		"tls":       map[string]any{"mode": string(o.tls)},
		"namespace": map[string]any{"create": true},
	}
}

// renderChart renders the chart as `helm install --dry-run` would, without
// a cluster, into installNamespace, and validates vals against the chart's
// values.schema.json on the way.
func renderChart(vals map[string]any) ([]rawObject, error) {
	return renderChartIn(installNamespace, vals)
}

// renderChartIn is renderChart into another namespace.
func renderChartIn(namespace string, vals map[string]any) ([]rawObject, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", chartDir, err)
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun = true
	install.ClientOnly = true
	install.IncludeCRDs = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("rendering chart %s: %w", chartDir, err)
	}
	return splitManifest(rel.Manifest)
}

// splitManifest decodes a multi-document YAML manifest, skipping empty
// documents. It parses YAML with kyaml, as kustomize does, so that the two
// renders are read alike: kyaml reads a folded scalar (>-) with
// more-indented lines, such as the webhooks' CEL match conditions, with a
// blank line before each more-indented line, where the YAML spec and
// sigs.k8s.io/yaml (and so Helm and kube-apiserver) read one line break. The
// CEL is the same either way, but `kubectl apply -k` and `helm install`
// store those expressions with different blank lines.
func splitManifest(manifest string) ([]rawObject, error) {
	docs := releaseutil.SplitManifests(manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var objs []rawObject
	for _, k := range keys {
		if strings.TrimSpace(docs[k]) == "" {
			continue
		}
		node, err := kyaml.Parse(docs[k])
		if errors.Is(err, io.EOF) {
			continue // comments only, such as a vendored file's header
		}
		if err != nil {
			return nil, fmt.Errorf("decoding chart output %s: %w", k, err)
		}
		js, err := node.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("decoding chart output %s: %w", k, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("decoding chart output %s: %w", k, err)
		}
		objs = append(objs, rawObject{gvk: u.GroupVersionKind(), namespace: u.GetNamespace(), name: u.GetName(), json: js})
	}
	return objs, nil
}

// renderDiff lists how the chart's render differs from kustomize's: objects
// only in one of them, and the fields that differ in objects both have. The
// objects are compared as unstructured maps, so field order and YAML style
// do not count; the one normalisation is podguard's config, compared as the
// YAML document it is (the chart writes it from values, without the
// overlay's comments).
func renderDiff(chart, kust []rawObject) ([]string, error) {
	index := func(objs []rawObject, what string) (map[string]map[string]any, error) {
		m := map[string]map[string]any{}
		for _, o := range objs {
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(o.json); err != nil {
				return nil, fmt.Errorf("decoding %s of the %s render: %w", o, what, err)
			}
			if err := parseConfig(u); err != nil {
				return nil, fmt.Errorf("%s of the %s render: %w", o, what, err)
			}
			key := objectKey(o.gvk, o.namespace, o.name)
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("the %s render has %s twice", what, key)
			}
			m[key] = u.Object
		}
		return m, nil
	}
	c, err := index(chart, "chart")
	if err != nil {
		return nil, err
	}
	k, err := index(kust, "kustomize")
	if err != nil {
		return nil, err
	}
	var diffs []string
	for key, kobj := range k {
		cobj, ok := c[key]
		if !ok {
			diffs = append(diffs, key+": rendered by kustomize, not by the chart")
			continue
		}
		if d := cmp.Diff(kobj, cobj); d != "" {
			diffs = append(diffs, key+": differs (-kustomize +chart):\n"+d)
		}
	}
	for key := range c {
		if _, ok := k[key]; !ok {
			diffs = append(diffs, key+": rendered by the chart, not by kustomize")
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

func objectKey(gvk schema.GroupVersionKind, namespace, name string) string {
	return describe(gvk.GroupKind().String(), namespace, name)
}

// parseConfig replaces podguard's config file in the ConfigMap
// podguard-config by the document it holds.
func parseConfig(u *unstructured.Unstructured) error {
	if u.GetKind() != "ConfigMap" || u.GetName() != "podguard-config" {
		return nil
	}
	text, ok, err := unstructured.NestedString(u.Object, "data", "config.yaml")
	if err != nil || !ok {
		return fmt.Errorf("no data.config.yaml string (%v)", err)
	}
	var doc any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return fmt.Errorf("data.config.yaml: %w", err)
	}
	return unstructured.SetNestedField(u.Object, map[string]any{"config.yaml (parsed)": doc}, "data")
}

func TestChartMatchesOverlays(t *testing.T) {
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			kust, err := renderOverlay(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			chart, err := renderChart(chartValues(o))
			if err != nil {
				t.Fatal(err)
			}
			diffs, err := renderDiff(chart, kust)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range diffs {
				t.Errorf("chart with scope=%s tls.mode=%s vs overlays/%s: %s", o.scope, o.tls, o.dir, d)
			}
		})
	}
}

// TestChartDefaults: the default values are the opt-in overlay with
// cert-manager, all but its Namespace, which `helm install
// --create-namespace` creates.
func TestChartDefaults(t *testing.T) {
	kust, err := renderOverlay("opt-in")
	if err != nil {
		t.Fatal(err)
	}
	kust = slices.DeleteFunc(slices.Clone(kust), func(o rawObject) bool { return o.gvk.Kind == "Namespace" })
	chart, err := renderChart(nil)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := renderDiff(chart, kust)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Errorf("chart with default values vs overlays/opt-in without its Namespace: %s", d)
	}
}

// chartComponents pairs each optional kustomize component with the values
// that turn on the same in the chart.
var chartComponents = []struct {
	component string // under components/
	values    map[string]any
}{
	{"secret-access", map[string]any{"secretAccess": map[string]any{"enabled": true}}},
	{"image-credentials", map[string]any{"imageCredentials": map[string]any{"enabled": true}}},
	{"client-auth", map[string]any{"clientAuth": map[string]any{"enabled": true}}},
	{"policy-reports", map[string]any{"policyReports": map[string]any{"installCRDs": true}}},
	{"monitoring", map[string]any{"monitoring": map[string]any{"enabled": true}}},
	// The component's placeholder CIDR, which an overlay must replace.
	{"network-policy", map[string]any{"networkPolicy": map[string]any{"enabled": true, "apiServerCIDR": "FILL-IN-THE-API-SERVER-SOURCE-CIDR"}}},
}

// TestChartMatchesComponents renders each optional component on top of each
// overlay, as a user's kustomization would, and the chart with the matching
// values.
func TestChartMatchesComponents(t *testing.T) {
	deployDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chartComponents {
		for _, o := range overlays {
			t.Run(c.component+"/"+o.dir, func(t *testing.T) {
				// kustomize takes no absolute paths: the user's kustomization
				// is a temporary one that names deploy/ relative to itself.
				dir := t.TempDir()
				rel, err := filepath.Rel(dir, deployDir)
				if err != nil {
					t.Fatal(err)
				}
				k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- %s\ncomponents:\n- %s\n",
					filepath.ToSlash(filepath.Join(rel, "overlays", filepath.FromSlash(o.dir))), filepath.ToSlash(filepath.Join(rel, "components", c.component)))
				if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
					t.Fatal(err)
				}
				kust, err := kustomize(dir)
				if err != nil {
					t.Fatal(err)
				}
				vals := chartValues(o)
				for k, v := range c.values {
					vals[k] = v
				}
				chart, err := renderChart(vals)
				if err != nil {
					t.Fatal(err)
				}
				diffs, err := renderDiff(chart, kust)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range diffs {
					t.Errorf("chart with %v vs overlays/%s + components/%s: %s", c.values, o.dir, c.component, d)
				}
			})
		}
	}
}

// TestEveryComponentIsInTheChart fails when a component under components/
// is neither a scope or TLS component (the overlays cover those) nor in
// chartComponents.
func TestEveryComponentIsInTheChart(t *testing.T) {
	entries, err := os.ReadDir("components")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{"opt-in": true, "cluster-wide": true, "cert-manager": true, "self-managed": true}
	for _, c := range chartComponents {
		covered[c.component] = true
	}
	for _, e := range entries {
		if e.IsDir() && !covered[e.Name()] {
			t.Errorf("components/%s has no chart value in chartComponents of chart_test.go: add one to the chart and the table", e.Name())
		}
	}
}

// TestChartChecks holds the chart's renders to the checks of every overlay
// (render_test.go), also in a namespace other than podguard-system.
func TestChartChecks(t *testing.T) {
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			objs, err := renderChart(chartValues(o))
			if err != nil {
				t.Fatal(err)
			}
			r, err := decodeRender(objs)
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range runChecks(r, o) {
				t.Errorf("chart with scope=%s tls.mode=%s: %s", o.scope, o.tls, msg)
			}
		})
	}
}

// TestChartValuesSchema: values.schema.json refuses what podguard cannot
// run with, before anything reaches the cluster.
func TestChartValuesSchema(t *testing.T) {
	tests := []struct {
		name string
		vals map[string]any
		want string
	}{
		{"refuses an unknown scope", map[string]any{"scope": "everywhere"}, "scope"},
		{"refuses an unknown TLS mode", map[string]any{"tls": map[string]any{"mode": "manual"}}, "mode"},
		{"refuses a misspelt top-level value", map[string]any{"replica": 3}, "replica"},
		{"refuses a misspelt config section", map[string]any{"config": map[string]any{"polices": map[string]any{}}}, "polices"},
		{"refuses a network policy without the API server's CIDR", map[string]any{"networkPolicy": map[string]any{"enabled": true}}, "apiServerCIDR"},
		{"refuses zero replicas", map[string]any{"replicas": 0}, "replicas"},
		{"refuses a misspelt monitoring value", map[string]any{"monitoring": map[string]any{"label": map[string]any{"release": "kps"}}}, "label"},
		{"refuses a Prometheus ServiceAccount without a name", map[string]any{"monitoring": map[string]any{"prometheusServiceAccount": map[string]any{"name": ""}}}, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(tt.vals)
			if err == nil {
				t.Fatalf("rendered with %v, want an error naming %q", tt.vals, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %q", err, tt.want)
			}
		})
	}
}

// TestChartEquivalenceCatchesDrift proves that renderDiff reports a changed
// field, a missing object and an extra object.
func TestChartEquivalenceCatchesDrift(t *testing.T) {
	kust, err := renderOverlay("opt-in")
	if err != nil {
		t.Fatal(err)
	}
	chart, err := renderChart(chartValues(overlayByDir(t, "opt-in")))
	if err != nil {
		t.Fatal(err)
	}
	if diffs, err := renderDiff(chart, kust); err != nil || len(diffs) > 0 {
		t.Fatalf("the unchanged renders differ (%v): %s", err, strings.Join(diffs, "\n"))
	}
	edit := func(objs []rawObject, kind string, f func(u *unstructured.Unstructured)) []rawObject {
		out := slices.Clone(objs)
		for i, o := range out {
			if o.gvk.Kind != kind {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(o.json); err != nil {
				t.Fatal(err)
			}
			f(u)
			js, err := u.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			out[i].json = js
		}
		return out
	}
	tests := []struct {
		name  string
		chart []rawObject
		want  string
	}{
		{"a changed field", edit(chart, "Deployment", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, int64(3), "spec", "replicas")
		}), "Deployment.apps podguard-system/podguard: differs"},
		{"a changed config setting", edit(chart, "ConfigMap", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "apiVersion: podguard.io/v1alpha1\nkind: Config\n", "data", "config.yaml")
		}), "ConfigMap podguard-system/podguard-config: differs"},
		{"a missing object", slices.DeleteFunc(slices.Clone(chart), func(o rawObject) bool { return o.gvk.Kind == "PodDisruptionBudget" }),
			"PodDisruptionBudget.policy podguard-system/podguard: rendered by kustomize, not by the chart"},
		{"an extra object", append(slices.Clone(chart), rawObject{gvk: schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, namespace: installNamespace, name: "extra",
			json: []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"extra","namespace":"podguard-system"}}`)}),
			"Secret podguard-system/extra: rendered by the chart, not by kustomize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diffs, err := renderDiff(tt.chart, kust)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(diffs, func(d string) bool { return strings.HasPrefix(d, tt.want) }) {
				t.Errorf("renderDiff = %q, want one starting %q", diffs, tt.want)
			}
		})
	}
}

// TestChartLint runs `helm lint --strict` on the chart, with the values of
// every overlay.
func TestChartLint(t *testing.T) {
	for _, o := range overlays {
		lint := action.NewLint()
		lint.Strict = true
		lint.Namespace = installNamespace
		res := lint.Run([]string{chartDir}, chartValues(o))
		for _, msg := range res.Messages {
			if msg.Severity < support.WarningSev {
				continue // INFO, such as "icon is recommended"
			}
			t.Errorf("helm lint --strict with scope=%s tls.mode=%s: %s", o.scope, o.tls, msg)
		}
	}
}

// excludedList matches the webhooks' list of excluded namespaces, as JSON,
// and excludedConfigList the config's namespaces.exclude, as YAML in a
// JSON string.
var (
	excludedList       = regexp.MustCompile(`\["kube-system"[^\]]*\]`)
	excludedConfigList = regexp.MustCompile(`exclude:(\\n *- [a-z0-9-]+)+`)
)

// TestChartFollowsReleaseNamespace: installed into another namespace, the
// chart names podguard-system nowhere but in the default
// webhooks.excludedNamespaces, and excludes the release namespace.
func TestChartFollowsReleaseNamespace(t *testing.T) {
	const other = "guard"
	for _, o := range overlays {
		vals := chartValues(o)
		for k, v := range map[string]any{"secretAccess": true, "imageCredentials": true, "clientAuth": true} {
			vals[k] = map[string]any{"enabled": v}
		}
		vals["networkPolicy"] = map[string]any{"enabled": true, "apiServerCIDR": "10.0.0.0/28"}
		objs, err := renderChartIn(other, vals)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			lists := excludedList.FindAllString(string(obj.json), -1)
			configLists := excludedConfigList.FindAllString(string(obj.json), -1)
			text := excludedList.ReplaceAllString(string(obj.json), "")
			if text = excludedConfigList.ReplaceAllString(text, ""); strings.Contains(text, installNamespace) {
				t.Errorf("scope=%s tls.mode=%s, release namespace %s: %s still names %s:\n%s", o.scope, o.tls, other, obj, installNamespace, text)
			}
			for _, l := range lists {
				if !strings.HasSuffix(l, `,"`+other+`"]`) {
					t.Errorf("scope=%s tls.mode=%s, release namespace %s: %s excludes %s, not the release namespace", o.scope, o.tls, other, obj, l)
				}
			}
			for _, l := range configLists {
				if !strings.HasSuffix(l, `- `+other) {
					t.Errorf("scope=%s tls.mode=%s, release namespace %s: %s: namespaces.%s lacks the release namespace", o.scope, o.tls, other, obj, l)
				}
			}
			if obj.gvk.Kind == "ConfigMap" && obj.name == "podguard-config" && len(configLists) != 1 {
				t.Errorf("scope=%s tls.mode=%s, release namespace %s: %s has no namespaces.exclude", o.scope, o.tls, other, obj)
			}
			if strings.HasSuffix(obj.gvk.Kind, "WebhookConfiguration") && len(lists) == 0 {
				t.Errorf("scope=%s tls.mode=%s, release namespace %s: %s has no excluded namespaces", o.scope, o.tls, other, obj)
			}
		}
	}
}

// TestChartConfigExcludesWhatTheWebhooksExclude: the config's
// namespaces.exclude is webhooks.excludedNamespaces and the release
// namespace, unless the config sets its own, so that a namespace taken out
// of the webhooks' list (cert-manager running elsewhere) is judged rather
// than let through by the config's default list.
func TestChartConfigExcludesWhatTheWebhooksExclude(t *testing.T) {
	for _, tt := range []struct {
		name      string
		namespace string
		vals      map[string]any
		want      []string
	}{
		{"the default list", installNamespace, nil, excludedNamespaces},
		{"with the release namespace", "guard", nil, append(slices.Clone(excludedNamespaces), "guard")},
		{"cert-manager elsewhere", installNamespace,
			map[string]any{"webhooks": map[string]any{"excludedNamespaces": []any{"kube-system", "kube-node-lease", "podguard-system", "certs"}}},
			[]string{"kube-system", "kube-node-lease", "podguard-system", "certs"}},
		{"the config's own list", installNamespace,
			map[string]any{"config": map[string]any{"namespaces": map[string]any{"exclude": []any{"kube-system", "podguard-system"}}}},
			[]string{"kube-system", "podguard-system"}},
		{"the config's own empty list", installNamespace,
			map[string]any{"config": map[string]any{"namespaces": map[string]any{"exclude": []any{}}}},
			[]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := renderChartIn(tt.namespace, tt.vals)
			if err != nil {
				t.Fatal(err)
			}
			cm := chartObject(t, objs, "ConfigMap", "podguard-config")
			text, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
			if _, err := config.Parse("config.yaml", []byte(text)); err != nil {
				t.Fatalf("the rendered config does not load: %v", err)
			}
			// As written: podguard's default is the first case's list.
			var written struct {
				Namespaces struct {
					Exclude *[]string `json:"exclude"`
				} `json:"namespaces"`
			}
			if err := yaml.Unmarshal([]byte(text), &written); err != nil {
				t.Fatal(err)
			}
			if got := written.Namespaces.Exclude; got == nil || !slices.Equal(*got, tt.want) {
				t.Errorf("namespaces.exclude = %v, want %q written out:\n%s", got, tt.want, text)
			}
		})
	}
}

// TestChartSchemaKnowsEveryConfigSection: values.schema.json lets through
// exactly the top-level sections of podguard's config (config.Config's
// fields but apiVersion and kind, which the chart writes), so that a new
// section can be set as a value and a misspelt one is refused by Helm.
func TestChartSchemaKnowsEveryConfigSection(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Config struct {
				Properties map[string]any `json:"properties"`
			} `json:"config"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for k := range schema.Properties.Config.Properties {
		inSchema = append(inSchema, k)
	}
	sort.Strings(inSchema)
	var inConfig []string
	ct := reflect.TypeFor[config.Config]()
	for i := range ct.NumField() {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" && name != "apiVersion" && name != "kind" {
			inConfig = append(inConfig, name)
		}
	}
	sort.Strings(inConfig)
	if !slices.Equal(inSchema, inConfig) {
		t.Errorf("values.schema.json properties.config.properties = %q, want config.Config's sections %q", inSchema, inConfig)
	}
}

// TestChartPodValues: the values the overlays have no counterpart for reach
// the Deployment's pod template.
func TestChartPodValues(t *testing.T) {
	objs, err := renderChart(map[string]any{
		"nodeSelector":     map[string]any{"pool": "system"},
		"tolerations":      []any{map[string]any{"key": "dedicated", "operator": "Exists"}},
		"podAnnotations":   map[string]any{"example.com/team": "platform"},
		"imagePullSecrets": []any{map[string]any{"name": "mirror"}},
		"image":            map[string]any{"repository": "mirror.example.com/podguard", "tag": "v9.9.9", "pullPolicy": "Always"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRender(objs)
	if err != nil {
		t.Fatal(err)
	}
	d := deploymentOf(t, r)
	spec := d.Spec.Template.Spec
	c := containerOf(t, r)
	got := []string{
		fmt.Sprint(spec.NodeSelector), fmt.Sprint(len(spec.Tolerations) == 1 && spec.Tolerations[0].Key == "dedicated"),
		fmt.Sprint(d.Spec.Template.Annotations), fmt.Sprint(spec.ImagePullSecrets), c.Image, string(c.ImagePullPolicy),
	}
	want := []string{"map[pool:system]", "true", "map[example.com/team:platform]", "[{mirror}]", "mirror.example.com/podguard:v9.9.9", "Always"}
	if !slices.Equal(got, want) {
		t.Errorf("pod template fields = %q, want %q", got, want)
	}
}

// chartObject is the object of that kind and name in a chart render.
func chartObject(t *testing.T, objs []rawObject, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.gvk.Kind == kind && o.name == name {
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(o.json); err != nil {
				t.Fatal(err)
			}
			return u
		}
	}
	t.Fatalf("the render has no %s %s", kind, name)
	return nil
}

// TestChartMonitoringValues: monitoring.labels reaches the ServiceMonitor and
// the PrometheusRule (for kube-prometheus-stack's release selector) beside
// the component's labels, and monitoring.prometheusServiceAccount is the
// subject bound to podguard-metrics-reader. TestChartMatchesComponents
// holds the defaults to components/monitoring.
func TestChartMonitoringValues(t *testing.T) {
	objs, err := renderChart(map[string]any{"monitoring": map[string]any{
		"enabled":                  true,
		"labels":                   map[string]any{"release": "kps"},
		"prometheusServiceAccount": map[string]any{"name": "kps-prometheus"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"app.kubernetes.io/name": "podguard", "app.kubernetes.io/part-of": "podguard", "release": "kps"}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if got := chartObject(t, objs, kind, "podguard").GetLabels(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s labels = %v, want %v", kind, got, want)
		}
	}
	crb := chartObject(t, objs, "ClusterRoleBinding", "podguard-metrics-reader")
	subjects, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
	wantSubjects := []any{map[string]any{"kind": "ServiceAccount", "name": "kps-prometheus", "namespace": "monitoring"}}
	if !reflect.DeepEqual(subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding podguard-metrics-reader subjects = %v, want %v", subjects, wantSubjects)
	}
	// The other objects keep the component's labels only.
	if got := chartObject(t, objs, "ClusterRoleBinding", "podguard-metrics-reader").GetLabels(); got["release"] != "" {
		t.Errorf("ClusterRoleBinding labels = %v, want no release label", got)
	}
}

// TestChartMonitoringFilesAreTheComponent: the chart's files/monitoring are
// byte for byte components/monitoring's files, so that hack/monitoring's
// checks of the component cover the chart's alerts and dashboard.
func TestChartMonitoringFilesAreTheComponent(t *testing.T) {
	for _, f := range []string{"dashboard.json", "prometheusrule.yaml", "rbac.yaml", "servicemonitor.yaml"} {
		comp, err := os.ReadFile(filepath.Join("components", monitoringComponent, f))
		if err != nil {
			t.Fatal(err)
		}
		chart, err := os.ReadFile(filepath.Join(chartDir, "files", "monitoring", f))
		if err != nil {
			t.Fatal(err)
		}
		if string(comp) != string(chart) {
			t.Errorf("%s/files/monitoring/%s differs from components/%s/%s: copy it", chartDir, f, monitoringComponent, f)
		}
	}
}

// TestChartLogSidecarImage: when image.repository or image.tag moves
// podguard's image, the log sidecar (podguard's image too, by default)
// follows it, unless the config names its image; with the default image the
// config has no logSidecar.image (TestChartDefaults holds it to the
// overlay's).
func TestChartLogSidecarImage(t *testing.T) {
	tests := []struct {
		name string
		vals map[string]any
		want string // "" for no policies.logSidecar.image
	}{
		{"the default image", nil, ""},
		{"a mirror", map[string]any{"image": map[string]any{"repository": "mirror.example.com/podguard"}}, "mirror.example.com/podguard:" + podguard.Version},
		{"a mirror and a tag", map[string]any{"image": map[string]any{"repository": "mirror.example.com/podguard", "tag": "v9.9.9"}}, "mirror.example.com/podguard:v9.9.9"},
		{"a tag", map[string]any{"image": map[string]any{"tag": "v9.9.9"}}, podguard.ImageRepository + ":v9.9.9"},
		{"the config's own image", map[string]any{
			"image":  map[string]any{"repository": "mirror.example.com/podguard"},
			"config": map[string]any{"policies": map[string]any{"logSidecar": map[string]any{"image": "cr.fluentbit.io/fluent/fluent-bit:3.2"}}},
		}, "cr.fluentbit.io/fluent/fluent-bit:3.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := renderChart(tt.vals)
			if err != nil {
				t.Fatal(err)
			}
			cm := chartObject(t, objs, "ConfigMap", "podguard-config")
			text, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
				t.Fatal(err)
			}
			got, found, err := unstructured.NestedString(cfg, "policies", "logSidecar", "image")
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && found {
				t.Errorf("policies.logSidecar.image = %q, want none (the policy's default)", got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("policies.logSidecar.image = %q, want %q", got, tt.want)
			}
			// The rest of the config is the value's.
			if _, err := config.Parse("config.yaml", []byte(text)); err != nil {
				t.Errorf("the rendered config does not load: %v", err)
			}
		})
	}
}

// TestChartNotesNameTheExcludedNamespaces: with scope cluster-wide, NOTES.txt
// lists the namespaces the webhooks skip, the release namespace among them
// when webhooks.excludedNamespaces does not list it.
func TestChartNotesNameTheExcludedNamespaces(t *testing.T) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]string{
		installNamespace: "except kube-system, kube-node-lease, podguard-system, cert-manager and",
		"guard":          "except kube-system, kube-node-lease, podguard-system, cert-manager, guard and",
	} {
		install := action.NewInstall(&action.Configuration{})
		install.DryRun = true
		install.ClientOnly = true
		install.ReleaseName = releaseName
		install.Namespace = ns
		rel, err := install.Run(chrt, map[string]any{"scope": "cluster-wide"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rel.Info.Notes, want) {
			t.Errorf("release namespace %s: NOTES.txt does not say %q:\n%s", ns, want, rel.Info.Notes)
		}
	}
}
