package config

import (
	"errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"strings"
	"testing"
)

const header = "apiVersion: podguard.io/v1alpha1\nkind: Config\n"

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, one per problem; none means valid
	}{
		{name: "accepts the minimal file", yaml: header},
		{name: "accepts every documented setting", yaml: header + `
cluster:
  kubeletVersion: v1.29.3
namespaces:
  exclude: [kube-system, infra]
policies:
  imagePullSecrets:
    enabled: true
    registries:
    - registry: 10.0.0.130:5000
      secrets: [myregistrykey]
  envFromKeys:
    enabled: true
    posix: deny
    secrets: true
`},
		{name: "rejects an unknown field with its path", yaml: header + "policies:\n  envFromKeys:\n    posx: deny\n",
			want: []string{"policies.envFromKeys.posx: Forbidden: unknown field"}},
		{name: "rejects an unknown field inside a list item with its index", yaml: header + "policies:\n  imagePullSecrets:\n    registries:\n    - {registry: ghcr.io, secrets: [a], secret: b}\n",
			want: []string{"policies.imagePullSecrets.registries[0].secret: Forbidden: unknown field"}},
		{name: "rejects a mistyped value with its path", yaml: header + "policies:\n  envFromKeys:\n    enabled: \"yes\"\n",
			want: []string{`policies.envFromKeys.enabled: Invalid value: "string": must be of type bool`}},
		{name: "rejects a duplicate key", yaml: header + "cluster: {}\ncluster: {}\n", want: []string{`key "cluster" already set`}},
		{name: "reports every invalid setting at once", yaml: "apiVersion: v2\nkind: Cfg\ncluster: {kubeletVersion: banana}\nnamespaces: {exclude: [Kube_System]}\npolicies:\n  envFromKeys: {posix: maybe}\n  imagePullSecrets:\n    registries: [{registry: nginx, secrets: []}]\n",
			want: []string{
				`apiVersion: Unsupported value: "v2"`, `kind: Unsupported value: "Cfg"`,
				`cluster.kubeletVersion: Invalid value: "banana"`, `namespaces.exclude[0]: Invalid value: "Kube_System"`,
				`policies.imagePullSecrets.registries[0].registry: Invalid value: "nginx"`,
				`policies.imagePullSecrets.registries[0].secrets: Required value`,
				`policies.envFromKeys.posix: Unsupported value: "maybe"`,
			}},
		{name: "accepts every kind of exemption", yaml: header + `
exemptions:
  podSkippable: [log-sidecar, image-pull-secrets, resources]
  rules:
  - policies: [all]
    namespaces: [legacy]
  - policies: [security-context]
    namespaceSelector:
      matchExpressions: [{key: podguard.io/exempt, operator: In, values: ["true"]}]
  - policies: [envfrom-keys, mount-shadowing]
    serviceAccounts: [ci/builder]
  - policies: [security-context, resources]
    namespaces: [debug]
    images: [busybox, registry.example.com/debug/*]
`},
		{name: "rejects an unknown field in an exemption rule with its path", yaml: header + "exemptions:\n  rules:\n  - {policies: [all], namespace: [a]}\n",
			want: []string{"exemptions.rules[0].namespace: Forbidden: unknown field", "exemptions.rules[0]: Required value: set at least one of"}},
		{name: "rejects a mistyped exemption setting", yaml: header + "exemptions:\n  podSkippable: resources\n",
			want: []string{`exemptions.podSkippable: Invalid value: "string": must be of type []string`}},
		{name: "rejects bad exemption selectors, patterns and names with their paths", yaml: header + `
exemptions:
  podSkippable: [security-contxt]
  rules:
  - policies: [all]
    namespaceSelector: {matchExpressions: [{key: tier, operator: Has}]}
  - policies: [security-context]
    images: ["busybox:latest", "*/debug"]
  - policies: [all]
    serviceAccounts: [builder]
`, want: []string{
			`exemptions.podSkippable[0]: Unsupported value: "security-contxt"`,
			`exemptions.rules[0].namespaceSelector.matchExpressions[0].operator: Invalid value: "Has"`,
			`exemptions.rules[1].images[0]: Invalid value: "busybox:latest"`,
			`exemptions.rules[1].images[1]: Invalid value: "*/debug"`,
			`exemptions.rules[2].serviceAccounts[0]: Invalid value: "builder": must be namespace/name`,
		}},
		{name: "accepts every image inspector setting", yaml: header + `
images:
  inspect: true
  registries: ["127.0.0.1:*", "ghcr.io", "registry.acme.internal:5000", "[::1]:5000"]
  budget: 800ms
  pullSecrets: true
  cacheDir: /var/cache/podguard/images
  maxCacheSize: 64Mi
  concurrency: 2
  tagTTL: 1m
  fetchTimeout: 30s
  maxImageSize: 1Gi
  maxEntries: 500000
  maxIndexSize: 16Mi
`},
		{name: "requires an allow-list when images are inspected", yaml: header + "images: {inspect: true}\n",
			want: []string{"images.registries: Required value"}},
		{name: "rejects bad image inspector settings with their paths", yaml: header + `
images:
  inspect: true
  registries: ["https://ghcr.io", "ghcr.io/acme", "*.acme.io", "host:99999", "ghcr.io", "ghcr.io"]
  budget: 10s
  cacheDir: cache
  concurrency: 500
  maxEntries: -1
  maxIndexSize: "0"
`, want: []string{
			`images.maxIndexSize: Invalid value: "0": must be positive`,
			`images.registries[0]: Invalid value: "https://ghcr.io"`, `images.registries[1]: Invalid value: "ghcr.io/acme"`,
			`images.registries[2]: Invalid value: "*.acme.io"`, `images.registries[3]: Invalid value: "host:99999"`,
			`images.registries[5]: Duplicate value: "ghcr.io"`,
			`images.budget: Invalid value: "10s": must be more than 0 and at most 3s`,
			`images.cacheDir: Invalid value: "cache"`, `images.concurrency: Invalid value: 500`, `images.maxEntries: Invalid value: -1`,
		}},
		{name: "rejects a mistyped image budget with its path", yaml: header + "images: {budget: fast}\n",
			want: []string{`images.budget: Invalid value: "string \"fast\"": must be a duration such as 1.5s or 2m`}},
		{name: "accepts the audit settings", yaml: header + "audit: {background: true, interval: 30m, reports: wgpolicyk8s.io/v1alpha2, events: false, guard: deny}\n"},
		{name: "reads an unquoted guard: off (YAML's false) as off", yaml: header + "audit: {guard: off}\n"},
		{name: "accepts every mutation warning setting", yaml: header + "admission: {mutationWarnings: summary}\n"},
		{name: "rejects an unknown mutation warning setting with its path", yaml: header + "admission: {mutationWarnings: loud}\n",
			want: []string{`admission.mutationWarnings: Unsupported value: "loud": supported values: "on", "summary", "off"`}},
		{name: "rejects a mistyped mutation warning setting with its path", yaml: header + "admission: {mutationWarnings: 1}\n",
			want: []string{`admission.mutationWarnings: Invalid value: "1": must be of type config.MutationWarnings`}},
		{name: "rejects an unknown admission field with its path", yaml: header + "admission: {mutationWarning: off}\n",
			want: []string{"admission.mutationWarning: Forbidden: unknown field"}},
		{name: "rejects bad audit settings with their paths", yaml: header + "audit: {interval: 10s, reports: policyreports, guard: block}\n",
			want: []string{`audit.interval: Invalid value: "10s": must be at least 1m0s`,
				`audit.reports: Unsupported value: "policyreports"`, `audit.guard: Unsupported value: "block"`}},
		{name: "rejects an empty file", yaml: "  \n", want: []string{"the config file is empty"}},
		{name: "rejects YAML that does not parse", yaml: "policies: [", want: []string{"not valid YAML"}},
		{name: "rejects a document that is not a mapping", yaml: "- a\n- b\n", want: []string{"cannot unmarshal array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("podguard.yaml", []byte(tt.yaml))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if errs := c.Validate(); len(errs) > 0 {
					t.Fatalf("parsed config does not validate: %v", errs)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse accepted an invalid config")
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error is %T, want *config.Error", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid config podguard.yaml") {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			if n := len(cerr.Errs); n > 0 && n != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%s", n, len(tt.want), msg)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Default()
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatalf("defaults do not validate: %v", errs)
	}
	if got := strings.Join(c.Namespaces.Exclude, ","); got != "kube-system,kube-node-lease,podguard-system,cert-manager" {
		t.Errorf("excluded namespaces = %s", got)
	}
	if c.Policies.EnvFromKeys.POSIX != "warn" || *c.Policies.EnvFromKeys.Secrets {
		t.Errorf("envFromKeys defaults = %+v", c.Policies.EnvFromKeys)
	}
	if c.SecretKeysEnabled() {
		t.Error("Secret key caching is on by default; it must be opt-in")
	}
	if c.SecretMetadataEnabled() {
		t.Error("Secret metadata caching is on by default; nothing needs it without pull-secret registries")
	}
	withRegistry, err := Parse("x", []byte(header+"policies:\n  imagePullSecrets:\n    registries: [{registry: ghcr.io/acme, secrets: [ghcr]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !withRegistry.SecretMetadataEnabled() {
		t.Error("a pull-secret registry needs the Secret metadata cache")
	}
	withRegistry.Policies.ImagePullSecrets.Enabled = ptr.To(false)
	if withRegistry.SecretMetadataEnabled() {
		t.Error("a disabled image-pull-secrets policy needs no Secret metadata")
	}
	parsed, err := Parse("x", []byte(header))
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Policies.EnvFromKeys.POSIX != c.Policies.EnvFromKeys.POSIX || len(parsed.Namespaces.Exclude) != 4 {
		t.Error("a minimal file does not get the same defaults as no file")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(header))
	f.Add([]byte(header + "policies:\n  imagePullSecrets:\n    registries:\n    - {registry: 10.0.0.130:5000, secrets: [k]}\n"))
	f.Add([]byte(header + "cluster: {kubeletVersion: 1.29}\n"))
	f.Add([]byte("{]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatalf("Parse returned a config that does not validate: %v", errs)
		}
	})
}

func TestDefaultExemptionsLetPodsSkipOnlyTheConveniences(t *testing.T) {
	c, err := Parse("podguard.yaml", []byte(header))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Exemptions.PodSkippable, ","); got != "log-sidecar,image-pull-secrets" {
		t.Errorf("exemptions.podSkippable = %q, want log-sidecar,image-pull-secrets", got)
	}
	c, err = Parse("podguard.yaml", []byte(header+"exemptions: {podSkippable: []}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Exemptions.PodSkippable == nil || len(c.Exemptions.PodSkippable) != 0 {
		t.Errorf("an explicit [] became %q, want it kept empty", c.Exemptions.PodSkippable)
	}
}

func TestImagesMaxIndexSizeDefaults(t *testing.T) {
	var c ImagesConfig
	c.Default()
	if got := c.MaxIndexSize.Value(); got != 32<<20 {
		t.Errorf("images.maxIndexSize defaults to %d bytes, want 32Mi", got)
	}
	c.MaxIndexSize = ptr.To(resource.MustParse("-1Mi"))
	if errs := c.Validate(field.NewPath("images")); len(errs) != 1 || !strings.Contains(errs[0].Error(), "images.maxIndexSize") {
		t.Errorf("a negative maxIndexSize: %v", errs)
	}
}

// TestMutationWarnings: admission.mutationWarnings defaults to on, and
// YAML's unquoted on and off (booleans to YAML 1.1) mean on and off.
func TestMutationWarnings(t *testing.T) {
	for yaml, want := range map[string]MutationWarnings{
		"":                                     MutationWarningsOn,
		"admission: {mutationWarnings: on}\n":  MutationWarningsOn,
		"admission: {mutationWarnings: off}\n": MutationWarningsOff,
		"admission: {mutationWarnings: \"off\"}\n": MutationWarningsOff,
		"admission: {mutationWarnings: summary}\n": MutationWarningsSummary,
	} {
		c, err := Parse("x", []byte(header+yaml))
		if err != nil {
			t.Fatalf("%q: %v", yaml, err)
		}
		if got := c.Admission.MutationWarnings; got != want {
			t.Errorf("%q: mutationWarnings = %q, want %q", yaml, got, want)
		}
	}
}
