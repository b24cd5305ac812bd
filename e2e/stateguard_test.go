//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestStateGuard edits ConfigMaps that running workloads read, through the
// real API server, as someone who may only edit ConfigMaps in the
// namespace. podguard runs as its ServiceAccount with the RBAC the overlays
// ship (the guard lists the namespace's workloads with it), and the oldest
// kubelet is 1.29, which drops envFrom keys that start with a digit:
//   - an edit that adds the key 1st.key to the ConfigMap Deployment web
//     reads with envFrom is admitted with a warning naming web (and not api,
//     which reads another ConfigMap);
//   - an edit that changes values only gets no warning;
//   - an edit of a ConfigMap no workload reads gets no warning;
//   - with audit.guard: deny, the same kind of edit is refused, with the
//     same text.
//
// The warning names workloads of the namespace to a user who cannot list
// them. That is accepted: whoever may write a ConfigMap in a namespace may
// break its workloads with it, and is told which, by name and field path
// only, never a value.
func TestStateGuard(t *testing.T) {
	setKubelets(t, "v1.29.3")
	pg := runPodguardAs(t, shippedRBAC(t), "opt-in", "")
	ns := newNamespace(t, "state", optIn)
	createConfigMap(t, ns, "app-env", "keyinfo", "abcdockerDir")
	createConfigMap(t, ns, "other-env", "keyinfo")
	createConfigMap(t, ns, "unread", "keyinfo")
	ctx := testContext(t, 3*time.Minute)
	// One replica: kube-controller-manager makes its ReplicaSet and Pod,
	// which the guard folds into the Deployment.
	for _, d := range []struct{ name, configMap string }{{"web", "app-env"}, {"api", "other-env"}} {
		dep := deployment(ns, d.name, "nginx:1.27", d.configMap)
		dep.Spec.Replicas = ptr.To[int32](1)
		if err := cluster.Client.Create(ctx, dep); err != nil {
			t.Fatal(err)
		}
	}
	editor, _, warnings := userClient(t, "cm-editor@example.com", nil, []string{ns},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "update", "patch"}})
	guardWarnings := func() []string {
		var out []string
		for _, w := range warnings.take() {
			if strings.HasPrefix(w, "podguard") {
				out = append(out, w)
			}
		}
		return out
	}
	counted := func(result string) int {
		return metricInt(t, pg.MetricsURL, `podguard_state_guard_requests_total{result="`+result+`"}`)
	}

	t.Run("warns, naming the Deployment, of an edit that adds a digit-leading key", func(t *testing.T) {
		warnings.take()
		before := counted("warned")
		if err := editConfigMap(ctx, editor, ns, "app-env", false, func(cm *corev1.ConfigMap) { cm.Data["1st.key"] = "on" }); err != nil {
			t.Fatalf("want the edit admitted with a warning: %v", err)
		}
		got := guardWarnings()
		want := fmt.Sprintf(`podguard: ConfigMap "app-env" key "1st.key" would make Deployment %s/web lose environment variables on its pods' next start: [envfrom-keys] spec.template.spec.containers[0].envFrom[0]: ConfigMap "app-env" key "1st.key"`, ns)
		if len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Fatalf("warnings = %q, want one starting with %q", got, want)
		}
		if strings.Contains(got[0], "/api ") || strings.Contains(got[0], "ReplicaSet") || strings.Contains(got[0], "Pod "+ns) {
			t.Errorf("the warning names more than the Deployment that reads the ConfigMap: %q", got[0])
		}
		if after := counted("warned"); after != before+1 {
			t.Errorf(`podguard_state_guard_requests_total{result="warned"} went from %d to %d, want one more`, before, after)
		}
	})

	t.Run("says nothing of an edit that changes values only: it is not even sent", func(t *testing.T) {
		warnings.take()
		sent := func() float64 { return metricSum(t, pg.MetricsURL, "podguard_state_guard_requests_total") }
		before := sent()
		if err := editConfigMap(ctx, editor, ns, "app-env", false, func(cm *corev1.ConfigMap) { cm.Data["keyinfo"] = "changed"; cm.Data["1st.key"] = "off" }); err != nil {
			t.Fatal(err)
		}
		if got := guardWarnings(); len(got) != 0 {
			t.Errorf("warnings = %q, want none", got)
		}
		// The webhook's matchConditions keep value-only writes from podguard.
		if after := sent(); after != before {
			t.Errorf("podguard answered %v requests for a value-only ConfigMap edit, want none", after-before)
		}
	})

	t.Run("says nothing of a ConfigMap no workload reads", func(t *testing.T) {
		warnings.take()
		if err := editConfigMap(ctx, editor, ns, "unread", false, func(cm *corev1.ConfigMap) { cm.Data["1st.key"] = "on" }); err != nil {
			t.Fatal(err)
		}
		if got := guardWarnings(); len(got) != 0 {
			t.Errorf("warnings = %q, want none", got)
		}
	})

	t.Run("refuses the edit with audit.guard: deny", func(t *testing.T) {
		pg.writeConfig(t, "audit: {guard: deny}\n")
		addKey := func(cm *corev1.ConfigMap) { cm.Data["2nd.key"] = "on" }
		// A dry run is judged too (the guard has no side effects): it
		// shows when the reload is in force without changing anything.
		eventually(t, 20*time.Second, "the reloaded config refuses the edit", func() (bool, error) {
			return editConfigMap(ctx, editor, ns, "app-env", true, addKey) != nil, nil
		})
		before := counted("denied")
		err := editConfigMap(ctx, editor, ns, "app-env", false, addKey)
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `admission webhook "state.podguard.io" denied the request`) {
			t.Fatalf("want a denial by state.podguard.io, got: %v", err)
		}
		for _, want := range []string{"podguard (audit.guard: deny) rejected this ConfigMap write", fmt.Sprintf(`ConfigMap "app-env" key "2nd.key" would make Deployment %s/web lose environment variables`, ns), "Fix: rename the keys"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the denial does not contain %q:\n%v", want, err)
			}
		}
		if after := counted("denied"); after != before+1 {
			t.Errorf(`podguard_state_guard_requests_total{result="denied"} went from %d to %d, want one more`, before, after)
		}
		cm, err := editor.CoreV1().ConfigMaps(ns).Get(ctx, "app-env", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cm.Data["2nd.key"]; ok {
			t.Error("the refused key is in the ConfigMap")
		}
		// A value-only edit still goes through at once.
		if err := editConfigMap(ctx, editor, ns, "app-env", false, func(cm *corev1.ConfigMap) { cm.Data["keyinfo"] = "again" }); err != nil {
			t.Errorf("a value-only edit was refused in deny mode: %v", err)
		}
	})
}

// editConfigMap reads a ConfigMap, changes it and writes it back with cs,
// as a dry run if asked.
func editConfigMap(ctx context.Context, cs kubernetes.Interface, ns, name string, dryRun bool, change func(*corev1.ConfigMap)) error {
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	change(cm)
	opts := metav1.UpdateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, opts)
	return err
}
