//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// newNamespace creates a namespace named prefix plus a random suffix, ready
// for Pods, and deletes it when the test ends.
func newNamespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	name := prefix + "-" + utilrand.String(5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.CreateNamespace(ctx, name, labels); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := cluster.Client.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	return name
}

// cleanupContext returns a context for t.Cleanup functions, which run after
// the test's own context has been canceled.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// testContext returns a context that ends with the test or after timeout. It
// is canceled before t.Cleanup functions run: they use cleanupContext.
func testContext(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// userClient returns a clientset authenticating as user in groups (a client
// certificate), with a Role of rules bound to it in each namespace, its
// kubeconfig, and the warnings it receives. It has only what RBAC grants
// that user: a developer, a pod author, a kubelet's identity.
func userClient(t *testing.T, user string, groups, namespaces []string, rules ...rbacv1.PolicyRule) (kubernetes.Interface, string, *warningCollector) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	for _, ns := range namespaces {
		name := "e2e-" + strings.NewReplacer(":", "-", "@", "-").Replace(user)
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}
		for _, obj := range []client.Object{role, binding} {
			if err := cluster.Client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	kubeconfig, err := cluster.KubeconfigFor(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = time.Minute
	w := &warningCollector{}
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, kubeconfig, w
}
