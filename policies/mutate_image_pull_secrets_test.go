package policies

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestImagePullSecrets(t *testing.T) {
	rules := []RegistryRule{
		{Registry: "10.0.0.130:5000", Secrets: []string{"myregistrykey"}},
		{Registry: "ghcr.io/acme", Secrets: []string{"acme-ghcr"}},
		{Registry: "docker.io", Secrets: []string{"hub", "hub-mirror"}},
	}
	tests := []struct {
		name         string
		images       []string
		init         []string
		ephemeral    []string
		existing     []string
		missing      []string // secrets the world says do not exist
		want         []string
		wantWarnings []string
	}{
		{name: "adds the secret for an image from a registry with a port",
			images: []string{"10.0.0.130:5000/nginx:latest"}, want: []string{"myregistrykey"}},
		{name: "handles a digest", images: []string{"10.0.0.130:5000/nginx@sha256:" + strings.Repeat("a", 64)}, want: []string{"myregistrykey"}},
		{name: "reads a bare name as docker.io/library", images: []string{"nginx"}, want: []string{"hub", "hub-mirror"}},
		{name: "leaves images from other registries alone", images: []string{"quay.io/prometheus/node-exporter:v1", "10.0.0.131:5000/nginx"}},
		{name: "matches a path prefix on whole segments", images: []string{"ghcr.io/acme/app:1", "ghcr.io/acme-corp/app:1"}, want: []string{"acme-ghcr"}},
		{name: "does not match a prefix of the path prefix", images: []string{"ghcr.io/acmeinc/app"}},
		{name: "counts init containers", images: []string{"quay.io/x/y"}, init: []string{"10.0.0.130:5000/migrate"}, want: []string{"myregistrykey"}},
		{name: "counts ephemeral containers", images: []string{"quay.io/x/y"}, ephemeral: []string{"10.0.0.130:5000/debug"}, want: []string{"myregistrykey"}},
		{name: "keeps the user's entries and their order and adds only what is missing",
			images: []string{"10.0.0.130:5000/a", "nginx"}, existing: []string{"hub-mirror", "mine"},
			want: []string{"hub-mirror", "mine", "myregistrykey", "hub"}},
		{name: "adds each secret once for many images", images: []string{"10.0.0.130:5000/a", "10.0.0.130:5000/b"}, want: []string{"myregistrykey"}},
		{name: "warns when a needed secret does not exist in the namespace",
			images: []string{"10.0.0.130:5000/nginx:latest"}, missing: []string{"myregistrykey"}, want: []string{"myregistrykey"},
			wantWarnings: []string{`spec.containers[0].image: image "10.0.0.130:5000/nginx:latest" needs pull secret "myregistrykey" (rule for 10.0.0.130:5000), which does not exist in namespace "team-a": the pull will fail with "no basic auth credentials" until it is created`}},
		{name: "warns about an image reference it cannot parse", images: []string{"Nginx"},
			wantWarnings: []string{`spec.containers[0].image: image "Nginx" is not a valid image reference`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newImagePullSecrets(ImagePullSecretsConfig{Registries: rules})
			pod := testPod(tt.images...)
			for _, img := range tt.init {
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: "init", Image: img})
			}
			for _, img := range tt.ephemeral {
				pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: img}})
			}
			for _, s := range tt.existing {
				pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
			}
			world := NewSnapshot()
			for _, r := range rules {
				for _, s := range r.Secrets {
					if !slices.Contains(tt.missing, s) {
						world.AddSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: s}})
					}
				}
			}
			before := pod.DeepCopy()

			out, rep := p.Mutate(Input{Pod: pod, World: world})

			var got []string
			for _, s := range out.Spec.ImagePullSecrets {
				got = append(got, s.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("imagePullSecrets = %v, want %v", got, tt.want)
			}
			if len(rep.Warnings) != len(tt.wantWarnings) {
				t.Fatalf("warnings = %v, want %d", rep.Warnings, len(tt.wantWarnings))
			}
			for i, w := range tt.wantWarnings {
				if got := rep.Warnings[i].Field + ": " + rep.Warnings[i].Message; !strings.HasPrefix(got, w) {
					t.Errorf("warning %d = %q, want prefix %q", i, got, w)
				}
			}
			if len(rep.Violations) > 0 {
				t.Errorf("violations = %v, want none", rep.Violations)
			}
			if len(pod.Spec.ImagePullSecrets) != len(before.Spec.ImagePullSecrets) {
				t.Error("the input pod was modified")
			}
			again, _ := p.Mutate(Input{Pod: out, World: world})
			if again != out {
				t.Error("mutating the mutated pod changed it again")
			}
		})
	}
}

func TestImagePullSecretsWithoutRulesChangesNothing(t *testing.T) {
	p := newImagePullSecrets(ImagePullSecretsConfig{})
	pod := testPod("10.0.0.130:5000/nginx", "Nginx")
	out, rep := p.Mutate(Input{Pod: pod, World: NewSnapshot()})
	if out != pod || len(rep.Warnings)+len(rep.Violations) > 0 {
		t.Errorf("got a change or findings without rules: %v", rep)
	}
}

func TestImagePullSecretsUnknownSecretsAreNotWarnedAbout(t *testing.T) {
	p := newImagePullSecrets(ImagePullSecretsConfig{Registries: []RegistryRule{{Registry: "10.0.0.130:5000", Secrets: []string{"k"}}}})
	world := NewSnapshot()
	world.TrackSecrets = false
	_, rep := p.Mutate(Input{Pod: testPod("10.0.0.130:5000/nginx"), World: world})
	if len(rep.Warnings) > 0 {
		t.Errorf("warned without knowing whether the secret exists: %v", rep.Warnings)
	}
}

func TestImagePullSecretsConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		rules []RegistryRule
		want  []string
	}{
		{name: "accepts a host with a port", rules: []RegistryRule{{Registry: "10.0.0.130:5000", Secrets: []string{"k"}}}},
		{name: "accepts localhost and a path prefix", rules: []RegistryRule{{Registry: "localhost/team", Secrets: []string{"k"}}}},
		{name: "rejects a registry with no host", rules: []RegistryRule{{Registry: "nginx", Secrets: []string{"k"}}},
			want: []string{`policies.imagePullSecrets.registries[0].registry: Invalid value: "nginx": "nginx" does not start with a registry host`}},
		{name: "rejects an empty registry", rules: []RegistryRule{{Secrets: []string{"k"}}},
			want: []string{`policies.imagePullSecrets.registries[0].registry: Invalid value: ""`}},
		{name: "rejects a port above 65535", rules: []RegistryRule{{Registry: "10.0.0.130:99999", Secrets: []string{"k"}}},
			want: []string{`policies.imagePullSecrets.registries[0].registry: Invalid value: "10.0.0.130:99999": port "99999" is not a TCP port: it must be between 1 and 65535`}},
		{name: "rejects port 0 with a path prefix", rules: []RegistryRule{{Registry: "registry.local:0/team", Secrets: []string{"k"}}},
			want: []string{`registries[0].registry: Invalid value: "registry.local:0/team": port "0" is not a TCP port`}},
		{name: "accepts port 65535 and an IPv6 host without a port", rules: []RegistryRule{{Registry: "r.local:65535", Secrets: []string{"k"}}, {Registry: "[::1]", Secrets: []string{"k"}}}},
		{name: "rejects a rule without secrets", rules: []RegistryRule{{Registry: "ghcr.io"}},
			want: []string{`policies.imagePullSecrets.registries[0].secrets: Required value`}},
		{name: "rejects an invalid and a duplicate secret name", rules: []RegistryRule{{Registry: "ghcr.io", Secrets: []string{"Bad_Name", "a", "a"}}},
			want: []string{`registries[0].secrets[0]: Invalid value: "Bad_Name"`, `registries[0].secrets[2]: Duplicate value: "a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ImagePullSecretsConfig{Registries: tt.rules}
			errs := c.validate(field.NewPath("policies", "imagePullSecrets"))
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
