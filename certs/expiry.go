package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Defaults of ExpiryOptions.
const (
	DefaultExpiryCheckInterval = time.Minute
	DefaultExpiryLogRepeat     = time.Hour
)

// ExpiryOptions configure an ExpiryMonitor.
type ExpiryOptions struct {
	// GetCertificate returns the certificate served now: the webhook
	// server's tls.Config.GetCertificate, whatever the mode.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// CA returns the CA that signed it, when podguard knows it (ca.crt in
	// the cert dir, the self-managed signer); nil otherwise.
	CA func() *x509.Certificate
	// Interval is how often the certificates are checked; Repeat how often,
	// at most, the same warning is logged again.
	Interval time.Duration
	Repeat   time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
	Log logr.Logger
}

// ExpiryMonitor makes the serving certificate's validity visible in every
// certificate mode: the gauges podguard_serving_certificate_expiry_timestamp_seconds
// and podguard_ca_certificate_expiry_timestamp_seconds; a log line when less
// than a quarter of the certificate's lifetime is left (both shipped modes
// renew with a third left, so by then renewal is overdue), repeated at most
// every Repeat, and an error line once it has expired or is not yet valid;
// and a readiness check (Ready) that fails while the API server would
// refuse the certificate.
type ExpiryMonitor struct {
	o ExpiryOptions

	mu       sync.Mutex
	serial   string    // the certificate last seen
	state    string    // what was last logged about it: "", "expiring", "expired", "not-yet-valid"
	loggedAt time.Time // when
}

// NewExpiryMonitor fills in defaults and registers the gauges.
func NewExpiryMonitor(o ExpiryOptions) *ExpiryMonitor {
	if o.Interval <= 0 {
		o.Interval = DefaultExpiryCheckInterval
	}
	if o.Repeat <= 0 {
		o.Repeat = DefaultExpiryLogRepeat
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CA == nil {
		o.CA = func() *x509.Certificate { return nil }
	}
	RegisterMetrics()
	return &ExpiryMonitor{o: o}
}

// NeedLeaderElection is false: every replica watches what it serves.
func (m *ExpiryMonitor) NeedLeaderElection() bool { return false }

// Start checks the certificates every Interval until ctx is done.
func (m *ExpiryMonitor) Start(ctx context.Context) error {
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	for {
		m.Observe()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Ready is a readiness check: it fails when no certificate is served, or
// when the one served is expired or not yet valid.
func (m *ExpiryMonitor) Ready(*http.Request) error {
	leaf, err := m.leaf()
	if err != nil {
		return err
	}
	return validityError(leaf, m.o.Now())
}

// Observe sets the gauges from the certificates served now and logs what
// is due. Start calls it every Interval.
func (m *ExpiryMonitor) Observe() {
	if ca := m.o.CA(); ca != nil {
		caNotAfter.Set(float64(ca.NotAfter.Unix()))
	}
	leaf, err := m.leaf()
	if err != nil {
		return
	}
	servingNotAfter.Set(float64(leaf.NotAfter.Unix()))
	now := m.o.Now()
	serial := leaf.SerialNumber.Text(16)

	m.mu.Lock()
	defer m.mu.Unlock()
	if serial != m.serial {
		m.serial, m.state, m.loggedAt = serial, "", time.Time{}
		m.o.Log.Info("serving certificate", "serial", serial, "subject", leaf.Subject.CommonName,
			"notBefore", leaf.NotBefore.UTC(), "notAfter", leaf.NotAfter.UTC())
	}
	state := ""
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	left := leaf.NotAfter.Sub(now)
	switch {
	case now.Before(leaf.NotBefore):
		state = "not-yet-valid"
	case !now.Before(leaf.NotAfter):
		state = "expired"
	case left < lifetime/4:
		state = "expiring"
	}
	if state == "" || (state == m.state && now.Sub(m.loggedAt) < m.o.Repeat) {
		return
	}
	m.state, m.loggedAt = state, now
	kv := []any{"serial", serial, "subject", leaf.Subject.CommonName, "notBefore", leaf.NotBefore.UTC(), "notAfter", leaf.NotAfter.UTC()}
	switch state {
	case "expiring":
		m.o.Log.Info("WARNING: the serving certificate expires soon and has not been renewed; renewal is overdue (cert-manager and self-managed renew with a third of the lifetime left)",
			append(kv, "expiresIn", left.Round(time.Second).String())...)
	default:
		m.o.Log.Error(validityError(leaf, now), "the API server refuses this serving certificate: every webhook call fails; renew it", kv...)
	}
}

func (m *ExpiryMonitor) leaf() (*x509.Certificate, error) {
	c, err := m.o.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		return nil, fmt.Errorf("no serving certificate: %w", err)
	}
	if c == nil || len(c.Certificate) == 0 {
		return nil, errors.New("no serving certificate")
	}
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parsing the serving certificate: %w", err)
	}
	return leaf, nil
}

func validityError(leaf *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("serving certificate (serial %s) is not valid before %s", leaf.SerialNumber.Text(16), leaf.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(leaf.NotAfter):
		return fmt.Errorf("serving certificate (serial %s) expired at %s", leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// CAFromFile returns the first certificate in a PEM file, read on each
// call, or nil when the file is missing or holds none: cert-manager writes
// the CA into the Secret as ca.crt.
func CAFromFile(path string) func() *x509.Certificate {
	return func() *x509.Certificate {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				return nil
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			if c, err := x509.ParseCertificate(block.Bytes); err == nil {
				return c
			}
		}
	}
}
