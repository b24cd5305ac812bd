//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/e2e/framework"
)

// TestHarnessPodguard proves the podguard half of the harness: bin/podguard
// starts and gets ready, the API server reaches it through the rendered
// webhook configurations, and it stops cleanly on SIGTERM.
func TestHarnessPodguard(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot, "bin", "podguard")); err != nil {
		t.Skipf("bin/podguard not built: %v", err)
	}
	ctx := testContext(t, 2*time.Minute)

	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	caPEM, err := framework.NewServingCerts(certDir)
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "config.yaml")
	config := `apiVersion: podguard.io/v1alpha1
kind: Config
policies:
  imagePullSecrets:
    registries:
    - registry: 10.0.0.130:5000
      secrets: [myregistrykey]
`
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	pg, err := framework.StartPodguard(ctx, framework.PodguardOptions{
		Kubeconfig: cluster.KubeconfigPath,
		CertDir:    certDir,
		ConfigPath: configPath,
		LogPath:    filepath.Join(cluster.WorkDir, t.Name()+"-podguard.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			pg.Kill()
		}
	})

	for _, u := range []string{pg.HealthURL + "/readyz", pg.HealthURL + "/healthz", pg.MetricsURL} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", u, resp.Status)
		}
	}

	overlay := filepath.Join(repoRoot, "deploy", "overlays", "opt-in")
	if err := framework.InstallWebhooks(ctx, cluster.Client, overlay, pg.URL, caPEM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.UninstallWebhooks(ctx, cluster.Client); err != nil {
			t.Error(err)
		}
	})
	ns := newNamespace(t, "harness", map[string]string{"podguard.io/enabled": "true"})

	// The API server starts calling new webhooks shortly after they are
	// registered: poll with dry-run creates until the mutation shows.
	err = framework.Eventually(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "10.0.0.130:5000/nginx:latest",
			}}},
		}
		if err := cluster.Client.Create(ctx, pod, client.DryRunAll); err != nil {
			return false, err
		}
		return slices.Contains(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: "myregistrykey"}), nil
	})
	if err != nil {
		t.Fatalf("waiting for podguard to add the pull secret: %v (log: %s)", err, pg.LogPath)
	}

	stopped = true
	if err := pg.Stop(); err != nil {
		t.Errorf("stopping podguard: %v (log: %s)", err, pg.LogPath)
	}
	select {
	case <-pg.Done():
	default:
		t.Error("podguard still running after Stop")
	}
}
