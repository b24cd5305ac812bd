package certs

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// logLines collects what a logger logs, one line per call.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{})
}

func (l *logLines) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// certDirWith writes a serving certificate valid from issued for validity
// into a cert dir, with its CA as ca.crt, and returns a watcher serving it
// as the webhook server does in files mode.
func certDirWith(t *testing.T, issued time.Time, validity time.Duration) (string, *certwatcher.CertWatcher, *CA) {
	t.Helper()
	ca, err := newCAAt("test-ca", issued.Add(-time.Hour), 10*validity)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.issueServingAt([]string{"podguard.podguard-system.svc"}, nil, issued, validity)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteDir(dir, s, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	cw, err := certwatcher.New(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return dir, cw, ca
}

func TestExpiryMonitor(t *testing.T) {
	t.Run("an expired certificate in the cert dir fails readiness naming its expiry, sets the gauges and logs", func(t *testing.T) {
		now := time.Now()
		dir, cw, ca := certDirWith(t, now.Add(-48*time.Hour), 24*time.Hour)
		var logs logLines
		m := NewExpiryMonitor(ExpiryOptions{GetCertificate: cw.GetCertificate, CA: CAFromFile(filepath.Join(dir, CAFile)), Log: logs.logger()})
		err := m.Ready(nil)
		if err == nil || !strings.Contains(err.Error(), "expired at "+now.Add(-24*time.Hour).UTC().Format("2006-01-02")) {
			t.Fatalf("Ready() = %v, want an error naming the expiry", err)
		}
		m.Observe()
		leaf, _ := m.leaf()
		if got, want := testutil.ToFloat64(servingNotAfter), float64(leaf.NotAfter.Unix()); got != want {
			t.Errorf("serving expiry gauge = %v, want %v", got, want)
		}
		if got, want := testutil.ToFloat64(caNotAfter), float64(ca.Cert.NotAfter.Unix()); got != want {
			t.Errorf("CA expiry gauge = %v, want %v", got, want)
		}
		if got := logs.matching("expired at"); len(got) != 1 || !strings.Contains(got[0], "refuses this serving certificate") {
			t.Errorf("want one error line about the expiry, got %q", logs.lines)
		}
		m.Observe() // within the hour: not repeated
		if got := logs.matching("expired at"); len(got) != 1 {
			t.Errorf("the expiry was logged %d times within an hour, want once", len(got))
		}
	})

	t.Run("a certificate not yet valid fails readiness", func(t *testing.T) {
		_, cw, _ := certDirWith(t, time.Now().Add(2*time.Hour), 24*time.Hour)
		m := NewExpiryMonitor(ExpiryOptions{GetCertificate: cw.GetCertificate, Log: logr.Discard()})
		if err := m.Ready(nil); err == nil || !strings.Contains(err.Error(), "not valid before") {
			t.Fatalf("Ready() = %v, want not valid before", err)
		}
	})

	t.Run("a certificate near expiry logs a warning, at most once per repeat interval, and stays ready", func(t *testing.T) {
		now := time.Now()
		// 90 days, issued 80 days ago: 10 days left, less than a quarter.
		_, cw, _ := certDirWith(t, now.Add(-80*24*time.Hour), 90*24*time.Hour)
		clock := now
		var logs logLines
		m := NewExpiryMonitor(ExpiryOptions{GetCertificate: cw.GetCertificate, Log: logs.logger(), Now: func() time.Time { return clock }})
		if err := m.Ready(nil); err != nil {
			t.Fatalf("Ready() = %v, want ready: the certificate is still valid", err)
		}
		m.Observe()
		clock = clock.Add(30 * time.Minute)
		m.Observe()
		if got := logs.matching("expires soon"); len(got) != 1 {
			t.Fatalf("warnings within an hour = %d, want 1: %q", len(got), logs.lines)
		}
		clock = clock.Add(31 * time.Minute)
		m.Observe()
		if got := logs.matching("expires soon"); len(got) != 2 {
			t.Fatalf("warnings after an hour = %d, want 2", len(got))
		}
		// Ten days later it has expired: logged at once, and not ready.
		clock = now.Add(11 * 24 * time.Hour)
		m.Observe()
		if got := logs.matching("expired at"); len(got) != 1 {
			t.Errorf("no error line at expiry: %q", logs.lines)
		}
		if err := m.Ready(nil); err == nil {
			t.Error("Ready() passed with an expired certificate")
		}
	})

	t.Run("a fresh certificate logs no warning", func(t *testing.T) {
		_, cw, _ := certDirWith(t, time.Now().Add(-time.Hour), 90*24*time.Hour)
		var logs logLines
		m := NewExpiryMonitor(ExpiryOptions{GetCertificate: cw.GetCertificate, Log: logs.logger()})
		m.Observe()
		if got := logs.matching("WARNING"); len(got) != 0 {
			t.Errorf("warned about a fresh certificate: %q", got)
		}
		if err := m.Ready(nil); err != nil {
			t.Errorf("Ready() = %v", err)
		}
	})

	t.Run("no certificate yet fails readiness", func(t *testing.T) {
		m := NewExpiryMonitor(ExpiryOptions{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }, Log: logr.Discard()})
		if err := m.Ready(nil); err == nil {
			t.Error("Ready() passed without a certificate")
		}
	})
}
