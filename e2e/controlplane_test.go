//go:build e2e

package e2e

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/podguard/podguard/e2e/framework"
)

// TestControlPlaneDeploymentCreatesPods proves that kube-controller-manager
// runs: a Deployment becomes a ReplicaSet, which becomes Pods. With no
// scheduler or kubelet, the Pods stay Pending.
func TestControlPlaneDeploymentCreatesPods(t *testing.T) {
	ctx := testContext(t, time.Minute)
	ns := newNamespace(t, "smoke", nil)

	labels := map[string]string{"app": "smoke"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smoke"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "pause",
					Image: "registry.k8s.io/pause:3.10",
				}}},
			},
		},
	}
	if err := cluster.Client.Create(ctx, deploy); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}

	var pods []corev1.Pod
	err := framework.Eventually(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		var rsList appsv1.ReplicaSetList
		if err := cluster.Client.List(ctx, &rsList, client.InNamespace(ns)); err != nil {
			return false, err
		}
		var rs *appsv1.ReplicaSet
		for i := range rsList.Items {
			if ref := metav1.GetControllerOf(&rsList.Items[i]); ref != nil && ref.UID == deploy.UID {
				rs = &rsList.Items[i]
			}
		}
		if rs == nil {
			return false, nil
		}
		var podList corev1.PodList
		if err := cluster.Client.List(ctx, &podList, client.InNamespace(ns)); err != nil {
			return false, err
		}
		pods = pods[:0]
		for _, p := range podList.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rs.UID {
				pods = append(pods, p)
			}
		}
		return len(pods) == 2, nil
	})
	if err != nil {
		t.Fatalf("waiting for 2 pods of deployment %s/%s: %v (have %d)", ns, deploy.Name, err, len(pods))
	}

	for _, p := range pods {
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("pod %s is %s, want Pending (there is no kubelet)", p.Name, p.Status.Phase)
		}
		// The ServiceAccount admission plugin runs, as in a real cluster.
		if p.Spec.ServiceAccountName != "default" || !hasTokenVolume(p) {
			t.Errorf("pod %s: serviceAccountName %q, volumes %v; want the default ServiceAccount and its token volume",
				p.Name, p.Spec.ServiceAccountName, p.Spec.Volumes)
		}
	}
}

func hasTokenVolume(p corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool {
		return strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil
	})
}

// TestRenderWebhooks checks that RenderWebhooks changes the clientConfig of
// each webhook, and nothing else, in both overlays.
func TestRenderWebhooks(t *testing.T) {
	const base = "https://127.0.0.1:9443"
	ca := []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")

	for _, overlay := range []string{"opt-in", "cluster-wide"} {
		t.Run(overlay, func(t *testing.T) {
			dir := filepath.Join(repoRoot, "deploy", "overlays", overlay)
			m, v, err := framework.RenderWebhooks(dir, base, ca)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Webhooks) == 0 || len(v.Webhooks) == 0 {
				t.Fatalf("got %d mutating and %d validating webhooks, want some of each", len(m.Webhooks), len(v.Webhooks))
			}
			for _, w := range m.Webhooks {
				checkClientConfig(t, w.Name, w.ClientConfig, base+"/mutate", ca)
			}
			for _, w := range v.Webhooks {
				checkClientConfig(t, w.Name, w.ClientConfig, base+validatingPath(w.Name), ca)
			}

			// Everything but clientConfig is as the overlay ships it.
			shipped := renderShipped(t, dir)
			for kind, got := range map[string]any{"MutatingWebhookConfiguration": m, "ValidatingWebhookConfiguration": v} {
				want, ok := shipped[kind]
				if !ok {
					t.Fatalf("overlay has no %s", kind)
				}
				gotMap := withoutClientConfig(t, got)
				if !reflect.DeepEqual(gotMap, withoutClientConfig(t, want)) {
					t.Errorf("%s differs from the overlay outside clientConfig:\ngot  %v\nwant %v", kind, gotMap, withoutClientConfig(t, want))
				}
			}

			// The overlay's own selector term is there.
			wantOp := metav1.LabelSelectorOpIn
			if overlay == "cluster-wide" {
				wantOp = metav1.LabelSelectorOpNotIn
			}
			for _, sel := range []*metav1.LabelSelector{m.Webhooks[0].NamespaceSelector, v.Webhooks[0].NamespaceSelector} {
				if sel == nil || !slices.ContainsFunc(sel.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
					return r.Key == "podguard.io/enabled" && r.Operator == wantOp
				}) {
					t.Errorf("namespaceSelector %v lacks the %s term for podguard.io/enabled", sel, wantOp)
				}
			}
		})
	}
}

func checkClientConfig(t *testing.T, name string, cc admissionregistrationv1.WebhookClientConfig, wantURL string, wantCA []byte) {
	t.Helper()
	if cc.Service != nil {
		t.Errorf("webhook %s: service %+v, want none", name, *cc.Service)
	}
	if cc.URL == nil || *cc.URL != wantURL {
		t.Errorf("webhook %s: url %v, want %s", name, ptr.Deref(cc.URL, "<nil>"), wantURL)
	}
	if string(cc.CABundle) != string(wantCA) {
		t.Errorf("webhook %s: caBundle %q, want %q", name, cc.CABundle, wantCA)
	}
}

// renderShipped renders an overlay independently of the framework, as
// generic maps keyed by kind.
func renderShipped(t *testing.T, dir string) map[string]any {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, r := range resources.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out[r.GetKind()] = m
	}
	return out
}

// withoutClientConfig returns obj as a generic map through JSON, with every
// webhook's clientConfig and the (typed-only) empty creationTimestamp
// removed.
func withoutClientConfig(t *testing.T, obj any) map[string]any {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	webhooks, _ := m["webhooks"].([]any)
	for _, w := range webhooks {
		if w, ok := w.(map[string]any); ok {
			delete(w, "clientConfig")
		}
	}
	return m
}

// TestRenderedWebhooksInstall registers the opt-in overlay's webhooks,
// replaces them, and removes them. No namespace in this run carries the
// opt-in label, so no other test's Pods reach the webhooks' unreachable URL.
func TestRenderedWebhooksInstall(t *testing.T) {
	ctx := testContext(t, time.Minute)
	dir := filepath.Join(repoRoot, "deploy", "overlays", "opt-in")
	ca := []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.UninstallWebhooks(ctx, cluster.Client); err != nil {
			t.Error(err)
		}
	})

	for _, base := range []string{"https://127.0.0.1:1", "https://localhost:2/prefix"} {
		if err := framework.InstallWebhooks(ctx, cluster.Client, dir, base, ca); err != nil {
			t.Fatalf("installing with %s: %v", base, err)
		}
		wantM, wantV, err := framework.RenderWebhooks(dir, base, ca)
		if err != nil {
			t.Fatal(err)
		}
		var m admissionregistrationv1.MutatingWebhookConfiguration
		if err := cluster.Client.Get(ctx, client.ObjectKey{Name: framework.WebhookConfigurationName}, &m); err != nil {
			t.Fatal(err)
		}
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := cluster.Client.Get(ctx, client.ObjectKey{Name: framework.WebhookConfigurationName}, &v); err != nil {
			t.Fatal(err)
		}
		for i, w := range m.Webhooks {
			checkClientConfig(t, w.Name, w.ClientConfig, base+"/mutate", ca)
			if !reflect.DeepEqual(w.NamespaceSelector, wantM.Webhooks[i].NamespaceSelector) ||
				!reflect.DeepEqual(w.MatchConditions, wantM.Webhooks[i].MatchConditions) ||
				!reflect.DeepEqual(w.FailurePolicy, wantM.Webhooks[i].FailurePolicy) ||
				!reflect.DeepEqual(w.ReinvocationPolicy, wantM.Webhooks[i].ReinvocationPolicy) {
				t.Errorf("stored webhook %s differs from the rendered one:\ngot  %+v\nwant %+v", w.Name, w, wantM.Webhooks[i])
			}
		}
		for i, w := range v.Webhooks {
			checkClientConfig(t, w.Name, w.ClientConfig, base+validatingPath(w.Name), ca)
			if !reflect.DeepEqual(w.Rules, wantV.Webhooks[i].Rules) ||
				!reflect.DeepEqual(w.NamespaceSelector, wantV.Webhooks[i].NamespaceSelector) ||
				!reflect.DeepEqual(w.FailurePolicy, wantV.Webhooks[i].FailurePolicy) {
				t.Errorf("stored webhook %s differs from the rendered one:\ngot  %+v\nwant %+v", w.Name, w, wantV.Webhooks[i])
			}
		}
	}

	if err := framework.UninstallWebhooks(ctx, cluster.Client); err != nil {
		t.Fatal(err)
	}
	err := cluster.Client.Get(ctx, client.ObjectKey{Name: framework.WebhookConfigurationName}, &admissionregistrationv1.MutatingWebhookConfiguration{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("after uninstall, getting the MutatingWebhookConfiguration: %v, want NotFound", err)
	}
}

// validatingPath is the path a validating webhook of podguard's is served
// at: the ConfigMap and Secret guard's own, the pod webhook's.
func validatingPath(webhook string) string {
	if webhook == "state.podguard.io" {
		return "/validate-state"
	}
	return "/validate"
}
