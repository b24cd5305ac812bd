//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/e2e/framework"
)

// selfManagedArgs run podguard with self-managed certificates for the
// loopback address, on lifetimes short enough that a CA rotation happens
// within the test: a CA is replaced after about 20 s, a serving certificate
// after about 8 s, and a new CA is trusted 2 s before it signs.
var selfManagedArgs = []string{
	"--cert-mode=self-managed",
	"--namespace=podguard-system",
	"--cert-hosts=127.0.0.1",
	"--ca-validity=30s",
	"--cert-validity=12s",
	"--ca-rollover-delay=2s",
}

// TestSelfManaged installs the self-managed overlay as shipped (only the
// webhooks' Service becomes a URL on a local load balancer, with no
// caBundle) and runs two podguard replicas behind that load balancer with
// the ServiceAccount's own credentials, so the overlay's RBAC is all they
// have, and its ValidatingAdmissionPolicy holds them to caBundle. The replicas race to create the Secret, patch the CA bundle into the
// webhook configurations, and then, while a loop keeps creating pods, rotate
// the serving certificate several times and the CA once: every pod must be
// admitted and mutated.
//
// A third replica behind the load balancer sees the Secret late: it serves
// the Secret's certificate from files the test copies there
// laggingReplicaDelay after each change, as a replica would whose watch is
// slow. Requests it answers prove that a rotation keeps trusting what was
// served just before it.
func TestSelfManaged(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	objs, err := framework.RenderOverlay(filepath.Join(repoRoot, "deploy", "overlays", "self-managed", "opt-in"))
	if err != nil {
		t.Fatal(err)
	}
	ports := make([]int, 3) // two self-managed replicas, one lagging
	backends := make([]string, 3)
	for i := range ports {
		if ports[i], err = framework.FreePort(); err != nil {
			t.Fatal(err)
		}
		backends[i] = "127.0.0.1:" + strconv.Itoa(ports[i])
	}
	lb, err := framework.StartRoundRobin(backends...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	if err := framework.PointWebhooksAt(objs, "https://"+lb.Addr, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, cluster.Client, objs); err != nil {
			t.Errorf("uninstalling: %v", err)
		}
	})
	if err := framework.ApplyObjects(ctx, cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	secrets := cluster.Clientset.CoreV1().Secrets("podguard-system")
	if _, err := secrets.Get(ctx, "podguard-tls", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the Secret must not exist before podguard starts: %v", err)
	}

	kubeconfig, err := cluster.ServiceAccountKubeconfig("podguard-system", "podguard")
	if err != nil {
		t.Fatal(err)
	}
	// The overlay's policy holds the replicas to caBundle: every patch they
	// make below passes through it.
	waitForCAOnlyPolicy(t, serviceAccountClient(t))
	replicas := startReplicas(t, kubeconfig, ports[:2])
	replicas = append(replicas, startLaggingReplica(t, kubeconfig, ports[2]))

	// Bootstrap: one Secret, its bundle in every webhook.
	secret, err := secrets.Get(ctx, "podguard-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after the replicas are ready: %v", err)
	}
	firstCA := secret.Data[certs.SignerCertKey]
	eventually(t, 10*time.Second, "both webhook configurations carry the Secret's CA bundle", func() (bool, error) {
		return webhooksTrust(ctx, secret.Data[certs.CAFile]) == nil, nil
	})
	ns := newNamespace(t, "self-managed", optIn)
	eventually(t, 30*time.Second, "the API server admits a pod through podguard", func() (bool, error) {
		p, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, pod(ns, "first", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && mutated(p), nil
	})

	// Rotation under load: until the first CA has been replaced and has
	// left the bundle, every pod created must be admitted and mutated.
	quiet := rest.CopyConfig(cluster.Config)
	quiet.WarningHandler = rest.NoWarnings{} // podguard warns of each mutation
	pods := kubernetes.NewForConfigOrDie(quiet).CoreV1().Pods(ns)
	var created, failed, unmutated int
	var failures []string
	rotated := false
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; !rotated; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no CA rotation within 90s (created %d pods)", created)
		}
		p, err := pods.Create(ctx, pod(ns, fmt.Sprintf("load-%d", i), "nginx"), metav1.CreateOptions{})
		switch {
		case err != nil:
			failed++
			if len(failures) < 5 {
				failures = append(failures, err.Error())
			}
		case !mutated(p):
			unmutated++
		default:
			created++
		}
		if i%10 == 0 {
			s, err := secrets.Get(ctx, "podguard-tls", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rotated = !bytes.Equal(s.Data[certs.SignerCertKey], firstCA) && !bytes.Contains(s.Data[certs.CAFile], firstCA)
		}
	}
	t.Logf("created %d pods during the rotation", created)
	if failed > 0 || unmutated > 0 {
		t.Fatalf("%d pod creations failed and %d pods were admitted unmutated during the rotation; first errors:\n%s",
			failed, unmutated, strings.Join(failures, "\n"))
	}

	var promoted, issued int
	for i, r := range replicas {
		if i < 2 {
			promoted += metricInt(t, r.MetricsURL, `podguard_certificate_changes_total{kind="ca-promoted"}`)
			issued += metricInt(t, r.MetricsURL, `podguard_certificate_changes_total{kind="serving-issued"}`)
		}
		if n := metricInt(t, r.MetricsURL, `podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",result="patched",webhook="mutate"}`); n == 0 {
			t.Errorf("replica %d admitted no pod: the load balancer must spread the requests", i)
		}
	}
	if promoted < 1 || issued < 3 {
		t.Errorf("the replicas promoted %d CAs and issued %d serving certificates; want at least 1 and 3", promoted, issued)
	}
	final, err := secrets.Get(ctx, "podguard-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the webhook configurations carry the final bundle", func() (bool, error) {
		return webhooksTrust(ctx, final.Data[certs.CAFile]) == nil, nil
	})

	// The replicas ran with the ServiceAccount's RBAC only: none of their
	// requests, including the watches, may have been refused.
	for i, r := range replicas {
		for _, line := range strings.Split(readFile(t, r.LogPath), "\n") {
			if strings.Contains(line, "forbidden") {
				t.Errorf("replica %d was refused a request: %s", i, line)
				break
			}
		}
	}

	// A re-apply that resets caBundle is undone (the replicas watch the
	// configurations).
	reset := []byte(`[{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]`)
	if _, err := cluster.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Patch(ctx, "podguard", types.JSONPatchType, reset, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the replicas restore the caBundle", func() (bool, error) {
		return webhooksTrust(ctx, final.Data[certs.CAFile]) == nil, nil
	})
}

// laggingReplicaDelay is how late the lagging replica serves each new
// certificate: well within the margin a rotation leaves (a third of a
// serving certificate's lifetime, 4 s here).
const laggingReplicaDelay = 2 * time.Second

// startLaggingReplica starts a podguard that reads its certificate from a
// cert dir, and keeps copying the Secret's serving pair there, each
// laggingReplicaDelay after it changed.
func startLaggingReplica(t *testing.T, kubeconfig string, port int) *framework.Podguard {
	t.Helper()
	// Not t.Context(): that ends before the cleanup below stops the copier.
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	certDir := filepath.Join(dir, "tls")
	secrets := cluster.Clientset.CoreV1().Secrets("podguard-system")
	copyPair := func() ([]byte, error) {
		s, err := secrets.Get(ctx, "podguard-tls", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return s.Data[certs.CertFile], certs.WriteDir(certDir, &certs.Serving{CertPEM: s.Data[certs.CertFile], KeyPEM: s.Data[certs.KeyFile]}, nil)
	}
	last, err := copyPair()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() { close(done); cancel(); <-stopped })
	go func() {
		defer close(stopped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			s, err := secrets.Get(ctx, "podguard-tls", metav1.GetOptions{})
			if err != nil || bytes.Equal(s.Data[certs.CertFile], last) {
				continue
			}
			select {
			case <-done:
				return
			case <-time.After(laggingReplicaDelay):
			}
			if last, err = copyPair(); err != nil {
				if ctx.Err() == nil {
					t.Errorf("lagging replica: %v", err)
				}
				return
			}
		}
	}()
	pg, err := framework.StartPodguard(testContext(t, time.Minute), framework.PodguardOptions{
		Kubeconfig: kubeconfig,
		Port:       port,
		CertDir:    certDir,
		LogPath:    filepath.Join(dir, "podguard-lagging.log"),
	})
	if err != nil {
		t.Fatalf("lagging replica: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("lagging replica did not exit cleanly on SIGTERM: %v", err)
		}
	})
	return pg
}

// startReplicas starts one podguard per port, at the same time, so that they
// race to create the Secret, and returns them once all are ready.
func startReplicas(t *testing.T, kubeconfig string, ports []int) []*framework.Podguard {
	t.Helper()
	ctx := testContext(t, time.Minute)
	replicas := make([]*framework.Podguard, len(ports))
	errs := make([]error, len(ports))
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i, port := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replicas[i], errs[i] = framework.StartPodguard(ctx, framework.PodguardOptions{
				Kubeconfig: kubeconfig,
				Port:       port,
				LogPath:    filepath.Join(dir, fmt.Sprintf("podguard-%d.log", i)),
				Args:       selfManagedArgs,
			})
		}()
	}
	wg.Wait()
	for i, r := range replicas {
		if r == nil {
			continue
		}
		t.Cleanup(func() {
			if err := r.Stop(); err != nil {
				t.Errorf("replica %d did not exit cleanly on SIGTERM: %v", i, err)
			}
			if t.Failed() {
				t.Logf("replica %d log:\n%s", i, lastLines(readFile(t, r.LogPath), 30))
			}
		})
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	return replicas
}

// webhooksTrust checks that every webhook of podguard's two configurations
// has exactly bundle as its caBundle.
func webhooksTrust(ctx context.Context, bundle []byte) error {
	if len(bundle) == 0 {
		return fmt.Errorf("empty bundle")
	}
	ar := cluster.Clientset.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(ctx, "podguard", metav1.GetOptions{})
	if err != nil {
		return err
	}
	v, err := ar.ValidatingWebhookConfigurations().Get(ctx, "podguard", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, w := range m.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
			return fmt.Errorf("webhook %s has another caBundle", w.Name)
		}
	}
	for _, w := range v.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
			return fmt.Errorf("webhook %s has another caBundle", w.Name)
		}
	}
	return nil
}

// mutated reports whether podguard's default mutations reached a pod.
func mutated(p *corev1.Pod) bool {
	sc := p.Spec.SecurityContext
	return sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
}
