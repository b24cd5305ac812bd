//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podguard/podguard/e2e/framework"
)

// TestSecretAccess runs podguard with the ServiceAccount's RBAC as the
// overlays ship it, which does not let it read Secrets, and a config that
// would like to (pull-secret registries). podguard must start and admit
// anyway, with Secrets unknown and podguard_secret_access_denied at 1. Once
// deploy/components/secret-access is applied and the config reloaded, it
// caches Secret metadata and warns of the missing pull secret.
func TestSecretAccess(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	kubeconfig := shippedRBAC(t)
	secretAccess, err := framework.ReadManifests(filepath.Join(repoRoot, "deploy", "components", "secret-access", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, cluster.Client, secretAccess); err != nil {
			t.Errorf("removing the secret-access RBAC: %v", err)
		}
	})

	pg := runPodguardAs(t, kubeconfig, "opt-in", registryRule)
	if got := metricInt(t, pg.MetricsURL, "podguard_secret_access_denied"); got != 1 {
		t.Fatalf("podguard_secret_access_denied = %d, want 1", got)
	}

	ns := newNamespace(t, "secret-access", optIn)
	cs, warnings := clientWithWarnings(t)
	missingSecretWarned := func() (added, warned bool) {
		p, err := cs.CoreV1().Pods(ns).Create(ctx, pod(ns, "pull", privateImage), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, false
		}
		for _, w := range warnings.take() {
			warned = warned || strings.Contains(w, `needs pull secret "myregistrykey"`)
		}
		return pullSecretNames(p) == "myregistrykey", warned
	}
	eventually(t, 30*time.Second, "podguard adds the pull secret without Secret access", func() (bool, error) {
		added, _ := missingSecretWarned()
		return added, nil
	})
	if _, warned := missingSecretWarned(); warned {
		t.Fatal("without Secret access podguard cannot know the pull secret is missing, yet it warned")
	}

	// Grant access and reload the config: the metadata cache starts.
	if err := framework.ApplyObjects(ctx, cluster.Client, secretAccess); err != nil {
		t.Fatal(err)
	}
	pg.writeConfig(t, registryRule+"# reload\n")
	eventually(t, 30*time.Second, "podguard reads Secret metadata once allowed", func() (bool, error) {
		return metricInt(t, pg.MetricsURL, "podguard_secret_access_denied") == 0, nil
	})
	eventually(t, 30*time.Second, "podguard warns of the missing pull secret", func() (bool, error) {
		added, warned := missingSecretWarned()
		return added && warned, nil
	})
	for _, line := range strings.Split(readFile(t, pg.LogPath), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("podguard was refused a request: %s", line)
			break
		}
	}
}
