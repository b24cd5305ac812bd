//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podguard/podguard/certs"
)

// forgedReview is what any pod could POST to podguard's webhook port: a
// review of a pod in another namespace, whose answer would say whether
// ConfigMap "secret-plans" exists there and name its keys.
const forgedReview = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"forged","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"kube-system","operation":"CREATE","userInfo":{"username":"nobody"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe","namespace":"kube-system"},"spec":{"containers":[{"name":"a","image":"nginx","envFrom":[{"configMapRef":{"name":"secret-plans"}}]}]}}}}`

// TestWebhookClientAuthentication runs podguard with --client-ca-file set to
// the CA of the client certificate the API server presents to webhooks (its
// --admission-control-config-file; see framework.Cluster). The API server's
// calls are admitted: pods come back mutated, and denials still reach the
// user. A caller without a client certificate, the oracle of issue 11
// item 6, fails its handshake and learns nothing; one with a certificate from another
// CA fails the TLS handshake; readiness, which checks the port without a
// certificate, stays ready.
func TestWebhookClientAuthentication(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	// runPodguard waits until the API server has called both webhooks, so
	// it has already passed client authentication.
	pg := runPodguard(t, "opt-in", "", "--client-ca-file="+cluster.WebhookClientCAFile)
	ns := newNamespace(t, "clientauth", optIn)

	t.Run("the API server is admitted", func(t *testing.T) {
		p, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, pod(ns, "web", "nginx"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || !mutated(p) {
			t.Fatalf("the pod was not admitted and mutated through podguard: %v", err)
		}
		createConfigMap(t, ns, "abcdocker-configmap", "1st.key")
		setKubelets(t, "v1.29.3")
		eventually(t, 15*time.Second, "podguard's caches see the ConfigMap and the kubelet", func() (bool, error) {
			_, err = cluster.Clientset.CoreV1().Pods(ns).Create(ctx, pod(ns, "bad", "nginx", "abcdocker-configmap"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err != nil, nil
		})
		deniedBy(t, err, `key "1st.key"`)
	})

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pg.ca.CertPEM)
	post := func(t *testing.T, clientCerts []tls.Certificate) (int, string, error) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: clientCerts}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		res, err := c.Post(pg.URL+"/validate", "application/json", strings.NewReader(forgedReview))
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body), nil
	}
	t.Run("a caller without a client certificate fails the handshake and gets no answer", func(t *testing.T) {
		if code, body, err := post(t, nil); err == nil {
			t.Errorf("got %d %q; want a handshake failure", code, body)
		}
	})
	t.Run("a client certificate from another CA fails the handshake", func(t *testing.T) {
		other, err := certs.NewCA("not-the-apiserver", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		// A serving certificate of another CA: refused for its CA before
		// its key usage is even looked at.
		s, err := other.IssueServing([]string{"attacker"}, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if code, body, err := post(t, []tls.Certificate{pair}); err == nil {
			t.Errorf("got %d %q; want the TLS handshake to fail", code, body)
		}
	})
	t.Run("readiness stays ready", func(t *testing.T) {
		res, err := http.Get(pg.HealthURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Errorf("/readyz: %d %s", res.StatusCode, bytes.TrimSpace(body))
		}
	})
}
