//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/podguard/podguard/e2e/framework"
)

// cluster is the control plane every test in the package shares. Tests
// isolate themselves with namespaces of their own (see newNamespace).
var cluster *framework.Cluster

// repoRoot is the repository root, for the deploy overlays and bin/.
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// envtest logs through controller-runtime's logger; without one set,
	// controller-runtime complains on stderr.
	ctrllog.SetLogger(logr.Discard())

	var err error
	if repoRoot, err = framework.RepoRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	cluster, err = framework.StartCluster(ctx, framework.ClusterOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: starting the control plane: %v\n", err)
		return 1
	}
	fmt.Printf("e2e: control plane started in %s; work dir %s\n", time.Since(start).Round(10*time.Millisecond), cluster.WorkDir)

	code := m.Run()

	if err := cluster.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stopping the control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAILED; control-plane kubeconfig and logs kept in %s\n", cluster.WorkDir)
		return code
	}
	if err := os.RemoveAll(cluster.WorkDir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: removing work dir: %v\n", err)
	}
	return code
}
