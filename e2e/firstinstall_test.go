//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/e2e/framework"
)

// certManagerNamespace is the namespace cert-manager's own install uses,
// which the shipped webhooks exclude.
const certManagerNamespace = "cert-manager"

// TestFirstInstallOrder applies deploy/overlays/cluster-wide, as shipped
// but for the webhooks' clientConfig, with podguard not running: the
// webhooks point at a local port nothing listens on yet, as a first install
// meets them while podguard's image pulls and its certificate is not yet
// issued. It checks the order the README promises ("First install: the
// order"):
//
//  1. a covered namespace refuses pods, naming validate.podguard.io, which
//     fails closed;
//  2. meanwhile what podguard depends on is never blocked: pods, and a
//     Deployment's pods created by kube-controller-manager, in cert-manager,
//     kube-system and podguard-system, including podguard's own Deployment
//     applied after the webhooks are in force, its priority class
//     system-cluster-critical admitted through the shipped ResourceQuota
//     by an API server that limits critical classes as GKE does;
//  3. once podguard serves on that port, the covered namespace is enforced:
//     a pod that breaks a policy is denied by the policy, a good one is
//     admitted and mutated.
//
// cert-manager itself does not run (TestInstallCertManager runs it): its
// CRDs are installed so that the overlay's Issuers and Certificates apply,
// and the pods in namespace cert-manager stand in for its own. Everything
// the test creates is deleted at its end; the cert-manager CRDs stay, as in
// TestInstallCertManager.
func TestFirstInstallOrder(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	c := cluster.Client

	if err := framework.InstallCertManagerCRDs(ctx, c); err != nil {
		t.Fatal(err)
	}
	createNamespaceIfMissing(t, certManagerNamespace)

	// The port podguard will serve on, once it runs, with its CA: the API
	// server trusts it from the start, as cert-manager's CA injector would
	// have it.
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.NewCA("podguard-e2e-first-install", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := framework.RenderOverlay(filepath.Join(repoRoot, "deploy", "overlays", "cluster-wide"))
	if err != nil {
		t.Fatal(err)
	}
	baseURL := "https://127.0.0.1:" + strconv.Itoa(port)
	if err := framework.PointWebhooksAt(objs, baseURL, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	// podguard's own Deployment is applied once the webhooks are in force,
	// as on a cluster where its pods come after them (or are recreated).
	var install, podguardDeployment []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" && o.GetName() == "podguard" {
			podguardDeployment = append(podguardDeployment, o)
			continue
		}
		install = append(install, o)
	}
	if len(podguardDeployment) != 1 {
		t.Fatalf("deploy/overlays/cluster-wide has %d Deployments podguard, want 1", len(podguardDeployment))
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, c, objs); err != nil {
			t.Errorf("uninstalling deploy/overlays/cluster-wide: %v", err)
		}
	})
	if err := framework.ApplyObjects(ctx, c, install); err != nil {
		t.Fatal(err)
	}

	covered := newNamespace(t, "first-install", nil)
	cs := cluster.Clientset

	t.Run("a covered namespace refuses pods while podguard is not running", func(t *testing.T) {
		// The API server picks up the webhook configurations from a watch:
		// until it does, pods are admitted; each is deleted.
		var refusal error
		eventually(t, 30*time.Second, "the API server calls validate.podguard.io", func() (bool, error) {
			p := pod(covered, "", "registry.k8s.io/pause:3.10")
			p.GenerateName = "before-podguard-"
			created, err := cs.CoreV1().Pods(covered).Create(ctx, p, metav1.CreateOptions{})
			if err == nil {
				return false, c.Delete(ctx, created)
			}
			refusal = err
			return true, nil
		})
		t.Logf("refused: %v", refusal)
		if !apierrors.IsInternalError(refusal) || !strings.Contains(refusal.Error(), `failed calling webhook "validate.podguard.io"`) {
			t.Fatalf("want an internal error from failing to call validate.podguard.io, got: %v", refusal)
		}
		_, err := cs.AppsV1().Deployments(covered).Create(ctx, deployment(covered, "app", "registry.k8s.io/pause:3.10"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `failed calling webhook "validate.podguard.io"`) {
			t.Errorf("a Deployment in covered namespace %s: want a refusal naming validate.podguard.io, got: %v", covered, err)
		}
	})

	for _, ns := range []string{certManagerNamespace, "kube-system", installNamespace} {
		t.Run("pods are created in "+ns, func(t *testing.T) {
			p := restrictedPod(ns, "first-install-probe")
			// The ServiceAccount admission plugin refuses pods until the
			// namespace's default ServiceAccount exists: retry that, nothing
			// else.
			eventually(t, 30*time.Second, "creating a pod in "+ns, func() (bool, error) {
				_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				if err != nil && strings.Contains(err.Error(), "serviceaccount") && apierrors.IsForbidden(err) {
					return false, nil
				}
				return true, err
			})
			t.Cleanup(func() { deleteAndLog(t, p) })

			d := deployment(ns, "first-install-probe", "registry.k8s.io/pause:3.10")
			d.Spec.Template.Spec = restrictedPod(ns, "").Spec
			if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
				t.Fatalf("creating Deployment %s/%s: %v", ns, d.Name, err)
			}
			t.Cleanup(func() { deleteAndLog(t, d) })
			waitForPods(t, ns, map[string]string{"app": d.Name}, int(ptr.Deref(d.Spec.Replicas, 1)))
		})
	}

	// The cluster limits critical priority classes as GKE does (see
	// framework.StartCluster): without a ResourceQuota for its class, a
	// namespace refuses the pod. So podguard's pods below are admitted by
	// the shipped quota, not by a lenient API server.
	t.Run("a critical pod needs a quota for its class", func(t *testing.T) {
		p := restrictedPod(certManagerNamespace, "critical")
		p.Spec.PriorityClassName = "system-cluster-critical"
		_, err := cs.CoreV1().Pods(certManagerNamespace).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), "insufficient quota to match these scopes") {
			t.Fatalf("a system-cluster-critical pod in %s, which has no ResourceQuota: want a refusal for insufficient quota, got: %v", certManagerNamespace, err)
		}
		t.Logf("refused: %v", err)
	})

	t.Run("podguard's own Deployment gets its pods", func(t *testing.T) {
		if err := framework.ApplyObjects(ctx, c, podguardDeployment); err != nil {
			t.Fatal(err)
		}
		pods := waitForPods(t, installNamespace, map[string]string{"app.kubernetes.io/name": "podguard"}, 2)
		for _, p := range pods {
			if p.Spec.PriorityClassName != "system-cluster-critical" {
				t.Errorf("pod %s has priority class %q, want system-cluster-critical: the check of the quota proves nothing", p.Name, p.Spec.PriorityClassName)
			}
		}
	})

	// podguard comes up on the port the webhooks point at, with a serving
	// certificate of the CA they trust. It runs outside the cluster (its
	// pods above have no kubelet), with the default config.
	dir := t.TempDir()
	certDir := filepath.Join(dir, "tls")
	serving, err := ca.IssueServing([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteDir(certDir, serving, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pg, err := framework.StartPodguard(ctx, framework.PodguardOptions{
		Kubeconfig: cluster.KubeconfigPath,
		CertDir:    certDir,
		ConfigPath: configPath,
		Port:       port,
		LogPath:    filepath.Join(dir, "podguard.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: podguard stops before the install's
	// webhooks are deleted.
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("podguard did not exit cleanly on SIGTERM: %v", err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(pg.LogPath); err == nil {
				t.Logf("podguard log:\n%s", lastLines(string(log), 40))
			}
		}
	})
	if pg.URL != baseURL {
		t.Fatalf("podguard serves %s, the webhooks point at %s", pg.URL, baseURL)
	}

	t.Run("once podguard is up, the covered namespace is enforced", func(t *testing.T) {
		createConfigMap(t, covered, "tomcat-server-config", "server.xml")
		withVolume := func(name, mountPath, subPath string) *corev1.Pod {
			p := pod(covered, name, "tomcat:10")
			p.Spec.Volumes = []corev1.Volume{{Name: "server-config", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "tomcat-server-config"}}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "server-config", MountPath: mountPath, SubPath: subPath}}
			return p
		}
		// podguard's informers may still be syncing for an instant after
		// readiness; the refusal of the outage must be gone at once.
		var err error
		eventually(t, 15*time.Second, "podguard judges the bad pod", func() (bool, error) {
			_, err = cs.CoreV1().Pods(covered).Create(ctx, withVolume("over-conf", "/usr/local/tomcat/conf", ""), metav1.CreateOptions{})
			return err == nil || !strings.Contains(err.Error(), "failed calling webhook"), nil
		})
		deniedBy(t, err, "[mount-shadowing] spec.containers[0].volumeMounts[0]", `ConfigMap "tomcat-server-config"`)

		good, err := cs.CoreV1().Pods(covered).Create(ctx, withVolume("with-subpath", "/usr/local/tomcat/conf/server.xml", "server.xml"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("the good pod was refused: %v", err)
		}
		// The mutating webhook, which failed open during the outage, runs:
		// the default security-context profile hardens the pod.
		if m := mutations(good); len(m) == 0 {
			t.Error("the admitted pod was not mutated")
		} else {
			t.Logf("admitted and mutated: %s", strings.Join(m, "; "))
		}
	})
}

// restrictedPod returns a Pod that passes Pod Security "restricted", which
// podguard-system enforces.
func restrictedPod(ns, name string) *corev1.Pod {
	p := pod(ns, name, "registry.k8s.io/pause:3.10")
	p.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	return p
}

// createNamespaceIfMissing creates namespace ns unless it exists, and then
// deletes it when the test ends.
func createNamespaceIfMissing(t *testing.T, ns string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	err := cluster.Client.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
	if err == nil {
		return
	}
	if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if err := cluster.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("v1")
		obj.SetKind("Namespace")
		obj.SetName(ns)
		if err := framework.DeleteObjects(ctx, cluster.Client, []*unstructured.Unstructured{obj}); err != nil {
			t.Errorf("deleting namespace %s: %v", ns, err)
		}
	})
}

// waitForPods waits until the namespace has want pods with the labels, as
// kube-controller-manager's ReplicaSet controller creates them, and returns
// them.
func waitForPods(t *testing.T, ns string, labels map[string]string, want int) []corev1.Pod {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var pods corev1.PodList
	err := framework.Eventually(ctx, 45*time.Second, 100*time.Millisecond, func() (bool, error) {
		err := cluster.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(labels))
		return len(pods.Items) == want, err
	})
	if err != nil {
		t.Fatalf("waiting for %d pods %v in %s (%d exist): %v\n%s", want, labels, ns, len(pods.Items), err, describeReplicaSetsIn(t, ns))
	}
	return pods.Items
}

// describeReplicaSetsIn lists the events of the ReplicaSets in ns, such as
// FailedCreate from a webhook or a quota.
func describeReplicaSetsIn(t *testing.T, ns string) string {
	t.Helper()
	ctx, cancel := cleanupContext()
	defer cancel()
	var events corev1.EventList
	if err := cluster.Client.List(ctx, &events, client.InNamespace(ns)); err != nil {
		return fmt.Sprintf("listing events: %v", err)
	}
	var b strings.Builder
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "ReplicaSet" {
			fmt.Fprintf(&b, "event %s ReplicaSet/%s: %s: %s\n", e.Type, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	return b.String()
}

// deleteAndLog deletes obj at the end of a test, failing it on an error
// other than not found.
func deleteAndLog(t *testing.T, obj client.Object) {
	t.Helper()
	ctx, cancel := cleanupContext()
	defer cancel()
	if err := cluster.Client.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
		t.Errorf("deleting %s: %v", framework.Describe(obj), err)
	}
}
