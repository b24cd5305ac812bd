//go:build e2e

package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const registryRule = `
policies:
  imagePullSecrets:
    registries:
    - registry: 10.0.0.130:5000
      secrets: [myregistrykey]
`

const privateImage = "10.0.0.130:5000/nginx:latest"

var optIn = map[string]string{"podguard.io/enabled": "true"}

// TestOptIn runs the opt-in overlay: podguard acts only in namespaces
// labelled podguard.io/enabled=true, and never in kube-system.
func TestOptIn(t *testing.T) {
	setKubelets(t, "v1.29.3", "v1.30.1")
	runPodguard(t, "opt-in", registryRule)
	enabled := newNamespace(t, "optin", optIn)
	plain := newNamespace(t, "plain", nil)
	for _, ns := range []string{enabled, plain} {
		createConfigMap(t, ns, "abcdocker-configmap", "keyinfo", "abcdockerDir", "1st.key")
		createConfigMap(t, ns, "good-config", "keyinfo", "abcdockerDir")
	}
	cs, warnings := clientWithWarnings(t)
	ctx := testContext(t, 3*time.Minute)

	t.Run("mutates a pod in an opted-in namespace and says so", func(t *testing.T) {
		created, err := cs.CoreV1().Pods(enabled).Create(ctx, pod(enabled, "web", privateImage), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stored := &corev1.Pod{}
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(created), stored); err != nil {
			t.Fatal(err)
		}
		if got := pullSecretNames(stored); got != "myregistrykey" {
			t.Errorf("stored pod's imagePullSecrets = %q, want myregistrykey", got)
		}
		got := strings.Join(warnings.take(), "\n")
		for _, want := range []string{
			"podguard mutated this pod (security-context, image-pull-secrets): ",
			"/spec/imagePullSecrets",
			`needs pull secret "myregistrykey" (rule for 10.0.0.130:5000), which does not exist in namespace "` + enabled + `"`,
		} {
			if !strings.Contains(got, want) {
				t.Errorf("warnings do not contain %q:\n%s", want, got)
			}
		}
	})

	t.Run("stops warning about the pull secret once it exists", func(t *testing.T) {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: enabled, Name: "myregistrykey"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}}
		if err := cluster.Client.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "podguard sees the new Secret", func() (bool, error) {
			p := pod(enabled, "", privateImage)
			p.GenerateName = "probe-"
			if _, err := cs.CoreV1().Pods(enabled).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				return false, err
			}
			return !strings.Contains(strings.Join(warnings.take(), "\n"), "does not exist"), nil
		})
	})

	t.Run("leaves a pod alone in a namespace that did not opt in", func(t *testing.T) {
		created, err := cs.CoreV1().Pods(plain).Create(ctx, pod(plain, "web", privateImage, "abcdocker-configmap"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("a pod in a namespace that did not opt in was rejected: %v", err)
		}
		if got := pullSecretNames(created); got != "" {
			t.Errorf("imagePullSecrets = %q, want none", got)
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("warnings = %q, want none", w)
		}
	})

	t.Run("never touches kube-system", func(t *testing.T) {
		p := pod("kube-system", "e2e-untouched", privateImage, "missing-config")
		created, err := cs.CoreV1().Pods("kube-system").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(t.Context(), created) })
		if got := pullSecretNames(created); got != "" {
			t.Errorf("imagePullSecrets = %q, want none", got)
		}
	})

	t.Run("rejects a pod whose envFrom keys the oldest kubelet would drop", func(t *testing.T) {
		_, err := cs.CoreV1().Pods(enabled).Create(ctx, pod(enabled, "bad", "nginx", "abcdocker-configmap"), metav1.CreateOptions{})
		deniedBy(t, err,
			"podguard rejected this Pod (1 problem):",
			`[envfrom-keys] spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" would be skipped by the target kubelet v1.29.3`,
			"Fix: rename the keys")
		// The mutating webhook ran first and says what it changed; the
		// denial itself carries no warnings.
		for _, w := range warnings.take() {
			if !strings.HasPrefix(w, "podguard mutated this pod") {
				t.Errorf("a denial came with a warning: %q", w)
			}
		}
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: enabled, Name: "bad"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Errorf("the rejected pod exists: %v", err)
		}
	})

	t.Run("rejects a Deployment's template at apply time", func(t *testing.T) {
		_, err := cs.AppsV1().Deployments(enabled).Create(ctx, deployment(enabled, "bad", "nginx", "abcdocker-configmap"), metav1.CreateOptions{})
		deniedBy(t, err, "podguard rejected this Deployment", `[envfrom-keys] spec.template.spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key"`)
	})

	t.Run("mutates the pods kube-controller-manager creates for a Deployment", func(t *testing.T) {
		if _, err := cs.AppsV1().Deployments(enabled).Create(ctx, deployment(enabled, "web", privateImage, "good-config"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var pods corev1.PodList
		eventually(t, 60*time.Second, "two pods from the Deployment's ReplicaSet", func() (bool, error) {
			if err := cluster.Client.List(ctx, &pods, client.InNamespace(enabled), client.MatchingLabels{"app": "web"}); err != nil {
				return false, err
			}
			return len(pods.Items) == 2, nil
		})
		for _, p := range pods.Items {
			if got := pullSecretNames(&p); got != "myregistrykey" {
				t.Errorf("pod %s: imagePullSecrets = %q, want myregistrykey", p.Name, got)
			}
		}
	})

	t.Run("answers a server-side dry run like a real request, and stores nothing", func(t *testing.T) {
		dry, err := cs.CoreV1().Pods(enabled).Create(ctx, pod(enabled, "dry", privateImage), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if got := pullSecretNames(dry); got != "myregistrykey" {
			t.Errorf("dry-run result's imagePullSecrets = %q, want myregistrykey", got)
		}
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: enabled, Name: "dry"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Errorf("a dry-run pod was stored: %v", err)
		}
		_, err = cs.CoreV1().Pods(enabled).Create(ctx, pod(enabled, "dry-bad", "nginx", "abcdocker-configmap"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		deniedBy(t, err, `key "1st.key"`)
	})

	t.Run("answers kubectl apply --dry-run=server", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl is not installed; the client-go dry run above covers the API")
		}
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: kubectl-bad, namespace: %s}
spec:
  containers:
  - name: app
    image: nginx
    envFrom: [{configMapRef: {name: abcdocker-configmap}}]
`, enabled)
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", cluster.KubeconfigPath, "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `denied the request: podguard rejected this Pod`) || !strings.Contains(string(out), `key "1st.key"`) {
			t.Errorf("kubectl apply --dry-run=server: err=%v\n%s", err, out)
		}
	})
}

// TestClusterWide runs the cluster-wide overlay: every namespace but the
// excluded ones and those labelled podguard.io/enabled=false.
func TestClusterWide(t *testing.T) {
	runPodguard(t, "cluster-wide", registryRule)
	ns := newNamespace(t, "wide", nil)
	optedOut := newNamespace(t, "optout", map[string]string{"podguard.io/enabled": "false"})
	ctx := testContext(t, time.Minute)
	for _, tt := range []struct {
		ns, want string
	}{{ns, "myregistrykey"}, {optedOut, ""}} {
		p := pod(tt.ns, "web", privateImage)
		if err := cluster.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got := pullSecretNames(p); got != tt.want {
			t.Errorf("namespace %s: imagePullSecrets = %q, want %q", tt.ns, got, tt.want)
		}
	}
}

// TestKubeletVersionDecidesEnvFromVerdict follows the oldest kubelet among
// the Nodes: 1.29 drops a digit-leading key (deny), 1.30+ passes it through
// (warning).
func TestKubeletVersionDecidesEnvFromVerdict(t *testing.T) {
	setKubelets(t, "v1.29.3")
	runPodguard(t, "opt-in", "")
	ns := newNamespace(t, "kubelet", optIn)
	createConfigMap(t, ns, "abcdocker-configmap", "keyinfo", "abcdockerDir", "1st.key")
	cs, warnings := clientWithWarnings(t)
	ctx := testContext(t, time.Minute)

	_, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "app", "nginx", "abcdocker-configmap"), metav1.CreateOptions{})
	deniedBy(t, err, "would be skipped by the target kubelet v1.29.3")

	setKubelets(t, "v1.31.0", "v1.32.2")
	eventually(t, 10*time.Second, "podguard follows the Nodes' new kubelet version", func() (bool, error) {
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "app", "nginx", "abcdocker-configmap"), metav1.CreateOptions{})
		return err == nil, nil
	})
	got := strings.Join(warnings.take(), "\n")
	if !strings.Contains(got, `podguard [envfrom-keys] spec.template.spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" is not a POSIX environment variable name`) {
		t.Errorf("warnings = %s", got)
	}
}

// TestConfigHotReload edits the config file under a running podguard.
func TestConfigHotReload(t *testing.T) {
	pg := runPodguard(t, "opt-in", "")
	ns := newNamespace(t, "reload", optIn)
	ctx := testContext(t, time.Minute)
	probe := func() string {
		p, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: privateImage}}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		return pullSecretNames(p)
	}
	if got := probe(); got != "" {
		t.Fatalf("mutated before any rule: %q", got)
	}

	pg.writeConfig(t, registryRule)
	eventually(t, 15*time.Second, "the new rule applies", func() (bool, error) { return probe() == "myregistrykey", nil })
	if got := metric(t, pg.MetricsURL, `podguard_config_reloads_total{result="success"}`); got != "1" {
		t.Errorf("successful reloads = %s, want 1", got)
	}

	pg.writeConfig(t, registryRule+"    - registry: nginx\n      secrets: [x]\n")
	eventually(t, 15*time.Second, "the bad edit is counted", func() (bool, error) {
		return metric(t, pg.MetricsURL, `podguard_config_reloads_total{result="failure"}`) == "1", nil
	})
	if got := metric(t, pg.MetricsURL, "podguard_config_last_reload_successful"); got != "0" {
		t.Errorf("podguard_config_last_reload_successful = %s, want 0", got)
	}
	if got := probe(); got != "myregistrykey" {
		t.Errorf("after a bad edit: imagePullSecrets = %q, want the last good config's myregistrykey", got)
	}
	log := readFile(t, pg.LogPath)
	if !strings.Contains(log, "config reload failed; keeping the last good config") || !strings.Contains(log, "policies.imagePullSecrets.registries[1].registry") {
		t.Errorf("the bad edit is not logged with its field path")
	}
	// One JSON line, no Go stack trace: a bad config is not a bug.
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "config reload failed") && (strings.Contains(line, `"stacktrace"`) || strings.Contains(line, `\n`)) {
			t.Errorf("the config error is logged with a stack trace or over several lines: %s", line)
		}
	}
}

// TestCertRenewal replaces the serving certificate under a running podguard.
func TestCertRenewal(t *testing.T) {
	pg := runPodguard(t, "opt-in", registryRule)
	ns := newNamespace(t, "certs", optIn)
	ctx := testContext(t, time.Minute)
	renewed := pg.issueCert(t)
	eventually(t, 15*time.Second, "podguard serves the renewed certificate", func() (bool, error) {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(pg.URL, "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return false, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(renewed.Cert.SerialNumber) == 0, nil
	})
	p := pod(ns, "after-renewal", privateImage)
	if err := cluster.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got := pullSecretNames(p); got != "myregistrykey" {
		t.Errorf("after renewal: imagePullSecrets = %q", got)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(pg.URL, "https://"), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("podguard accepted a TLS 1.1 handshake; the minimum is TLS 1.2")
	}
}

// TestMetricsAndHealth reads /metrics, /healthz and /readyz.
func TestMetricsAndHealth(t *testing.T) {
	pg := runPodguard(t, "opt-in", registryRule)
	ns := newNamespace(t, "metrics", optIn)
	series := []string{
		`podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",result="patched",webhook="mutate"}`,
		`podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",result="allowed",webhook="validate"}`,
		`podguard_policy_outcomes_total{outcome="mutated",policy="image-pull-secrets",webhook="mutate"}`,
		`podguard_policy_outcomes_total{outcome="passed",policy="envfrom-keys",webhook="validate"}`,
	}
	before := make([]int, len(series))
	for i, s := range series {
		before[i] = metricInt(t, pg.MetricsURL, s)
	}
	if err := cluster.Client.Create(testContext(t, time.Minute), pod(ns, "web", privateImage)); err != nil {
		t.Fatal(err)
	}
	for i, s := range series {
		if got := metricInt(t, pg.MetricsURL, s); got != before[i]+1 {
			t.Errorf("%s went from %d to %d, want one more", s, before[i], got)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if body := get(t, pg.HealthURL+path); body != "ok" {
			t.Errorf("%s = %q", path, body)
		}
	}
}

// TestGracefulShutdown sends SIGTERM: /readyz fails at once, requests are
// still answered during the shutdown delay, and podguard exits 0.
func TestGracefulShutdown(t *testing.T) {
	pg := runPodguard(t, "opt-in", registryRule, "--shutdown-delay=3s")
	ns := newNamespace(t, "shutdown", optIn)
	ctx := testContext(t, time.Minute)
	stopped := make(chan error, 1)
	go func() { stopped <- pg.Stop() }() // SIGTERM, then wait for the exit
	eventually(t, 2*time.Second, "/readyz fails while draining", func() (bool, error) {
		resp, err := http.Get(pg.HealthURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusInternalServerError, nil
	})
	p := pod(ns, "during-drain", privateImage)
	if err := cluster.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got := pullSecretNames(p); got != "myregistrykey" {
		t.Errorf("a pod created while draining was not mutated: %q", got)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("podguard did not exit cleanly: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("podguard did not exit within 25s of SIGTERM")
	}
}

func deployment(ns, name, image string, envFrom ...string) *appsv1.Deployment {
	p := pod(ns, "", image, envFrom...)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: p.Spec},
		},
	}
}

// metric returns the value of one series on a /metrics page, or "" if absent.
func metric(t *testing.T, url, series string) string {
	t.Helper()
	for _, line := range strings.Split(get(t, url), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// metricInt returns a counter's value, 0 when the series is absent.
func metricInt(t *testing.T, url, series string) int {
	t.Helper()
	v := metric(t, url, series)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s = %q: %v", series, v, err)
	}
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
