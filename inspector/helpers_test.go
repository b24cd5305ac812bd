package inspector

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry is go-containerregistry's in-memory registry on 127.0.0.1,
// counting requests and injecting faults.
type testRegistry struct {
	srv  *httptest.Server
	host string

	mu       sync.Mutex
	counts   map[string]int // "manifests", "blobs", "other"
	override map[string]http.HandlerFunc
	private  map[string]string // repository -> "user:password"
	delay    atomic.Int64      // nanoseconds before each manifest or blob
	status   atomic.Int32      // when set, every request answers it
	noHead   atomic.Bool       // manifest HEADs answer 405
}

func newTestRegistry(t testing.TB) *testRegistry {
	r := &testRegistry{counts: map[string]int{}, override: map[string]http.HandlerFunc{}, private: map[string]string{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		kind := "other"
		switch {
		case strings.Contains(req.URL.Path, "/manifests/"):
			kind = "manifests"
		case strings.Contains(req.URL.Path, "/blobs/"):
			kind = "blobs"
		}
		r.mu.Lock()
		if req.Method == http.MethodGet || req.Method == http.MethodHead {
			r.counts[kind]++
			r.counts[req.Method+" "+kind]++
		}
		h := r.override[req.URL.Path]
		var cred string
		for repo, c := range r.private {
			if strings.HasPrefix(req.URL.Path, "/v2/"+repo+"/") {
				cred = c
			}
		}
		r.mu.Unlock()
		if kind == "manifests" && req.Method == http.MethodHead && r.noHead.Load() {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if s := r.status.Load(); s != 0 {
			http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected"}]}`, int(s))
			return
		}
		if cred != "" && req.Method == http.MethodGet {
			u, p, ok := req.BasicAuth()
			if !ok || u+":"+p != cred {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		if d := time.Duration(r.delay.Load()); d > 0 && kind != "other" {
			select {
			case <-time.After(d):
			case <-req.Context().Done():
				return
			}
		}
		if h != nil {
			h(w, req)
			return
		}
		inner.ServeHTTP(w, req)
	}))
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testRegistry) count(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[kind]
}

func (r *testRegistry) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.counts)
}

func (r *testRegistry) handle(path string, h http.HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.override[path] = h
}

// push writes img (or an index) as repoTag ("app:1") and returns its ref.
func (r *testRegistry) push(t testing.TB, repoTag string, img any) string {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	switch x := img.(type) {
	case v1.Image:
		err = remote.Write(ref, x)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, x)
	}
	if err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	r.reset()
	return ref.String()
}

// entry is one tar header of a synthetic layer.
type entry struct {
	name     string
	typ      byte
	body     string
	linkname string
}

func file(name string) entry     { return entry{name: name, typ: tar.TypeReg, body: "x"} }
func dir(name string) entry      { return entry{name: name, typ: tar.TypeDir} }
func link(name, to string) entry { return entry{name: name, typ: tar.TypeSymlink, linkname: to} }
func tarOf(t testing.TB, es ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.linkname, Format: tar.FormatPAX}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func layerOf(t testing.TB, es ...entry) v1.Layer {
	return layerFromTar(t, tarOf(t, es...))
}

func layerFromTar(t testing.TB, b []byte, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func zstdLayerOf(t testing.TB, es ...entry) v1.Layer {
	return layerFromTar(t, tarOf(t, es...), tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
}

// imageOf builds an image of layers with the given USER and WORKDIR.
func imageOf(t testing.TB, user, workdir, platform string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Config.User, cfg.Config.WorkingDir, cfg.Config.Env = user, workdir, []string{"HOME=" + workdir}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// dialLog is a dialler that records every address it is asked to dial.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (d *dialLog) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// newTestInspector returns an Inspector allowed to contact the given
// registries, dialling through a recording dialler.
func newTestInspector(t testing.TB, o Options, regs ...*testRegistry) (*Inspector, *dialLog) {
	t.Helper()
	dl := &dialLog{}
	for _, r := range regs {
		o.Registries = append(o.Registries, r.host)
	}
	if o.Transport == nil {
		o.Transport = &http.Transport{DialContext: dl.dial, DisableKeepAlives: false}
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = 10 * time.Second
	}
	i, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(i.Close)
	return i, dl
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
