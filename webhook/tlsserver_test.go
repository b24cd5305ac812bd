package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/certs"
)

// tlsTestServer runs a Server with /validate answering every well-formed
// review with "allowed" after delay, and returns its address, a client
// trust pool and a function that stops it and returns what Start returned.
type tlsTestServer struct {
	addr   string
	pool   *x509.CertPool
	stop   func() error
	served chan error
}

func startTLSServer(t *testing.T, limits ServerLimits, shutdownTimeout, delay time.Duration) *tlsTestServer {
	t.Helper()
	ca, err := certs.NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Host:            "127.0.0.1",
		Port:            0,
		TLSOpts:         []func(*tls.Config){ServingTLS, func(c *tls.Config) { c.Certificates = []tls.Certificate{pair} }},
		Limits:          limits,
		ShutdownTimeout: shutdownTimeout,
		Log:             logr.Discard(),
	}
	s.Register("/validate", &reviewServer{
		name: "validate",
		handler: admission.HandlerFunc(func(ctx context.Context, _ admission.Request) admission.Response {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			return admission.Allowed("")
		}),
		maxBytes: 1 << 20,
		budget:   s.bodyBudget(),
		log:      logr.Discard(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Start(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ts := &tlsTestServer{addr: s.Addr(), pool: pool, served: served}
	var once sync.Once
	var result error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-served:
			case <-time.After(time.Minute):
				result = errors.New("Start did not return within a minute of shutdown")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = ts.stop() })
	return ts
}

func (ts *tlsTestServer) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

const minimalReview = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","operation":"CREATE"}}`

// slowReader sends one byte per interval, forever or until it has sent
// body.
type slowReader struct {
	body     []byte // nil: never ends
	interval time.Duration
	sent     int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.body != nil && r.sent >= len(r.body) {
		return 0, io.EOF
	}
	time.Sleep(r.interval)
	if r.body == nil {
		p[0] = ' '
	} else {
		p[0] = r.body[r.sent]
	}
	r.sent++
	return 1, nil
}

// endless is a never-ending fast body.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func post(t *testing.T, c *http.Client, url string, body io.Reader, contentLength int64) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestServerCutsSlowAndEndlessBodies(t *testing.T) {
	limits := ServerLimits{ReadTimeout: time.Second, ReadHeaderTimeout: time.Second}
	ts := startTLSServer(t, limits, 5*time.Second, 0)
	url := "https://" + ts.addr + "/validate"
	for _, h2 := range []bool{false, true} {
		proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
		t.Run("a body sent one byte per second is cut at the read timeout, "+proto, func(t *testing.T) {
			start := time.Now()
			code, msg, err := post(t, ts.client(h2), url, &slowReader{body: []byte(minimalReview), interval: time.Second}, int64(len(minimalReview)))
			took := time.Since(start)
			// Either the server answers 408 or it cuts the connection;
			// either way well before the body (~100 s) could arrive.
			if err == nil && code != http.StatusRequestTimeout {
				t.Errorf("got %d %q, want 408 or a cut connection", code, msg)
			}
			if took > 15*time.Second {
				t.Errorf("the slow body was held for %s; want it cut near the 1s read timeout", took)
			}
		})
		t.Run("a never-ending chunked body is cut at the size limit, "+proto, func(t *testing.T) {
			start := time.Now()
			code, _, err := post(t, ts.client(h2), url, io.MultiReader(strings.NewReader("{"), endless{}), -1)
			if err == nil && code != http.StatusRequestEntityTooLarge {
				t.Errorf("got %d, want 413 or a cut connection", code)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("the endless body was read for %s", took)
			}
		})
		t.Run("a never-ending slow chunked body is cut at the read timeout, "+proto, func(t *testing.T) {
			start := time.Now()
			code, _, err := post(t, ts.client(h2), url, &slowReader{interval: 100 * time.Millisecond}, -1)
			if err == nil && code != http.StatusRequestTimeout {
				t.Errorf("got %d, want 408 or a cut connection", code)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("the slow endless body was held for %s", took)
			}
		})
		t.Run("a well-formed review is answered, "+proto, func(t *testing.T) {
			code, msg, err := post(t, ts.client(h2), url, strings.NewReader(minimalReview), int64(len(minimalReview)))
			if err != nil || code != http.StatusOK || !strings.Contains(msg, `"allowed":true`) {
				t.Errorf("got %d %q %v, want 200 allowed", code, msg, err)
			}
		})
	}
}

// slowClient opens a TLS connection, sends the headers of a POST whose body
// never comes in full, and sends a byte of it every interval.
func slowClient(t *testing.T, addr string, pool *x509.CertPool, interval time.Duration, stop <-chan struct{}) error {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
		return err
	}
	t0 := time.NewTicker(interval)
	defer t0.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-t0.C:
		}
		if _, err := conn.Write([]byte(" ")); err != nil {
			return nil // cut by the server
		}
	}
}

func TestShutdownWithSlowClientsAttached(t *testing.T) {
	// A read timeout longer than the shutdown budget: the slow clients are
	// still attached at the deadline and must be closed then.
	limits := ServerLimits{ReadTimeout: time.Minute, ReadHeaderTimeout: time.Minute}
	ts := startTLSServer(t, limits, 2*time.Second, 500*time.Millisecond)
	stop := make(chan struct{})
	defer close(stop)
	const n = 100
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = slowClient(t, ts.addr, ts.pool, 200*time.Millisecond, stop)
		}()
	}
	time.Sleep(time.Second) // let them connect and start their bodies
	t.Logf("open connections before shutdown: %v", testutil.ToFloat64(openConnections))

	// A real request in flight when shutdown starts finishes.
	type result struct {
		code int
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		code, _, err := post(t, ts.client(true), "https://"+ts.addr+"/validate", strings.NewReader(minimalReview), int64(len(minimalReview)))
		inFlight <- result{code, err}
	}()
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	if err := ts.stop(); err != nil {
		t.Fatalf("Start returned %v after shutdown, want nil", err)
	}
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("shutdown took %s with a 2s budget", took)
	}
	r := <-inFlight
	if r.err != nil || r.code != http.StatusOK {
		t.Errorf("the request in flight at shutdown got %d %v, want 200", r.code, r.err)
	}
	t.Logf("shutdown with %d slow clients attached took %s", n, took.Round(time.Millisecond))
}

func TestTLSPolicy(t *testing.T) {
	ts := startTLSServer(t, ServerLimits{}, time.Second, 0)
	dial := func(c *tls.Config) (*tls.ConnectionState, error) {
		c.RootCAs = ts.pool
		conn, err := tls.Dial("tcp", ts.addr, c)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return &st, nil
	}
	t.Run("a TLS 1.2 client offering only CBC suites fails the handshake", func(t *testing.T) {
		_, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		}})
		if err == nil {
			t.Fatal("the handshake succeeded with CBC suites only")
		}
	})
	t.Run("a TLS 1.2 client offering an AEAD suite succeeds", func(t *testing.T) {
		st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
		if err != nil {
			t.Fatal(err)
		}
		if st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
			t.Errorf("negotiated %s", tls.CipherSuiteName(st.CipherSuite))
		}
	})
	t.Run("a client that supports TLS 1.3 gets it", func(t *testing.T) {
		st, err := dial(&tls.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != tls.VersionTLS13 {
			t.Errorf("negotiated version %x, want TLS 1.3", st.Version)
		}
	})
	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS11}); err == nil {
			t.Error("a TLS 1.1 handshake succeeded")
		}
	})
}

func TestConnectionCap(t *testing.T) {
	ts := startTLSServer(t, ServerLimits{MaxConnections: 2}, time.Second, 0)
	var conns []net.Conn
	for range 2 {
		c, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: ts.pool})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The third connection is queued: its handshake does not complete
	// while two are open.
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	third := tls.Client(raw, &tls.Config{RootCAs: ts.pool, ServerName: "127.0.0.1"})
	_ = raw.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if err := third.Handshake(); err == nil {
		t.Fatal("a third connection completed its handshake with a cap of 2")
	}
	raw.Close()
	// Once one closes, new connections are served again.
	conns[0].Close()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ts.addr, &tls.Config{RootCAs: ts.pool})
	if err != nil {
		t.Fatalf("no connection after one closed: %v", err)
	}
	c.Close()
	conns[1].Close()
}

func TestBodyBudget(t *testing.T) {
	ts := startTLSServer(t, ServerLimits{MaxBodyBytesInFlight: 64 << 10}, time.Second, 0)
	url := "https://" + ts.addr + "/validate"
	// A slow client holding its part of the budget...
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("{" + strings.Repeat(" ", 60<<10)))
	}()
	slow := make(chan int, 1)
	go func() {
		code, _, _ := post(t, ts.client(false), url, pr, -1)
		slow <- code
	}()
	time.Sleep(300 * time.Millisecond)
	// ...leaves too little for a large body, which gets 503 at once...
	code, msg, err := post(t, ts.client(false), url, bytes.NewReader(bytes.Repeat([]byte(" "), 100<<10)), -1)
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("got %d %q %v, want 503 while the budget is taken", code, msg, err)
	}
	// ...and a small review is still answered.
	pw.Close()
	<-slow
	code, _, err = post(t, ts.client(false), url, strings.NewReader(minimalReview), int64(len(minimalReview)))
	if err != nil || code != http.StatusOK {
		t.Errorf("after the slow body ended: got %d %v, want 200", code, err)
	}
}

func TestReadinessWithTheConnectionCapFull(t *testing.T) {
	ca, err := certs.NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Host: "127.0.0.1", Limits: ServerLimits{MaxConnections: 1}, ShutdownTimeout: time.Second, Log: logr.Discard(),
		TLSOpts: []func(*tls.Config){ServingTLS, func(c *tls.Config) { c.Certificates = []tls.Certificate{pair} }}}
	check := s.StartedChecker()
	if err := check(nil); err == nil {
		t.Fatal("ready before Start")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	defer func() { cancel(); <-done }()
	for s.Addr() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	// One client holds the only slot.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	hog, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	if err := check(nil); err != nil {
		t.Errorf("readiness failed with the connection cap full: %v", err)
	}
}
