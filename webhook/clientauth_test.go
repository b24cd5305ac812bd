package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA that signs client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a certificate for usage (client or server authentication).
func (ca *testCA) issue(t *testing.T, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestClientAuth(t *testing.T) {
	apiserverCA, otherCA, nextCA := newTestCA(t, "apiserver-client-ca"), newTestCA(t, "other"), newTestCA(t, "next")
	bundle := filepath.Join(t.TempDir(), "client-ca.crt")
	if err := os.WriteFile(bundle, apiserverCA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := NewClientAuth(bundle)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(auth.Require(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "admitted")
	})))
	srv.TLS = &tls.Config{}
	ServingTLS(srv.TLS)
	auth.TLS(srv.TLS)
	srv.StartTLS()
	defer srv.Close()

	call := func(t *testing.T, cert *tls.Certificate) (int, string, error) {
		t.Helper()
		// A transport of its own: srv.Client() is shared.
		tr := srv.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		defer tr.CloseIdleConnections()
		res, err := c.Post(srv.URL+"/validate", "application/json", strings.NewReader("{}"))
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body), nil
	}
	client := func(ca *testCA) *tls.Certificate { c := ca.issue(t, x509.ExtKeyUsageClientAuth); return &c }

	t.Run("the API server's client certificate is admitted", func(t *testing.T) {
		if code, body, err := call(t, client(apiserverCA)); err != nil || code != http.StatusOK {
			t.Errorf("got %d %q %v, want 200", code, body, err)
		}
	})
	t.Run("no client certificate fails the handshake, so it holds no connection slot", func(t *testing.T) {
		if code, body, err := call(t, nil); err == nil {
			t.Errorf("got %d %q, want a handshake failure", code, body)
		}
	})
	t.Run("a certificate from another CA fails the handshake", func(t *testing.T) {
		if code, _, err := call(t, client(otherCA)); err == nil {
			t.Errorf("got %d, want a handshake failure", code)
		}
	})
	t.Run("a server certificate from the CA is no client certificate", func(t *testing.T) {
		server := apiserverCA.issue(t, x509.ExtKeyUsageServerAuth)
		if code, _, err := call(t, &server); err == nil {
			t.Errorf("got %d, want a handshake failure", code)
		}
	})
	t.Run("a rotated bundle is read again; an empty one keeps the last good", func(t *testing.T) {
		next := append(append([]byte{}, apiserverCA.pem...), nextCA.pem...)
		// A later mtime, whatever the file system's resolution.
		if err := os.WriteFile(bundle, next, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(bundle, later, later); err != nil {
			t.Fatal(err)
		}
		if code, body, err := call(t, client(nextCA)); err != nil || code != http.StatusOK {
			t.Errorf("the next CA: got %d %q %v, want 200", code, body, err)
		}
		if err := os.WriteFile(bundle, []byte("not PEM"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(bundle, later.Add(time.Minute), later.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if code, body, err := call(t, client(nextCA)); err != nil || code != http.StatusOK {
			t.Errorf("after a bad write: got %d %q %v, want the last good bundle to hold", code, body, err)
		}
	})
	t.Run("a bundle with no certificate is refused at start", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.crt")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewClientAuth(empty); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
			t.Errorf("got %v", err)
		}
	})
}
