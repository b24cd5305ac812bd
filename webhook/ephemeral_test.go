package webhook

import (
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podguard/podguard/policies"
)

// asUser sets the requester.
func asUser(name string, groups ...string) reviewOpt {
	return func(r *admissionv1.AdmissionRequest) {
		r.UserInfo = authenticationv1.UserInfo{Username: name, Groups: groups}
	}
}

func TestSkipAnnotationAndMirrorPods(t *testing.T) {
	s := newTestServer(t, registryConfig)
	kubelet := asUser("system:node:node-a", "system:nodes", "system:authenticated")
	mirror := map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
	tests := []struct {
		name        string
		annotations map[string]string
		as          reviewOpt
		wantPatched []string // the policies that must have mutated the pod; none: left alone
		wantWarning string
	}{
		{name: "leaves alone a mirror pod a kubelet creates", annotations: mirror, as: kubelet},
		{name: "mutates a pod that sets the mirror annotation itself", annotations: mirror, as: asUser("dev", "system:authenticated"),
			wantPatched: []string{"security-context", "image-pull-secrets"}},
		{name: "mutates a mirror-annotated pod from a user named like a node but not in system:nodes", annotations: mirror, as: asUser("system:node:node-a", "system:authenticated"),
			wantPatched: []string{"security-context", "image-pull-secrets"}},
		{name: "mutates a mirror-annotated pod from system:nodes without a node name", annotations: mirror, as: asUser("system:node:", "system:nodes"),
			wantPatched: []string{"security-context", "image-pull-secrets"}},
		{name: "mutates a pod a kubelet creates without the mirror annotation", as: kubelet,
			wantPatched: []string{"security-context", "image-pull-secrets"}},
		{name: "skips what pods may skip for skip: all, and hardens anyway", annotations: map[string]string{policies.SkipAnnotation: "all"},
			wantPatched: []string{"security-context"}, wantWarning: `podguard [podguard] metadata.annotations[podguard.io/skip]: does not skip "security-context", "resources": pods may skip only "image-pull-secrets", "log-sidecar" (exemptions.podSkippable in podguard's config)`},
		{name: "ignores skip: security-context with a warning", annotations: map[string]string{policies.SkipAnnotation: "image-pull-secrets, security-context"},
			wantPatched: []string{"security-context"}, wantWarning: `does not skip "security-context"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := podJSON(t, func(p *corev1.Pod) { p.Annotations = tt.annotations })
			opts := []reviewOpt{}
			if tt.as != nil {
				opts = append(opts, tt.as)
			}
			_, resp, raw := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj, opts...))
			if !resp.Allowed {
				t.Fatalf("denied: %s", raw)
			}
			if len(tt.wantPatched) == 0 {
				if len(resp.Patch) > 0 || len(resp.Warnings) > 0 {
					t.Errorf("want the pod left alone, got %s", raw)
				}
				return
			}
			if got := resp.AuditAnnotations["mutated-by"]; got != strings.Join(tt.wantPatched, ",") {
				t.Errorf("mutated-by = %q, want %q", got, strings.Join(tt.wantPatched, ","))
			}
			if got := strings.Join(resp.Warnings, "\n"); !strings.Contains(got, tt.wantWarning) {
				t.Errorf("warnings do not contain %q:\n%s", tt.wantWarning, got)
			}
		})
	}

	t.Run("validates a pod that sets the mirror annotation itself, and not a kubelet's", func(t *testing.T) {
		s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\n")
		obj := podJSON(t, func(p *corev1.Pod) {
			p.Annotations = mirror
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
		})
		_, resp, raw := s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj, asUser("dev")))
		if resp.Allowed || !strings.Contains(resp.Result.Message, `[envfrom-keys] spec.containers[0].envFrom[0]`) {
			t.Errorf("want a denial from envfrom-keys, got %s", raw)
		}
		_, resp, raw = s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj, kubelet))
		if !resp.Allowed || len(resp.Warnings) > 0 {
			t.Errorf("a kubelet's mirror pod: want allowed unchanged, got %s", raw)
		}
	})
}

func TestEphemeralContainers(t *testing.T) {
	s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\n")
	s.world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "etc-files"}, Data: map[string]string{"hosts": "x"}})
	badEnv := corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox",
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}}}
	overEtc := corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "shell", Image: "busybox",
		VolumeMounts: []corev1.VolumeMount{{Name: "etc", MountPath: "/etc"}}}}
	fine := corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "fine", Image: "busybox"}}
	withEphemeral := func(ecs ...corev1.EphemeralContainer) []byte {
		return podJSON(t, func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "etc", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "etc-files"}}}}}
			p.Spec.EphemeralContainers = ecs
		})
	}
	update := func(old, new []byte) []byte {
		return review(t, podKind, admissionv1.Update, new, func(r *admissionv1.AdmissionRequest) {
			r.SubResource = "ephemeralcontainers"
			r.OldObject.Raw = old
		})
	}
	tests := []struct {
		name      string
		old, new  []byte
		wantDeny  []string // status cause fields
		wantInMsg []string
	}{
		{name: "denies an added container whose envFrom keys the kubelet drops",
			old: withEphemeral(), new: withEphemeral(badEnv), wantDeny: []string{"spec.ephemeralContainers[0].envFrom[0]"},
			wantInMsg: []string{"podguard rejected this Pod (1 problem):", `[envfrom-keys] spec.ephemeralContainers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" would be skipped`, "Fix: "}},
		{name: "denies an added container whose configMap mount hides /etc, with a fix that needs no subPath",
			old: withEphemeral(fine), new: withEphemeral(fine, overEtc), wantDeny: []string{"spec.ephemeralContainers[1].volumeMounts[0].mountPath"},
			wantInMsg: []string{"[mount-shadowing] spec.ephemeralContainers[1].volumeMounts[0].mountPath", "replaces the whole directory /etc", "ephemeral containers cannot use subPath"}},
		{name: "allows an added container that breaks nothing", old: withEphemeral(), new: withEphemeral(fine)},
		{name: "does not judge again the ephemeral containers the pod already had", old: withEphemeral(badEnv), new: withEphemeral(badEnv, fine)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp, raw := s.post(t, "/validate", update(tt.old, tt.new))
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, raw)
			}
			if len(tt.wantDeny) == 0 {
				if !resp.Allowed {
					t.Errorf("denied: %s", raw)
				}
				return
			}
			if resp.Allowed {
				t.Fatalf("allowed: %s", raw)
			}
			var fields []string
			for _, c := range resp.Result.Details.Causes {
				fields = append(fields, c.Field)
			}
			if strings.Join(fields, ",") != strings.Join(tt.wantDeny, ",") {
				t.Errorf("cause fields = %q, want %q", fields, tt.wantDeny)
			}
			for _, w := range tt.wantInMsg {
				if !strings.Contains(resp.Result.Message, w) {
					t.Errorf("message does not contain %q:\n%s", w, resp.Result.Message)
				}
			}
			if strings.Contains(resp.Result.Message, "add subPath") {
				t.Errorf("an ephemeral container is told to use subPath, which the API server forbids for it:\n%s", resp.Result.Message)
			}
		})
	}
	t.Run("never mutates", func(t *testing.T) {
		_, resp, raw := s.post(t, "/mutate", update(withEphemeral(), withEphemeral(badEnv)))
		if !resp.Allowed || len(resp.Patch) > 0 {
			t.Errorf("want allowed unchanged, got %s", raw)
		}
	})
}
