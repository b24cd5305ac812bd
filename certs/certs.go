// Package certs creates the TLS material podguard serves with: a CA and
// serving certificates signed by it.
//
// podguard gets its serving certificate one of two ways. From files in a cert
// dir (written by cert-manager, or by WriteDir), which the webhook server
// reloads without a restart. Or self-managed (SelfManaged): podguard keeps its
// own CA and serving certificate in a Secret, rotates them before they
// expire, and patches the CA bundle into its own webhook configurations.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names inside a cert dir, as cert-manager and Kubernetes TLS Secrets
// name them.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// CA is a certificate authority that signs serving certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
	key     crypto.Signer
}

// NewCA creates a self-signed CA valid from now for the given duration.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	return newCAAt(commonName, time.Now(), validity)
}

// backdate is how far before its issue a certificate becomes valid, so that
// a verifier whose clock is behind accepts it: five minutes, as Kubernetes'
// own CSR signer does, or a tenth of a short validity.
func backdate(validity time.Duration) time.Duration {
	return min(5*time.Minute, validity/10)
}

func newCAAt(commonName string, now time.Time, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("CA validity must be positive, got %s", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate(validity)),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	return newCA(der, key)
}

// LoadCA parses a CA from PEM.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing CA key pair: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("CA private key cannot sign")
	}
	return newCA(pair.Certificate[0], signer)
}

func newCA(der []byte, key crypto.Signer) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: encodeCert(der), KeyPEM: keyPEM, key: key}, nil
}

// Serving is a serving certificate and its key, PEM encoded.
type Serving struct {
	CertPEM []byte
	KeyPEM  []byte
	Cert    *x509.Certificate
}

// IssueServing signs a serving certificate for the given DNS names and IP
// addresses. Its lifetime never extends past the CA's.
func (ca *CA) IssueServing(dnsNames []string, ips []net.IP, validity time.Duration) (*Serving, error) {
	return ca.issueServingAt(dnsNames, ips, time.Now(), validity)
}

func (ca *CA) issueServingAt(dnsNames []string, ips []net.IP, now time.Time, validity time.Duration) (*Serving, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name or IP address")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("serving certificate validity must be positive, got %s", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating serving key: %w", err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	cn := "podguard"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-backdate(validity)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing serving certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing serving certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Serving{CertPEM: encodeCert(der), KeyPEM: keyPEM, Cert: cert}, nil
}

// WriteDir writes a serving pair (and the CA certificate, when given) into
// dir the way the webhook server reads it. Each file is written to a
// temporary name and renamed, so a reader never sees half a file.
func WriteDir(dir string, s *Serving, caPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating cert dir: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, s.KeyPEM, 0o600}, {CertFile, s.CertPEM, 0o644}}
	if caPEM != nil {
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{CAFile, caPEM, 0o644})
	}
	for _, f := range files {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("replacing %s: %w", f.name, err)
		}
	}
	return nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand never fails on supported platforms; a fixed serial is
		// still a valid certificate.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
