package framework

import (
	"fmt"
	"net"
	"time"

	"github.com/podguard/podguard/certs"
)

// servingCertValidity outlasts any test run or development session.
const servingCertValidity = 30 * 24 * time.Hour

// NewServingCerts creates a CA and a serving certificate it signs for
// "localhost" and 127.0.0.1, writes them into dir as podguard's --cert-dir
// expects (see certs.WriteDir), and returns the CA certificate in PEM: the
// caBundle for InstallWebhooks.
func NewServingCerts(dir string) (caPEM []byte, err error) {
	ca, err := certs.NewCA("podguard-e2e-ca", servingCertValidity)
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	serving, err := ca.IssueServing([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, servingCertValidity)
	if err != nil {
		return nil, fmt.Errorf("issuing serving certificate: %w", err)
	}
	if err := certs.WriteDir(dir, serving, ca.CertPEM); err != nil {
		return nil, fmt.Errorf("writing serving certificate: %w", err)
	}
	return ca.CertPEM, nil
}
