package policies

import (
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

func TestValidateEphemeral(t *testing.T) {
	world := NewSnapshot()
	world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "bad-keys"}, Data: map[string]string{"1st.key": "v"}})
	world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "etc-files"}, Data: map[string]string{"hosts": "v"}})
	debug := func(name string, envFrom bool, mountEtc bool) corev1.EphemeralContainer {
		c := corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: name, Image: "busybox"}}
		if envFrom {
			c.EnvFrom = []corev1.EnvFromSource{cmRef("bad-keys", "")}
		}
		if mountEtc {
			c.VolumeMounts = []corev1.VolumeMount{{Name: "etc", MountPath: "/etc"}}
		}
		return c
	}
	tests := []struct {
		name       string
		ephemeral  []corev1.EphemeralContainer
		added      []string
		exemptions Exemptions
		want       []string // violations, as "[policy] field"
	}{
		{name: "denies an added container whose envFrom keys the kubelet drops",
			ephemeral: []corev1.EphemeralContainer{debug("debugger", true, false)}, added: []string{"debugger"},
			want: []string{"[envfrom-keys] spec.ephemeralContainers[0].envFrom[0]"}},
		{name: "denies an added container whose configMap mount hides /etc, with the fix that works without subPath",
			ephemeral: []corev1.EphemeralContainer{debug("debugger", false, true)}, added: []string{"debugger"},
			want: []string{"[mount-shadowing] spec.ephemeralContainers[0].volumeMounts[0].mountPath"}},
		{name: "does not judge the ephemeral containers the pod already had",
			ephemeral: []corev1.EphemeralContainer{debug("old", true, true), debug("new", false, false)}, added: []string{"new"}},
		{name: "judges only the added one, at its own index",
			ephemeral: []corev1.EphemeralContainer{debug("old", true, false), debug("new", true, false)}, added: []string{"new"},
			want: []string{"[envfrom-keys] spec.ephemeralContainers[1].envFrom[0]"}},
		{name: "denies the added container even when the ones the pod had would fill the findings budget",
			ephemeral: append(manyDebug(11, func(n string) corev1.EphemeralContainer { return debug(n, true, false) }), debug("new", true, false)), added: []string{"new"},
			want: []string{"[envfrom-keys] spec.ephemeralContainers[11].envFrom[0]"}},
		{name: "does not judge the pod's own containers again",
			ephemeral: []corev1.EphemeralContainer{debug("debugger", false, false)}, added: []string{"debugger"}},
		{name: "applies an admin's image exemption to the added container",
			ephemeral: []corev1.EphemeralContainer{debug("debugger", true, false)}, added: []string{"debugger"},
			exemptions: Exemptions{Rules: []ExemptionRule{{Policies: []string{EnvFromKeysName}, Images: []string{"busybox"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := tt.exemptions
			ex.Default()
			engine := NewEngine(defaultSettings(), WithExemptions(&ex))
			pod := testPod("nginx")
			// The pod's own container breaks both rules; it is not judged here.
			pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{cmRef("bad-keys", "")}
			pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "etc", MountPath: "/etc"}}
			pod.Spec.Volumes = []corev1.Volume{{Name: "etc", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "etc-files"}}}}}
			pod.Spec.EphemeralContainers = tt.ephemeral
			res, err := engine.ValidateEphemeral(pod, sets.New(tt.added...), world)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range res.Violations {
				got = append(got, "["+v.Policy+"] "+v.Field)
				if v.Policy == MountShadowingName && (strings.Contains(v.Message, "add subPath") || !strings.Contains(v.Message, "ephemeral containers cannot use subPath")) {
					t.Errorf("an ephemeral container is told to use subPath, which the API server forbids for it: %s", v.Message)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("violations = %q, want %q", got, tt.want)
			}
			if len(tt.want) == 0 && res.Denied() {
				t.Errorf("denied: %v", res.Violations)
			}
			if len(tt.want) == 0 && (res.Outcomes[EnvFromKeysName] == OutcomeDenied || res.Outcomes[MountShadowingName] == OutcomeDenied) {
				t.Errorf("outcomes say denied: %v", res.Outcomes)
			}
			if len(pod.Spec.Containers) != 1 {
				t.Error("the input pod was modified")
			}
		})
	}
}

// manyDebug makes n ephemeral containers named old-0, old-1, ...
func manyDebug(n int, mk func(string) corev1.EphemeralContainer) []corev1.EphemeralContainer {
	out := make([]corev1.EphemeralContainer, n)
	for i := range out {
		out[i] = mk("old-" + strconv.Itoa(i))
	}
	return out
}
