//go:build e2e

package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/e2e/framework"
)

// mutateFailOpen is the API server's count of calls to podguard's mutating
// webhook that failed and were ignored (failurePolicy: Ignore).
const mutateFailOpen = `apiserver_admission_webhook_fail_open_count{name="mutate.podguard.io",type="admit"}`

// outageLogDir is the log directory TestOutage's pods ask a sidecar for.
const outageLogDir = "/var/log/app"

// TestOutage registers the cluster-wide overlay's webhook configurations,
// stops podguard, and shows with real requests what the shipped failure
// policies and namespace exclusions do while it is down: the excluded and
// opted-out namespaces work as if podguard did not exist, a covered
// namespace rejects pods because the validating webhook fails closed, and
// the mutating webhook alone fails open.
func TestOutage(t *testing.T) {
	pg := runPodguard(t, "cluster-wide", allMutations)
	covered := newNamespace(t, "outage", nil)
	optedOut := newNamespace(t, "optout", map[string]string{"podguard.io/enabled": "false"})
	cs, warnings := clientWithWarnings(t)
	ctx := testContext(t, time.Minute)

	// A pod that allMutations changes in every way it can.
	logged := func(ns, name string) *corev1.Pod {
		p := pod(ns, name, privateImage)
		p.Annotations = map[string]string{"podguard.io/logs": outageLogDir}
		return p
	}
	// With podguard up, the pod is mutated: so an unmutated pod later shows
	// that the mutating webhook was skipped, not that it had nothing to do.
	up, err := cs.CoreV1().Pods(covered).Create(ctx, logged(covered, "before-outage"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("with podguard up: %v", err)
	}
	m := mutations(up)
	if len(m) == 0 {
		t.Fatal("with podguard up, the pod was not mutated; the checks below would prove nothing")
	}
	t.Logf("with podguard up, a pod in %s gets: %s", covered, strings.Join(m, "; "))
	warnings.take()

	// runPodguard's cleanup calls Stop again, which returns this first
	// call's result.
	if err := pg.Stop(); err != nil {
		t.Fatalf("stopping podguard: %v", err)
	}

	// In the namespaces the selectors leave out, the API server does not call
	// podguard: the validating webhook would fail closed, and the mutating
	// one would be counted as failing open.
	for _, tt := range []struct{ name, ns string }{
		{"kube-system is never sent to podguard", "kube-system"},
		{"an opted-out namespace is not sent to podguard", optedOut},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := apiserverCounter(t, mutateFailOpen)
			p, err := cs.CoreV1().Pods(tt.ns).Create(ctx, logged(tt.ns, "during-outage"), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating a pod in %s with podguard down: %v", tt.ns, err)
			}
			t.Cleanup(func() {
				ctx, cancel := cleanupContext()
				defer cancel()
				if err := cluster.Client.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
					t.Errorf("deleting pod %s/%s: %v", p.Namespace, p.Name, err)
				}
			})
			if m := mutations(p); len(m) > 0 {
				t.Errorf("the pod was mutated: %s", strings.Join(m, "; "))
			}
			if after := apiserverCounter(t, mutateFailOpen); after != before {
				t.Errorf("%s went from %d to %d: the API server called the mutating webhook for namespace %s", mutateFailOpen, before, after, tt.ns)
			}
		})
	}

	t.Run("a covered namespace rejects pods: the validating webhook fails closed", func(t *testing.T) {
		before := apiserverCounter(t, mutateFailOpen)
		_, err := cs.CoreV1().Pods(covered).Create(ctx, logged(covered, "during-outage"), metav1.CreateOptions{})
		if err == nil {
			t.Fatal("a pod was admitted in a covered namespace while podguard was down; validate.podguard.io must fail closed")
		}
		msg := err.Error()
		t.Logf("rejected: %v", err)
		if !apierrors.IsInternalError(err) || !strings.Contains(msg, `failed calling webhook "validate.podguard.io"`) {
			t.Errorf("want an internal error from failing to call validate.podguard.io, got %v", err)
		}
		if strings.Contains(msg, "mutate.podguard.io") {
			t.Errorf("the rejection names the mutating webhook, which must fail open: %v", err)
		}
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: covered, Name: "during-outage"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Errorf("the rejected pod exists: %v", err)
		}
		// The mutating webhook runs first: it was called, failed, and was
		// ignored.
		if after := apiserverCounter(t, mutateFailOpen); after != before+1 {
			t.Errorf("%s went from %d to %d, want one more: the mutating webhook's failure was not ignored", mutateFailOpen, before, after)
		}
	})

	t.Run("without the validating webhook, the mutating one fails open", func(t *testing.T) {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: framework.WebhookConfigurationName}}
		if err := cluster.Client.Delete(ctx, vwc); err != nil {
			t.Fatalf("deleting ValidatingWebhookConfiguration %s: %v", vwc.Name, err)
		}
		before := apiserverCounter(t, mutateFailOpen)
		// The API server drops the configuration asynchronously; until it
		// does, each attempt is rejected and nothing is stored.
		var admitted *corev1.Pod
		eventually(t, 15*time.Second, "the API server stops calling validate.podguard.io", func() (bool, error) {
			p := logged(covered, "")
			p.GenerateName = "fail-open-"
			created, err := cs.CoreV1().Pods(covered).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				if strings.Contains(err.Error(), `failed calling webhook "validate.podguard.io"`) {
					return false, nil
				}
				return false, err
			}
			admitted = created
			return true, nil
		})
		stored := &corev1.Pod{}
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(admitted), stored); err != nil {
			t.Fatal(err)
		}
		if m := mutations(stored); len(m) > 0 {
			t.Errorf("the admitted pod was mutated, with podguard down: %s", strings.Join(m, "; "))
		}
		for _, w := range warnings.take() {
			if strings.Contains(w, "podguard") {
				t.Errorf("a warning from podguard, which is down: %q", w)
			}
		}
		// Every attempt, rejected or not, called the mutating webhook and
		// ignored its failure.
		after := apiserverCounter(t, mutateFailOpen)
		if after <= before {
			t.Errorf("%s went from %d to %d, want more: the mutating webhook was not called", mutateFailOpen, before, after)
		}
		t.Logf("admitted unmutated as %s after %d failed-open mutating call(s)", admitted.Name, after-before)
	})
}

// mutations lists what allMutations would have changed in the pod built by
// TestOutage, found in p.
func mutations(p *corev1.Pod) []string {
	var found []string
	if s := pullSecretNames(p); s != "" {
		found = append(found, "imagePullSecrets "+s)
	}
	if len(p.Spec.InitContainers) > 0 {
		found = append(found, "init containers "+strings.Join(containerNames(p.Spec.InitContainers), ","))
	}
	for _, c := range p.Spec.Containers {
		if c.Resources.Requests != nil || c.Resources.Limits != nil {
			found = append(found, "resources on container "+c.Name)
		}
		if c.SecurityContext != nil {
			found = append(found, "securityContext on container "+c.Name)
		}
		for _, m := range c.VolumeMounts {
			if m.MountPath == outageLogDir {
				found = append(found, "log volume on container "+c.Name)
			}
		}
	}
	if sc := p.Spec.SecurityContext; sc != nil && (sc.RunAsNonRoot != nil || sc.SeccompProfile != nil) {
		found = append(found, "pod securityContext")
	}
	return found
}

// apiserverCounter returns the value of a counter series on the API server's
// /metrics, 0 when the series is absent.
func apiserverCounter(t *testing.T, series string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	page, err := cluster.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("reading the API server's metrics: %v", err)
	}
	for _, line := range strings.Split(string(page), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s = %q: %v", series, v, err)
			}
			return int(n)
		}
	}
	return 0
}
