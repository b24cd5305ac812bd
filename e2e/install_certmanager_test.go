//go:build e2e

package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/e2e/framework"
)

// The names the cert-manager component of deploy/ ships.
const (
	installNamespace   = "podguard-system"
	caSecretName       = "podguard-ca"
	servingSecretName  = "podguard-tls"
	servingServiceName = "podguard.podguard-system.svc"
)

// certificateNames are the cert-manager Certificates of deploy/, in the
// order cert-manager issues them.
var certificateNames = []string{"podguard-ca", "podguard-serving"}

// TestInstallCertManager installs deploy/overlays/opt-in as shipped, with
// cert-manager's CRDs, its issuing controllers and its CA injector running
// for real, and checks that cert-manager issues podguard's CA and serving
// certificate, that the CA injector puts that CA into every webhook of both
// webhook configurations, that the API server validates cert-manager
// objects, and that the Deployment's Pods pass Pod Security "restricted".
// It also dry-runs the install of the other overlays.
//
// The webhooks keep their in-cluster Service, which has no endpoints: no
// namespace of this test opts in, so the API server never calls them.
// Everything the overlay installs is deleted when the test ends, since other
// tests register webhook configurations of the same names; the cert-manager
// CRDs stay.
func TestInstallCertManager(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	c := cluster.Client

	if err := framework.InstallCertManagerCRDs(ctx, c); err != nil {
		t.Fatal(err)
	}
	stopCertManager, err := framework.StartCertManager(ctx, cluster.Config, cluster.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: cert-manager stops after the install
	// is gone.
	t.Cleanup(func() {
		if err := stopCertManager(); err != nil {
			t.Errorf("cert-manager did not stop cleanly: %v", err)
		}
		if t.Failed() {
			t.Logf("cert-manager log: %s", filepath.Join(cluster.WorkDir, framework.CertManagerLog))
		}
	})

	objs, err := framework.RenderOverlay(filepath.Join(repoRoot, "deploy", "overlays", "opt-in"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, c, objs); err != nil {
			t.Errorf("uninstalling deploy/overlays/opt-in: %v", err)
		}
	})
	if err := framework.ApplyObjects(ctx, c, objs); err != nil {
		t.Fatal(err)
	}

	var caPEM []byte
	t.Run("CertManagerIssuesCertificates", func(t *testing.T) {
		waitForCertificatesReady(t, certificateNames...)
		caPEM = checkIssuedSecrets(t)
	})
	if caPEM == nil {
		t.Fatal("no CA was issued; the CA injection cannot be checked")
	}

	t.Run("CAInjectorFillsCABundles", func(t *testing.T) {
		checkCABundlesInjected(t, caPEM)
	})

	t.Run("APIServerValidatesCertificates", func(t *testing.T) {
		checkInvalidCertificatesRejected(t)
	})

	t.Run("PodsPassPodSecurityRestricted", func(t *testing.T) {
		checkPodsPassRestricted(t)
	})

	// A dry run persists nothing, so it needs the namespace podguard-system
	// that the opt-in install created: the objects of each overlay are
	// dry-run applied over those of opt-in, as an upgrade to that overlay
	// would apply them; those opt-in lacks are dry-run created.
	for _, overlay := range []string{"cluster-wide", "self-managed/opt-in", "self-managed/cluster-wide"} {
		t.Run("DryRun="+strings.ReplaceAll(overlay, "/", "-"), func(t *testing.T) {
			objs, err := framework.RenderOverlay(filepath.Join(repoRoot, "deploy", "overlays", overlay))
			if err != nil {
				t.Fatal(err)
			}
			if err := framework.ApplyObjects(testContext(t, time.Minute), c, objs, client.DryRunAll); err != nil {
				t.Fatalf("dry run of deploy/overlays/%s: %v", overlay, err)
			}
		})
	}
}

// waitForCertificatesReady waits until the Certificates of installNamespace
// with the given names have the condition Ready=True. On a timeout it fails
// the test with the conditions of every Certificate and CertificateRequest of
// the namespace.
func waitForCertificatesReady(t *testing.T, names ...string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	err := framework.Eventually(ctx, 45*time.Second, 100*time.Millisecond, func() (bool, error) {
		for _, name := range names {
			cert := newCertManagerObject("Certificate")
			if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: name}, cert); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			if conditionStatus(cert, "Ready") != "True" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for Certificates %s to be Ready: %v\n%s", strings.Join(names, ", "), err, describeCertManagerState(t))
	}
}

// checkIssuedSecrets checks the Secrets cert-manager issued: the serving
// certificate in servingSecretName verifies, for the Service's DNS names and
// for server auth, against the CA of that Secret's ca.crt, which is the CA
// certificate in caSecretName. It returns that CA, PEM-encoded as in ca.crt.
func checkIssuedSecrets(t *testing.T) []byte {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var caSecret, tlsSecret corev1.Secret
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: caSecretName}, &caSecret); err != nil {
		t.Fatalf("getting Secret %s: %v", caSecretName, err)
	}
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: servingSecretName}, &tlsSecret); err != nil {
		t.Fatalf("getting Secret %s: %v", servingSecretName, err)
	}
	for _, s := range []*corev1.Secret{&caSecret, &tlsSecret} {
		if s.Type != corev1.SecretTypeTLS {
			t.Errorf("Secret %s has type %q, want %q", s.Name, s.Type, corev1.SecretTypeTLS)
		}
		for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
			if len(s.Data[key]) == 0 {
				t.Fatalf("Secret %s has no %s", s.Name, key)
			}
		}
	}

	caCerts := parseCerts(t, servingSecretName+" ca.crt", tlsSecret.Data["ca.crt"])
	caSecretCerts := parseCerts(t, caSecretName+" tls.crt", caSecret.Data[corev1.TLSCertKey])
	if len(caCerts) != 1 {
		t.Fatalf("%s ca.crt holds %d certificates, want 1", servingSecretName, len(caCerts))
	}
	ca := caCerts[0]
	if !ca.Equal(caSecretCerts[0]) {
		t.Errorf("%s ca.crt is %q, not the CA certificate in %s tls.crt, %q",
			servingSecretName, ca.Subject, caSecretName, caSecretCerts[0].Subject)
	}
	if !ca.IsCA {
		t.Errorf("the CA certificate %q is not a CA", ca.Subject)
	}

	chain := parseCerts(t, servingSecretName+" tls.crt", tlsSecret.Data[corev1.TLSCertKey])
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca)
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	for _, name := range []string{servingServiceName, servingServiceName + ".cluster.local"} {
		_, err := chain[0].Verify(x509.VerifyOptions{
			DNSName:       name,
			Roots:         roots,
			Intermediates: intermediates,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("the serving certificate in %s does not verify for %s against its ca.crt: %v", servingSecretName, name, err)
		}
	}
	return tlsSecret.Data["ca.crt"]
}

// checkCABundlesInjected waits until every webhook of both webhook
// configurations of deploy/ has caPEM, byte for byte, as its caBundle.
func checkCABundlesInjected(t *testing.T, caPEM []byte) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var state string
	err := framework.Eventually(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		key := client.ObjectKey{Name: framework.WebhookConfigurationName}
		if err := cluster.Client.Get(ctx, key, &m); err != nil {
			return false, fmt.Errorf("getting MutatingWebhookConfiguration %s: %w", key.Name, err)
		}
		if err := cluster.Client.Get(ctx, key, &v); err != nil {
			return false, fmt.Errorf("getting ValidatingWebhookConfiguration %s: %w", key.Name, err)
		}
		bundles := map[string][]byte{}
		for _, w := range m.Webhooks {
			bundles["mutating webhook "+w.Name] = w.ClientConfig.CABundle
		}
		for _, w := range v.Webhooks {
			bundles["validating webhook "+w.Name] = w.ClientConfig.CABundle
		}
		if len(m.Webhooks) == 0 || len(v.Webhooks) == 0 {
			return false, fmt.Errorf("the webhook configurations have %d mutating and %d validating webhooks, want some of each", len(m.Webhooks), len(v.Webhooks))
		}
		var wrong []string
		for name, b := range bundles {
			if !bytes.Equal(b, caPEM) {
				wrong = append(wrong, fmt.Sprintf("%s has a caBundle of %d bytes", name, len(b)))
			}
		}
		state = strings.Join(wrong, "; ")
		return len(wrong) == 0, nil
	})
	if err != nil {
		t.Fatalf("waiting for the CA injector to set the caBundle of every webhook to %s's ca.crt (%d bytes): %v; %s",
			servingSecretName, len(caPEM), err, state)
	}
}

// checkInvalidCertificatesRejected checks that the API server rejects, as
// Invalid, the server-side dry-run create of Certificates that break the
// schema of cert-manager's CRD.
func checkInvalidCertificatesRejected(t *testing.T) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	issuerRef := map[string]any{"group": "cert-manager.io", "kind": "Issuer", "name": "podguard-ca"}
	for _, tc := range []struct {
		name  string
		spec  map[string]any
		field string
	}{{
		name:  "MissingSecretName",
		spec:  map[string]any{"dnsNames": []any{servingServiceName}, "issuerRef": issuerRef},
		field: "spec.secretName",
	}, {
		name:  "DNSNamesNotAList",
		spec:  map[string]any{"secretName": "invalid", "dnsNames": servingServiceName, "issuerRef": issuerRef},
		field: "spec.dnsNames",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cert := newCertManagerObject("Certificate")
			cert.SetNamespace(installNamespace)
			cert.SetName("invalid-" + strings.ToLower(tc.name))
			cert.Object["spec"] = tc.spec
			err := cluster.Client.Create(ctx, cert, client.DryRunAll)
			if err == nil {
				t.Fatal("the API server accepted the Certificate")
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("want an Invalid error about %s, got: %v", tc.field, err)
			}
		})
	}
}

// checkPodsPassRestricted checks that installNamespace enforces Pod Security
// "restricted", and that kube-controller-manager's ReplicaSet controller
// creates the Deployment's two Pods in it.
func checkPodsPassRestricted(t *testing.T) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var ns corev1.Namespace
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: installNamespace}, &ns); err != nil {
		t.Fatal(err)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Fatalf("namespace %s has label pod-security.kubernetes.io/enforce=%q, want restricted", installNamespace, got)
	}

	// The enforcement is real: a privileged Pod is rejected.
	privileged := pod(installNamespace, "privileged", "registry.k8s.io/pause:3.10")
	privileged.Spec.ServiceAccountName = "podguard"
	privileged.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	err := cluster.Client.Create(ctx, privileged, client.DryRunAll)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`) {
		t.Fatalf("want a privileged Pod rejected by Pod Security restricted, got: %v", err)
	}

	const want = 2
	var pods corev1.PodList
	err = framework.Eventually(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		err := cluster.Client.List(ctx, &pods, client.InNamespace(installNamespace),
			client.MatchingLabels{"app.kubernetes.io/name": "podguard"})
		return len(pods.Items) == want, err
	})
	if err != nil {
		t.Fatalf("waiting for the ReplicaSet controller to create %d podguard Pods in %s (%d exist): %v\n%s",
			want, installNamespace, len(pods.Items), err, describeReplicaSets(t))
	}
	for _, p := range pods.Items {
		if p.Spec.ServiceAccountName != "podguard" {
			t.Errorf("Pod %s runs as ServiceAccount %q, want podguard", p.Name, p.Spec.ServiceAccountName)
		}
	}
}

// describeReplicaSets describes the ReplicaSets of installNamespace, with
// their conditions and events, such as FailedCreate from a Pod Security
// rejection.
func describeReplicaSets(t *testing.T) string {
	t.Helper()
	ctx, cancel := cleanupContext()
	defer cancel()
	var b strings.Builder
	var rsList appsv1.ReplicaSetList
	if err := cluster.Client.List(ctx, &rsList, client.InNamespace(installNamespace)); err != nil {
		return fmt.Sprintf("listing ReplicaSets: %v", err)
	}
	if len(rsList.Items) == 0 {
		b.WriteString("no ReplicaSet exists\n")
	}
	for _, rs := range rsList.Items {
		fmt.Fprintf(&b, "ReplicaSet %s: %d/%d replicas\n", rs.Name, rs.Status.Replicas, ptr.Deref(rs.Spec.Replicas, 1))
		for _, c := range rs.Status.Conditions {
			fmt.Fprintf(&b, "  condition %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	var events corev1.EventList
	if err := cluster.Client.List(ctx, &events, client.InNamespace(installNamespace)); err != nil {
		return b.String() + fmt.Sprintf("listing events: %v", err)
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "ReplicaSet" || e.InvolvedObject.Kind == "Deployment" {
			fmt.Fprintf(&b, "event %s %s/%s: %s %s: %s\n", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Source.Component, e.Message)
		}
	}
	return b.String()
}

// describeCertManagerState describes the conditions of the Certificates,
// CertificateRequests and Issuers of installNamespace.
func describeCertManagerState(t *testing.T) string {
	t.Helper()
	ctx, cancel := cleanupContext()
	defer cancel()
	var b strings.Builder
	for _, kind := range []string{"Issuer", "Certificate", "CertificateRequest"} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(certManagerGV.WithKind(kind + "List"))
		if err := cluster.Client.List(ctx, list, client.InNamespace(installNamespace)); err != nil {
			fmt.Fprintf(&b, "listing %ss: %v\n", kind, err)
			continue
		}
		if len(list.Items) == 0 {
			fmt.Fprintf(&b, "no %s exists\n", kind)
		}
		for _, item := range list.Items {
			fmt.Fprintf(&b, "%s %s:\n", kind, item.GetName())
			conds, _, _ := unstructured.NestedSlice(item.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok {
					fmt.Fprintf(&b, "  condition %v=%v %v: %v\n", m["type"], m["status"], m["reason"], m["message"])
				}
			}
		}
	}
	fmt.Fprintf(&b, "(cert-manager log: %s)", filepath.Join(cluster.WorkDir, framework.CertManagerLog))
	return b.String()
}

// certManagerGV is the group and version of cert-manager's objects.
var certManagerGV = schema.GroupVersion{Group: "cert-manager.io", Version: "v1"}

// newCertManagerObject returns an empty cert-manager object of a kind.
func newCertManagerObject(kind string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(certManagerGV.WithKind(kind))
	return u
}

// conditionStatus returns the status of obj's condition of the given type,
// or "" if it has none.
func conditionStatus(obj *unstructured.Unstructured, condType string) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == condType {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

// parseCerts decodes the PEM certificates of data, of which there must be
// at least one.
func parseCerts(t *testing.T, what string, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("%s holds a PEM block of type %q", what, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("parsing %s: %v", what, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("%s holds no PEM certificate", what)
	}
	return certs
}
