package registrytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// testManyEntries keeps malicious/many:1 small in the tests; the 3,000,000
// entry default is exercised by TestManyEntriesLayerBytes' checks of the
// generator, not by pulling it.
const testManyEntries = 20_000

// dialRecorder is an http.Transport that records every address it dials
// and refuses any but allowed.
type dialRecorder struct {
	allowed string
	mu      sync.Mutex
	dialed  []string
	*http.Transport
}

func newDialRecorder(t *testing.T, allowed string) *dialRecorder {
	d := &dialRecorder{allowed: allowed}
	d.Transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d.mu.Lock()
			d.dialed = append(d.dialed, addr)
			d.mu.Unlock()
			if addr != d.allowed {
				return nil, errors.New("dialRecorder: refusing to dial " + addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		DisableKeepAlives: false,
	}
	t.Cleanup(d.Transport.CloseIdleConnections)
	return d
}

func (d *dialRecorder) addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dialed)
}

func seeded(t *testing.T) (*Registry, Images, *dialRecorder) {
	t.Helper()
	r := Start(t)
	imgs := SeedWith(t, r, SeedOptions{ManyEntries: testManyEntries})
	return r, imgs, newDialRecorder(t, r.Host)
}

func pull(t *testing.T, ref string, opts ...remote.Option) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

// tree flattens img (whiteouts applied by mutate.Extract) into path → type.
func tree(t *testing.T, img v1.Image) map[string]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	m := map[string]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatalf("extract: %v", err)
		}
		m["/"+strings.Trim(h.Name, "/")] = h.Typeflag
	}
}

// layerNames lists the raw entry names of each layer.
func layerNames(t *testing.T, img v1.Image) [][]string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer: %v", err)
			}
			names = append(names, h.Name)
		}
		rc.Close()
		out = append(out, names)
	}
	return out
}

func TestPullSeededImages(t *testing.T) {
	r, imgs, tr := seeded(t)
	for _, tc := range []struct {
		name       string
		s          Seeded
		user, wd   string
		layers     int
		present    []string
		absent     []string
		symlinks   []string
		remoteOpts []remote.Option
	}{
		{name: "tomcat", s: imgs.Tomcat, wd: "/usr/local/tomcat", layers: 2,
			present: append([]string{"/usr/local/tomcat/bin/catalina.sh", "/usr/local/tomcat/webapps", "/etc/passwd", "/usr/bin/sh"},
				prefixed("/usr/local/tomcat/conf/", TomcatConfFiles)...),
			absent: []string{"/etc/pki"}, symlinks: []string{"/bin", "/lib"}},
		{name: "ubuntu", s: imgs.Ubuntu, layers: 1,
			present: []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/passwd", "/usr/bin/bash"},
			absent:  []string{"/etc/pki", "/etc/pki/tls/certs/ca-bundle.crt"}, symlinks: []string{"/lib", "/bin"}},
		{name: "ubi", s: imgs.UBI, user: "1001", wd: "/opt/app-root/src", layers: 1,
			present:  []string{"/etc/pki/tls/certs/ca-bundle.crt", "/etc/pki/tls/certs/ca-bundle.trust.crt"},
			absent:   []string{"/etc/ssl/certs/ca-certificates.crt"},
			symlinks: []string{"/etc/ssl/certs"}},
		{name: "whiteout", s: imgs.Whiteout, layers: 2,
			present: []string{"/app/keep.txt", "/opt/data/y"},
			absent:  []string{"/app/config", "/app/config/a.yaml", "/app/config/b.yaml", "/opt/data/x"}},
		{name: "appconfig", s: imgs.AppConfig, user: "10001:10001", wd: "/app", layers: 2,
			present: []string{"/app/config/application.yaml", "/app/config/logback.xml"}},
		{name: "users-root", s: imgs.UsersRoot, user: "root", layers: 1, present: []string{"/etc/passwd"}},
		{name: "users-1000", s: imgs.UsersNumber, user: "1000", layers: 1, present: []string{"/etc/passwd"}},
		{name: "users-named", s: imgs.UsersNamed, user: "app", layers: 1, present: []string{"/home/app"}},
		{name: "private", s: imgs.Private, user: "10001:10001", wd: "/app", layers: 2,
			present:    []string{"/app/config/application.yaml"},
			remoteOpts: []remote.Option{remote.WithAuth(&authn.Basic{Username: PrivateUser, Password: PrivatePassword})}},
		{name: "multiarch-amd64", s: imgs.MultiArchAMD64, layers: 1, present: []string{"/opt/amd64-only"}, absent: []string{"/opt/arm64-only"}},
		{name: "multiarch-arm64", s: imgs.MultiArchARM64, layers: 1, present: []string{"/opt/arm64-only"}, absent: []string{"/opt/amd64-only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]remote.Option{remote.WithTransport(tr)}, tc.remoteOpts...)
			img := pull(t, tc.s.Ref, opts...)
			d, err := img.Digest()
			if err != nil || d != tc.s.Digest {
				t.Errorf("digest = %v, %v; seeded %v", d, err, tc.s.Digest)
			}
			byDigest := pull(t, tc.s.DigestRef(), opts...)
			if d2, _ := byDigest.Digest(); d2 != tc.s.Digest {
				t.Errorf("%s digest = %v", tc.s.DigestRef(), d2)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture == "" {
				t.Errorf("platform = %s/%s", cf.OS, cf.Architecture)
			}
			if cf.Config.User != tc.user || cf.Config.WorkingDir != tc.wd {
				t.Errorf("User, WorkingDir = %q, %q; want %q, %q", cf.Config.User, cf.Config.WorkingDir, tc.user, tc.wd)
			}
			ls, _ := img.Layers()
			if len(ls) != tc.layers || len(cf.RootFS.DiffIDs) != tc.layers {
				t.Errorf("%d layers, %d diff_ids; want %d", len(ls), len(cf.RootFS.DiffIDs), tc.layers)
			}
			fs := tree(t, img)
			for _, p := range tc.present {
				if _, ok := fs[p]; !ok {
					t.Errorf("%s missing; tree: %v", p, keys(fs))
				}
			}
			for _, p := range tc.absent {
				if _, ok := fs[p]; ok {
					t.Errorf("%s present", p)
				}
			}
			for _, p := range tc.symlinks {
				if fs[p] != tar.TypeSymlink {
					t.Errorf("%s is type %q, want a symlink", p, fs[p])
				}
			}
		})
	}
	if len(r.Requests()) == 0 {
		t.Error("no requests recorded")
	}
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

func keys(m map[string]byte) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestWhiteoutLayersAreRaw(t *testing.T) {
	_, imgs, tr := seeded(t)
	names := layerNames(t, pull(t, imgs.Whiteout.Ref, remote.WithTransport(tr)))
	if len(names) != 2 {
		t.Fatalf("layers: %v", names)
	}
	if want := []string{"app/.wh.config", "opt/data/", "opt/data/.wh..wh..opq", "opt/data/y"}; !slices.Equal(names[1], want) {
		t.Errorf("layer 2 = %q, want %q", names[1], want)
	}
	if !slices.Contains(names[0], "app/config/a.yaml") || !slices.Contains(names[0], "opt/data/x") {
		t.Errorf("layer 1 = %q", names[0])
	}
}

func TestMultiArchIndex(t *testing.T) {
	_, imgs, tr := seeded(t)
	ref, _ := name.ParseReference(imgs.MultiArch.Ref)
	idx, err := remote.Index(ref, remote.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d != imgs.MultiArch.Digest {
		t.Errorf("index digest %v, seeded %v", d, imgs.MultiArch.Digest)
	}
	im, _ := idx.IndexManifest()
	var plats []string
	for _, m := range im.Manifests {
		plats = append(plats, m.Platform.String())
	}
	if want := []string{"linux/amd64", "linux/arm64/v8"}; !slices.Equal(plats, want) {
		t.Errorf("platforms %v, want %v", plats, want)
	}
	for _, tc := range []struct {
		p    v1.Platform
		want string
		dig  v1.Hash
	}{
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "/opt/arm64-only", imgs.MultiArchARM64.Digest},
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "/opt/amd64-only", imgs.MultiArchAMD64.Digest},
	} {
		img := pull(t, imgs.MultiArch.Ref, remote.WithTransport(tr), remote.WithPlatform(tc.p))
		if d, _ := img.Digest(); d != tc.dig {
			t.Errorf("%s: digest %v, want %v", tc.p, d, tc.dig)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != tc.p.Architecture || cf.Variant != tc.p.Variant {
			t.Errorf("%s: config platform %s/%s", tc.p, cf.Architecture, cf.Variant)
		}
		if _, ok := tree(t, img)[tc.want]; !ok {
			t.Errorf("%s: %s missing", tc.p, tc.want)
		}
	}
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

func TestBasicAuth(t *testing.T) {
	r, imgs, tr := seeded(t)
	ref, _ := name.ParseReference(imgs.Private.Ref)

	_, err := remote.Image(ref, remote.WithTransport(tr))
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("anonymous pull: %v, want 401", err)
	}
	_, err = remote.Image(ref, remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: PrivateUser, Password: "wrong"}))
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("wrong password: %v, want 401", err)
	}
	if _, err := remote.Image(ref, remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: PrivateUser, Password: PrivatePassword})); err != nil {
		t.Errorf("with credentials: %v", err)
	}

	resp, err := (&http.Client{Transport: tr}).Get(r.URL + "/v2/private/app/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
		t.Errorf("raw GET: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Other repositories stay anonymous.
	if _, err := remote.Image(mustRef(t, imgs.AppConfig.Ref), remote.WithTransport(tr)); err != nil {
		t.Errorf("public repo: %v", err)
	}

	// The .dockerconfigjson works as a keychain entry for r.Host.
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(r.DockerConfigJSON(PrivateUser, PrivatePassword), &cfg); err != nil {
		t.Fatal(err)
	}
	a, ok := cfg.Auths[r.Host]
	if !ok || len(cfg.Auths) != 1 {
		t.Fatalf("auths = %v", cfg.Auths)
	}
	dec, _ := base64.StdEncoding.DecodeString(a.Auth)
	if a.Username != PrivateUser || a.Password != PrivatePassword || string(dec) != PrivateUser+":"+PrivatePassword {
		t.Errorf("entry = %+v (auth %q)", a, dec)
	}
	if _, err := remote.Image(ref, remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: a.Username, Password: a.Password})); err != nil {
		t.Errorf("with dockerconfigjson credentials: %v", err)
	}
	// The 401s were recorded, with and without a user.
	var unauth int
	for _, q := range r.Requests() {
		if q.Repo == "private/app" && q.Status == 401 {
			unauth++
		}
	}
	if unauth < 3 {
		t.Errorf("%d 401s recorded for private/app", unauth)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFaultStatus(t *testing.T) {
	r, imgs, tr := seeded(t)
	_, err := remote.Image(mustRef(t, imgs.Broken.Ref), remote.WithTransport(tr), remote.WithRetryStatusCodes())
	if statusOf(err) != 500 {
		t.Errorf("broken: %v, want 500", err)
	}
	// Switchable at run time, for a repository and those below it.
	r.Status("users", http.StatusServiceUnavailable)
	_, err = remote.Image(mustRef(t, imgs.UsersRoot.Ref), remote.WithTransport(tr), remote.WithRetryStatusCodes())
	if statusOf(err) != 503 {
		t.Errorf("users after Status: %v, want 503", err)
	}
	r.SetFault("users", Fault{})
	if _, err := remote.Image(mustRef(t, imgs.UsersRoot.Ref), remote.WithTransport(tr)); err != nil {
		t.Errorf("users after clearing: %v", err)
	}
	// A fault on "broken" does not leak to "brokenness".
	if _, ok := matchRepo(map[string]int{"broken": 1}, "brokenness"); ok {
		t.Error("matchRepo matched a longer name")
	}
}

func TestFaultSlow(t *testing.T) {
	r, imgs, tr := seeded(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := remote.Head(mustRef(t, imgs.Slow.Ref), remote.WithTransport(tr), remote.WithContext(ctx))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow/app with 200ms deadline: %v", err)
	}
	if el := time.Since(start); el > SlowDelay/2 {
		t.Errorf("deadline honoured after %v", el)
	}

	r.Slow("slow", 150*time.Millisecond)
	start = time.Now()
	if _, err := remote.Head(mustRef(t, imgs.Slow.Ref), remote.WithTransport(tr)); err != nil {
		t.Errorf("slow/app at 150ms: %v", err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("HEAD took %v, want ≥ 150ms", el)
	}
}

func TestFaultEndless(t *testing.T) {
	r, imgs, tr := seeded(t)
	img := pull(t, imgs.Endless.Ref, remote.WithTransport(tr))
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers %v %v", ls, err)
	}
	if n, _ := ls[0].Size(); n != EndlessLayerSize {
		t.Errorf("declared size %d", n)
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	trd := tar.NewReader(rc)
	h, err := trd.Next()
	if err != nil || h.Name != "endless/blob" || h.Size != 1<<40 {
		t.Fatalf("header %+v, %v", h, err)
	}
	const want = 16 << 20
	if n, err := io.CopyN(io.Discard, trd, want); n != want {
		t.Fatalf("read %d of %d bytes: %v", n, want, err)
	}
	rc.Close()

	// The fault on any repository: layer blobs endless, configs spared.
	r.NeverEndingBlob("tomcat")
	timg := pull(t, imgs.Tomcat.Ref, remote.WithTransport(tr))
	if _, err := timg.ConfigFile(); err != nil {
		t.Errorf("config under NeverEndingBlob: %v", err)
	}
	ls, _ = timg.Layers()
	d, _ := ls[0].Digest()
	size, _ := ls[0].Size()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v2/tomcat/blobs/"+d.String(), nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != -1 {
		t.Errorf("status %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("gzip header: %v", err)
	}
	if n, err := io.CopyN(io.Discard, zr, 10*size); n != 10*size {
		t.Errorf("read %d bytes (blob is %d): %v", n, size, err)
	}
	resp.Body.Close()
	// go-containerregistry stops at the declared size and reports a mismatch.
	lrc, err := ls[0].Compressed()
	if err == nil {
		_, err = io.Copy(io.Discard, lrc)
		lrc.Close()
	}
	if err == nil {
		t.Error("reading an endless tomcat layer through remote succeeded")
	}
}

func TestFaultStall(t *testing.T) {
	r, imgs, tr := seeded(t)
	img := pull(t, imgs.Stalled.Ref, remote.WithTransport(tr))
	if _, err := img.ConfigFile(); err != nil {
		t.Fatalf("config: %v", err)
	}
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v2/stall/app/blobs/"+d.String(), nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("headers should arrive: %v", err)
	}
	defer resp.Body.Close()
	if size, _ := ls[0].Size(); resp.StatusCode != 200 || resp.ContentLength != size {
		t.Errorf("status %d, Content-Length %d (size %d)", resp.StatusCode, resp.ContentLength, size)
	}
	start := time.Now()
	n, err := resp.Body.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Errorf("read %d bytes, %v", n, err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("body read returned after %v", el)
	}

	r.SetFault("stall", Fault{StallAll: true})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := remote.Image(mustRef(t, imgs.Stalled.Ref), remote.WithTransport(tr), remote.WithContext(ctx2)); err == nil {
		t.Error("manifest GET under StallAll succeeded")
	}
}

func TestCloseHangsUpOnStalledAndEndless(t *testing.T) {
	r, err := Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := Seed(r, SeedOptions{ManyEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	tr := newDialRecorder(t, r.Host)
	done := make(chan error, 2)
	for _, s := range []Seeded{imgs.Stalled, imgs.Endless} {
		img := pull(t, s.Ref, remote.WithTransport(tr))
		ls, _ := img.Layers()
		go func() {
			rc, err := ls[0].Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
			}
			done <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	r.Close()
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Errorf("Close took %v", el)
	}
	for range 2 {
		select {
		case err := <-done:
			if err == nil {
				t.Error("read of a faulty layer ended without error")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("client still reading 5s after Close")
		}
	}
}

func TestOnlyRegistryHostDialled(t *testing.T) {
	r, imgs, tr := seeded(t)
	if !strings.HasPrefix(r.Host, "127.0.0.1:") {
		t.Fatalf("Host = %q", r.Host)
	}
	if s := mustRef(t, imgs.Tomcat.Ref).Context().Scheme(); s != "http" {
		t.Errorf("scheme for %s = %s, want http", imgs.Tomcat.Ref, s)
	}
	for _, s := range []Seeded{imgs.Tomcat, imgs.UBI, imgs.MultiArch} {
		img := pull(t, s.Ref, remote.WithTransport(tr))
		tree(t, img)
	}
	addrs := tr.addrs()
	if len(addrs) == 0 {
		t.Fatal("nothing dialled")
	}
	for _, a := range addrs {
		if a != r.Host {
			t.Errorf("dialled %s", a)
		}
	}
}

func TestRequestsRecorded(t *testing.T) {
	r, imgs, tr := seeded(t)
	if n := len(r.Requests()); n != 0 {
		t.Fatalf("%d requests recorded by seeding: %v", n, r.Requests())
	}
	img := pull(t, imgs.Tomcat.Ref, remote.WithTransport(tr))
	tree(t, img)
	if n := r.Hits(http.MethodGet, "/v2/tomcat/manifests/9"); n != 1 {
		t.Errorf("manifest GETs = %d, requests %v", n, r.Requests())
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		if n := r.BlobGets(d); n != 1 {
			t.Errorf("GETs of %s = %d", d, n)
		}
	}
	if n := r.RepoHits("tomcat", "blobs"); n != 2 { // the layers; Extract needs no config
		t.Errorf("tomcat blob requests = %d", n)
	}
	cf, _ := img.ConfigFile()
	if n := r.Hits(http.MethodGet, "/v2/tomcat/blobs/"+mustConfigName(t, img)); n != 1 || cf == nil {
		t.Errorf("config GETs = %d", n)
	}
	if n := r.RepoHits("ubuntu", ""); n != 0 {
		t.Errorf("ubuntu requests = %d", n)
	}
	r.ResetRequests()
	if len(r.Requests()) != 0 {
		t.Error("ResetRequests kept requests")
	}
}

func TestMaliciousPAX(t *testing.T) {
	_, imgs, tr := seeded(t)
	ls, _ := pull(t, imgs.MaliciousPAX.Ref, remote.WithTransport(tr)).Layers()
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if raw[156] != tar.TypeXHeader {
		t.Fatalf("first typeflag %q", raw[156])
	}
	recLen := int(2<<20) + len("pax/path=\n")
	if len(raw) < 512+recLen || !bytes.Contains(raw[512:600], []byte(" path=pax/aaaa")) {
		t.Fatalf("no 2 MiB path record (tar is %d bytes)", len(raw))
	}
	_, err = tar.NewReader(bytes.NewReader(raw)).Next()
	if err == nil {
		t.Error("archive/tar accepted a 2 MiB PAX header")
	}
}

func TestMaliciousTraversal(t *testing.T) {
	_, imgs, tr := seeded(t)
	names := layerNames(t, pull(t, imgs.MaliciousTraversal.Ref, remote.WithTransport(tr)))
	for _, want := range []string{"../../etc/evil", "/abs/path", "app/../../../etc/evil3", "app/link", "app/ok.txt"} {
		if !slices.Contains(names[0], want) {
			t.Errorf("%q missing from %q", want, names[0])
		}
	}
}

func TestMaliciousMany(t *testing.T) {
	r, imgs, tr := seeded(t)
	img := pull(t, imgs.MaliciousMany.Ref, remote.WithTransport(tr))
	ls, _ := img.Layers()
	rc, err := ls[0].Uncompressed() // remote verifies the compressed digest at EOF
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	trd := tar.NewReader(rc)
	seen := map[string]bool{}
	for {
		h, err := trd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d entries: %v", len(seen), err)
		}
		if h.Size != 0 || h.Typeflag != tar.TypeReg || seen[h.Name] {
			t.Fatalf("entry %+v", h)
		}
		seen[h.Name] = true
	}
	if len(seen) != testManyEntries || !seen["many/0001/00019999"] {
		t.Errorf("%d entries", len(seen))
	}
	// The digest remote computed over what the registry served matches.
	rc2, _ := ls[0].Compressed()
	if _, err := io.Copy(io.Discard, rc2); err != nil {
		t.Errorf("compressed blob: %v", err)
	}
	rc2.Close()
	if r.BlobGets(mustDigest(t, ls[0])) != 2 {
		t.Errorf("requests: %v", r.Requests())
	}
}

func mustDigest(t *testing.T, l v1.Layer) v1.Hash {
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestManyEntriesLayerBytes checks the hand-written tar headers against
// archive/tar and the layer's digests against its bytes.
func TestManyEntriesLayerBytes(t *testing.T) {
	var mine, gz bytes.Buffer
	if err := manyGzip(&gz, &mine, 1234); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	unz, err := io.ReadAll(zr) // checks the CRC and size trailer too
	if err != nil || !bytes.Equal(unz, mine.Bytes()) {
		t.Errorf("gunzip: %d bytes, %v; tar is %d bytes", len(unz), err, mine.Len())
	}
	var ref bytes.Buffer
	tw := tar.NewWriter(&ref)
	for i := range 1234 {
		name := "many/" + pad0(i/10000, 4) + "/" + pad0(i, 8)
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	if !bytes.Equal(mine.Bytes(), ref.Bytes()) {
		t.Errorf("writeManyTar differs from archive/tar (%d vs %d bytes)", mine.Len(), ref.Len())
	}
	l := ManyEntriesLayer(1234)
	rc, _ := l.Compressed()
	b, _ := io.ReadAll(rc)
	d, _ := l.Digest()
	if sz, _ := l.Size(); sz != int64(len(b)) || d != sha(b) {
		t.Errorf("size %d digest %v; blob %d bytes %v", sz, d, len(b), sha(b))
	}
}

func mustConfigName(t *testing.T, img v1.Image) string {
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func pad0(v, n int) string {
	b := make([]byte, n)
	putDec(b, v)
	return string(b)
}

func sha(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

func TestServeOutsideTesting(t *testing.T) {
	r, err := Serve("127.0.0.1:0", WithBasicAuth("u", "p", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.PushImage("secret/x:1", Ubuntu()); err != nil {
		t.Fatal(err)
	}
	tr := newDialRecorder(t, r.Host)
	if _, err := remote.Image(mustRef(t, r.Ref("secret/x:1")), remote.WithTransport(tr)); statusOf(err) != 401 {
		t.Errorf("anonymous: %v", err)
	}
	if _, err := remote.Image(mustRef(t, r.Ref("secret/x:1")), remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: "u", Password: "p"})); err != nil {
		t.Error(err)
	}
}

func TestManyDefaultSums(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 1.5 GB of tar")
	}
	digest, diffID, size, err := computeManySums(DefaultManyEntries)
	if err != nil {
		t.Fatal(err)
	}
	if digest.String() != manyDefaultDigest || diffID.String() != manyDefaultDiffID || size != manyDefaultSize {
		t.Errorf("ManyEntriesLayer(%d): digest %v, diffID %v, size %d; the constants say %s, %s, %d",
			DefaultManyEntries, digest, diffID, size, manyDefaultDigest, manyDefaultDiffID, manyDefaultSize)
	}
	l := ManyEntriesLayer(DefaultManyEntries)
	if d, _ := l.Digest(); d != digest {
		t.Errorf("Digest() = %v", d)
	}
}

func TestManyZeroEntries(t *testing.T) {
	var tarb, gz bytes.Buffer
	if err := manyGzip(&gz, &tarb, 0); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || len(b) != 1024 || !bytes.Equal(b, tarb.Bytes()) || !bytes.Equal(b, make([]byte, 1024)) {
		t.Errorf("%d bytes, %v", len(b), err)
	}
}
