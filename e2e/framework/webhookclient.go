package framework

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Files writeWebhookClientConfig writes into the API server's directory.
const (
	webhookClientCAFile        = "webhook-client-ca.crt"
	webhookClientKubeconfig    = "webhook-client.kubeconfig"
	admissionControlConfigFile = "admission-control-config.yaml"
)

// writeWebhookClientConfig gives kube-apiserver a client certificate for
// every webhook it calls, as a cluster administrator would: a kubeconfig
// whose user "*" holds the certificate, named by the
// WebhookAdmissionConfiguration of both webhook admission plugins in an
// --admission-control-config-file. It returns the CA that signed the
// certificate (for podguard's --client-ca-file) and the admission config
// file. A webhook server that asks for no client certificate gets none, so
// this changes nothing for the others.
//
// The same file configures the ResourceQuota admission plugin as GKE does
// (and the Kubernetes docs' "limit priority class consumption by default"):
// a pod of priority class system-node-critical or system-cluster-critical
// is admitted only in a namespace with a ResourceQuota whose scopeSelector
// covers its class (kube-system has none here either: no test creates
// critical pods there). The install's ResourceQuota is tested against that.
func writeWebhookClientConfig(dir string) (caFile, admissionConfig string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e-webhook-client-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(servingCertValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("creating the webhook client CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver-webhook-client"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(servingCertValidity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("issuing the webhook client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})

	caFile = filepath.Join(dir, webhookClientCAFile)
	kubeconfig := filepath.Join(dir, webhookClientKubeconfig)
	admissionConfig = filepath.Join(dir, admissionControlConfigFile)
	files := map[string]string{
		caFile: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		kubeconfig: fmt.Sprintf(`apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate-data: %s
    client-key-data: %s
`, base64.StdEncoding.EncodeToString(certPEM), base64.StdEncoding.EncodeToString(keyPEM)),
		admissionConfig: fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]q
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]q
- name: ResourceQuota
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: ResourceQuotaConfiguration
    limitedResources:
    - resource: pods
      matchScopes:
      - {scopeName: PriorityClass, operator: In, values: [system-node-critical, system-cluster-critical]}
`, kubeconfig),
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return "", "", fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return caFile, admissionConfig, nil
}
