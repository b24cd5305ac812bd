//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/e2e/framework"
)

// slowClients attaches n clients to podguard's webhook port, each sending
// the headers of a POST and then its body one byte every interval, and
// returns a function that detaches them.
func slowClients(t *testing.T, pg *podguard, n int, interval time.Duration) (stop func()) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pg.ca.CertPEM)
	addr := strings.TrimPrefix(pg.URL, "https://")
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
			if err != nil {
				return
			}
			defer conn.Close()
			if _, err := fmt.Fprintf(conn, "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"); err != nil {
				return
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte(" ")); err != nil {
					return // cut by podguard
				}
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// openConnections reads podguard_webhook_open_connections.
func openConnections(t *testing.T, pg *podguard) int {
	t.Helper()
	v := metric(t, pg.MetricsURL, "podguard_webhook_open_connections")
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("podguard_webhook_open_connections = %q: %v", v, err)
	}
	return int(n)
}

// TestSlowClientsAreCut attaches 200 clients that send a body one byte per
// second: podguard keeps admitting pods through the API server meanwhile,
// and cuts them at the read timeout.
func TestSlowClientsAreCut(t *testing.T) {
	pg := runPodguard(t, "opt-in", registryRule, "--read-timeout=3s")
	ns := newNamespace(t, "slow-clients", optIn)
	const n = 200
	slowClients(t, pg, n, time.Second)
	eventually(t, 10*time.Second, "the slow clients are connected", func() (bool, error) {
		return openConnections(t, pg) >= n/2, nil
	})
	p := pod(ns, "while-slow-clients", privateImage)
	if err := cluster.Client.Create(testContext(t, time.Minute), p); err != nil {
		t.Fatal(err)
	}
	if got := pullSecretNames(p); got != "myregistrykey" {
		t.Errorf("a pod created with slow clients attached was not mutated: %q", got)
	}
	// Cut at the 3 s read timeout; 20 s is generous.
	eventually(t, 20*time.Second, "the slow clients are cut", func() (bool, error) {
		return openConnections(t, pg) < 10, nil
	})
	if got := metricInt(t, pg.MetricsURL, `podguard_admission_bad_requests_total{reason="timeout",webhook="validate"}`); got < n/2 {
		t.Errorf("%d requests counted as timed out, want most of %d", got, n)
	}
}

// TestShutdownWithSlowClientsAttached stops podguard with SIGTERM while 200
// slow clients are attached, with a read timeout longer than the shutdown
// budget: it exits 0 within it, having closed them at the deadline.
func TestShutdownWithSlowClientsAttached(t *testing.T) {
	pg := runPodguard(t, "opt-in", registryRule, "--read-timeout=5m", "--shutdown-delay=1s", "--shutdown-timeout=3s")
	const n = 200
	slowClients(t, pg, n, time.Second)
	eventually(t, 10*time.Second, "the slow clients are connected", func() (bool, error) {
		return openConnections(t, pg) >= n/2, nil
	})
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- pg.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("podguard did not exit cleanly: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("podguard did not exit within 25s of SIGTERM (budget: 1s delay + 3s drain)")
	}
	t.Logf("SIGTERM to exit with %d slow clients attached: %s", n, time.Since(start).Round(time.Millisecond))
	if log := readFile(t, pg.LogPath); !strings.Contains(log, "closed connections still open at the shutdown deadline") {
		t.Errorf("the log does not say slow connections were closed at the deadline:\n%s", lastLines(log, 20))
	}
}

// TestExpiredServingCertificate serves a certificate that expires: the
// gauge shows its notAfter, /readyz fails naming the expiry once it has
// passed, and the log says so.
func TestExpiredServingCertificate(t *testing.T) {
	pg := runPodguard(t, "opt-in", "", "--cert-check-interval=500ms")
	if got, want := metric(t, pg.MetricsURL, "podguard_ca_certificate_expiry_timestamp_seconds"), gaugeValue(pg.ca.Cert.NotAfter); got != want {
		t.Errorf("CA expiry gauge = %q, want %q", got, want)
	}
	s, err := pg.ca.IssueServing([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteDir(pg.certDir, s, pg.ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the gauge shows the new certificate's notAfter", func() (bool, error) {
		return metric(t, pg.MetricsURL, "podguard_serving_certificate_expiry_timestamp_seconds") == gaugeValue(s.Cert.NotAfter), nil
	})
	eventually(t, 20*time.Second, "/readyz fails naming the expiry", func() (bool, error) {
		resp, err := http.Get(pg.HealthURL + "/readyz/serving-certificate")
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusInternalServerError && strings.Contains(string(body), "expired at "+s.Cert.NotAfter.UTC().Format(time.RFC3339)), nil
	})
	eventually(t, 10*time.Second, "the log says the certificate expired", func() (bool, error) {
		return strings.Contains(readFile(t, pg.LogPath), "refuses this serving certificate"), nil
	})
	// A renewed certificate makes it ready again.
	pg.issueCert(t)
	eventually(t, 20*time.Second, "/readyz passes with a renewed certificate", func() (bool, error) {
		resp, err := http.Get(pg.HealthURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// startPodguardOnly starts podguard as kubeconfig with a certificate of its
// own and the default config, without registering webhooks.
func startPodguardOnly(t *testing.T, kubeconfig string, args ...string) *podguard {
	t.Helper()
	dir := t.TempDir()
	pg := &podguard{dir: dir, certDir: filepath.Join(dir, "tls")}
	var err error
	if pg.ca, err = certs.NewCA("podguard-e2e-ca", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	pg.issueCert(t)
	pg.opts = framework.PodguardOptions{Kubeconfig: kubeconfig, CertDir: pg.certDir, LogPath: filepath.Join(dir, "podguard.log"), Args: args}
	if pg.Podguard, err = framework.StartPodguard(testContext(t, 2*time.Minute), pg.opts); err != nil {
		t.Fatal(err)
	}
	pg.opts.MetricsPort = portOf(t, pg.MetricsURL)
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("podguard did not exit cleanly on SIGTERM: %v", err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(pg.LogPath); err == nil {
				t.Logf("podguard log:\n%s", lastLines(string(log), 40))
			}
		}
	})
	return pg
}

func gaugeValue(t time.Time) string {
	// Prometheus' text format writes large floats in exponent form.
	return strconv.FormatFloat(float64(t.Unix()), 'g', -1, 64)
}

// TestMetricsNeedAuthentication runs podguard as its ServiceAccount with
// the shipped RBAC and metrics as the Deployment serves them (HTTPS,
// authenticated and authorised by the API server): no token gets 401, a
// token without `get /metrics` 403, a token with it the metrics.
func TestMetricsNeedAuthentication(t *testing.T) {
	// No webhooks: runPodguard's wait for them reads plain metrics.
	pg := startPodguardOnly(t, shippedRBAC(t), "--metrics-insecure-loopback=false")
	ctx := testContext(t, time.Minute)
	ns := newNamespace(t, "scrapers", nil)
	url := "https://127.0.0.1:" + strconv.Itoa(pg.opts.MetricsPort) + "/metrics"
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pg.ca.CertPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	token := func(name string) string {
		t.Helper()
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if _, err := cluster.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cluster.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	scrape := func(token string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("scraping %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("no token: got %d, want 401", code)
	}
	if code, _ := scrape(token("nosy")); code != http.StatusForbidden {
		t.Errorf("a token not allowed to get /metrics: got %d, want 403", code)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "podguard-e2e-metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "podguard-e2e-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}},
	}
	if _, err := cluster.Clientset.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_ = cluster.Clientset.RbacV1().ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{})
		_ = cluster.Clientset.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{})
	})
	if _, err := cluster.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	prometheus := token("prometheus")
	eventually(t, 30*time.Second, "a token allowed to get /metrics scrapes them", func() (bool, error) {
		code, body := scrape(prometheus)
		return code == http.StatusOK && strings.Contains(body, "podguard_serving_certificate_expiry_timestamp_seconds"), nil
	})
	// The served certificate's expiry is exported in files mode too.
	pemBytes, err := os.ReadFile(filepath.Join(pg.certDir, certs.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, body := scrape(prometheus)
	if want := "podguard_serving_certificate_expiry_timestamp_seconds " + gaugeValue(leaf.NotAfter); !strings.Contains(body, want) {
		t.Errorf("metrics lack %q", want)
	}
	// Plain HTTP on the metrics port gets nothing.
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(pg.opts.MetricsPort) + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP scraped the metrics")
		}
	}
}
