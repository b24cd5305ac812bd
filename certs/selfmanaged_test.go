package certs

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func webhookConfigs() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "podguard"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "mutate.podguard.io"}, {Name: "second.podguard.io"}},
	}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "podguard"},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{{Name: "validate.podguard.io"}},
	}
	return m, v
}

func newTestSelfManaged(t *testing.T, client *fake.Clientset) *SelfManaged {
	t.Helper()
	sm, err := NewSelfManaged(SelfManagedOptions{
		Client: client, Namespace: "podguard-system", SecretName: "podguard-tls",
		WebhookConfigurationName: "podguard", Hosts: []string{"podguard.podguard-system.svc"},
		Log: logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sm
}

// writes are the create, update and patch calls a client made.
func writes(c *fake.Clientset) []string {
	var w []string
	for _, a := range c.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch":
			w = append(w, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return w
}

func TestSelfManagedReconcile(t *testing.T) {
	ctx := context.Background()
	m, v := webhookConfigs()
	client := fake.NewClientset(m, v)
	sm := newTestSelfManaged(t, client)
	if _, err := sm.GetCertificate(nil); err == nil {
		t.Fatal("a certificate before the first pass")
	}

	wait, err := sm.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wait <= 0 || wait > DefaultResync {
		t.Errorf("next pass in %s, want within the resync period", wait)
	}
	want := []string{"create secrets", "patch mutatingwebhookconfigurations", "patch validatingwebhookconfigurations"}
	if got := writes(client); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("writes %v, want %v", got, want)
	}
	secret, err := client.CoreV1().Secrets("podguard-system").Get(ctx, "podguard-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %s, want %s", secret.Type, corev1.SecretTypeTLS)
	}
	bundle := secret.Data[CAFile]
	gm, _ := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "podguard", metav1.GetOptions{})
	gv, _ := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "podguard", metav1.GetOptions{})
	for _, cc := range []admissionregistrationv1.WebhookClientConfig{gm.Webhooks[0].ClientConfig, gm.Webhooks[1].ClientConfig, gv.Webhooks[0].ClientConfig} {
		if !bytes.Equal(cc.CABundle, bundle) {
			t.Errorf("a webhook's caBundle is not the Secret's %s", CAFile)
		}
	}
	served, err := sm.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served.Certificate[0], mustServing(t, secret).Cert.Raw) {
		t.Error("serving a certificate other than the Secret's")
	}

	// A second pass, as another replica would run it, writes nothing.
	client.ClearActions()
	other := newTestSelfManaged(t, client)
	if _, err := other.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if w := writes(client); len(w) != 0 {
		t.Fatalf("an up-to-date Secret caused writes: %v", w)
	}
	if c, _ := other.GetCertificate(nil); c == nil || !bytes.Equal(c.Certificate[0], served.Certificate[0]) {
		t.Fatal("the second replica must serve the same certificate")
	}

	// Someone re-creates a configuration without a bundle: restored.
	if err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "podguard", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, v = webhookConfigs()
	if _, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, v, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	gv, _ = client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "podguard", metav1.GetOptions{})
	if !bytes.Equal(gv.Webhooks[0].ClientConfig.CABundle, bundle) {
		t.Error("the re-created configuration did not get the bundle back")
	}
}

func mustServing(t *testing.T, s *corev1.Secret) *Serving {
	t.Helper()
	sv, err := loadServing(s.Data[CertFile], s.Data[KeyFile])
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

func TestSelfManagedWithoutWebhookConfigurations(t *testing.T) {
	client := fake.NewClientset()
	sm := newTestSelfManaged(t, client)
	if _, err := sm.Reconcile(context.Background()); err != nil {
		t.Fatalf("missing webhook configurations must not fail a pass: %v", err)
	}
	if _, err := sm.GetCertificate(nil); err != nil {
		t.Fatal(err)
	}
}

func TestSelfManagedRetriesConflicts(t *testing.T) {
	m, v := webhookConfigs()
	client := fake.NewClientset(m, v)
	// The first create loses a race to another replica.
	lost := false
	client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if lost {
			return false, nil, nil
		}
		lost = true
		other := newTestSelfManaged(t, fake.NewClientset())
		winner, _, err := plan(decodeMaterial(nil, nil), time.Now(), other.settings)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := winner.encode()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "podguard-tls", Namespace: "podguard-system"}, Type: corev1.SecretTypeTLS, Data: data}
		if err := client.Tracker().Add(s); err != nil {
			t.Fatal(err)
		}
		return true, nil, alreadyExists()
	})
	sm := newTestSelfManaged(t, client)
	if _, err := sm.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	secret, _ := client.CoreV1().Secrets("podguard-system").Get(context.Background(), "podguard-tls", metav1.GetOptions{})
	c, _ := sm.GetCertificate(nil)
	if !bytes.Equal(c.Certificate[0], mustServing(t, secret).Cert.Raw) {
		t.Fatal("after losing the race, podguard must serve the winner's certificate")
	}
}

func TestNewSelfManagedRejectsBadOptions(t *testing.T) {
	_, err := NewSelfManaged(SelfManagedOptions{CAValidity: time.Hour, CertValidity: 2 * time.Hour, RolloverDelay: time.Hour})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no Kubernetes client", "empty namespace", "empty Secret name", "no host names", "longer than the CA's", "rollover delay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func alreadyExists() error {
	return apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, "podguard-tls")
}
