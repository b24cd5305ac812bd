//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/audit"
	"github.com/podguard/podguard/e2e/framework"
	"github.com/podguard/podguard/reports"
)

// backgroundConfig turns the background audit on; the interval is long
// enough that only the changes' own triggers can explain a verdict within
// the waits below.
const backgroundConfig = "audit: {background: true, interval: 1h}\n"

// TestBackgroundAudit runs the background audit the way a cluster does:
// state first, then two podguard replicas, then changes.
//
//   - Field order: a Deployment (with the ReplicaSet and pods
//     kube-controller-manager makes for it) and a bare Pod exist before
//     podguard starts; a Deployment in a namespace the opt-in webhook does
//     not select exists too.
//   - podguard runs as its ServiceAccount, with the RBAC deploy/ ships.
//   - Two replicas, one writer: exactly one holds the audit lease and
//     reports; the bare Pod's mount-shadowing and nothing of the unselected
//     namespace are counted.
//   - A Node with an older kubelet re-audits: the Deployment whose
//     ConfigMap has "1st.key" (passed by 1.30+ kubelets) turns to fail, with
//     a PolicyViolation event.
//   - A ConfigMap edit that adds a digit-leading key turns the Deployment
//     that reads it to fail, with an event.
//   - The writer stops (a rollout): the other replica takes the lease over
//     and reports the same verdicts.
//   - The namespace is labelled podguard.io/mode=audit: its objects are
//     judged again and the report's failures carry mode audit.
func TestBackgroundAudit(t *testing.T) {
	setKubelets(t, "v1.31.2")
	installReportCRDs(t)
	ns := newNamespace(t, "bg", optIn)
	other := newNamespace(t, "bg-unselected", nil)
	// podguard runs as its ServiceAccount with the shipped RBAC: listing
	// and watching every workload, its Lease in podguard-system, its
	// webhook configuration, the reports.
	kubeconfig := shippedRBAC(t)
	const leaseNS = "podguard-system"
	ctx := testContext(t, 5*time.Minute)
	cs := cluster.Clientset

	createConfigMap(t, ns, "web-env", "GOOD", "1st.key")
	createConfigMap(t, ns, "api-env", "GOOD")
	createConfigMap(t, ns, "nginx-conf", "nginx.conf")
	createConfigMap(t, other, "web-env", "1st.key")
	for _, d := range []*appsv1.Deployment{deployment(ns, "web", "nginx", "web-env"), deployment(ns, "api", "nginx", "api-env"), deployment(other, "web", "nginx", "web-env")} {
		if _, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bare := pod(ns, "hand-made", "nginx")
	bare.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/nginx"}}
	bare.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nginx-conf"}}}}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, bare, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the Deployments' pods", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 5, err
	})

	// Two replicas of the same install: a, which the webhooks call, and b.
	a := runPodguardAs(t, kubeconfig, "opt-in", backgroundConfig, "--namespace", leaseNS)
	bOpts := a.opts
	bOpts.Port, bOpts.HealthPort, bOpts.MetricsPort = 0, 0, 0
	bOpts.LogPath = filepath.Join(t.TempDir(), "podguard-b.log")
	b, err := framework.StartPodguard(ctx, bOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("replica b did not exit cleanly: %v", err)
		}
	})
	replicas := map[string]string{"a": a.MetricsURL, "b": b.MetricsURL}

	// writer returns the replica that reports, failing if both do.
	writer := func() (string, bool) {
		var leaders []string
		for name, url := range replicas {
			if metric(t, url, "podguard_audit_leader") == "1" {
				leaders = append(leaders, name)
			}
		}
		if len(leaders) > 1 {
			t.Fatalf("replicas %v all hold the audit lease", leaders)
		}
		if len(leaders) == 0 {
			return "", false
		}
		return leaders[0], true
	}
	violations := func(url, namespace, policy string) string {
		return metric(t, url, fmt.Sprintf(`podguard_audit_violations{namespace=%q,policy=%q}`, namespace, policy))
	}
	var leader string
	eventually(t, 60*time.Second, "one replica to report the bare Pod's mount-shadowing", func() (bool, error) {
		var ok bool
		leader, ok = writer()
		return ok && violations(replicas[leader], ns, "mount-shadowing") == "1", nil
	})
	if v := violations(replicas[leader], ns, "envfrom-keys"); v != "" {
		t.Errorf("envfrom-keys violations with 1.31 kubelets only = %s, want none", v)
	}
	if got := metric(t, replicas[leader], fmt.Sprintf(`podguard_audit_objects{namespace=%q,result="pass"}`, ns)); got != "2" {
		t.Errorf("passing objects in %s = %q, want 2 (the Deployments; not their ReplicaSets or pods)", ns, got)
	}
	// runPodguard installs the webhook configurations after podguard
	// starts; the audit reads their namespaceSelector again within 10s.
	eventually(t, 30*time.Second, "the namespace the opt-in webhook does not select to be left out", func() (bool, error) {
		l, _ := writer()
		return l != "" && metric(t, replicas[l], fmt.Sprintf(`podguard_audit_objects{namespace=%q,result="pass"}`, other)) == "", nil
	})
	// The report, read back with the openreports clientset: one per
	// namespace, one entry per workload, nothing of the ReplicaSets or
	// pods.
	var report readReport
	eventually(t, 30*time.Second, "the namespace's policy report", func() (bool, error) {
		rs := readBack(t, ctx, reports.APIOpenReports, ns)
		if len(rs) == 1 {
			report = rs[0]
		}
		return len(rs) == 1 && report.summary[1] == 1, nil
	})
	want := []string{
		"Deployment/api envfrom-keys pass", "Deployment/api mount-shadowing pass",
		"Deployment/web envfrom-keys pass", "Deployment/web mount-shadowing pass",
		"Pod/hand-made envfrom-keys pass", "Pod/hand-made mount-shadowing fail",
	}
	if got := reportLines(report); !slices.Equal(got, want) {
		t.Errorf("report results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rs := readBack(t, ctx, reports.APIOpenReports, other); len(rs) != 0 {
		t.Errorf("the unselected namespace has %d reports", len(rs))
	}

	var lease coordinationv1.Lease
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: leaseNS, Name: audit.LeaseName}, &lease); err != nil {
		t.Fatalf("the audit Lease: %v", err)
	}

	// An older kubelet joins: the Deployment whose ConfigMap has 1st.key
	// now loses it on its next pod, and turns to fail with an event.
	setKubelets(t, "v1.31.2", "v1.29.3")
	eventually(t, 60*time.Second, "the Node change to re-audit web", func() (bool, error) {
		return violations(replicas[leader], ns, "envfrom-keys") == "1", nil
	})
	waitForViolationEvent(t, ns, "web")

	// A ConfigMap edit adds a digit-leading key: the guard warns the
	// editor, naming the Deployment, and api turns to fail.
	editor, warnings := clientWithWarnings(t)
	cm, err := editor.CoreV1().ConfigMaps(ns).Get(ctx, "api-env", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["2nd.key"] = "x"
	if _, err := editor.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, "Deployment "+ns+"/api") || !strings.Contains(w, `"2nd.key"`) {
		t.Errorf("the edit's warnings %q do not name Deployment %s/api and the key", w, ns)
	}
	eventually(t, 60*time.Second, "the ConfigMap edit to re-audit api", func() (bool, error) {
		return violations(replicas[leader], ns, "envfrom-keys") == "2", nil
	})
	waitForViolationEvent(t, ns, "api")
	eventually(t, 30*time.Second, "the report to show web and api failing", func() (bool, error) {
		rs := readBack(t, ctx, reports.APIOpenReports, ns)
		return len(rs) == 1 && rs[0].summary[1] == 3, nil
	})
	before := readBack(t, ctx, reports.APIOpenReports, ns)[0]
	eventsBefore := violationEvents(t, ns)

	// podguard audit, from a laptop, says the same of the same objects.
	out, err := exec.CommandContext(ctx, filepath.Join(repoRoot, "bin", "podguard"), "audit", "--kubeconfig", cluster.KubeconfigPath, "--opt-in", "-n", ns, "-o", "json").Output()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) {
		t.Fatalf("podguard audit: %v", err)
	}
	var cli struct {
		Results []struct {
			Kind, Name string
			Violations []struct{ Policy string }
		}
	}
	if err := json.Unmarshal(out, &cli); err != nil {
		t.Fatalf("podguard audit -o json: %v\n%s", err, out)
	}
	var cliFails, reportFails []string
	for _, r := range cli.Results {
		for _, v := range r.Violations {
			cliFails = append(cliFails, r.Kind+"/"+r.Name+" "+v.Policy+" fail")
		}
	}
	for _, l := range reportLines(before) {
		if strings.HasSuffix(l, " fail") {
			reportFails = append(reportFails, l)
		}
	}
	slices.Sort(cliFails)
	if !slices.Equal(cliFails, reportFails) {
		t.Errorf("podguard audit fails %v; the report %v", cliFails, reportFails)
	}

	// The writer stops, as in a rollout: it releases the lease, and the
	// other replica reports the same verdicts. Then it comes back, and one
	// replica writes still.
	stopped, survivor := leader, map[string]string{"a": "b", "b": "a"}[leader]
	var err2 error
	if stopped == "a" {
		err2 = a.Stop()
	} else {
		err2 = b.Stop()
	}
	if err2 != nil {
		t.Fatal(err2)
	}
	delete(replicas, stopped)
	eventually(t, 60*time.Second, "replica "+survivor+" to take the audit over with the same verdicts", func() (bool, error) {
		l, ok := writer()
		return ok && l == survivor && violations(replicas[l], ns, "envfrom-keys") == "2" && violations(replicas[l], ns, "mount-shadowing") == "1", nil
	})
	if stopped == "a" {
		if a.Podguard, err = framework.StartPodguard(ctx, a.opts); err != nil {
			t.Fatal(err)
		}
		replicas["a"] = a.MetricsURL
	} else {
		if b, err = framework.StartPodguard(ctx, bOpts); err != nil {
			t.Fatal(err)
		}
		replicas["b"] = b.MetricsURL
	}
	time.Sleep(5 * time.Second) // two of the lease's retry periods
	if l, ok := writer(); !ok || l != survivor {
		t.Errorf("after %s came back, the writer is %q (held: %v), want %s, which holds the lease", stopped, l, ok, survivor)
	}
	// The new writer read the report it found: the same object, unchanged
	// (no duplicate, no rewrite), and no event repeated.
	unchanged := func(when string) {
		t.Helper()
		after := readBack(t, ctx, reports.APIOpenReports, ns)
		if len(after) != 1 || after[0].name != before.name || after[0].resourceVersion != before.resourceVersion {
			t.Errorf("%s: %d reports, %+v; want the same report at resourceVersion %s", when, len(after), after, before.resourceVersion)
		}
		if got := violationEvents(t, ns); got != eventsBefore {
			t.Errorf("%s: %d PolicyViolation events, %d before: a writer repeated turns it read from the report", when, got, eventsBefore)
		}
	}
	unchanged("after the takeover")

	// kube-apiserver restarts: the lease may lapse and be taken again, the
	// informers list again; one replica writes, and nothing changes.
	if err := cluster.RestartAPIServer(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "one writer after kube-apiserver restarted, with the same verdicts", func() (bool, error) {
		l, ok := writer()
		return ok && violations(replicas[l], ns, "envfrom-keys") == "2" && violations(replicas[l], ns, "mount-shadowing") == "1", nil
	})
	time.Sleep(2 * nsDelayE2E)
	unchanged("after kube-apiserver restarted")

	// The namespace moves to audit mode: its objects are judged again, and
	// the failures are reported with that mode (admission would now admit
	// them silently; they break all the same).
	var nsObj corev1.Namespace
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["podguard.io/mode"] = "audit"
	if err := cluster.Client.Update(ctx, &nsObj); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the report's failures to carry mode audit", func() (bool, error) {
		rs := readBack(t, ctx, reports.APIOpenReports, ns)
		if len(rs) != 1 || rs[0].summary[1] != 3 {
			return false, nil
		}
		for _, res := range rs[0].results {
			if res.status == "fail" && res.properties["mode"] != "audit" {
				return false, nil
			}
		}
		return true, nil
	})
}

// nsDelayE2E is how long the audit batches a namespace's changes before it
// writes them (audit's nsDelay).
const nsDelayE2E = 2 * time.Second

// reportLines are a report's results as "Kind/name policy status", sorted.
func reportLines(r readReport) []string {
	var out []string
	for _, res := range r.results {
		out = append(out, res.resource.Kind+"/"+res.resource.Name+" "+res.policy+" "+res.status)
	}
	slices.Sort(out)
	return out
}

// violationEvents counts the audit's events in ns, repeats included.
func violationEvents(t *testing.T, ns string) int {
	t.Helper()
	evs, err := cluster.Clientset.CoreV1().Events(ns).List(testContext(t, time.Minute), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs.Items {
		if e.Reason == "PolicyViolation" {
			n += int(max(e.Count, 1))
		}
	}
	return n
}

// installReportCRDs installs the openreports.io CRDs of
// components/policy-reports, as a cluster would have them before podguard,
// and removes them when the test ends.
func installReportCRDs(t *testing.T) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var objs []*unstructured.Unstructured
	for _, f := range []string{"openreports.io_reports.yaml", "openreports.io_clusterreports.yaml"} {
		o, err := framework.ReadManifests(filepath.Join(repoRoot, "deploy", "components", "policy-reports", f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, cluster.Client, objs); err != nil {
			t.Errorf("removing the report CRDs: %v", err)
		}
	})
	if err := framework.ApplyObjects(ctx, cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Report CRD to be served", func() (bool, error) {
		api, err := reports.Detect(discoveryFor(t, cluster.Config), "auto")
		return api == reports.APIOpenReports, err
	})
}

// waitForViolationEvent waits for the audit's Warning event on a
// Deployment.
func waitForViolationEvent(t *testing.T, ns, name string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	eventually(t, 30*time.Second, "a PolicyViolation event on Deployment "+ns+"/"+name, func() (bool, error) {
		evs, err := cluster.Clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "PolicyViolation" && e.InvolvedObject.Kind == "Deployment" && e.InvolvedObject.Name == name && e.Type == corev1.EventTypeWarning {
				if !strings.Contains(e.Message, "envfrom-keys") {
					return false, fmt.Errorf("event message %q does not name the policy", e.Message)
				}
				return true, nil
			}
		}
		return false, nil
	})
}
