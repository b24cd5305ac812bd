package inspector

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/podguard/podguard/policies"
)

// pushFakeLayer pushes an image whose only layer is served by h, declared
// with the given size; it returns the ref and the layer's blob path.
func pushFakeLayer(t *testing.T, reg *testRegistry, tag string, size int64, h http.HandlerFunc) string {
	t.Helper()
	img := imageOf(t, "", "", "linux/amd64", layerOf(t, file("placeholder")))
	ref := reg.push(t, tag, img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var fake [32]byte
	rand.Read(fake[:])
	m.Layers[0].Digest = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", fake)}
	m.Layers[0].Size = size
	body, _ := json.Marshal(m)
	repo, _, _ := strings.Cut(tag, ":")
	reg.handle("/v2/"+repo+"/manifests/"+strings.TrimPrefix(tag, repo+":"), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", string(types.DockerManifestSchema2))
		w.Write(body)
	})
	reg.handle("/v2/"+repo+"/blobs/"+m.Layers[0].Digest.String(), h)
	return ref
}

func TestNeverEndingBlobsEndWithinBounds(t *testing.T) {
	reg := newTestRegistry(t)
	var sent atomic.Int64
	endless := func(w http.ResponseWriter, r *http.Request) {
		// An uncompressed tar whose one file never ends.
		var hdr bytes.Buffer
		tw := tar.NewWriter(&hdr)
		tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 1 << 40, Mode: 0o644})
		w.Write(hdr.Bytes())
		chunk := make([]byte, 32<<10)
		rand.Read(chunk)
		for r.Context().Err() == nil {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
	stalled := func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte{0x1f, 0x8b})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	const maxBytes = 8 << 20
	huge := pushFakeLayer(t, reg, "huge:1", 1<<40, endless)
	lying := pushFakeLayer(t, reg, "lying:1", maxBytes-1, endless)
	stall := pushFakeLayer(t, reg, "stall:1", 1000, stalled)
	i, _ := newTestInspector(t, Options{MaxImageBytes: maxBytes, FetchTimeout: 700 * time.Millisecond}, reg)

	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	for _, tc := range []struct{ ref, why string }{
		{huge, "too large to inspect"},
		{lying, "layer 1 of 1"}, // cut at its declared size, short of its tar
		{stall, "timed out after 700ms"},
	} {
		start := time.Now()
		f := inspectOne(t, i, Request{Refs: []string{tc.ref}}, 5*time.Second)
		if f.Status != policies.ImageFailed || !strings.Contains(f.Why, tc.why) {
			t.Errorf("%s: status %d why %q; want failed with %q", tc.ref, f.Status, f.Why, tc.why)
		}
		t.Logf("%s: %s", tc.ref, f.Why)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: took %s", tc.ref, took)
		}
	}
	close(stop)
	// Loopback socket buffers hold a few MiB the inspector never reads.
	if s := sent.Load(); s > maxBytes+(16<<20) {
		t.Errorf("the registry sent %d bytes before the inspector hung up; want about %d at most", s, maxBytes)
	}
	if grew := int64(peak.Load()) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB while reading endless blobs", grew>>20)
	}
}

func TestMaliciousTarsFailWithAClearWhy(t *testing.T) {
	reg := newTestRegistry(t)
	many := make([]entry, 0, 3000)
	for k := range 3000 {
		many = append(many, file(fmt.Sprintf("d/f%05d", k)))
	}
	for _, tc := range []struct {
		tag   string
		layer []byte
		why   string
	}{
		{"long:1", tarOf(t, file(strings.Repeat("a/", 5000)+"x")), "layer 1 of 1"},
		{"many:1", tarOf(t, many...), "too large to inspect: it has more than 1000 paths (images.maxEntries)"},
		{"garbage:1", []byte(strings.Repeat("not a tar at all ", 100)), "layer 1 of 1"},
	} {
		ref := reg.push(t, tc.tag, imageOf(t, "", "", "linux/amd64", layerFromTar(t, tc.layer)))
		i, _ := newTestInspector(t, Options{MaxEntries: 1000}, reg)
		f := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second)
		if f.Status != policies.ImageFailed || !strings.Contains(f.Why, tc.why) {
			t.Errorf("%s: status %d why %q; want failed with %q", tc.tag, f.Status, f.Why, tc.why)
		} else {
			t.Logf("%s: %s", tc.tag, f.Why)
		}
		// The same bytes would fail the same way: not fetched again.
		blobs := reg.count("blobs")
		if again := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second); again.Why != f.Why || reg.count("blobs") != blobs {
			t.Errorf("%s again: why %q after %d more blob GETs; want the same why and none", tc.tag, again.Why, reg.count("blobs")-blobs)
		}
	}
}

func TestManifestsAreCapped(t *testing.T) {
	reg := newTestRegistry(t)
	big := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"a":"` + strings.Repeat("x", 5<<20) + `"}}`
	reg.handle("/v2/big/manifests/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
		w.(http.Flusher).Flush() // no Content-Length: the cap must hold while reading
		io.WriteString(w, big)
	})
	i, _ := newTestInspector(t, Options{}, reg)
	f := inspectOne(t, i, Request{Refs: []string{reg.host + "/big:1"}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "manifest larger than 4194304 bytes") {
		t.Errorf("a 5 MiB manifest: status %d why %q; want failed, capped", f.Status, f.Why)
	}
	// A reference that looks like the parse cache's platform keys is a
	// reference.
	if f := inspectOne(t, i, Request{Refs: []string{"platform:linux"}}, time.Second); f.Status != policies.ImageNotInspected {
		t.Errorf("platform:linux: status %d why %q", f.Status, f.Why)
	}
}

func TestTraversalStaysInsideTheImage(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "traversal:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("../../etc/evil"), file("./a/../../b"))))
	i, _ := newTestInspector(t, Options{}, reg)
	f := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second)
	mustKnown(t, f)
	for _, p := range []string{"/etc/evil", "/b"} {
		if k, _ := f.FS.Stat(p); k != policies.FileRegular {
			t.Errorf("Stat(%s) = %d, want a regular file (names are cleaned as rooted paths)", p, k)
		}
	}
}

func TestOnlyAllowedRegistriesAreEverDialled(t *testing.T) {
	reg := newTestRegistry(t)
	ok := reg.push(t, "ok:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("a"))))
	redirect := pushFakeLayer(t, reg, "redirect:1", 100, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://cdn.example.net:9000/v2/blob", http.StatusTemporaryRedirect)
	})
	// A registry whose token realm is another host.
	realm := newTestRegistry(t)
	realmRef := realm.push(t, "app:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("a"))))
	realm.handle("/v2/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://auth.example.com:8080/token",service="registry"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	i, dl := newTestInspector(t, Options{}, reg, realm)

	out := i.Inspect(t.Context(), Request{Refs: []string{"nginx", "docker.io/library/nginx:1.27", "10.0.0.130:5000/nginx:latest", "192.168.1.20/app", "192.168.1.20:5000/app@sha256:" + strings.Repeat("a", 64)}}, time.Second)
	for ref, f := range out {
		if f.Status != policies.ImageNotInspected || !strings.Contains(f.Why, "is not in images.registries") {
			t.Errorf("%s: status %d why %q; want not inspected", ref, f.Status, f.Why)
		}
	}
	if d := dl.list(); len(d) != 0 {
		t.Fatalf("refs of other registries dialled %v", d)
	}
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{ok}}, 5*time.Second))
	f := inspectOne(t, i, Request{Refs: []string{redirect}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "cdn.example.net:9000") {
		t.Errorf("redirect: status %d why %q; want failed naming cdn.example.net:9000", f.Status, f.Why)
	}
	f = inspectOne(t, i, Request{Refs: []string{realmRef}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "auth.example.com:8080") {
		t.Errorf("foreign token realm: status %d why %q; want failed naming auth.example.com:8080", f.Status, f.Why)
	}
	for _, a := range dl.list() {
		if a != reg.host && a != realm.host {
			t.Errorf("dialled %s, which is not an allowed registry", a)
		}
	}
	if n := i.refused.Load(); n < 2 {
		t.Errorf("%d refused dials counted, want at least 2", n)
	}
}

func TestRefusedConnectionsBackOffAndDouble(t *testing.T) {
	// Nothing listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	i, err := New(Options{Registries: []string{host}, Backoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	f := inspectOne(t, i, Request{Refs: []string{host + "/app:1"}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "refused the connection") {
		t.Fatalf("closed port: status %d why %q", f.Status, f.Why)
	}
	f = inspectOne(t, i, Request{Refs: []string{host + "/other:1"}}, 5*time.Second)
	if want := "(connection refused); retrying after 1s"; !strings.Contains(f.Why, want) {
		t.Errorf("backed off: why %q, want %q", f.Why, want)
	}
	now := time.Now()
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second} {
		i.fail(host, "HTTP 503", now)
		if got := i.backoff[host].until.Sub(now); got != want {
			t.Errorf("back-off after another failure: %s, want %s", got, want)
		}
	}
	for range 20 {
		i.fail(host, "HTTP 503", now)
	}
	if got := i.backoff[host].until.Sub(now); got != maxBackoff {
		t.Errorf("back-off after many failures: %s, want %s", got, maxBackoff)
	}
}

// fakeResolver answers from a map.
type fakeResolver map[string][]string

func (f fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	for _, s := range f[host] {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func TestStarReachesOnlyPublicAddresses(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "ok:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("a"))))
	_, port, _ := net.SplitHostPort(reg.host)
	old := resolver
	resolver = fakeResolver{"localhost": {"127.0.0.1"}, "internal.example.com": {"10.0.0.9", "fd00::9"}, "metadata.example.com": {"169.254.169.254"}}
	t.Cleanup(func() { resolver = old })

	i, dl := newTestInspector(t, Options{Registries: []string{"*"}})
	f := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second)
	if f.Status != policies.ImageNotInspected {
		t.Errorf("a loopback registry under \"*\": status %d why %q; want not inspected", f.Status, f.Why)
	}
	for _, name := range []string{"localhost", "internal.example.com", "metadata.example.com"} {
		f := inspectOne(t, i, Request{Refs: []string{name + ":" + port + "/ok:1"}}, 5*time.Second)
		if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "not a public address") {
			t.Errorf("%s under \"*\": status %d why %q; want failed, not a public address", name, f.Status, f.Why)
		}
	}
	if d := dl.list(); len(d) != 0 {
		t.Errorf("\"*\" dialled %v", d)
	}

	// Listed by address, the same registry is inspected.
	listed, _ := newTestInspector(t, Options{Registries: []string{"*"}}, reg)
	mustKnown(t, inspectOne(t, listed, Request{Refs: []string{ref}}, 5*time.Second))
}

func TestPublicIP(t *testing.T) {
	for ip, want := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "224.0.0.1": false, "::1": false, "fd00::1": false, "fe80::1": false, "::": false,
		"8.8.8.8": true, "100.128.0.1": true, "2001:4860:4860::8888": true,
		// NAT64, 6to4 and Teredo embed an IPv4 address a relay forwards to.
		"64:ff9b::a00:1": false, "64:ff9b::7f00:1": false, "64:ff9b:1::a9fe:a9fe": false,
		"2002:a00:1::1": false, "2002:808:808::1": false, "2001:0:4136:e378:8000:63bf:3fff:fdd2": false,
		"2001:db8::1": true, "2a00:1450:4001::1": true,
	} {
		if got := publicIP(net.ParseIP(ip)); got != want {
			t.Errorf("publicIP(%s) = %v, want %v", ip, got, want)
		}
	}
}
