//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/releaseutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/e2e/framework"
)

const (
	helmRelease   = "podguard"
	helmNamespace = "podguard-system"
)

// TestHelmInstall installs deploy/chart/podguard with self-managed TLS
// through the real API server with the Helm SDK, as `helm install
// --create-namespace` does, and runs podguard as a local process with the
// chart's ServiceAccount, so the chart's RBAC and ValidatingAdmissionPolicy
// are all it has: it creates its Secret and patches the CA bundle into the
// chart's webhook configurations. `helm upgrade` with a changed config value
// updates the ConfigMap (podguard reloads it) and keeps the caBundle;
// `helm uninstall` leaves no cluster-scoped podguard object behind. Then
// deploy/overlays/self-managed/opt-in is applied as `kubectl apply -k`
// would, and its live objects must equal those Helm installed; last,
// `helm install --take-ownership` adopts them unchanged, and uninstalls
// them.
//
// There is no kubelet: the Deployment's pods never run, and the webhooks
// keep pointing at the Service. Nothing here creates a pod in an opt-in
// namespace, so they are never called.
func TestHelmInstall(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	chrt, cfg := loadChart(t)
	installed, helmLive := helmInstall(t, cfg, chrt, map[string]any{"tls": map[string]any{"mode": "self-managed"}})

	// A cold start: the chart is installed, nothing of podguard runs (no
	// endpoint behind its Service, no certificate yet). What podguard
	// depends on is not locked out: pods in its own namespace and in
	// cert-manager's are created; a pod in an opted-in namespace is refused
	// by validate.podguard.io, which fails closed.
	// Both namespaces are labelled as covered: only the webhooks'
	// exclusions let their pods through.
	createNamespaceIfMissing(t, certManagerNamespace)
	for _, ns := range []string{helmNamespace, certManagerNamespace} {
		var nsObj corev1.Namespace
		if err := cluster.Client.Get(ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil {
			t.Fatal(err)
		}
		if nsObj.Labels == nil {
			nsObj.Labels = map[string]string{}
		}
		nsObj.Labels["podguard.io/enabled"] = "true"
		if err := cluster.Client.Update(ctx, &nsObj); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{helmNamespace, certManagerNamespace} {
		if _, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, restrictedPod(ns, "cold-start"), metav1.CreateOptions{}); err != nil {
			t.Errorf("with podguard not running yet, a pod in %s was refused: %v", ns, err)
		}
	}
	covered := newNamespace(t, "helm-covered", optIn)
	if _, err := cluster.Clientset.CoreV1().Pods(covered).Create(ctx, pod(covered, "cold-start", "registry.k8s.io/pause:3.10"), metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "validate.podguard.io") {
		t.Errorf("with podguard not running yet, a pod in an opted-in namespace: %v, want a refusal naming validate.podguard.io", err)
	}

	// podguard as the chart's ServiceAccount, with the chart's config.
	waitForCAOnlyPolicy(t, serviceAccountClient(t))
	kubeconfig, err := cluster.ServiceAccountKubeconfig(helmNamespace, "podguard")
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(t.TempDir(), "config.yaml")
	writeChartConfig(t, configPath)
	pg, err := framework.StartPodguard(ctx, framework.PodguardOptions{
		Kubeconfig: kubeconfig,
		ConfigPath: configPath,
		LogPath:    filepath.Join(t.TempDir(), "podguard.log"),
		Args:       []string{"--cert-mode=self-managed", "--namespace=" + helmNamespace, "--cert-hosts=127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if err := pg.Stop(); err != nil {
			t.Errorf("podguard did not exit cleanly on SIGTERM: %v", err)
		}
		if t.Failed() {
			t.Logf("podguard log:\n%s", lastLines(readFile(t, pg.LogPath), 40))
		}
	}
	t.Cleanup(stop)
	secret, err := cluster.Clientset.CoreV1().Secrets(helmNamespace).Get(ctx, "podguard-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("podguard is ready, but its Secret: %v", err)
	}
	bundle := secret.Data[certs.CAFile]
	eventually(t, 20*time.Second, "podguard patches its CA bundle into the chart's webhook configurations", func() (bool, error) {
		return webhooksTrust(ctx, bundle) == nil, nil
	})

	// helm upgrade with a changed config value.
	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace = helmNamespace
	upgrade.Timeout = time.Minute
	upgraded := map[string]any{
		"tls":    map[string]any{"mode": "self-managed"},
		"config": map[string]any{"policies": map[string]any{"envFromKeys": map[string]any{"posix": "deny"}}},
	}
	if _, err := upgrade.RunWithContext(ctx, helmRelease, chrt, upgraded); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	posix, registries := chartConfigSettings(t)
	if posix != "deny" {
		t.Errorf("after helm upgrade --set config.policies.envFromKeys.posix=deny, the ConfigMap has posix %q", posix)
	}
	if registries == nil {
		t.Errorf("helm upgrade of one config value dropped the other defaults (policies.imagePullSecrets.registries)")
	}
	// The kubelet would update the mounted file; here the test does.
	writeChartConfig(t, configPath)
	eventually(t, 20*time.Second, "podguard reloads the upgraded config", func() (bool, error) {
		return metric(t, pg.MetricsURL, `podguard_config_reloads_total{result="success"}`) == "1", nil
	})
	if err := webhooksTrust(ctx, bundle); err != nil {
		t.Errorf("helm upgrade reset the caBundle podguard patched in: %v", err)
	}
	for _, line := range strings.Split(readFile(t, pg.LogPath), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("podguard was refused a request with the chart's RBAC: %s", line)
			break
		}
	}
	stop()

	helmUninstall(t, cfg, installed)
	compareWithKustomize(t, helmLive, "self-managed/opt-in")

	// Moving from kubectl apply -k to Helm: helm install --take-ownership
	// adopts the objects kustomize installed, changes none of them, and
	// helm uninstall then removes them.
	adopt := action.NewInstall(cfg)
	adopt.ReleaseName = helmRelease
	adopt.Namespace = helmNamespace
	adopt.TakeOwnership = true
	adopt.Timeout = time.Minute
	rel, err := adopt.RunWithContext(ctx, chrt, map[string]any{"tls": map[string]any{"mode": "self-managed"}})
	if err != nil {
		t.Fatalf("helm install --take-ownership over the kustomize install: %v", err)
	}
	adopted := manifestObjects(t, rel.Manifest)
	adoptedLive := liveObjects(t, adopted)
	for _, key := range sortedKeys(adoptedLive) {
		if d := cmp.Diff(helmLive[key], adoptedLive[key]); d != "" {
			t.Errorf("%s: adopted from kubectl apply -k, differs from helm install's (-install +adopted):\n%s", key, d)
		}
	}
	helmUninstall(t, cfg, adopted)
}

// TestHelmInstallCertManager installs the chart with its default values
// (opt-in, TLS from cert-manager) with cert-manager's CRDs, controllers and
// CA injector running for real: cert-manager issues the chart's
// Certificates and injects the CA into both webhook configurations, and
// `helm upgrade` keeps the injected caBundle. `helm uninstall` leaves no
// cluster-scoped podguard object, and deploy/overlays/opt-in, applied as
// `kubectl apply -k` would, installs the same objects.
func TestHelmInstallCertManager(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	if err := framework.InstallCertManagerCRDs(ctx, cluster.Client); err != nil {
		t.Fatal(err)
	}
	stopCertManager, err := framework.StartCertManager(ctx, cluster.Config, cluster.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stopCertManager(); err != nil {
			t.Errorf("cert-manager did not stop cleanly: %v", err)
		}
	})
	chrt, cfg := loadChart(t)
	installed, helmLive := helmInstall(t, cfg, chrt, nil)

	waitForCertificatesReady(t, certificateNames...)
	caPEM := checkIssuedSecrets(t)
	if caPEM == nil {
		t.Fatal("no CA was issued; the CA injection cannot be checked")
	}
	checkCABundlesInjected(t, caPEM)

	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace = helmNamespace
	upgrade.Timeout = time.Minute
	if _, err := upgrade.RunWithContext(ctx, helmRelease, chrt, map[string]any{"replicas": 3}); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if err := webhooksTrust(ctx, caPEM); err != nil {
		t.Errorf("helm upgrade reset the caBundle cert-manager injected: %v", err)
	}

	helmUninstall(t, cfg, installed)
	compareWithKustomize(t, helmLive, "opt-in")
}

// loadChart loads deploy/chart/podguard and a Helm configuration for the
// cluster.
func loadChart(t *testing.T) (*chart.Chart, *action.Configuration) {
	t.Helper()
	chrt, err := loader.Load(filepath.Join(repoRoot, "deploy", "chart", "podguard"))
	if err != nil {
		t.Fatal(err)
	}
	return chrt, helmConfig(t)
}

// helmInstall runs `helm install podguard --namespace podguard-system
// --create-namespace` with vals, and returns the release's objects and their
// live state, normalised. The release and the namespace are deleted when
// the test ends.
func helmInstall(t *testing.T, cfg *action.Configuration, chrt *chart.Chart, vals map[string]any) ([]*unstructured.Unstructured, map[string]map[string]any) {
	t.Helper()
	waitForNamespaceGone(t, helmNamespace)
	install := action.NewInstall(cfg)
	install.ReleaseName = helmRelease
	install.Namespace = helmNamespace
	install.CreateNamespace = true
	install.Timeout = time.Minute
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if _, err := action.NewUninstall(cfg).Run(helmRelease); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Errorf("helm uninstall at cleanup: %v", err)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: helmNamespace}}
		if err := cluster.Client.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", helmNamespace, err)
		}
	})
	rel, err := install.RunWithContext(t.Context(), chrt, vals)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	installed := manifestObjects(t, rel.Manifest)
	if len(installed) == 0 {
		t.Fatal("the release has no objects")
	}
	return installed, liveObjects(t, installed)
}

// helmUninstall runs helm uninstall and checks that nothing of the release
// is left, and no cluster-scoped podguard object at all.
func helmUninstall(t *testing.T, cfg *action.Configuration, installed []*unstructured.Unstructured) {
	t.Helper()
	ctx := t.Context()
	if _, err := action.NewUninstall(cfg).Run(helmRelease); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	var left []string
	eventually(t, time.Minute, "helm uninstall removes every object of the release", func() (bool, error) {
		left = left[:0]
		for _, obj := range installed {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(obj.GroupVersionKind())
			err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(obj), u)
			if err == nil {
				left = append(left, framework.Describe(obj))
			} else if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return len(left) == 0, nil
	})
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		checkNoneNamedPodguard(t, "admissionregistration.k8s.io", "v1", kind)
	}
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		checkNoneNamedPodguard(t, "rbac.authorization.k8s.io", "v1", kind)
	}
}

// compareWithKustomize applies deploy/overlays/<overlay> as `kubectl apply
// -k` would (after helm uninstall) and checks that its live objects equal
// helmLive, those helm install installed. The install is deleted when the
// test ends.
func compareWithKustomize(t *testing.T, helmLive map[string]map[string]any, overlay string) {
	t.Helper()
	objs, err := framework.RenderOverlay(filepath.Join(repoRoot, "deploy", "overlays", filepath.FromSlash(overlay)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, cluster.Client, objs); err != nil {
			t.Errorf("deleting the kustomize install: %v", err)
		}
	})
	if err := framework.ApplyObjects(t.Context(), cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	kustLive := liveObjects(t, objs)
	// The Namespace is the one difference by design: Helm's comes from
	// --create-namespace, before the release (see the chart's
	// namespace.create).
	delete(kustLive, "Namespace "+helmNamespace)
	for _, key := range sortedKeys(kustLive) {
		h, ok := helmLive[key]
		if !ok {
			t.Errorf("%s: installed by kubectl apply -k %s, not by helm install", key, overlay)
			continue
		}
		if d := cmp.Diff(kustLive[key], h); d != "" {
			t.Errorf("%s: differs between kubectl apply -k %s and helm install (-kustomize +helm):\n%s", key, overlay, d)
		}
	}
	for _, key := range sortedKeys(helmLive) {
		if _, ok := kustLive[key]; !ok {
			t.Errorf("%s: installed by helm install, not by kubectl apply -k %s", key, overlay)
		}
	}
}

// helmConfig is the Helm SDK's configuration for the cluster's admin
// kubeconfig, storing releases in Secrets, as the helm CLI does.
func helmConfig(t *testing.T) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	kubeconfig, ns := cluster.KubeconfigPath, helmNamespace
	flags.KubeConfig, flags.Namespace = &kubeconfig, &ns
	cfg := &action.Configuration{}
	if err := cfg.Init(flags, helmNamespace, "secret", func(format string, args ...any) {}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// waitForNamespaceGone waits for an earlier test's podguard-system to be
// deleted, so that the release starts from an empty namespace.
func waitForNamespaceGone(t *testing.T, name string) {
	t.Helper()
	eventually(t, 2*time.Minute, "namespace "+name+" is not terminating", func() (bool, error) {
		ns, err := cluster.Clientset.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && ns.Status.Phase != corev1.NamespaceTerminating, err
	})
}

// manifestObjects decodes a release's manifest.
func manifestObjects(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for name, doc := range releaseutil.SplitManifests(manifest) {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		objs = append(objs, u)
	}
	return objs
}

// liveObjects gets objs from the API server, normalised by normaliseLive,
// keyed by framework.Describe.
func liveObjects(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	live := map[string]map[string]any{}
	for _, obj := range objs {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(obj.GroupVersionKind())
		if err := cluster.Client.Get(t.Context(), client.ObjectKeyFromObject(obj), u); err != nil {
			t.Fatalf("getting %s: %v", framework.Describe(obj), err)
		}
		normaliseLive(t, u)
		live[framework.Describe(obj)] = u.Object
	}
	return live
}

// normaliseLive drops from a live object what differs between any two
// installs of it: what the API server and controllers write (identity,
// timestamps, managedFields, status, a Service's cluster IPs, a
// Deployment's revision), what Helm adds to mark its objects (its labels
// and annotations), and the webhooks' caBundle, which podguard patches in.
// It also reads podguard's config file as the document it is (the chart
// writes it from values, without the overlay's comments), and removes the
// blank lines kustomize's YAML parser (kyaml) inserts into folded CEL
// expressions before each more-indented line (see deploy/chart_test.go).
func normaliseLive(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(u.Object, "status")
	labels := u.GetLabels()
	delete(labels, "app.kubernetes.io/managed-by")
	if len(labels) == 0 {
		labels = nil
	}
	u.SetLabels(labels)
	annotations := u.GetAnnotations()
	for k := range annotations {
		if strings.HasPrefix(k, "meta.helm.sh/") || k == "deployment.kubernetes.io/revision" {
			delete(annotations, k)
		}
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	u.SetAnnotations(annotations)
	switch u.GetKind() {
	case "Service":
		unstructured.RemoveNestedField(u.Object, "spec", "clusterIP")
		unstructured.RemoveNestedField(u.Object, "spec", "clusterIPs")
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, h := range hooks {
			if m, ok := h.(map[string]any); ok {
				unstructured.RemoveNestedField(m, "clientConfig", "caBundle")
			}
		}
		_ = unstructured.SetNestedSlice(u.Object, hooks, "webhooks")
	case "ConfigMap":
		if text, ok, _ := unstructured.NestedString(u.Object, "data", "config.yaml"); ok {
			var doc any
			if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
				t.Fatalf("%s: data.config.yaml: %v", framework.Describe(u), err)
			}
			u.Object["data"] = map[string]any{"config.yaml (parsed)": doc}
		}
	}
	u.Object = collapseExpressions(u.Object).(map[string]any)
}

// collapseExpressions removes blank lines from every CEL expression.
func collapseExpressions(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && (k == "expression" || k == "messageExpression") {
				for strings.Contains(s, "\n\n") {
					s = strings.ReplaceAll(s, "\n\n", "\n")
				}
				v[k] = s
				continue
			}
			v[k] = collapseExpressions(e)
		}
	case []any:
		for i, e := range v {
			v[i] = collapseExpressions(e)
		}
	}
	return v
}

// writeChartConfig writes the config file of the ConfigMap the chart
// installed to path.
func writeChartConfig(t *testing.T, path string) {
	t.Helper()
	cm, err := cluster.Clientset.CoreV1().ConfigMaps(helmNamespace).Get(t.Context(), "podguard-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(cm.Data["config.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
}

// chartConfigSettings reads two settings of the installed ConfigMap's config:
// policies.envFromKeys.posix and policies.imagePullSecrets.registries.
func chartConfigSettings(t *testing.T) (posix string, registries any) {
	t.Helper()
	cm, err := cluster.Clientset.CoreV1().ConfigMaps(helmNamespace).Get(t.Context(), "podguard-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &doc); err != nil {
		t.Fatal(err)
	}
	posix, _, _ = unstructured.NestedString(doc, "policies", "envFromKeys", "posix")
	registries, _, _ = unstructured.NestedFieldNoCopy(doc, "policies", "imagePullSecrets", "registries")
	return posix, registries
}

// checkNoneNamedPodguard fails the test if an object of the kind exists
// whose name starts with podguard.
func checkNoneNamedPodguard(t *testing.T, group, version, kind string) {
	t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion(group + "/" + version)
	list.SetKind(kind + "List")
	if err := cluster.Client.List(t.Context(), list); err != nil {
		if meta.IsNoMatchError(err) {
			return
		}
		t.Fatalf("listing %s: %v", kind, err)
	}
	for _, item := range list.Items {
		if strings.HasPrefix(item.GetName(), "podguard") {
			t.Errorf("after helm uninstall, %s %s is left", kind, item.GetName())
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
