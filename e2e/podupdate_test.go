//go:build e2e

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestImageChangeIsJudgedAgain: an admin exempts a debug image from
// mount-shadowing. A pod of that image that mounts a ConfigMap over
// tomcat's conf is admitted; `kubectl set image` to another image must then
// be judged as a new pod would be, and denied, while an update that changes
// no image (a label) is not even sent to podguard.
func TestImageChangeIsJudgedAgain(t *testing.T) {
	pg := runPodguard(t, "opt-in", `exemptions:
  rules:
  - policies: [mount-shadowing]
    images: [registry.example.com/debug/*]
`)
	ns := newNamespace(t, "set-image", optIn)
	createConfigMap(t, ns, "tomcat-server-config", "server.xml")
	ctx := testContext(t, time.Minute)

	p := pod(ns, "tomcat", "registry.example.com/debug/tomcat:10")
	p.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "tomcat-server-config"}}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "conf", MountPath: "/usr/local/tomcat/conf"}}
	created, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the exempt image was denied: %v", err)
	}

	calls := validateCalls(t, pg)
	if calls == 0 {
		t.Fatal("podguard's validating webhook counted no call for the create: the metric this test reads is not there")
	}
	relabelled := created.DeepCopy()
	relabelled.Labels = map[string]string{"rev": "2"}
	updated, err := cluster.Clientset.CoreV1().Pods(ns).Update(ctx, relabelled, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("a label update was refused: %v", err)
	}
	if got := validateCalls(t, pg); got != calls {
		t.Errorf("a label update reached podguard (%d calls, was %d): the match condition should keep it away", got, calls)
	}

	updated.Spec.Containers[0].Image = "tomcat:10"
	_, err = cluster.Clientset.CoreV1().Pods(ns).Update(ctx, updated, metav1.UpdateOptions{})
	deniedBy(t, err, "[mount-shadowing] spec.containers[0].volumeMounts[0].mountPath")
}

// validateCalls is how many requests podguard's validating webhook answered.
func validateCalls(t *testing.T, pg *podguard) int {
	t.Helper()
	total := 0
	for _, line := range strings.Split(get(t, pg.MetricsURL), "\n") {
		if strings.HasPrefix(line, "podguard_admission_duration_seconds_count{") && strings.Contains(line, `webhook="validate"`) {
			fields := strings.Fields(line)
			n, err := strconv.Atoi(fields[len(fields)-1])
			if err != nil {
				t.Fatalf("reading %q: %v", line, err)
			}
			total += n
		}
	}
	return total
}
