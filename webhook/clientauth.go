package webhook

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

// ClientAuth admits to the webhook port only clients with a certificate
// signed by a CA of a bundle file: kube-apiserver, given a client
// certificate for webhooks in its --admission-control-config-file. Without
// it, any pod that reaches the port can ask podguard about any namespace
// (see README, "Threat model").
//
// The TLS handshake asks for a certificate and verifies one that is given;
// a connection without one is still accepted, so that the readiness
// self-check needs none, and each request on it is refused with 403 by
// Require. The bundle is read again when the file changes, so the API
// server's client CA can be rotated without a restart.
type ClientAuth struct {
	path string

	mu      sync.Mutex
	pool    *x509.CertPool
	modTime time.Time
	size    int64
}

// NewClientAuth reads the CA bundle at path, which must hold at least one
// certificate.
func NewClientAuth(path string) (*ClientAuth, error) {
	a := &ClientAuth{path: path}
	if _, err := a.current(); err != nil {
		return nil, err
	}
	return a, nil
}

// current returns the pool, read again if the file changed since. If the
// new file is unreadable or holds no certificate, the last good pool stays.
func (a *ClientAuth) current() (*x509.CertPool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fi, err := os.Stat(a.path)
	if err != nil {
		if a.pool != nil {
			return a.pool, nil
		}
		return nil, fmt.Errorf("reading the client CA bundle: %w", err)
	}
	if a.pool != nil && fi.ModTime().Equal(a.modTime) && fi.Size() == a.size {
		return a.pool, nil
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		if a.pool != nil {
			return a.pool, nil
		}
		return nil, fmt.Errorf("reading the client CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bytes.TrimSpace(data)) {
		if a.pool != nil {
			return a.pool, nil
		}
		return nil, fmt.Errorf("client CA bundle %s holds no PEM certificate", a.path)
	}
	a.pool, a.modTime, a.size = pool, fi.ModTime(), fi.Size()
	return pool, nil
}

// TLS asks clients for a certificate and verifies one that is given, for
// client authentication, against the bundle. It is a webhook.Server TLSOpt.
func (a *ClientAuth) TLS(c *tls.Config) {
	c.ClientAuth = tls.RequestClientCert
	// VerifyConnection, unlike VerifyPeerCertificate, also runs on resumed
	// sessions.
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		// Refused at the handshake, not with a 403 later: a connection
		// kept open for its 403s would hold one of the port's connection
		// slots, which the API server's new connections then wait for.
		if len(cs.PeerCertificates) == 0 {
			return errNoClientCert
		}
		pool, err := a.current()
		if err != nil {
			return err
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         pool,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		return nil
	}
}

// errNoClientCert is the body of Require's refusal.
var errNoClientCert = errors.New("podguard's webhook port requires a client certificate signed by its --client-ca-file: only the API server may call it")

// Require refuses, with 403, a request on a connection that presented no
// client certificate. With TLS's VerifyConnection such a connection never
// gets this far, nor does one with a bad certificate: their handshakes
// fail. It stays as a second line.
func (a *ClientAuth) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, errNoClientCert.Error(), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
