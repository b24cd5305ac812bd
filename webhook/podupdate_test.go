package webhook

import (
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A running pod's container images can change (kubectl set image). An
// image exemption must not carry over to the next image: the pod is judged
// again, as it now is, when an UPDATE changes an image, and only then.
func TestPodUpdateThatChangesAnImageIsJudgedAgain(t *testing.T) {
	s := newTestServer(t, `exemptions:
  rules:
  - policies: [mount-shadowing]
    images: [registry.example.com/debug/*]
`)
	s.world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tomcat-server-config"}, Data: map[string]string{"server.xml": "x"}})
	withImage := func(image string, label string) []byte {
		return podJSON(t, func(p *corev1.Pod) {
			p.Labels = map[string]string{"rev": label}
			p.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "tomcat-server-config"}}}}}
			p.Spec.Containers[0].Image = image
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "conf", MountPath: "/usr/local/tomcat/conf"}}
		})
	}
	update := func(old, new []byte) []byte {
		return review(t, podKind, admissionv1.Update, new, func(r *admissionv1.AdmissionRequest) { r.OldObject.Raw = old })
	}
	exempt, other := "registry.example.com/debug/tomcat:10", "tomcat:10"
	tests := []struct {
		name     string
		body     []byte
		wantDeny bool
	}{
		{"admits the exempt image on create", review(t, podKind, admissionv1.Create, withImage(exempt, "1")), false},
		{"denies the same pod with another image on create", review(t, podKind, admissionv1.Create, withImage(other, "1")), true},
		{"denies an update that swaps the exempt image for another", update(withImage(exempt, "1"), withImage(other, "1")), true},
		{"admits an update that keeps the image (a label, a finalizer)", update(withImage(exempt, "1"), withImage(exempt, "2")), false},
		{"admits an update to another exempt image", update(withImage(exempt, "1"), withImage("registry.example.com/debug/tomcat:11", "1")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp, raw := s.post(t, "/validate", tt.body)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, raw)
			}
			if resp.Allowed == tt.wantDeny {
				t.Fatalf("allowed = %v, want %v: %s", resp.Allowed, !tt.wantDeny, raw)
			}
			if tt.wantDeny && !strings.Contains(resp.Result.Message, "[mount-shadowing] spec.containers[0].volumeMounts[0].mountPath") {
				t.Errorf("the denial does not name the mount: %s", resp.Result.Message)
			}
		})
	}
}
