//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// eventBurst is how many PodDenied events podguard writes about one workload
// before it rate-limits them (webhook.eventBurst).
const eventBurst = 5

// TestWorkloadEventsAndScale follows a Deployment that was fine when it was
// applied and whose pods podguard denies later, because its ConfigMap gained
// a key the oldest kubelet drops. podguard runs as its ServiceAccount, with
// the RBAC the overlays ship, and a developer acts with a role limited to
// their namespace:
//   - `kubectl scale` of the Deployment succeeds and warns that its pods will
//     be denied;
//   - the ReplicaSet's pods are denied, and the Deployment, where the
//     developer looks, gets a Warning event from podguard naming the policy
//     and the fix, which `kubectl describe` shows;
//   - kube-controller-manager retries with backoff, and the retries fold
//     into that one event's count instead of new events;
//   - a denied pod the developer created, and a dry run, get no event;
//   - scaling back to 0 succeeds without a warning.
func TestWorkloadEventsAndScale(t *testing.T) {
	setKubelets(t, "v1.29.3")
	pg := runPodguardAs(t, shippedRBAC(t), "opt-in", "")
	ns := newNamespace(t, "events", optIn)
	createConfigMap(t, ns, "app-config", "keyinfo")
	dev, devKubeconfig, warnings := developer(t, ns)
	ctx := testContext(t, 4*time.Minute)

	// Applied while its ConfigMap is fine, with no pods yet, and a
	// ReplicaSet of its own to show that only the pods' controller gets
	// an event.
	web := deployment(ns, "web", "nginx", "app-config")
	web.Spec.Replicas = ptr.To[int32](0)
	if _, err := dev.AppsV1().Deployments(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lone := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lone"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Selector: web.Spec.Selector.DeepCopy(),
			Template: *web.Spec.Template.DeepCopy()},
	}
	lone.Spec.Selector.MatchLabels = map[string]string{"app": "lone"}
	lone.Spec.Template.Labels = map[string]string{"app": "lone"}
	lone, err := dev.AppsV1().ReplicaSets(ns).Create(ctx, lone, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	denyAfterConfigMapChange(t, ns)

	t.Run("a pod a person creates, and a dry run of a ReplicaSet's pod, are denied", func(t *testing.T) {
		_, err := dev.CoreV1().Pods(ns).Create(ctx, pod(ns, "by-hand", "nginx", "app-config"), metav1.CreateOptions{})
		deniedBy(t, err, `[envfrom-keys] spec.containers[0].envFrom[0]: ConfigMap "app-config" key "1st.key"`)
		owned := pod(ns, "", "nginx", "app-config")
		owned.GenerateName = "lone-"
		owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: lone.Name, UID: lone.UID, Controller: ptr.To(true)}}
		_, err = dev.CoreV1().Pods(ns).Create(ctx, owned, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		deniedBy(t, err, `key "1st.key"`)
		// That neither gets an event is checked below, once the
		// Deployment's event shows that the reporter has gone past them.
	})
	warnings.take()
	deniedBefore := metricInt(t, pg.MetricsURL, podsDenied)

	t.Run("kubectl scale succeeds and warns that the new pods will be denied", func(t *testing.T) {
		scale, err := dev.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = 2
		scaled, err := dev.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("the scale was refused: %v", err)
		}
		if scaled.Spec.Replicas != 2 {
			t.Errorf("scale answered replicas %d, want 2", scaled.Spec.Replicas)
		}
		got := strings.Join(warnings.take(), "\n")
		want := `podguard [envfrom-keys] spec.template.spec.containers[0].envFrom[0]: (existing, not introduced by this update) ConfigMap "app-config" key "1st.key" would be skipped by the target kubelet v1.29.3`
		if !strings.Contains(got, want) {
			t.Errorf("warnings do not contain %q:\n%s", want, got)
		}
		d, err := cluster.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ptr.Deref(d.Spec.Replicas, 0) != 2 {
			t.Errorf("the Deployment has %d replicas, want 2", ptr.Deref(d.Spec.Replicas, 0))
		}
	})

	t.Run("the Deployment gets a Warning event from podguard naming the policy and the fix", func(t *testing.T) {
		var ev corev1.Event
		eventually(t, 60*time.Second, "a PodDenied event on the Deployment", func() (bool, error) {
			evs := podDeniedEvents(t, ns)
			if len(evs) == 0 {
				return false, nil
			}
			ev = evs[0]
			return true, nil
		})
		if ev.InvolvedObject.Kind != "Deployment" || ev.InvolvedObject.Name != "web" || ev.InvolvedObject.APIVersion != "apps/v1" {
			t.Errorf("the event is about %+v, want Deployment web", ev.InvolvedObject)
		}
		if ev.Type != corev1.EventTypeWarning || ev.Source.Component != "podguard" || ev.ReportingController != "podguard" {
			t.Errorf("event type %q source %+v reportingController %q, want a Warning from podguard", ev.Type, ev.Source, ev.ReportingController)
		}
		for _, want := range []string{
			"podguard (envfrom-keys) denied a pod of ReplicaSet web-",
			`[envfrom-keys] spec.containers[0].envFrom[0]: ConfigMap "app-config" key "1st.key" would be skipped by the target kubelet v1.29.3`,
			"Fix: ",
		} {
			if !strings.Contains(ev.Message, want) {
				t.Errorf("event message does not contain %q:\n%s", want, ev.Message)
			}
		}
		if strings.Contains(ev.Message, "value-of-") {
			t.Errorf("the event carries a ConfigMap value:\n%s", ev.Message)
		}
		describe := filepath.Join(repoRoot, "bin", "kubectl")
		if _, err := os.Stat(describe); err != nil {
			t.Logf("bin/kubectl not built (make kubectl); kubectl describe not checked")
			return
		}
		out, err := exec.CommandContext(ctx, describe, "--kubeconfig", devKubeconfig, "-n", ns, "describe", "deployment", "web").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl describe: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`Warning\s+PodDenied\s+.*podguard\s+podguard \(envfrom-keys\) denied a pod of ReplicaSet web-`).Match(out) {
			t.Errorf("kubectl describe deployment does not show the event:\n%s", out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "PodDenied") {
				t.Logf("kubectl describe deployment web:\n%s", line)
			}
		}
	})

	t.Run("retries fold into the event's count, not new events", func(t *testing.T) {
		// kube-controller-manager retries with backoff: wait for several
		// more denials than podguard writes events.
		eventually(t, 90*time.Second, fmt.Sprintf("kube-controller-manager retries the create %d times", eventBurst+3), func() (bool, error) {
			return metricInt(t, pg.MetricsURL, podsDenied)-deniedBefore >= eventBurst+3, nil
		})
		eventually(t, 30*time.Second, "podguard rate-limits the events of the retries", func() (bool, error) {
			return metricInt(t, pg.MetricsURL, `podguard_denial_events_total{result="rate_limited"}`) > 0, nil
		})
		evs := podDeniedEvents(t, ns)
		if len(evs) != 1 {
			t.Fatalf("%d PodDenied events, want 1 whose count goes up: %s", len(evs), describeEvents(evs))
		}
		if c := evs[0].Count; c < 1 || c > eventBurst {
			t.Errorf("count = %d after %d denials, want 1 to %d", c, metricInt(t, pg.MetricsURL, podsDenied)-deniedBefore, eventBurst)
		}
		t.Logf("%d denials of the Deployment's pods: 1 event, count %d", metricInt(t, pg.MetricsURL, podsDenied)-deniedBefore, evs[0].Count)
	})

	t.Run("the pod created by hand and the dry run got no event", func(t *testing.T) {
		// The reporter handles denials in order, so the Deployment's
		// event, recorded after them, shows it has gone past them.
		evs, err := cluster.Clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Source.Component == "podguard" && !(ev.InvolvedObject.Kind == "Deployment" && ev.InvolvedObject.Name == "web") {
				t.Errorf("podguard wrote an event about %s %s: %s", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
			}
		}
	})

	t.Run("scaling back to 0 succeeds without a warning", func(t *testing.T) {
		scale, err := dev.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = 0
		if _, err := dev.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("scaling a broken Deployment down was refused: %v", err)
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("warnings = %q, want none", w)
		}
	})

	for _, line := range strings.Split(readFile(t, pg.LogPath), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("podguard was refused a request by RBAC: %s", line)
		}
	}
}

// podsDenied counts the pods podguard's validating webhook denied.
const podsDenied = `podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",result="denied",webhook="validate"}`

// denyAfterConfigMapChange adds a key the v1.29 kubelet drops to the
// ConfigMap app-config, and waits until podguard denies pods that use it.
func denyAfterConfigMapChange(t *testing.T, ns string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	cm := &corev1.ConfigMap{}
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app-config"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["1st.key"] = "value-of-1st.key"
	if err := cluster.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "podguard sees the ConfigMap's new key", func() (bool, error) {
		p := pod(ns, "probe", "nginx", "app-config")
		_, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), `key "1st.key"`), nil
	})
}

// podDeniedEvents lists the events with reason PodDenied in ns.
func podDeniedEvents(t *testing.T, ns string) []corev1.Event {
	t.Helper()
	list, err := cluster.Clientset.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: "reason=PodDenied"})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func describeEvents(evs []corev1.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "\n  %s %s/%s count %d: %s", ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Count, ev.Message)
	}
	return b.String()
}

// developer returns a client, and its kubeconfig, for a user who may, in
// ns only, create and read workloads and pods, scale Deployments and read
// events, with the warnings the API server returns to it collected. (The
// built-in "edit" role is empty here: kube-controller-manager's
// clusterrole-aggregation controller does not run.)
func developer(t *testing.T, ns string) (kubernetes.Interface, string, *warningCollector) {
	t.Helper()
	return userClient(t, "dev@example.com", nil, []string{ns},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"}, Verbs: []string{"create", "get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update", "patch"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
	)
}
