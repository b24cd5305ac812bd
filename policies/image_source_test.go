package policies

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestPullSecretNames(t *testing.T) {
	settings := &Settings{ImagePullSecrets: ImagePullSecretsConfig{Registries: []RegistryRule{
		{Registry: "10.0.0.130:5000", Secrets: []string{"myregistrykey"}},
		{Registry: "ghcr.io/acme", Secrets: []string{"acme", "shared"}},
	}}}
	settings.Default()
	pod := func(secrets []string, images ...string) *Pod {
		p := &Pod{}
		for _, s := range secrets {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
		}
		for _, img := range images {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c", Image: img})
		}
		return p
	}
	tests := []struct {
		name     string
		settings *Settings
		pod      *Pod
		want     []string
	}{
		{"lists the pod's own secrets first, once each", settings, pod([]string{"mine", "", "mine"}, "nginx"), []string{"mine"}},
		{"adds the secrets a rule names for the image's registry", settings, pod([]string{"mine"}, "10.0.0.130:5000/nginx:1", "ghcr.io/acme/app"), []string{"mine", "myregistrykey", "acme", "shared"}},
		{"adds nothing for a registry without a rule", settings, pod(nil, "ghcr.io/other/app", "docker.io/library/nginx"), nil},
		{"skips an invalid reference", settings, pod(nil, "UPPER/case:x:y"), nil},
		{"adds nothing when the policy is off", &Settings{ImagePullSecrets: ImagePullSecretsConfig{Enabled: ptr.To(false), Registries: settings.ImagePullSecrets.Registries}}, pod(nil, "10.0.0.130:5000/nginx"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.settings.Default()
			if got := NewEngine(tt.settings).PullSecretNames(tt.pod); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestImagePlatform(t *testing.T) {
	withArch := func(arch string) *Pod {
		return &Pod{Spec: corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/arch": arch}}}
	}
	affinity := func(terms ...[]string) *Pod {
		var ts []corev1.NodeSelectorTerm
		for _, vals := range terms {
			ts = append(ts, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: vals}}})
		}
		return &Pod{Spec: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: ts}}}}}
	}
	tests := []struct {
		name    string
		pod     *Pod
		cluster Cluster
		want    string
	}{
		{"takes the architecture the nodeSelector pins", withArch("arm64"), Cluster{NodeArches: []string{"amd64"}}, "linux/arm64"},
		{"takes the architecture every required affinity term pins", affinity([]string{"arm64"}, []string{"arm64"}), Cluster{}, "linux/arm64"},
		{"ignores an affinity that allows several architectures", affinity([]string{"arm64", "amd64"}), Cluster{NodeArches: []string{"s390x"}}, "linux/s390x"},
		{"ignores affinity terms that disagree", affinity([]string{"arm64"}, []string{"amd64"}), Cluster{}, "linux/amd64"},
		{"takes the architecture most Nodes run", &Pod{}, Cluster{NodeArches: []string{"arm64", "amd64", "arm64"}}, "linux/arm64"},
		{"breaks a tie between Nodes in sorted order", &Pod{}, Cluster{NodeArches: []string{"arm64", "amd64"}}, "linux/amd64"},
		{"defaults to linux/amd64", &Pod{}, Cluster{}, "linux/amd64"},
		{"runs windows images for a Windows pod", &Pod{Spec: corev1.PodSpec{OS: &corev1.PodOS{Name: corev1.Windows}}}, Cluster{}, "windows/amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ImagePlatform(tt.pod, tt.cluster); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseImageUser(t *testing.T) {
	tests := []struct {
		user     string
		uid, gid *int64
		name     string
	}{
		{"", ptr.To[int64](0), nil, ""},
		{"0", ptr.To[int64](0), nil, ""},
		{"root", nil, nil, "root"},
		{"1000", ptr.To[int64](1000), nil, ""},
		{"1000:2000", ptr.To[int64](1000), ptr.To[int64](2000), ""},
		{"1000:staff", ptr.To[int64](1000), nil, ""},
		{"app:app", nil, nil, "app"},
		// containerd and CRI-O read it with strconv.ParseInt: a uid,
		// which the kubelet's runAsNonRoot check admits.
		{"-1", ptr.To[int64](-1), nil, ""},
		{"-1:-1", ptr.To[int64](-1), nil, ""},
	}
	for _, tt := range tests {
		got := ParseImageUser(tt.user)
		if !ptrEq(got.UID, tt.uid) || !ptrEq(got.GID, tt.gid) || got.Name != tt.name {
			t.Errorf("ParseImageUser(%q) = uid %v gid %v name %q, want uid %v gid %v name %q", tt.user, ptr.Deref(got.UID, -1), ptr.Deref(got.GID, -1), got.Name, ptr.Deref(tt.uid, -1), ptr.Deref(tt.gid, -1), tt.name)
		}
	}
}

func ptrEq(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
