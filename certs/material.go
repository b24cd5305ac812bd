package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Keys of the self-managed Secret, besides CertFile and KeyFile (the serving
// pair) and CAFile (the trust bundle: every CA the webhook configurations
// must trust, the signer first).
const (
	// SignerCertKey and SignerKeyKey hold the CA that signs serving
	// certificates.
	SignerCertKey = "signer.crt"
	SignerKeyKey  = "signer.key"
	// NextSignerCertKey and NextSignerKeyKey hold, during a CA rotation, the
	// CA that will sign next. It is trusted before it signs anything.
	NextSignerCertKey = "next-signer.crt"
	NextSignerKeyKey  = "next-signer.key"
	// NextSignerTrustedSinceAnnotation records when both webhook
	// configurations were first seen to trust the next CA, RFC 3339: the
	// start of the rollover delay.
	NextSignerTrustedSinceAnnotation = "podguard.io/next-signer-trusted-since"
)

// material is what the self-managed Secret holds, parsed.
type material struct {
	signer *CA
	// next is the CA that takes over from signer. It is in trusted as soon
	// as it exists; nextSince is when the webhook configurations were first
	// seen to trust it (zero until then), and it signs a rollover delay
	// later.
	next      *CA
	nextSince time.Time
	// trusted is the CA bundle for the webhook configurations, signer first.
	trusted []*x509.Certificate
	serving *Serving
	// problems are the parts of the Secret that could not be used; they are
	// replaced.
	problems []string
}

// decodeMaterial parses a Secret's data. What cannot be parsed is left out
// and reported in problems, for the plan to replace.
func decodeMaterial(data map[string][]byte, annotations map[string]string) *material {
	m := &material{}
	if data == nil {
		return m
	}
	loadCA := func(certKey, keyKey string) *CA {
		if len(data[certKey]) == 0 && len(data[keyKey]) == 0 {
			return nil
		}
		ca, err := LoadCA(data[certKey], data[keyKey])
		if err != nil {
			m.problems = append(m.problems, fmt.Sprintf("%s/%s: %v", certKey, keyKey, err))
			return nil
		}
		return ca
	}
	m.signer = loadCA(SignerCertKey, SignerKeyKey)
	m.next = loadCA(NextSignerCertKey, NextSignerKeyKey)
	if v := annotations[NextSignerTrustedSinceAnnotation]; m.next != nil && v != "" {
		since, err := time.Parse(time.RFC3339, v)
		if err != nil {
			// Unknown: trust is checked again, and the wait starts over.
			m.problems = append(m.problems, fmt.Sprintf("annotation %s: %v", NextSignerTrustedSinceAnnotation, err))
		}
		m.nextSince = since
	}
	trusted, err := parseCerts(data[CAFile])
	if err != nil {
		m.problems = append(m.problems, fmt.Sprintf("%s: %v", CAFile, err))
	}
	m.trusted = trusted
	if len(data[CertFile]) > 0 || len(data[KeyFile]) > 0 {
		s, err := loadServing(data[CertFile], data[KeyFile])
		if err != nil {
			m.problems = append(m.problems, fmt.Sprintf("%s/%s: %v", CertFile, KeyFile, err))
		}
		m.serving = s
	}
	return m
}

// loadServing parses a serving pair from PEM, checking that the key matches.
func loadServing(certPEM, keyPEM []byte) (*Serving, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	return &Serving{CertPEM: certPEM, KeyPEM: keyPEM, Cert: leaf}, nil
}

// TLSCertificate is the pair as crypto/tls serves it.
func (s *Serving) TLSCertificate() (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
	if err != nil {
		return nil, err
	}
	pair.Leaf = s.Cert
	return &pair, nil
}

// encode returns the Secret data and the annotation value for m.
func (m *material) encode() (map[string][]byte, string) {
	data := map[string][]byte{
		CAFile:        m.bundle(),
		SignerCertKey: m.signer.CertPEM,
		SignerKeyKey:  m.signer.KeyPEM,
		CertFile:      m.serving.CertPEM,
		KeyFile:       m.serving.KeyPEM,
	}
	since := ""
	if m.next != nil {
		data[NextSignerCertKey] = m.next.CertPEM
		data[NextSignerKeyKey] = m.next.KeyPEM
		if !m.nextSince.IsZero() {
			since = m.nextSince.UTC().Format(time.RFC3339Nano)
		}
	}
	return data, since
}

// bundle is the PEM of every trusted CA.
func (m *material) bundle() []byte {
	var b bytes.Buffer
	for _, c := range m.trusted {
		b.Write(encodeCert(c.Raw))
	}
	return b.Bytes()
}

// hosts are the names a serving certificate is for.
type hosts struct {
	dns []string
	ips []net.IP
}

func parseHosts(names []string) hosts {
	var h hosts
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			h.ips = append(h.ips, ip)
		} else {
			h.dns = append(h.dns, n)
		}
	}
	return h
}

// covers reports whether a certificate is for exactly these hosts.
func (h hosts) covers(c *x509.Certificate) bool {
	ips := func(l []net.IP) []string {
		s := make([]string, len(l))
		for i, ip := range l {
			s[i] = ip.String()
		}
		slices.Sort(s)
		return s
	}
	dns := slices.Sorted(slices.Values(c.DNSNames))
	want := slices.Sorted(slices.Values(h.dns))
	return slices.Equal(dns, want) && slices.Equal(ips(c.IPAddresses), ips(h.ips))
}

// renewAt is when two thirds of a certificate's lifetime have passed: time
// to replace it, with a third of its life left as a margin for failures.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// planSettings are the inputs of a plan besides the current material.
type planSettings struct {
	hosts         hosts
	caValidity    time.Duration
	certValidity  time.Duration
	rolloverDelay time.Duration
	commonName    string
	// trusted reports whether the webhook configurations trust a CA. It is
	// asked only when a new CA is about to start signing.
	trusted func(*x509.Certificate) (bool, error)
}

// plan decides what the Secret must hold at now. It returns cur itself, and
// no changes, when nothing is due, so that every replica running it on the
// same Secret agrees, and writes nothing.
//
// A CA rotation takes three steps, so that no request fails mid-rotation:
//  1. a third of the signer's lifetime before it expires, a new CA is made
//     and added to the trust bundle, which goes into the webhook
//     configurations; serving certificates are still signed by the old CA;
//  2. once both webhook configurations are seen to trust the new CA, that
//     moment is recorded (nextSince);
//  3. rolloverDelay later, time for every API server to see the
//     configurations, the new CA becomes the signer (if they still trust
//     it) and the serving certificate is reissued from it.
//
// The old CA stays in the bundle until it expires, so replicas that still
// serve a certificate it signed keep being trusted.
func plan(cur *material, now time.Time, s planSettings) (*material, []change, error) {
	next := *cur
	next.trusted = slices.Clone(cur.trusted)
	var changes []change
	if len(cur.problems) > 0 {
		changes = append(changes, change{"repaired", "replaced what could not be read: " + strings.Join(cur.problems, "; ")})
		next.problems = nil
	}
	newCA := func() (*CA, error) { return newCAAt(s.commonName, now, s.caValidity) }

	switch {
	case next.signer == nil:
		ca, err := newCA()
		if err != nil {
			return nil, nil, err
		}
		next.signer, next.next = ca, nil
		changes = append(changes, change{"ca-created", "created a CA"})
	case !now.Before(next.signer.Cert.NotAfter):
		// Expired: there is nothing left to overlap with.
		if next.next != nil && now.Before(next.next.Cert.NotAfter) {
			next.signer, next.next = next.next, nil
			changes = append(changes, change{"ca-promoted", "the CA expired; the next CA signs from now on"})
		} else {
			ca, err := newCA()
			if err != nil {
				return nil, nil, err
			}
			next.signer, next.next = ca, nil
			changes = append(changes, change{"ca-created", "the CA expired; created a new one"})
		}
	case next.next == nil && !now.Before(renewAt(next.signer.Cert)):
		ca, err := newCA()
		if err != nil {
			return nil, nil, err
		}
		next.next, next.nextSince = ca, time.Time{}
		changes = append(changes, change{"next-ca-created", "created the next CA and added it to the trust bundle"})
	case next.next != nil && next.nextSince.After(now):
		// Written by a replica whose clock is ahead: wait from now.
		next.nextSince = now
		changes = append(changes, change{"repaired", "the next CA's trusted-since time was in the future"})
	case next.next != nil && (next.nextSince.IsZero() || !now.Before(next.nextSince.Add(s.rolloverDelay))):
		ok, err := s.trusted(next.next.Cert)
		if err != nil {
			return nil, nil, fmt.Errorf("checking that the webhook configurations trust the next CA: %w", err)
		}
		switch {
		case ok && next.nextSince.IsZero():
			next.nextSince = now
			changes = append(changes, change{"next-ca-trusted", "the webhook configurations trust the next CA; it signs after the rollover delay"})
		case ok:
			next.signer, next.next = next.next, nil
			changes = append(changes, change{"ca-promoted", "the next CA is trusted; it signs from now on"})
		case !next.nextSince.IsZero():
			// Trust was lost (a configuration re-created): start over.
			next.nextSince = time.Time{}
			changes = append(changes, change{"repaired", "the webhook configurations no longer trust the next CA; waiting for them again"})
		}
	}

	// Trust: the signer and the next CA, then every other CA until it expires.
	trusted := []*x509.Certificate{next.signer.Cert}
	if next.next != nil {
		trusted = append(trusted, next.next.Cert)
	}
	for _, c := range cur.trusted {
		if now.Before(c.NotAfter) && !slices.ContainsFunc(trusted, c.Equal) {
			trusted = append(trusted, c)
		}
	}
	if !slices.EqualFunc(trusted, cur.trusted, (*x509.Certificate).Equal) {
		changes = append(changes, change{"bundle-updated", "updated the trust bundle"})
	}
	next.trusted = trusted

	if why := servingStale(next.serving, next.signer, s.hosts, now); why != "" {
		serving, err := next.signer.issueServingAt(s.hosts.dns, s.hosts.ips, now, s.certValidity)
		if err != nil {
			return nil, nil, err
		}
		next.serving = serving
		changes = append(changes, change{"serving-issued", "issued a serving certificate (" + why + ")"})
	}
	if len(changes) == 0 {
		return cur, nil, nil
	}
	return &next, changes, nil
}

// change is one thing a plan does: a kind, for metrics, and what happened.
type change struct{ kind, detail string }

func (c change) String() string { return c.detail }

// servingStale says why a serving certificate must be replaced, or "".
func servingStale(serving *Serving, signer *CA, h hosts, now time.Time) string {
	switch {
	case serving == nil:
		return "there was none"
	case serving.Cert.CheckSignatureFrom(signer.Cert) != nil:
		return "not signed by the current CA"
	case !h.covers(serving.Cert):
		return "its names changed"
	case !now.Before(renewAt(serving.Cert)):
		return "due for renewal"
	}
	return ""
}

// wakeAt is the next time plan will have something to do for m, besides
// reacting to changes. It is zero while plan waits for the webhook
// configurations to trust the next CA: that is checked again after
// retryTrust.
func wakeAt(m *material, s planSettings) time.Time {
	times := []time.Time{renewAt(m.serving.Cert)}
	switch {
	case m.next == nil:
		times = append(times, renewAt(m.signer.Cert))
	case m.nextSince.IsZero():
		return time.Time{}
	default:
		times = append(times, m.nextSince.Add(s.rolloverDelay))
	}
	for _, c := range m.trusted {
		times = append(times, c.NotAfter)
	}
	return slices.MinFunc(times, time.Time.Compare)
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return certs, err
		}
		certs = append(certs, c)
	}
	return certs, nil
}
