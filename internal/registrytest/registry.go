// Package registrytest runs an in-process OCI distribution registry
// (go-containerregistry's pkg/registry) on 127.0.0.1 over plain HTTP, with
// synthetic images, switchable faults, optional per-repository basic auth
// and a log of the requests it served.
//
//	r := registrytest.Start(t)              // closed on t.Cleanup
//	imgs := registrytest.SeedAll(t, r)      // every synthetic image, see Images
//	ref := imgs.Tomcat.Ref                  // "127.0.0.1:PORT/tomcat:9"
//	r.Push(t, "mine:1", registrytest.UBI()) // or PushIndex for an index
//	r.Slow("tomcat", time.Second)           // faults switch at run time
//	n := r.Hits("GET", "/v2/tomcat/manifests/9")
//
// go-containerregistry's name package treats "127.0.0.1:PORT" as an insecure
// registry and talks plain HTTP to it without any option (name.Registry.Scheme
// matches the loopback address), so Ref's strings can be handed to
// remote.Image, crane and the podguard image inspector as they are.
//
// Outside `go test` (make run, e2e), Serve and Seed do the same without a
// testing.TB.
//
// Nothing here dials anything but the registry's own 127.0.0.1 listener.
package registrytest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is a running in-process registry. Its methods are safe for
// concurrent use, and faults and auth can be switched while clients use it.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of every reference.
	Host string
	// URL is "http://127.0.0.1:PORT".
	URL string

	srv      *http.Server
	lis      net.Listener
	blobs    *blobStore
	inner    http.Handler
	done     chan struct{}
	closeOne sync.Once
	token    string // value of seedHeader that bypasses auth, faults and the request log
	logger   *log.Logger

	mu       sync.Mutex
	faults   map[string]Fault // repository → fault
	auth     map[string]credential
	configs  map[string]bool // digests of image config blobs (never "layer" blobs)
	requests []Request
}

// seedHeader marks the requests of Push/PushIndex (and so Seed/SeedAll):
// they skip auth and faults and are not recorded by Requests.
const seedHeader = "X-Registrytest-Seed"

type credential struct{ user, pass string }

// Request is one request the registry answered (seeding traffic excluded).
type Request struct {
	Method string
	Path   string // URL path, e.g. /v2/tomcat/manifests/9
	Repo   string // "tomcat"; "" for /v2/ and anything not under a repository
	// Kind is "manifests", "blobs", "uploads", "tags", "referrers" or "" (ping, catalog).
	Kind string
	// Ref is the tag or digest after /manifests/ or /blobs/.
	Ref string
	// Status is the status sent; 0 if the client hung up (or the registry
	// closed) before any was.
	Status int
	// User is the basic-auth user the request carried ("" if none).
	User string
}

// Option configures Start and Serve.
type Option func(*config)

type config struct {
	auth   []authSpec
	logger *log.Logger
}

type authSpec struct {
	user, pass string
	repos      []string
}

// WithBasicAuth makes repos (path prefixes below /v2/, so "private" covers
// "private/app") require HTTP basic auth with user and pass; requests without
// it get 401 with `WWW-Authenticate: Basic realm="registrytest"`.
func WithBasicAuth(user, pass string, repos ...string) Option {
	return func(c *config) { c.auth = append(c.auth, authSpec{user, pass, repos}) }
}

// WithLogger sends the registry's own request log to l (default: discarded).
func WithLogger(l *log.Logger) Option {
	return func(c *config) { c.logger = l }
}

// Start runs a registry on 127.0.0.1:0 and closes it on t.Cleanup.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r, err := Serve("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// Serve runs a registry on addr (which should be a 127.0.0.1 address, e.g.
// "127.0.0.1:5000" or "127.0.0.1:0") outside of `go test`. Call Close when done.
func Serve(addr string, opts ...Option) (*Registry, error) {
	c := config{logger: log.New(io.Discard, "", 0)}
	for _, o := range opts {
		o(&c)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		lis.Close()
		return nil, err
	}
	r := &Registry{
		Host:    lis.Addr().String(),
		URL:     "http://" + lis.Addr().String(),
		lis:     lis,
		blobs:   newBlobStore(),
		done:    make(chan struct{}),
		token:   hex.EncodeToString(tok),
		logger:  c.logger,
		faults:  map[string]Fault{},
		auth:    map[string]credential{},
		configs: map[string]bool{},
	}
	r.inner = ggcrregistry.New(ggcrregistry.Logger(c.logger), ggcrregistry.WithBlobHandler(r.blobs))
	for _, a := range c.auth {
		r.RequireBasicAuth(a.user, a.pass, a.repos...)
	}
	r.srv = &http.Server{
		Handler:           http.HandlerFunc(r.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          c.logger,
	}
	go r.srv.Serve(lis)
	return r, nil
}

// Close stops the registry, hanging up on stalled and endless responses.
func (r *Registry) Close() {
	r.closeOne.Do(func() {
		close(r.done)
		r.srv.Close() // closes the listener and every connection, idle or not
	})
}

// Ref returns "127.0.0.1:PORT/" + repoAndTag, e.g. Ref("tomcat:9").
func (r *Registry) Ref(repoAndTag string) string { return r.Host + "/" + repoAndTag }

// RequireBasicAuth makes repos require basic auth with user and pass from now on
// (see WithBasicAuth).
func (r *Registry) RequireBasicAuth(user, pass string, repos ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, repo := range repos {
		r.auth[strings.Trim(repo, "/")] = credential{user, pass}
	}
}

// DockerConfigJSON returns the content of a kubernetes.io/dockerconfigjson
// Secret's .dockerconfigjson key granting user/pass on r.Host.
func (r *Registry) DockerConfigJSON(user, pass string) []byte {
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	b, err := json.Marshal(map[string]map[string]entry{"auths": {r.Host: {
		Username: user,
		Password: pass,
		Auth:     base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
	}}})
	if err != nil {
		panic(err)
	}
	return b
}

// seedTransport is the http.RoundTripper of Push: it carries the
// registry's seeding token: its requests skip auth, faults and the request log.
func (r *Registry) seedTransport() http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		req = req.Clone(req.Context())
		req.Header.Set(seedHeader, r.token)
		return seedBase.RoundTrip(req)
	})
}

var seedBase = &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 8,
	IdleConnTimeout:     10 * time.Second,
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Push writes img as repoTag ("tomcat:9", or "repo@sha256:..." ) and returns
// its manifest digest. Layers built by this package that cannot be uploaded
// (the lazily generated and the endless ones) are registered with the blob
// store directly. Push bypasses auth and faults and is not recorded.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	h, err := r.PushImage(repoTag, img)
	if err != nil {
		t.Fatalf("registrytest: push %s: %v", repoTag, err)
	}
	return h
}

// PushIndex writes idx (and its images) as repoTag and returns its digest.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	h, err := r.PushImageIndex(repoTag, idx)
	if err != nil {
		t.Fatalf("registrytest: push %s: %v", repoTag, err)
	}
	return h
}

// PushImage is Push without testing.TB.
func (r *Registry) PushImage(repoTag string, img v1.Image) (v1.Hash, error) {
	ref, err := name.ParseReference(r.Ref(repoTag), name.StrictValidation)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := r.registerVirtual(img); err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(ref, img, remote.WithTransport(r.seedTransport())); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

// PushImageIndex is PushIndex without testing.TB.
func (r *Registry) PushImageIndex(repoTag string, idx v1.ImageIndex) (v1.Hash, error) {
	ref, err := name.ParseReference(r.Ref(repoTag), name.StrictValidation)
	if err != nil {
		return v1.Hash{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, d := range im.Manifests {
		if img, err := idx.Image(d.Digest); err == nil {
			if err := r.registerVirtual(img); err != nil {
				return v1.Hash{}, err
			}
		}
	}
	if err := remote.WriteIndex(ref, idx, remote.WithTransport(r.seedTransport())); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}

func (r *Registry) registerVirtual(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if vl, ok := l.(virtualLayer); ok {
			if err := r.blobs.addVirtual(vl); err != nil {
				return err
			}
		}
	}
	return nil
}

// Requests returns the requests answered so far, oldest first, excluding
// the seeding traffic of Push/PushIndex/Seed/SeedAll.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// ResetRequests forgets the requests recorded so far.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

// Hits counts the recorded requests with the given method ("" for any) and
// exact URL path.
func (r *Registry) Hits(method, path string) int {
	n := 0
	for _, q := range r.Requests() {
		if (method == "" || q.Method == method) && q.Path == path {
			n++
		}
	}
	return n
}

// RepoHits counts the recorded requests for repo of the given kind
// ("manifests", "blobs", ...; "" for any).
func (r *Registry) RepoHits(repo, kind string) int {
	n := 0
	for _, q := range r.Requests() {
		if q.Repo == repo && (kind == "" || q.Kind == kind) {
			n++
		}
	}
	return n
}

// BlobGets counts the recorded GET requests for the blob with digest d, in any repository.
func (r *Registry) BlobGets(d v1.Hash) int {
	n := 0
	for _, q := range r.Requests() {
		if q.Method == http.MethodGet && q.Kind == "blobs" && q.Ref == d.String() {
			n++
		}
	}
	return n
}

// parsePath splits /v2/<repo>/<kind>/<ref> into its parts.
func parsePath(p string) (repo, kind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	segs := strings.Split(rest, "/")
	for i := 1; i < len(segs); i++ {
		switch segs[i] {
		case "manifests", "blobs", "tags", "referrers":
			repo = strings.Join(segs[:i], "/")
			kind = segs[i]
			ref = strings.Join(segs[i+1:], "/")
			if kind == "blobs" && len(segs) > i+1 && segs[i+1] == "uploads" {
				kind = "uploads"
				ref = strings.Join(segs[i+2:], "/")
			}
			return repo, kind, ref
		}
	}
	return "", "", ""
}

// matchRepo returns the value for the longest key k of m with repo == k or
// repo under k/.
func matchRepo[V any](m map[string]V, repo string) (V, bool) {
	var best V
	bestLen := -1
	for k, v := range m {
		if (repo == k || strings.HasPrefix(repo, k+"/")) && len(k) > bestLen {
			best, bestLen = v, len(k)
		}
	}
	return best, bestLen >= 0
}

// statusWriter records the request when its status is written, that is
// before the client can see any of the response, so a client that got its
// answer always finds its request in Requests.
type statusWriter struct {
	http.ResponseWriter
	record func(status int)
	done   bool
}

func (w *statusWriter) note(code int) {
	if !w.done {
		w.done = true
		w.record(code)
	}
}

func (w *statusWriter) WriteHeader(code int) {
	w.note(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.note(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	w.note(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	repo, kind, ref := parsePath(req.URL.Path)
	if tok := req.Header.Get(seedHeader); tok != "" && tok == r.token {
		r.serveInner(w, req, kind)
		return
	}
	user, _, _ := req.BasicAuth()
	sw := &statusWriter{ResponseWriter: w, record: func(status int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests = append(r.requests, Request{
			Method: req.Method, Path: req.URL.Path, Repo: repo, Kind: kind, Ref: ref, Status: status, User: user,
		})
	}}
	// A handler that wrote nothing (the client hung up on a Slow fault, or
	// the registry closed) is recorded with Status 0.
	defer sw.note(0)

	r.mu.Lock()
	cred, needAuth := matchRepo(r.auth, repo)
	fault, faulty := matchRepo(r.faults, repo)
	isConfig := r.configs[ref]
	r.mu.Unlock()
	if repo == "" {
		needAuth, faulty = false, false
	}

	if needAuth {
		u, p, ok := req.BasicAuth()
		if !ok || u != cred.user || p != cred.pass {
			sw.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
			writeRegError(sw, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	}
	if faulty {
		if !r.applyFault(sw, req, fault, kind, isConfig) {
			return
		}
	}
	r.serveInner(sw, req, kind)
}

// serveInner hands req to go-containerregistry's registry, noting the config
// digest of every manifest pushed so that layer faults can spare configs.
func (r *Registry) serveInner(w http.ResponseWriter, req *http.Request, kind string) {
	if kind == "manifests" && req.Method == http.MethodPut {
		body, err := io.ReadAll(io.LimitReader(req.Body, 8<<20))
		if err != nil {
			writeRegError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		var m struct {
			Config struct {
				Digest string `json:"digest"`
			} `json:"config"`
		}
		if json.Unmarshal(body, &m) == nil && m.Config.Digest != "" {
			r.mu.Lock()
			r.configs[m.Config.Digest] = true
			r.mu.Unlock()
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.inner.ServeHTTP(w, req)
}

func writeRegError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (r *Registry) String() string { return fmt.Sprintf("registrytest.Registry(%s)", r.Host) }
