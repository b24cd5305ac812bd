package policies

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

func resourcesPolicy(c ResourcesConfig) *resources {
	c.defaults()
	return newResources(c)
}

// rl parses "cpu=500m,memory=100Mi" into a ResourceList.
func resList(s string) corev1.ResourceList {
	if s == "" {
		return nil
	}
	l := corev1.ResourceList{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		l[corev1.ResourceName(k)] = resource.MustParse(v)
	}
	return l
}

func defaultsOf(requests, limits string) ResourceDefaults {
	return ResourceDefaults{Requests: resList(requests), Limits: resList(limits)}
}

// contextDefaults is the seed scenario: memory request 100Mi / limit 200Mi,
// cpu request 0.5 / limit 1.
var contextDefaults = defaultsOf("cpu=0.5,memory=100Mi", "cpu=1,memory=200Mi")

// resString renders requirements as "req{cpu=500m,memory=100Mi} lim{cpu=1}".
func resString(r corev1.ResourceRequirements) string {
	render := func(l corev1.ResourceList) string {
		parts := []string{}
		for _, name := range sortedResourceNames(l) {
			q := l[name]
			parts = append(parts, fmt.Sprintf("%s=%s", name, q.String()))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprintf("req{%s} lim{%s}", render(r.Requests), render(r.Limits))
}

func resPod(edits ...func(*corev1.Pod)) *Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "tomcat:10"}}},
	}
	for _, e := range edits {
		e(p)
	}
	return NewPod(p)
}

func appResources(requests, limits string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: resList(requests), Limits: resList(limits)}
	}
}

func namespaceWith(labels map[string]string, annotation ...string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: labels}}
	if len(annotation) > 0 {
		ns.Annotations = map[string]string{DefaultResourcesAnnotation: annotation[0]}
	}
	return ns
}

func TestResources(t *testing.T) {
	batchRules := []NamespaceResourceRule{
		{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}, Defaults: defaultsOf("cpu=3", "")},
		{Selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"batch", "etl"}}}},
			Defaults: defaultsOf("cpu=2", "cpu=4")},
		{Selector: metav1.LabelSelector{}, Defaults: defaultsOf("memory=1Gi", "memory=2Gi")},
	}
	contextResult := "req{cpu=500m,memory=100Mi} lim{cpu=1,memory=200Mi}"
	malformed := `namespace "team-a" annotation podguard.io/default-resources is not valid, so the configured default resources apply instead: `
	tests := []struct {
		name   string
		config ResourcesConfig
		ns     *corev1.Namespace // nil: the World does not know the namespace
		pod    []func(*corev1.Pod)
		// want is resString of each container, init containers first; nil
		// means the pod is returned unchanged.
		want         []string
		wantWarnings []string
	}{
		{name: "fills in requests and limits for a container that sets none",
			config: ResourcesConfig{Defaults: contextDefaults},
			want:   []string{contextResult}},
		{name: "never overrides a request or limit the user set",
			config: ResourcesConfig{Defaults: contextDefaults}, pod: []func(*corev1.Pod){appResources("cpu=250m", "memory=1Gi")},
			want: []string{"req{cpu=250m} lim{cpu=1,memory=1Gi}"}},
		{name: "raises a default limit below the container's request to the request",
			config: ResourcesConfig{Defaults: contextDefaults}, pod: []func(*corev1.Pod){appResources("cpu=2,memory=300Mi", "")},
			want: []string{"req{cpu=2,memory=300Mi} lim{cpu=2,memory=300Mi}"}},
		{name: "leaves the request of a container with a limit below the default request to the API server, which sets it to the limit",
			config: ResourcesConfig{Defaults: contextDefaults}, pod: []func(*corev1.Pod){appResources("", "cpu=250m,memory=50Mi")},
			want: nil},
		{name: "leaves the request of a container with a limit above the default request to the API server, so it keeps its QoS class",
			config: ResourcesConfig{Defaults: contextDefaults}, pod: []func(*corev1.Pod){appResources("", "cpu=4")},
			want: []string{"req{memory=100Mi} lim{cpu=4,memory=200Mi}"}},
		{name: "leaves the request of a container with only a limit when there is no default request",
			config: ResourcesConfig{Defaults: defaultsOf("", "cpu=1,memory=200Mi")}, pod: []func(*corev1.Pod){appResources("", "cpu=2")},
			want: []string{"req{} lim{cpu=2,memory=200Mi}"}},
		{name: "sets only requests when there are no default limits",
			config: ResourcesConfig{Defaults: defaultsOf("cpu=0.5,memory=100Mi", "")},
			want:   []string{"req{cpu=500m,memory=100Mi} lim{}"}},
		{name: "sets only limits when there are no default requests, and the API server then sets the requests to them",
			config: ResourcesConfig{Defaults: defaultsOf("", "cpu=1,memory=200Mi")},
			want:   []string{"req{} lim{cpu=1,memory=200Mi}"}},
		{name: "defaults ephemeral-storage",
			config: ResourcesConfig{Defaults: defaultsOf("ephemeral-storage=1Gi", "ephemeral-storage=2Gi")},
			want:   []string{"req{ephemeral-storage=1Gi} lim{ephemeral-storage=2Gi}"}},
		{name: "defaults init containers and native sidecars",
			config: ResourcesConfig{Defaults: contextDefaults},
			pod: []func(*corev1.Pod){func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{
					{Name: "migrate", Image: "flyway", Resources: corev1.ResourceRequirements{Requests: resList("memory=300Mi")}},
					{Name: "proxy", Image: "envoy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)},
				}
			}},
			want: []string{"req{cpu=500m,memory=300Mi} lim{cpu=1,memory=300Mi}", contextResult, contextResult}},
		{name: "does not default cpu on containers when the pod-level resources limit cpu",
			config: ResourcesConfig{Defaults: contextDefaults},
			pod: []func(*corev1.Pod){func(p *corev1.Pod) {
				p.Spec.Resources = &corev1.ResourceRequirements{Limits: resList("cpu=2")}
			}},
			want: []string{"req{memory=100Mi} lim{memory=200Mi}"}},
		{name: "does not default memory on containers when the pod-level resources request memory",
			config: ResourcesConfig{Defaults: contextDefaults},
			pod: []func(*corev1.Pod){func(p *corev1.Pod) {
				p.Spec.Resources = &corev1.ResourceRequirements{Requests: resList("memory=1Gi")}
			}},
			want: []string{"req{cpu=500m} lim{cpu=1}"}},
		{name: "leaves a container that sets every request and limit unchanged",
			config: ResourcesConfig{Defaults: contextDefaults}, pod: []func(*corev1.Pod){appResources("cpu=100m,memory=1Gi", "cpu=100m,memory=1Gi")}},
		{name: "does nothing without defaults"},
		{name: "applies the first namespace rule whose selector matches, resource by resource over the global defaults",
			config: ResourcesConfig{Defaults: contextDefaults, Namespaces: batchRules},
			ns:     namespaceWith(map[string]string{"tier": "batch"}),
			want:   []string{"req{cpu=2,memory=100Mi} lim{cpu=4,memory=200Mi}"}},
		{name: "applies a catch-all rule to a namespace no earlier rule matches",
			config: ResourcesConfig{Defaults: contextDefaults, Namespaces: batchRules},
			ns:     namespaceWith(map[string]string{"tier": "frontend"}),
			want:   []string{"req{cpu=500m,memory=1Gi} lim{cpu=1,memory=2Gi}"}},
		{name: "uses the global defaults in a namespace no rule matches",
			config: ResourcesConfig{Defaults: contextDefaults, Namespaces: batchRules[:2]},
			ns:     namespaceWith(map[string]string{"tier": "frontend"}),
			want:   []string{contextResult}},
		{name: "uses the global defaults in a namespace the World does not know",
			config: ResourcesConfig{Defaults: contextDefaults, Namespaces: batchRules},
			want:   []string{contextResult}},
		{name: "lets the namespace annotation override the rule and the global defaults, per resource and per field",
			config: ResourcesConfig{Defaults: contextDefaults, Namespaces: batchRules},
			ns:     namespaceWith(map[string]string{"tier": "batch"}, `{"requests":{"memory":"64Mi"},"limits":{"cpu":"3"}}`),
			want:   []string{"req{cpu=2,memory=64Mi} lim{cpu=3,memory=200Mi}"}},
		{name: "raises an inherited limit below an annotation's request to that request",
			config: ResourcesConfig{Defaults: contextDefaults},
			ns:     namespaceWith(nil, `{"requests":{"memory":"300Mi"}}`),
			want:   []string{"req{cpu=500m,memory=300Mi} lim{cpu=1,memory=300Mi}"}},
		{name: "applies an annotation in a cluster without configured defaults",
			ns:   namespaceWith(nil, `{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}}`),
			want: []string{"req{cpu=100m,memory=128Mi} lim{memory=256Mi}"}},
		{name: "warns about an annotation that is not JSON and falls back to the configured defaults",
			config: ResourcesConfig{Defaults: contextDefaults}, ns: namespaceWith(nil, `requests: {cpu: 100m}`),
			want: []string{contextResult}, wantWarnings: []string{malformed + "decoding JSON: "}},
		{name: "warns about an annotation with an unknown field",
			config: ResourcesConfig{Defaults: contextDefaults}, ns: namespaceWith(nil, `{"request":{"cpu":"100m"}}`),
			want: []string{contextResult}, wantWarnings: []string{malformed + `unknown field "request"`}},
		{name: "warns about an annotation with a duplicate field",
			config: ResourcesConfig{Defaults: contextDefaults}, ns: namespaceWith(nil, `{"limits":{"cpu":"2"},"limits":{"cpu":"3"}}`),
			want: []string{contextResult}, wantWarnings: []string{malformed + `duplicate field "limits"`}},
		{name: "warns about an annotation with a resource it cannot default",
			config: ResourcesConfig{Defaults: contextDefaults}, ns: namespaceWith(nil, `{"limits":{"nvidia.com/gpu":"1"}}`),
			want: []string{contextResult}, wantWarnings: []string{malformed + `limits[nvidia.com/gpu]: Unsupported value: "nvidia.com/gpu"`}},
		{name: "warns about an annotation whose request is above its limit",
			config: ResourcesConfig{Defaults: contextDefaults}, ns: namespaceWith(nil, `{"requests":{"memory":"1Gi"},"limits":{"memory":"512Mi"}}`),
			want: []string{contextResult}, wantWarnings: []string{malformed + `requests[memory]: Invalid value: "1Gi": must not be greater than the memory limit 512Mi`}},
		{name: "warns about an annotation with a zero quantity",
			config: ResourcesConfig{Defaults: contextDefaults}, ns: namespaceWith(nil, `{"limits":{"cpu":"0"}}`),
			want: []string{contextResult}, wantWarnings: []string{malformed + `limits[cpu]: Invalid value: "0": must be greater than zero`}},
		{name: "warns about an annotation with a quantity that does not parse",
			config: ResourcesConfig{Defaults: contextDefaults}, ns: namespaceWith(nil, `{"limits":{"cpu":"lots"}}`),
			want: []string{contextResult}, wantWarnings: []string{malformed + "decoding JSON: ", "quantities must match"}},
		{name: "warns about an empty annotation",
			ns: namespaceWith(nil, ""), wantWarnings: []string{malformed + "decoding JSON: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := resourcesPolicy(tt.config)
			world := NewSnapshot()
			if tt.ns != nil {
				world.AddNamespace(tt.ns)
			}
			pod := resPod(tt.pod...)
			before := pod.DeepCopy()

			out, rep := p.Mutate(Input{Pod: pod, World: world})

			if !apiequality.Semantic.DeepEqual(pod, before) {
				t.Error("the input pod was modified")
			}
			if tt.want == nil {
				if out != pod {
					t.Errorf("changed a pod that needs nothing: %v", containerResources(out))
				}
			} else if got := containerResources(out); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("resources =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if len(rep.Violations) > 0 {
				t.Errorf("violations = %v, want none", rep.Violations)
			}
			if len(tt.wantWarnings) == 0 && len(rep.Warnings) > 0 || len(tt.wantWarnings) > 0 && len(rep.Warnings) != 1 {
				t.Fatalf("warnings = %v, want one containing %q", rep.Warnings, tt.wantWarnings)
			}
			for _, w := range tt.wantWarnings {
				if f := rep.Warnings[0]; f.Field != "" || !strings.Contains(f.Message, w) {
					t.Errorf("warning = %q at %q, want no field and a message containing %q", f.Message, f.Field, w)
				}
			}
			again, _ := p.Mutate(Input{Pod: out, World: world})
			if again != out {
				t.Errorf("mutating the mutated pod changed it again: %v", containerResources(again))
			}
		})
	}
}

func containerResources(p *Pod) []string {
	var out []string
	for _, c := range p.Containers() {
		out = append(out, resString(c.Container.Resources))
	}
	return out
}

func TestResourcesMalformedAnnotationWarningIsActionable(t *testing.T) {
	world := NewSnapshot()
	world.AddNamespace(namespaceWith(nil, `{"requests":{"cpu":"100m"},"limits":{"cpu":"50m"}}`))
	_, rep := resourcesPolicy(ResourcesConfig{}).Mutate(Input{Pod: resPod(), World: world})
	if len(rep.Warnings) != 1 {
		t.Fatalf("warnings = %v, want 1", rep.Warnings)
	}
	msg := rep.Warnings[0].Message
	for _, part := range []string{
		`namespace "team-a"`, "podguard.io/default-resources", // where
		`requests[cpu]: Invalid value: "100m": must not be greater than the cpu limit 50m`,                          // what
		"the configured default resources apply instead",                                                            // what happens
		`Fix: write a JSON object such as {"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}}`, // the fix
	} {
		if !strings.Contains(msg, part) {
			t.Errorf("warning %q does not say %q", msg, part)
		}
	}
}

// TestResourcesKeepsTheConfiguredQuantities checks that defaults are copied
// as decoded, format included. (An unquoted 129e6 in YAML is a number, which
// decodes as 129000000 and prints as 129M; quoted, it keeps its exponent.)
func TestResourcesKeepsTheConfiguredQuantities(t *testing.T) {
	var c ResourcesConfig
	decodeYAML(t, `
defaults:
  requests: {cpu: 0.5, memory: 128974848}
  limits: {cpu: "1", memory: "129e6", ephemeral-storage: 2Gi}
`, &c)
	out, _ := resourcesPolicy(c).Mutate(Input{Pod: resPod(), World: NewSnapshot()})
	got := out.Spec.Containers[0].Resources
	for _, l := range []struct {
		got, want corev1.ResourceList
	}{{got.Requests, c.Defaults.Requests}, {got.Limits, c.Defaults.Limits}} {
		for name, want := range l.want {
			q := l.got[name]
			if q.String() != want.String() || q.Format != want.Format {
				t.Errorf("%s = %s (%s), want %s (%s) as configured", name, q.String(), q.Format, want.String(), want.Format)
			}
		}
	}
	if s := resString(got); s != "req{cpu=500m,memory=128974848} lim{cpu=1,ephemeral-storage=2Gi,memory=129e6}" {
		t.Errorf("resources = %s", s)
	}
}

// TestResourcesNeverProducesRequestAboveLimit runs every combination of a
// container's request and limit (a valid pair, or missing) with every default
// request and limit (including a default request above the default limit,
// which merged layers can produce), for cpu and memory, written in several
// equivalent forms. The output must never have a request above its limit,
// also after the API server sets a missing request to the limit; must keep
// what the user set; must fill a missing limit when there is a default; and
// must be stable.
func TestResourcesNeverProducesRequestAboveLimit(t *testing.T) {
	values := map[corev1.ResourceName][]string{
		corev1.ResourceCPU:    {"", "100m", "0.5", "500m", "1", "1500m"},
		corev1.ResourceMemory: {"", "64Mi", "123Mi", "128974848", "129e6", "129M", "200Mi"},
	}
	combinations := 0
	for name, qs := range values {
		q := func(s string) string {
			if s == "" {
				return ""
			}
			return string(name) + "=" + s
		}
		for _, req := range qs {
			for _, lim := range qs {
				if r, l := resource.MustParse(orZero(req)), resource.MustParse(orZero(lim)); req != "" && lim != "" && r.Cmp(l) > 0 {
					continue // the API server rejects this input before any webhook sees it
				}
				for _, dreq := range qs {
					for _, dlim := range qs {
						combinations++
						p := resourcesPolicy(ResourcesConfig{Defaults: defaultsOf(q(dreq), q(dlim))})
						pod := resPod(appResources(q(req), q(lim)))
						out, _ := p.Mutate(Input{Pod: pod, World: NewSnapshot()})
						r := out.Spec.Containers[0].Resources
						gotReq, hasReq := r.Requests[name]
						gotLim, hasLim := r.Limits[name]
						if !hasReq && hasLim {
							gotReq, hasReq = gotLim, true // what the API server does
						}
						where := fmt.Sprintf("%s: container request %q limit %q, defaults request %q limit %q: got %s", name, req, lim, dreq, dlim, resString(r))
						if hasReq && hasLim && gotReq.Cmp(gotLim) > 0 {
							t.Errorf("%s: request above limit", where)
						}
						if wantReq, wantLim := resource.MustParse(orZero(req)), resource.MustParse(orZero(lim)); req != "" && gotReq.String() != wantReq.String() || lim != "" && gotLim.String() != wantLim.String() {
							t.Errorf("%s: changed a value the user set", where)
						}
						if lim == "" && dlim != "" && !hasLim {
							t.Errorf("%s: no limit despite a default limit", where)
						}
						if again, _ := p.Mutate(Input{Pod: out, World: NewSnapshot()}); again != out {
							t.Errorf("%s: not idempotent", where)
						}
					}
				}
			}
		}
	}
	if combinations < 1000 {
		t.Errorf("only %d combinations ran", combinations)
	}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// decodeYAML decodes YAML the way the config loader does: strictly, through
// JSON.
func decodeYAML(t *testing.T, doc string, into any) {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	strict, err := sigsjson.UnmarshalStrict(js, into)
	if err != nil || len(strict) > 0 {
		t.Fatalf("decoding %s: %v %v", js, err, strict)
	}
}

func TestResourcesConfigDecodesEveryQuantityForm(t *testing.T) {
	var c ResourcesConfig
	decodeYAML(t, `
enabled: true
defaults:
  requests: {cpu: 500m, memory: 128974848}
  limits: {cpu: 1, memory: 129e6}
namespaces:
- selector: {matchLabels: {tier: batch}}
  defaults:
    requests: {cpu: 0.5, memory: 123Mi, ephemeral-storage: 1Gi}
    limits: {cpu: "2", memory: 129M}
`, &c)
	c.defaults()
	if errs := c.validate(field.NewPath("policies", "resources")); len(errs) > 0 {
		t.Fatalf("errors = %v", errs)
	}
	rule := c.Namespaces[0].Defaults
	for _, eq := range []struct {
		what string
		a, b resource.Quantity
	}{
		{"500m and 0.5", c.Defaults.Requests[corev1.ResourceCPU], rule.Requests[corev1.ResourceCPU]},
		{"128974848 and 123Mi", c.Defaults.Requests[corev1.ResourceMemory], rule.Requests[corev1.ResourceMemory]},
		{"129e6 and 129M", c.Defaults.Limits[corev1.ResourceMemory], rule.Limits[corev1.ResourceMemory]},
		{"1 and 1000m", c.Defaults.Limits[corev1.ResourceCPU], resource.MustParse("1000m")},
	} {
		if eq.a.Cmp(eq.b) != 0 {
			t.Errorf("%s decode to %s and %s, want equal quantities", eq.what, eq.a.String(), eq.b.String())
		}
	}
}

func TestResourcesConfigValidation(t *testing.T) {
	tests := []struct {
		name   string
		config ResourcesConfig
		want   []string
	}{
		{name: "accepts the seed scenario's defaults", config: ResourcesConfig{Defaults: contextDefaults}},
		{name: "accepts no defaults at all"},
		{name: "rejects a resource other than cpu, memory and ephemeral-storage",
			config: ResourcesConfig{Defaults: defaultsOf("nvidia.com/gpu=1", "")},
			want:   []string{`policies.resources.defaults.requests[nvidia.com/gpu]: Unsupported value: "nvidia.com/gpu": supported values: "cpu", "memory", "ephemeral-storage"`}},
		{name: "rejects a zero or negative quantity",
			config: ResourcesConfig{Defaults: defaultsOf("memory=-1Mi", "cpu=0")},
			want: []string{`policies.resources.defaults.requests[memory]: Invalid value: "-1Mi": must be greater than zero`,
				`policies.resources.defaults.limits[cpu]: Invalid value: "0": must be greater than zero`}},
		{name: "rejects a default request above the default limit",
			config: ResourcesConfig{Defaults: defaultsOf("cpu=0.5,memory=300Mi", "cpu=500m,memory=200Mi")},
			want:   []string{`policies.resources.defaults.requests[memory]: Invalid value: "300Mi": must not be greater than the memory limit 200Mi`}},
		{name: "rejects a default request above the default limit in a namespace rule",
			config: ResourcesConfig{Defaults: contextDefaults, Namespaces: []NamespaceResourceRule{
				{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "batch"}}, Defaults: defaultsOf("cpu=2", "cpu=1")},
			}},
			want: []string{`policies.resources.namespaces[0].defaults.requests[cpu]: Invalid value: "2": must not be greater than the cpu limit 1`}},
		{name: "rejects invalid selectors",
			config: ResourcesConfig{Namespaces: []NamespaceResourceRule{
				{Selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Equals", Values: []string{"a"}}}}, Defaults: contextDefaults},
				{Selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn}}}, Defaults: contextDefaults},
				{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}}, Defaults: contextDefaults},
			}},
			want: []string{`policies.resources.namespaces[0].selector.matchExpressions[0].operator: Invalid value: "Equals"`,
				`policies.resources.namespaces[1].selector.matchExpressions[0].values: Required value`,
				`policies.resources.namespaces[2].selector.matchLabels: Invalid value: "bad key!"`}},
		{name: "rejects a rule without defaults",
			config: ResourcesConfig{Namespaces: []NamespaceResourceRule{{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "batch"}}}}},
			want:   []string{`policies.resources.namespaces[0].defaults: Required value: a rule needs at least one default request or limit`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.config
			c.defaults()
			errs := c.validate(field.NewPath("policies", "resources"))
			if len(errs) != len(tt.want) {
				t.Fatalf("errors = %v, want %d", errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestResourcesLeaveThePodguardLogSidecarAlone(t *testing.T) {
	sidecar := logSidecarPolicy(nil)
	withSidecar, _ := sidecar.Mutate(Input{Pod: tomcatPod("/usr/local/tomcat/logs"), World: nativeWorld("v1.33.0", "")})
	c := ResourcesConfig{Defaults: ResourceDefaults{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
	}}
	c.defaults()
	out, _ := newResources(c).Mutate(Input{Pod: withSidecar, World: NewSnapshot()})
	if got := out.Spec.InitContainers[0].Resources; !apiequality.Semantic.DeepEqual(got, withSidecar.Spec.InitContainers[0].Resources) {
		t.Errorf("the log sidecar's resources were changed: %+v", got)
	}
	if got := out.Spec.Containers[0].Resources.Limits.Cpu().String(); got != "1" {
		t.Errorf("the app container's cpu limit = %s, want the default 1", got)
	}
}
