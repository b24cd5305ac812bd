package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Limits of the webhook port. The only legitimate client is kube-apiserver,
// and its webhook client is well known (k8s.io/apiserver
// pkg/admission/plugin/webhook/{mutating,validating}/dispatcher.go and
// pkg/util/webhook/client.go, on client-go's rest client and
// k8s.io/apimachinery/pkg/util/net.SetTransportDefaults):
//
//   - it encodes the whole AdmissionReview in memory first
//     (rest.Request.Body) and writes it at once, so a body arrives as fast
//     as the network carries it: milliseconds inside a cluster;
//   - each call has a deadline: the webhook's timeoutSeconds (10 s by
//     default, 30 s at most), sent as ?timeout=Ns; after it the answer is
//     thrown away;
//   - it talks HTTP/2 over one connection per API server and opens another
//     one only when a connection's stream limit is reached; it sends PINGs on
//     a connection idle for 30 s (ReadIdleTimeout) and drops idle
//     connections after 90 s (http.DefaultTransport's IdleConnTimeout); its
//     TLS handshake timeout is 10 s;
//   - its headers are a handful of short ones (Content-Type, Accept,
//     User-Agent, Content-Length, at most a bearer token from the admission
//     kubeconfig).
//
// Anything slower or bigger is not the API server, and is cut.
const (
	// DefaultReadHeaderTimeout bounds the TLS handshake and the request
	// headers: the API server's own handshake timeout is 10 s.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included
	// (per stream on HTTP/2). The API server has the body in memory and
	// writes it at once; 10 s is 0.7 MB/s for the largest body allowed,
	// and the default per-call timeout, after which nobody waits anyway.
	DefaultReadTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds a request from its headers to the end of
	// its answer: the API server's longest per-call timeout, 30 s, plus the
	// second it rounds up and some slack.
	DefaultWriteTimeout = 35 * time.Second
	// DefaultIdleTimeout is the client's own idle timeout: an idle
	// connection is closed when the API server would drop it anyway.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultMaxHeaderBytes is far above the API server's few short headers
	// (a JWT bearer token is ~1-2 KiB) and far below Go's 1 MiB default.
	// On HTTP/2 it is the advertised SETTINGS_MAX_HEADER_LIST_SIZE.
	DefaultMaxHeaderBytes = 32 << 10
	// DefaultMaxConcurrentStreams is the HTTP/2 stream limit per
	// connection: the minimum RFC 9113 recommends. When the API server has
	// more calls in flight it opens another connection, which
	// DefaultMaxConnections allows.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxConnections bounds open connections. A real cluster needs a
	// few (one per API server, more under heavy load or over HTTP/1.1). An
	// idle or slow TLS connection costs ~40-60 KiB, so the cap bounds that
	// memory to ~60 MiB. Connections over it wait in the kernel's accept
	// queue and cost podguard nothing.
	DefaultMaxConnections = 1000
	// DefaultMaxBodyBytesInFlight bounds the memory of request bodies being
	// read at once, over all connections. Bodies reserve it as their bytes
	// arrive (not by their Content-Length), so a slow client holds only
	// what it sent. A request that finds it exhausted gets HTTP 503.
	DefaultMaxBodyBytesInFlight = 64 << 20
)

// ServerLimits are the webhook port's timeouts and limits. Zero fields take
// the defaults above.
type ServerLimits struct {
	ReadHeaderTimeout    time.Duration
	ReadTimeout          time.Duration
	WriteTimeout         time.Duration
	IdleTimeout          time.Duration
	MaxHeaderBytes       int
	MaxConcurrentStreams int
	MaxConnections       int
	MaxBodyBytesInFlight int64
}

func (l ServerLimits) withDefaults() ServerLimits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxConcurrentStreams <= 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxBodyBytesInFlight <= 0 {
		l.MaxBodyBytesInFlight = DefaultMaxBodyBytesInFlight
	}
	return l
}

// aeadSuites are the TLS 1.2 cipher suites podguard accepts: ECDHE key
// exchange with an AEAD cipher only. No CBC, no SHA-1 MAC, no RSA key
// exchange. TLS 1.3, whose suites are all AEAD and which Go prefers when
// both sides support it, is unaffected by this list.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServingTLS applies podguard's TLS policy: TLS 1.2 or later, and for TLS
// 1.2 only the AEAD suites above.
func ServingTLS(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = aeadSuites
}

// Server is the webhook port: a crwebhook.Server (the manager runs it)
// whose http.Server has the limits above, and whose shutdown always ends by
// its deadline.
type Server struct {
	Host string
	Port int
	// TLSOpts configure the TLS config; one of them must set
	// GetCertificate.
	TLSOpts []func(*tls.Config)
	Limits  ServerLimits
	// ShutdownTimeout bounds the drain: in-flight requests get until then
	// to finish; connections still open at the deadline are closed.
	ShutdownTimeout time.Duration
	Log             logr.Logger

	mux       *http.ServeMux
	budget    *byteBudget
	mu        sync.Mutex
	addr      string      // the address listened on, once started
	tlsConfig *tls.Config // its TLS config, once started
	initOnce  sync.Once
}

var _ crwebhook.Server = (*Server)(nil)

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.mux = http.NewServeMux()
		s.Limits = s.Limits.withDefaults()
		s.budget = newByteBudget(s.Limits.MaxBodyBytesInFlight)
	})
}

func (s *Server) bodyBudget() *byteBudget {
	s.init()
	return s.budget
}

// NeedLeaderElection is false: every replica serves.
func (*Server) NeedLeaderElection() bool { return false }

// Register serves hook at path.
func (s *Server) Register(path string, hook http.Handler) {
	s.init()
	s.mux.Handle(path, hook)
}

// WebhookMux returns the server's mux.
func (s *Server) WebhookMux() *http.ServeMux {
	s.init()
	return s.mux
}

// Addr is the address the server listens on once started ("" before).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// StartedChecker passes once the server listens and completes a TLS
// handshake with its own config: its certificate is loaded. The handshake
// is done in memory, not through the port: a connection would need a slot
// under MaxConnections, and clients holding every slot must not fail
// readiness while the API server's open HTTP/2 connections still serve.
func (s *Server) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		s.mu.Lock()
		cfg := s.tlsConfig
		s.mu.Unlock()
		if cfg == nil {
			return errors.New("webhook server has not been started yet")
		}
		// The check is of the serving certificate, not of who may call:
		// client authentication (--client-ca-file) is left out of it.
		cfg = cfg.Clone()
		cfg.ClientAuth, cfg.VerifyConnection = tls.NoClientCert, nil
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srvEnd, cliEnd := net.Pipe()
		defer srvEnd.Close()
		defer cliEnd.Close()
		served := make(chan error, 1)
		go func() { served <- tls.Server(srvEnd, cfg).HandshakeContext(ctx) }()
		//nolint:gosec // a self-check that a certificate is served, not of identity
		if err := tls.Client(cliEnd, &tls.Config{InsecureSkipVerify: true}).HandshakeContext(ctx); err != nil {
			return fmt.Errorf("webhook server cannot complete a TLS handshake: %w", err)
		}
		select {
		case err := <-served:
			if err != nil {
				return fmt.Errorf("webhook server cannot complete a TLS handshake: %w", err)
			}
			return nil
		case <-ctx.Done():
			return errors.New("webhook server cannot complete a TLS handshake: timed out")
		}
	}
}

// Start serves until ctx is done, then shuts down: the listener closes,
// idle connections close, in-flight requests get until ShutdownTimeout to
// finish, and whatever is still open then is closed. It returns nil after a
// shutdown, whether or not it had to close connections.
func (s *Server) Start(ctx context.Context) error {
	s.init()
	l := s.Limits
	cfg := &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	for _, op := range s.TLSOpts {
		op(cfg)
	}
	if cfg.GetCertificate == nil && len(cfg.Certificates) == 0 {
		return errors.New("webhook server: no serving certificate configured")
	}
	raw, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		return err
	}
	// The cap applies before the TLS handshake, so it bounds the memory of
	// handshakes too.
	limited := newLimitListener(raw, l.MaxConnections)
	listener := tls.NewListener(limited, cfg)

	// Requests' contexts end only when the drain is over, so in-flight
	// requests are not cancelled when shutdown starts.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	var open atomic.Int64
	srv := &http.Server{
		Handler:           s.mux,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: l.MaxConcurrentStreams,
			// One frame is at most 16 KiB, the protocol's default, and
			// the unread data of a connection at most 1 MiB: the handler
			// reads each body as it arrives.
			MaxReadFrameSize:              16 << 10,
			MaxReceiveBufferPerConnection: 1 << 20,
			MaxReceiveBufferPerStream:     1 << 20,
		},
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				openConnections.Set(float64(open.Add(1)))
			case http.StateClosed, http.StateHijacked:
				openConnections.Set(float64(open.Add(-1)))
			}
		},
		// TLS handshake failures and the like: a client's problem, not
		// podguard's; visible at -v=1.
		ErrorLog: stdlog.New(logWriter{s.Log.V(1)}, "", 0),
	}

	s.mu.Lock()
	s.addr = raw.Addr().String()
	s.tlsConfig = cfg
	s.mu.Unlock()
	s.Log.Info("serving webhooks", "addr", s.addr, "readHeaderTimeout", l.ReadHeaderTimeout.String(), "readTimeout", l.ReadTimeout.String(),
		"writeTimeout", l.WriteTimeout.String(), "idleTimeout", l.IdleTimeout.String(), "maxConnections", l.MaxConnections,
		"maxConcurrentStreams", l.MaxConcurrentStreams, "maxBodyBytesInFlight", l.MaxBodyBytesInFlight)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(listener) }()
	select {
	case err := <-served:
		// Serve only returns early when the listener failed.
		return fmt.Errorf("serving webhooks: %w", err)
	case <-ctx.Done():
	}

	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	start := time.Now()
	s.Log.Info("webhook server shutting down", "open", open.Load(), "timeout", timeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// The deadline passed: what is still open is a request that will
		// not finish in time or a client that sends nothing. Close it.
		left := open.Load()
		cancelBase()
		_ = srv.Close()
		s.Log.Info("closed connections still open at the shutdown deadline", "connections", left, "after", time.Since(start).Round(time.Millisecond).String())
	} else {
		s.Log.Info("webhook server stopped", "after", time.Since(start).Round(time.Millisecond).String())
	}
	<-served
	return nil
}

// limitListener accepts at most n connections at once. Accept waits for a
// slot; the connections beyond it wait in the kernel's accept queue.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// byteBudget is the memory request bodies being read may take at once.
type byteBudget struct {
	mu   sync.Mutex
	free int64
}

func newByteBudget(n int64) *byteBudget { return &byteBudget{free: n} }

func (b *byteBudget) tryTake(n int64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.free {
		return false
	}
	b.free -= n
	return true
}

func (b *byteBudget) give(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.free += n
	b.mu.Unlock()
}

// logWriter hands net/http's own error log to logr.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
