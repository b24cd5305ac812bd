package inspector

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podguard/podguard/imageindex"
	"github.com/podguard/podguard/policies"
)

func TestRestartWithCacheDirFetchesNoBlob(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "tomcat:9", imageOf(t, "", "/usr/local/tomcat", "linux/amd64",
		layerOf(t, file("etc/passwd")), layerOf(t, file("usr/local/tomcat/conf/server.xml"))))
	dir := t.TempDir()
	first, _ := newTestInspector(t, Options{CacheDir: dir}, reg)
	mustKnown(t, inspectOne(t, first, Request{Refs: []string{ref}}, 5*time.Second))
	first.Close()
	if fi, err := os.Stat(filepath.Join(dir, "layers")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("layers dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	// A corrupt file is ignored and removed.
	junk := filepath.Join(dir, "layers", "sha256-"+fmt.Sprintf("%064d", 0))
	os.WriteFile(junk, []byte("junk"), 0o600)

	reg.reset()
	second, _ := newTestInspector(t, Options{CacheDir: dir}, reg)
	f := inspectOne(t, second, Request{Refs: []string{ref}}, 5*time.Second)
	mustKnown(t, f)
	if f.WorkingDir != "/usr/local/tomcat" {
		t.Errorf("reloaded workdir %q", f.WorkingDir)
	}
	if !slices.Equal(f.Env, []string{"HOME"}) {
		t.Errorf("reloaded env %q, want the names only: [HOME]", f.Env)
	}

	if k, _ := f.FS.Stat("/usr/local/tomcat/conf/server.xml"); k != policies.FileRegular {
		t.Errorf("reloaded index: server.xml is %d", k)
	}
	if n := reg.count("blobs"); n != 0 {
		t.Errorf("after a restart: %d blob GETs, want 0", n)
	}
	if l := second.disk.readLayer("sha256:" + fmt.Sprintf("%064d", 0)); l != nil {
		t.Errorf("a corrupt layer file parsed")
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Errorf("the corrupt layer file was not removed: %v", err)
	}
}

func TestEnvKeepsNamesOnly(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, "", "", "linux/amd64", layerOf(t, file("a")))
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.Config.Env = []string{"PATH=/usr/bin", "DB_PASSWORD=hunter2", "EMPTY=", "BARE"}
	img, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.push(t, "env:1", img)
	dir := t.TempDir()
	i, _ := newTestInspector(t, Options{CacheDir: dir}, reg)
	f := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second)
	mustKnown(t, f)
	if want := []string{"PATH", "DB_PASSWORD", "EMPTY", "BARE"}; !slices.Equal(f.Env, want) {
		t.Errorf("Env = %q, want the names %q", f.Env, want)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "images"))
	for _, e := range ents {
		if b, _ := os.ReadFile(filepath.Join(dir, "images", e.Name())); strings.Contains(string(b), "hunter2") {
			t.Errorf("the persisted record holds an env value: %s", b)
		}
	}
	// A record persisted with values (before names only were kept) loses
	// them when read.
	d, _ := img.Digest()
	if err := i.disk.writeImage(d.String(), imageRecord{Env: []string{"TOKEN=s3cr3t"}, Layers: []string{}}); err != nil {
		t.Fatal(err)
	}
	if rec, ok := i.disk.readImage(d.String()); !ok || !slices.Equal(rec.Env, []string{"TOKEN"}) {
		t.Errorf("an old record read back as %q (%v), want [TOKEN]", rec.Env, ok)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "images", "sha256-"+d.Hex)); strings.Contains(string(b), "s3cr3t") {
		t.Errorf("the old record was not rewritten without its values: %s", b)
	}
}

func indexOf(t testing.TB, es ...entry) *imageindex.Layer {
	t.Helper()
	l, err := imageindex.IndexLayer(bytesReader(tarOf(t, es...)), imageindex.Limits{MaxEntries: 1 << 20, MaxPathBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLRUCountsSharedLayersOnceAndRespectsItsBound(t *testing.T) {
	var many []entry
	for k := range 200 {
		many = append(many, file(fmt.Sprintf("usr/lib/file-%03d", k)))
	}
	base, a, b, c := indexOf(t, many...), indexOf(t, file("a")), indexOf(t, file("b")), indexOf(t, file("c"))
	// sizeOf is what two images of these layers cost.
	sizeOf := func(ls ...*imageindex.Layer) int64 {
		n := int64(2 * imageOverhead)
		for _, l := range ls {
			n += int64(l.Bytes())
		}
		return n
	}
	// Room for base shared by two images, not for a third.
	max := sizeOf(base, a, b) + int64(c.Bytes())/2
	var gauge int64
	mc := newMemCache(max, func(n int64) { gauge = n })
	mc.add("sha256:a", imageRecord{Platform: "linux/amd64", Layers: []string{"L:base", "L:a"}}, []*imageindex.Layer{base, a})
	mc.add("sha256:b", imageRecord{Platform: "linux/amd64", Layers: []string{"L:base", "L:b", "L:base"}}, []*imageindex.Layer{base, b, base})
	if want := sizeOf(base, a, b); mc.bytes() != want || gauge != want {
		t.Fatalf("two images sharing a layer: %d bytes (gauge %d), want %d", mc.bytes(), gauge, want)
	}
	mc.image("sha256:a") // a is now more recent than b
	mc.add("sha256:c", imageRecord{Platform: "linux/amd64", Layers: []string{"L:base", "L:c"}}, []*imageindex.Layer{base, c})
	if mc.bytes() > max {
		t.Errorf("%d bytes cached, more than the bound %d", mc.bytes(), max)
	}
	if _, ok := mc.image("sha256:b"); ok {
		t.Errorf("the least recently used image was not evicted")
	}
	for _, d := range []string{"sha256:a", "sha256:c"} {
		if _, ok := mc.image(d); !ok {
			t.Errorf("%s was evicted", d)
		}
	}
	if mc.layer("L:b") != nil || mc.layer("L:base") == nil {
		t.Errorf("layer refcounts: b held %v, base held %v", mc.layer("L:b") != nil, mc.layer("L:base") != nil)
	}
	// An image larger than the whole bound is returned, not cached.
	huge := newMemCache(int64(base.Bytes()), func(int64) {})
	if e := huge.add("sha256:h", imageRecord{Platform: "linux/amd64", Layers: []string{"L:base"}}, []*imageindex.Layer{base}); e == nil || e.fs == nil {
		t.Fatalf("an image over the bound was not returned")
	}
	if huge.bytes() != 0 {
		t.Errorf("an image over the bound was cached")
	}
}

func TestAllowList(t *testing.T) {
	l := newAllowList([]string{"127.0.0.1:5000", "registry.local", "docker.io", "10.1.2.3:*"})
	for _, tc := range []struct {
		reg, addr string
		want      bool
	}{
		{"127.0.0.1:5000", "127.0.0.1:5000", true},
		{"127.0.0.1:5001", "127.0.0.1:5001", false},
		{"127.0.0.1", "127.0.0.1:80", false},
		{"registry.local", "registry.local:443", true},
		{"registry.local:443", "registry.local:80", true},
		{"registry.local:8443", "registry.local:8443", false},
		{"index.docker.io", "registry-1.docker.io:443", true},
		{"10.1.2.3:9999", "10.1.2.3:9999", true},
		{"10.1.2.30", "10.1.2.30:443", false},
	} {
		if got := l.registry(tc.reg); got != tc.want {
			t.Errorf("registry(%s) = %v, want %v", tc.reg, got, tc.want)
		}
		if got := l.addr(tc.addr); got != tc.want {
			t.Errorf("addr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if _, err := New(Options{Registries: []string{"https://x/"}}); err == nil {
		t.Errorf("a URL in registries was accepted")
	}
}

func TestSecretKeysMatchLikeTheKubelet(t *testing.T) {
	for _, tc := range []struct {
		key, repo string
		want      bool
	}{
		{"10.0.0.130:5000", "10.0.0.130:5000/nginx", true},
		{"https://10.0.0.130:5000/v1/", "10.0.0.130:5000/nginx", true},
		{"10.0.0.130", "10.0.0.130:5000/nginx", false},
		{"https://index.docker.io/v1/", "docker.io/library/nginx", true},
		{"registry-1.docker.io", "docker.io/library/nginx", true},
		{"*.example.com", "reg.example.com/app", true},
		{"*.example.com", "example.com/app", false},
		{"reg.example.com/team", "reg.example.com/team/app", true},
		{"reg.example.com/team", "reg.example.com/teamb/app", false},
	} {
		if got := keyMatches(tc.key, tc.repo); got != tc.want {
			t.Errorf("keyMatches(%q, %q) = %v, want %v", tc.key, tc.repo, got, tc.want)
		}
	}
}

// BenchmarkInspectWarm is admission's cost with a warm cache: 50 goroutines
// inspecting a pod of 3 cached images. It reports the p99 of one Inspect.
func BenchmarkInspectWarm(b *testing.B) {
	reg := newTestRegistry(b)
	var refs []string
	for k := range 3 {
		refs = append(refs, reg.push(b, fmt.Sprintf("app%d:1", k), imageOf(b, "1000", "", "linux/amd64", layerOf(b, file(fmt.Sprintf("f%d", k))))))
	}
	i, _ := newTestInspector(b, Options{}, reg)
	req := Request{Namespace: "default", Refs: refs, PullSecrets: []string{"regcred"}}
	for _, f := range i.Inspect(context.Background(), req, 10*time.Second) {
		mustKnown(b, f)
	}
	const workers = 50
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + workers - 1) / workers
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			local := make([]time.Duration, 0, per)
			for n := 0; n < per; n++ {
				start := time.Now()
				out := i.Inspect(context.Background(), req, time.Second)
				local = append(local, time.Since(start))
				if out[refs[0]].Status != policies.ImageKnown {
					b.Error("a cached image was not known")
					return
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(x, y int) bool { return lat[x] < lat[y] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
}

func TestMetricsCountHitsMissesAndRefusals(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("a"))))
	redirect := pushFakeLayer(t, reg, "redirect:1", 100, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.example:80/blob", http.StatusFound)
	})
	pr := prometheus.NewPedanticRegistry()
	i, _ := newTestInspector(t, Options{Registerer: pr}, reg)
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second))
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second))
	inspectOne(t, i, Request{Refs: []string{redirect}}, 5*time.Second)
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"hits", i.m.hits, 1}, {"misses", i.m.misses, 2}, {"dials refused", i.m.dialsRefused, 1}, {"in flight", i.m.inFlight, 0},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if testutil.ToFloat64(i.m.fetchBytes) == 0 || testutil.ToFloat64(i.m.indexBytes) == 0 {
		t.Errorf("bytes fetched or index bytes not counted")
	}
	if n, err := testutil.GatherAndCount(pr); err != nil || n < 8 {
		t.Errorf("gathered %d series (%v), want the 8 metrics", n, err)
	}
}
