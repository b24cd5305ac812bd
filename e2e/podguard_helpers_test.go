//go:build e2e

package e2e

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/e2e/framework"
)

// podguard is a podguard process serving the webhook configurations of one
// deploy/ overlay, with its own CA, cert dir and config file.
type podguard struct {
	*framework.Podguard
	opts       framework.PodguardOptions
	dir        string
	certDir    string
	configPath string
	ca         *certs.CA
}

// runPodguard starts podguard with cfg (the part of the config after
// apiVersion and kind), registers the webhook configurations of
// deploy/overlays/<overlay> pointing at it, and tears both down at the end of
// the test, failing it if podguard does not exit cleanly on SIGTERM.
func runPodguard(t *testing.T, overlay, cfg string, args ...string) *podguard {
	t.Helper()
	return runPodguardAs(t, cluster.KubeconfigPath, overlay, cfg, args...)
}

// runPodguardAs is runPodguard with podguard authenticating with kubeconfig
// (runPodguard's is the cluster admin's).
func runPodguardAs(t *testing.T, kubeconfig, overlay, cfg string, args ...string) *podguard {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	dir := t.TempDir()
	pg := &podguard{dir: dir, certDir: filepath.Join(dir, "tls"), configPath: filepath.Join(dir, "config.yaml")}
	var err error
	if pg.ca, err = certs.NewCA("podguard-e2e-ca", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	pg.issueCert(t)
	pg.writeConfig(t, cfg)
	pg.opts = framework.PodguardOptions{
		Kubeconfig: kubeconfig,
		CertDir:    pg.certDir,
		ConfigPath: pg.configPath,
		LogPath:    filepath.Join(dir, "podguard.log"),
		Args:       args,
	}
	pg.Podguard, err = framework.StartPodguard(ctx, pg.opts)
	if err != nil {
		t.Fatal(err)
	}
	// The ports podguard was given, so that a restart serves the same URLs.
	pg.opts.Port, pg.opts.HealthPort, pg.opts.MetricsPort = portOf(t, pg.URL), portOf(t, pg.HealthURL), portOf(t, pg.MetricsURL)
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.UninstallWebhooks(ctx, cluster.Client); err != nil {
			t.Errorf("uninstalling webhooks: %v", err)
		}
		if err := pg.Stop(); err != nil {
			t.Errorf("podguard did not exit cleanly on SIGTERM: %v", err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(pg.LogPath); err == nil {
				t.Logf("podguard log:\n%s", lastLines(string(log), 40))
			}
		}
	})
	if err := framework.InstallWebhooks(ctx, cluster.Client, filepath.Join(repoRoot, "deploy", "overlays", overlay), pg.URL, pg.ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	waitForWebhooks(t, pg)
	return pg
}

// restart stops podguard (SIGTERM, as a rollout does) and starts it again
// on the same ports, with the same certificates and config: its caches are
// rebuilt from lists of what already exists.
func (pg *podguard) restart(t *testing.T) {
	t.Helper()
	if err := pg.Stop(); err != nil {
		t.Fatalf("podguard did not exit cleanly on SIGTERM: %v", err)
	}
	var err error
	if pg.Podguard, err = framework.StartPodguard(testContext(t, 2*time.Minute), pg.opts); err != nil {
		t.Fatal(err)
	}
}

func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("no port in %s", rawURL)
	}
	return port
}

// waitForWebhooks returns once the API server calls both of pg's webhooks.
// It picks up new webhook configurations from a watch, so a pod created right
// after they are installed could still miss podguard. The proof is podguard's
// own latency metric: this podguard is new, so any request it counted came
// through the configurations just installed.
func waitForWebhooks(t *testing.T, pg *podguard) {
	t.Helper()
	ns := newNamespace(t, "probe", optIn)
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
	}
	eventually(t, 30*time.Second, "the API server calls both of podguard's webhooks", func() (bool, error) {
		if _, err := cluster.Clientset.CoreV1().Pods(ns).Create(t.Context(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return false, nil
		}
		page := get(t, pg.MetricsURL)
		// The series exist from the start, at 0: a request shows as a
		// count above 0.
		called := func(webhook string) bool {
			for _, line := range strings.Split(page, "\n") {
				if strings.HasPrefix(line, `podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",`) &&
					strings.Contains(line, `webhook="`+webhook+`"}`) && !strings.HasSuffix(line, " 0") {
					return true
				}
			}
			return false
		}
		return called("mutate") && called("validate"), nil
	})
}

// issueCert writes a new serving certificate, signed by pg's CA, into the
// cert dir, and returns it.
func (pg *podguard) issueCert(t *testing.T) *certs.Serving {
	t.Helper()
	s, err := pg.ca.IssueServing([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteDir(pg.certDir, s, pg.ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	return s
}

func (pg *podguard) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(pg.configPath, []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// warningCollector records the warnings the API server returns.
type warningCollector struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningCollector) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

// clientWithWarnings returns a clientset whose warnings are collected.
func clientWithWarnings(t *testing.T) (kubernetes.Interface, *warningCollector) {
	t.Helper()
	w := &warningCollector{}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, w
}

// setKubelets replaces the cluster's Node objects with one Node per kubelet
// version. There are no kubelets here: the Nodes only carry the version that
// podguard reads from status.nodeInfo.
func setKubelets(t *testing.T, versions ...string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	if err := cluster.Client.DeleteAllOf(ctx, &corev1.Node{}); err != nil {
		t.Fatal(err)
	}
	for i, v := range versions {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "e2e-node-" + string(rune('a'+i))}}
		if err := cluster.Client.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
		node.Status.NodeInfo.KubeletVersion = v
		if err := cluster.Client.Status().Update(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
}

// createConfigMap creates a ConfigMap with the given keys.
func createConfigMap(t *testing.T, ns, name string, keys ...string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string]string{}}
	for _, k := range keys {
		cm.Data[k] = "value-of-" + k
	}
	if err := cluster.Client.Create(testContext(t, time.Minute), cm); err != nil {
		t.Fatal(err)
	}
}

// pod returns a Pod with one container.
func pod(ns, name, image string, envFrom ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
	for _, cm := range envFrom {
		p.Spec.Containers[0].EnvFrom = append(p.Spec.Containers[0].EnvFrom,
			corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}})
	}
	return p
}

func pullSecretNames(p *corev1.Pod) string {
	var names []string
	for _, s := range p.Spec.ImagePullSecrets {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := framework.Eventually(ctx, timeout, 100*time.Millisecond, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// deniedBy asserts that err is podguard's validating webhook denying the
// request, with every want in the message.
func deniedBy(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("the request was admitted; want a denial from podguard")
	}
	msg := err.Error()
	if !apierrors.IsForbidden(err) || !strings.Contains(msg, `admission webhook "validate.podguard.io" denied the request`) {
		t.Fatalf("want a denial by validate.podguard.io, got: %v", err)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("denial does not contain %q:\n%s", w, msg)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// shippedRBAC applies the ServiceAccount and RBAC of the opt-in overlay, as
// shipped, removes them when the test ends, and returns a kubeconfig that
// authenticates as that ServiceAccount.
func shippedRBAC(t *testing.T) string {
	t.Helper()
	ctx := testContext(t, time.Minute)
	rendered, err := framework.RenderOverlay(filepath.Join(repoRoot, "deploy", "overlays", "opt-in"))
	if err != nil {
		t.Fatal(err)
	}
	var rbac []*unstructured.Unstructured
	for _, o := range rendered {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			rbac = append(rbac, o)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, cluster.Client, rbac); err != nil {
			t.Errorf("removing the RBAC: %v", err)
		}
	})
	if err := framework.ApplyObjects(ctx, cluster.Client, rbac); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := cluster.ServiceAccountKubeconfig("podguard-system", "podguard")
	if err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}
