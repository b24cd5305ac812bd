package certs

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testSettings(trusted func(*x509.Certificate) (bool, error)) planSettings {
	if trusted == nil {
		trusted = func(*x509.Certificate) (bool, error) { return true, nil }
	}
	return planSettings{
		hosts:         parseHosts([]string{"podguard.podguard-system.svc", "127.0.0.1"}),
		caValidity:    90 * time.Minute,
		certValidity:  30 * time.Minute,
		rolloverDelay: 2 * time.Minute,
		commonName:    "podguard-ca",
		trusted:       trusted,
	}
}

func mustPlan(t *testing.T, m *material, now time.Time, s planSettings) (*material, []string) {
	t.Helper()
	next, changes, err := plan(m, now, s)
	if err != nil {
		t.Fatalf("plan at %s: %v", now.Sub(t0), err)
	}
	kinds := make([]string, len(changes))
	for i, c := range changes {
		kinds[i] = c.kind
	}
	return next, kinds
}

// verifies reports whether serving verifies, at now, against roots.
func verifies(serving *Serving, roots []*x509.Certificate, now time.Time) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	_, err := serving.Cert.Verify(x509.VerifyOptions{
		Roots: pool, CurrentTime: now, DNSName: "podguard.podguard-system.svc",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

func TestPlanCreatesEverythingOnce(t *testing.T) {
	s := testSettings(nil)
	m, changes := mustPlan(t, decodeMaterial(nil, nil), t0, s)
	if want := []string{"ca-created", "bundle-updated", "serving-issued"}; !slices.Equal(changes, want) {
		t.Fatalf("changes = %v, want %v", changes, want)
	}
	if len(m.trusted) != 1 || !m.trusted[0].Equal(m.signer.Cert) {
		t.Fatalf("trust bundle should be exactly the new CA, got %d certificates", len(m.trusted))
	}
	if err := verifies(m.serving, m.trusted, t0); err != nil {
		t.Fatalf("serving certificate does not verify against the bundle: %v", err)
	}
	if got := m.serving.Cert.IPAddresses; len(got) != 1 || got[0].String() != "127.0.0.1" {
		t.Errorf("IP SANs = %v, want [127.0.0.1]", got)
	}

	// What was written reads back the same, and nothing more is due.
	data, since := m.encode()
	if since != "" {
		t.Errorf("no next CA, but the trusted-since annotation is %q", since)
	}
	back := decodeMaterial(data, nil)
	if len(back.problems) > 0 {
		t.Fatalf("round trip problems: %v", back.problems)
	}
	again, changes := mustPlan(t, back, t0.Add(time.Minute), s)
	if len(changes) != 0 || again != back {
		t.Fatalf("a second plan changed %v; it must be a no-op", changes)
	}
}

func TestPlanRenewsServingWithAThirdLeft(t *testing.T) {
	s := testSettings(nil)
	m, _ := mustPlan(t, decodeMaterial(nil, nil), t0, s)
	due := renewAt(m.serving.Cert)
	if _, changes := mustPlan(t, m, due.Add(-time.Second), s); len(changes) != 0 {
		t.Fatalf("before renewal time: changes %v", changes)
	}
	renewed, changes := mustPlan(t, m, due, s)
	if !slices.Equal(changes, []string{"serving-issued"}) {
		t.Fatalf("at renewal time: changes %v, want only serving-issued", changes)
	}
	if renewed.signer != m.signer || renewed.serving.Cert.Equal(m.serving.Cert) {
		t.Fatal("renewal must keep the CA and replace the serving certificate")
	}
	if left := renewed.serving.Cert.NotAfter.Sub(due); left < 29*time.Minute {
		t.Errorf("renewed certificate has %s left, want about the full 30m", left)
	}
}

func TestPlanRotatesTheCAInThreeSteps(t *testing.T) {
	trusts := false
	s := testSettings(func(*x509.Certificate) (bool, error) { return trusts, nil })
	m, _ := mustPlan(t, decodeMaterial(nil, nil), t0, s)
	old := m.signer
	roundTrip := func(m *material) *material {
		data, since := m.encode()
		back := decodeMaterial(data, map[string]string{NextSignerTrustedSinceAnnotation: since})
		if len(back.problems) > 0 {
			t.Fatalf("round trip: %v", back.problems)
		}
		return back
	}

	// Step 1: with a third of its life left, a next CA joins the bundle but
	// does not sign yet.
	stage := renewAt(old.Cert)
	m, changes := mustPlan(t, m, stage, s)
	// (The serving certificate is renewed too: this test plans only at the
	// moments it looks at.)
	if !slices.Equal(changes[:2], []string{"next-ca-created", "bundle-updated"}) {
		t.Fatalf("at %s: changes %v, want next-ca-created and bundle-updated", stage.Sub(t0), changes)
	}
	if m.signer != old || m.next == nil || len(m.trusted) != 2 || !m.trusted[1].Equal(m.next.Cert) {
		t.Fatal("the next CA must be trusted alongside the signer, which keeps signing")
	}
	if m.serving.Cert.CheckSignatureFrom(old.Cert) != nil {
		t.Fatal("the serving certificate must still come from the old CA")
	}
	m = roundTrip(m)

	// Step 2: the rollover delay starts only once the webhook
	// configurations are seen to trust the next CA, however late that is.
	late := stage.Add(3 * s.rolloverDelay)
	if _, changes := mustPlan(t, m, late, s); len(changes) != 0 {
		t.Fatalf("changed %v while the next CA is not trusted", changes)
	}
	trusts = true
	m, changes = mustPlan(t, m, late, s)
	if !slices.Equal(changes, []string{"next-ca-trusted"}) || !m.nextSince.Equal(late) {
		t.Fatalf("changes %v, trusted since %s; want next-ca-trusted at %s", changes, m.nextSince, late)
	}
	m = roundTrip(m)
	if !m.nextSince.Equal(late) {
		t.Fatalf("trusted-since read back as %s, want %s", m.nextSince, late)
	}
	if _, changes := mustPlan(t, m, late.Add(s.rolloverDelay-time.Second), s); len(changes) != 0 {
		t.Fatalf("changed %v before the rollover delay", changes)
	}

	// Trust lost (a configuration re-created) before the promotion: the
	// wait starts over.
	trusts = false
	lost, changes := mustPlan(t, m, late.Add(s.rolloverDelay), s)
	if !slices.Equal(changes, []string{"repaired"}) || !lost.nextSince.IsZero() || !lost.signer.Cert.Equal(old.Cert) {
		t.Fatalf("after trust was lost: changes %v, trusted since %s", changes, lost.nextSince)
	}

	// Step 3: trusted and waited for: it signs.
	trusts = true
	at := late.Add(s.rolloverDelay)
	m, changes = mustPlan(t, m, at, s)
	if !slices.Equal(changes, []string{"ca-promoted", "bundle-updated", "serving-issued"}) {
		t.Fatalf("changes %v, want ca-promoted, bundle-updated and serving-issued", changes)
	}
	if m.next != nil || m.signer.Cert.Equal(old.Cert) {
		t.Fatal("the next CA must have become the signer")
	}
	if err := verifies(m.serving, []*x509.Certificate{m.trusted[0]}, at); err != nil {
		t.Fatalf("the new serving certificate must come from the new CA: %v", err)
	}
	if len(m.trusted) != 2 || !m.trusted[1].Equal(old.Cert) {
		t.Fatal("the old CA must stay in the bundle until it expires")
	}
	// And leaves the bundle once expired.
	m, changes = mustPlan(t, m, old.Cert.NotAfter, s)
	if !slices.Contains(changes, "bundle-updated") || len(m.trusted) != 1 || m.trusted[0].Equal(old.Cert) {
		t.Fatalf("after the old CA expired: changes %v, %d trusted; want the old CA dropped", changes, len(m.trusted))
	}
}

// TestPlanNeverServesAnUntrustedCertificate simulates hours of rotations:
// each step a replica plans and writes the bundle to the webhook
// configurations, where it lands after patchLag; API servers see the
// configurations with a lag, and replicas serve a new certificate at once
// and an old one for up to a lag. Every certificate a replica may serve must
// verify against every bundle an API server may see.
func TestPlanNeverServesAnUntrustedCertificate(t *testing.T) {
	for _, patchLag := range []time.Duration{0, 3 * time.Minute} {
		t.Run("patch lag "+patchLag.String(), func(t *testing.T) { simulateRotations(t, patchLag) })
	}
}

func simulateRotations(t *testing.T, patchLag time.Duration) {
	const (
		step = 10 * time.Second
		lag  = time.Minute // under the 2m rollover delay
	)
	type written struct {
		at     time.Time
		bundle []*x509.Certificate
	}
	var configs []written   // every bundle written, in order
	var requested []written // bundles on their way to the configurations
	current := func() []*x509.Certificate {
		if len(configs) == 0 {
			return nil
		}
		return configs[len(configs)-1].bundle
	}
	seenBy := func(at time.Time) []*x509.Certificate { // the API server's view
		var b []*x509.Certificate
		for _, w := range configs {
			if !w.at.After(at) {
				b = w.bundle
			}
		}
		return b
	}
	s := testSettings(func(c *x509.Certificate) (bool, error) {
		return slices.ContainsFunc(current(), c.Equal), nil
	})
	type served struct {
		at   time.Time
		cert *Serving
	}
	var servedLog []served
	m := decodeMaterial(nil, nil)
	var promotions, issues int
	for now := t0; now.Before(t0.Add(6 * time.Hour)); now = now.Add(step) {
		var changes []string
		m, changes = mustPlan(t, m, now, s)
		promotions += strings.Count(strings.Join(changes, ","), "ca-promoted")
		issues += strings.Count(strings.Join(changes, ","), "serving-issued")
		if last := requested; len(last) == 0 || !slices.EqualFunc(m.trusted, last[len(last)-1].bundle, (*x509.Certificate).Equal) {
			requested = append(requested, written{now, m.trusted})
		}
		for len(requested) > 0 && !now.Before(requested[0].at.Add(patchLag)) {
			if !slices.EqualFunc(requested[0].bundle, current(), (*x509.Certificate).Equal) {
				configs = append(configs, written{now, requested[0].bundle})
			}
			requested = requested[1:]
		}
		servedLog = append(servedLog, served{now, m.serving})
		// An API server may see the configurations as of any moment in
		// the last lag, and a replica may still serve any certificate it
		// loaded in the last lag.
		for _, seen := range []time.Time{now, now.Add(-lag)} {
			view := seenBy(seen)
			if view == nil {
				continue // bootstrap: nothing is trusted before the first bundle is seen
			}
			for _, sv := range servedLog {
				if now.Sub(sv.at) > lag {
					continue
				}
				if err := verifies(sv.cert, view, now); err != nil {
					t.Fatalf("at %s, an API server seeing the bundle of %s calls a replica serving the certificate of %s: %v",
						now.Sub(t0), seen.Sub(t0), sv.at.Sub(t0), err)
				}
			}
		}
	}
	// 6h of a 90m CA: the simulation must really have rotated.
	if promotions < 3 || issues < 10 {
		t.Fatalf("only %d CA rotations and %d serving certificates in 6h; the simulation did not exercise rotation", promotions, issues)
	}
	t.Logf("%d CA rotations, %d serving certificates", promotions, issues)
}

func TestPlanRepairsWhatItCannotRead(t *testing.T) {
	s := testSettings(nil)
	good, _ := mustPlan(t, decodeMaterial(nil, nil), t0, s)
	data, _ := good.encode()

	for name, tc := range map[string]struct {
		mutate     func(map[string][]byte)
		wantKinds  []string
		keepSigner bool
	}{
		"garbage serving pair": {
			mutate:     func(d map[string][]byte) { d[CertFile] = []byte("not a certificate") },
			wantKinds:  []string{"repaired", "serving-issued"},
			keepSigner: true,
		},
		"serving key of another certificate": {
			mutate: func(d map[string][]byte) {
				other, _ := good.signer.issueServingAt([]string{"x"}, nil, t0, time.Hour)
				d[KeyFile] = other.KeyPEM
			},
			wantKinds:  []string{"repaired", "serving-issued"},
			keepSigner: true,
		},
		"garbage CA key": {
			mutate:    func(d map[string][]byte) { d[SignerKeyKey] = []byte("junk") },
			wantKinds: []string{"repaired", "ca-created", "bundle-updated", "serving-issued"},
		},
		"empty bundle": {
			mutate:     func(d map[string][]byte) { delete(d, CAFile) },
			wantKinds:  []string{"bundle-updated"},
			keepSigner: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := map[string][]byte{}
			for k, v := range data {
				d[k] = v
			}
			tc.mutate(d)
			m, kinds := mustPlan(t, decodeMaterial(d, nil), t0.Add(time.Minute), s)
			if !slices.Equal(kinds, tc.wantKinds) {
				t.Errorf("changes %v, want %v", kinds, tc.wantKinds)
			}
			if tc.keepSigner != m.signer.Cert.Equal(good.signer.Cert) {
				t.Errorf("kept the CA: %v, want %v", !tc.keepSigner, tc.keepSigner)
			}
			if err := verifies(m.serving, m.trusted, t0.Add(time.Minute)); err != nil {
				t.Errorf("repaired material does not verify: %v", err)
			}
		})
	}
}

func TestPlanReissuesForNewNames(t *testing.T) {
	s := testSettings(nil)
	m, _ := mustPlan(t, decodeMaterial(nil, nil), t0, s)
	s.hosts = parseHosts([]string{"podguard.other.svc"})
	m2, kinds := mustPlan(t, m, t0.Add(time.Minute), s)
	if !slices.Equal(kinds, []string{"serving-issued"}) || !slices.Equal(m2.serving.Cert.DNSNames, []string{"podguard.other.svc"}) {
		t.Fatalf("changes %v, names %v", kinds, m2.serving.Cert.DNSNames)
	}
}

func TestPlanReplacesAnExpiredCA(t *testing.T) {
	s := testSettings(func(*x509.Certificate) (bool, error) { return false, nil })
	m, _ := mustPlan(t, decodeMaterial(nil, nil), t0, s)
	// Off for longer than the CA lived: no overlap is possible any more.
	later := m.signer.Cert.NotAfter.Add(time.Hour)
	m2, kinds := mustPlan(t, m, later, s)
	if !slices.Contains(kinds, "ca-created") || m2.signer.Cert.Equal(m.signer.Cert) {
		t.Fatalf("changes %v; want a new CA", kinds)
	}
	if len(m2.trusted) != 1 {
		t.Errorf("the expired CA must leave the bundle; %d trusted", len(m2.trusted))
	}
	if err := verifies(m2.serving, m2.trusted, later); err != nil {
		t.Fatal(err)
	}
}

func TestPlanErrorsFromTheTrustCheck(t *testing.T) {
	s := testSettings(func(*x509.Certificate) (bool, error) { return false, fmt.Errorf("API down") })
	m, _ := mustPlan(t, decodeMaterial(nil, nil), t0, s)
	m, _ = mustPlan(t, m, renewAt(m.signer.Cert), s)
	if _, _, err := plan(m, renewAt(m.signer.Cert).Add(time.Second), s); err == nil || !strings.Contains(err.Error(), "API down") {
		t.Fatalf("err = %v, want the trust check's error", err)
	}
}
