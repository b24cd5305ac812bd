package inspector

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podguard/podguard/imageindex"
	"github.com/podguard/podguard/policies"
)

// blobLayer is a layer whose compressed bytes are exactly b, digest and
// all (a bomb that no tarball helper would build cheaply).
func blobLayer(b []byte) v1.Layer { return static.NewLayer(b, types.DockerLayer) }

func gzipOf(t testing.TB, write func(io.Writer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	write(zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stallBlob makes reg's blob of l in repo send nothing until the request
// ends or release is closed, then serve the blob.
func stallBlob(t testing.TB, reg *testRegistry, repo string, l v1.Layer, release <-chan struct{}) {
	t.Helper()
	d, _ := l.Digest()
	rc, _ := l.Compressed()
	body, _ := io.ReadAll(rc)
	reg.handle("/v2/"+repo+"/blobs/"+d.String(), func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			return
		case <-release:
		}
		w.Write(body)
	})
}

func TestDecompressionBombs(t *testing.T) {
	reg := newTestRegistry(t)
	zeros := make([]byte, 64<<20)
	t.Run("zeros after the tar are not decompressed", func(t *testing.T) {
		// A small tar, then 8 GiB of zeros in 128 more gzip members: about
		// 8 MB compressed.
		blob := gzipOf(t, func(w io.Writer) { w.Write(tarOf(t, file("etc/passwd"))) })
		member := gzipOf(t, func(w io.Writer) { w.Write(zeros) })
		for range 128 {
			blob = append(blob, member...)
		}
		ref := reg.push(t, "trailing:1", imageOf(t, "", "", "linux/amd64", blobLayer(blob)))
		i, _ := newTestInspector(t, Options{FetchTimeout: time.Minute}, reg)
		start := time.Now()
		f := inspectOne(t, i, Request{Refs: []string{ref}}, time.Minute)
		took := time.Since(start)
		t.Logf("%d KiB of gzip holding a tar and 8 GiB of zeros after it: %s, %s", len(blob)>>10, took.Round(time.Millisecond), f.Why)
		mustKnown(t, f)
		if took > time.Second {
			t.Errorf("indexing took %s: the zeros after the tar were decompressed", took)
		}
	})
	t.Run("a file of zeros beyond 4×maxImageBytes fails its image", func(t *testing.T) {
		blob := gzipOf(t, func(w io.Writer) {
			tw := tar.NewWriter(w)
			tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(zeros))})
			tw.Write(zeros)
			tw.Close()
		})
		ref := reg.push(t, "inside:1", imageOf(t, "", "", "linux/amd64", blobLayer(blob)))
		i, _ := newTestInspector(t, Options{MaxImageBytes: 1 << 20}, reg)
		f := inspectOne(t, i, Request{Refs: []string{ref}}, 10*time.Second)
		if want := "decompresses to more than 4194304 bytes (4× images.maxImageSize)"; f.Status != policies.ImageFailed || !strings.Contains(f.Why, want) {
			t.Errorf("%d KiB of gzip of a 64 MiB file: status %d why %q; want failed with %q", len(blob)>>10, f.Status, f.Why, want)
		}
	})
}

func TestStalledBlobFailsItsImageNotTheRegistry(t *testing.T) {
	reg := newTestRegistry(t)
	stalled := layerOf(t, file("stalled"))
	ref := reg.push(t, "stall:1", imageOf(t, "", "", "linux/amd64", stalled))
	ok := reg.push(t, "ok:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("ok"))))
	stallBlob(t, reg, "stall", stalled, make(chan struct{}))
	i, _ := newTestInspector(t, Options{FetchTimeout: 500 * time.Millisecond, Backoff: time.Minute}, reg)
	f := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "timed out after 500ms") {
		t.Fatalf("stalled blob: status %d why %q", f.Status, f.Why)
	}
	manifests := reg.count("manifests")
	if f := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second); f.Status != policies.ImageFailed || reg.count("manifests") != manifests {
		t.Errorf("the stalled image again: status %d why %q after %d manifest GETs; want failed from the cache", f.Status, f.Why, reg.count("manifests")-manifests)
	}
	if f := inspectOne(t, i, Request{Refs: []string{ok}}, 5*time.Second); f.Status != policies.ImageKnown {
		t.Errorf("another image of the registry: status %d why %q; want known (a blob's timeout must not back the registry off)", f.Status, f.Why)
	}
}

func TestIndexBytesAreBoundedPerImage(t *testing.T) {
	reg := newTestRegistry(t)
	pad := strings.Repeat("p", 90)
	var l1, l2 []entry
	for k := range 10 {
		l1 = append(l1, file(fmt.Sprintf("one/%s%02d", pad, k)))
		l2 = append(l2, file(fmt.Sprintf("two/%s%02d", pad, k)))
	}
	small := reg.push(t, "small:1", imageOf(t, "", "", "linux/amd64", layerOf(t, l1...)))
	big := reg.push(t, "big:1", imageOf(t, "", "", "linux/amd64", layerOf(t, l1...), layerOf(t, l2...)))
	i, _ := newTestInspector(t, Options{MaxIndexBytes: 1500}, reg)
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{small}}, 5*time.Second))
	f := inspectOne(t, i, Request{Refs: []string{big}}, 5*time.Second)
	if want := "more than 1500 bytes (images.maxIndexSize)"; f.Status != policies.ImageFailed || !strings.Contains(f.Why, want) {
		t.Errorf("two layers of 1000 path bytes each: status %d why %q; want failed with %q", f.Status, f.Why, want)
	}
}

func TestLayersAreSharedBeforeTheirImageCompletes(t *testing.T) {
	reg := newTestRegistry(t)
	base := layerOf(t, file("usr/lib/libc.so"), file("etc/os-release"))
	slowA := layerOf(t, file("a"))
	release := make(chan struct{})
	a := reg.push(t, "a:1", imageOf(t, "", "", "linux/amd64", base, slowA))
	b := reg.push(t, "b:1", imageOf(t, "2", "", "linux/amd64", base, layerOf(t, file("b"))))
	stallBlob(t, reg, "a", slowA, release)
	i, _ := newTestInspector(t, Options{}, reg)
	if f := inspectOne(t, i, Request{Refs: []string{a}}, 0); f.Status != policies.ImagePending {
		t.Fatalf("a: status %d why %q; want pending", f.Status, f.Why)
	}
	// a's config, its base layer, and the stalled one.
	deadline := time.Now().Add(5 * time.Second)
	for reg.count("blobs") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	before := reg.count("blobs")
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{b}}, 5*time.Second))
	if n := reg.count("blobs") - before; n != 2 {
		t.Errorf("b while a is still fetched: %d blob GETs, want 2 (its config and its own layer; base is a's)", n)
	}
	close(release)
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{a}}, 5*time.Second))
	t.Logf("a and b sharing a layer: %d blob GETs in all", reg.count("blobs"))
}

func TestAddBuildsOnTheCachedLayer(t *testing.T) {
	cached, other := indexOf(t, file("cached")), indexOf(t, file("other"))
	mc := newMemCache(1<<20, func(int64) {})
	if got := mc.put("L:base", cached); got != cached {
		t.Fatalf("put returned another layer")
	}
	if got := mc.put("L:base", other); got != cached {
		t.Errorf("put of a cached digest did not return the cached layer")
	}
	e := mc.add("sha256:b", imageRecord{Layers: []string{"L:base"}}, []*imageindex.Layer{other})
	if k, _ := e.fs.Stat("/cached"); k != policies.FileRegular {
		t.Errorf("the image's tree is not built on the cached layer (its own copy would be held twice, once uncounted)")
	}
	if want := int64(cached.Bytes() + imageOverhead); mc.bytes() != want {
		t.Errorf("cache holds %d bytes, want %d", mc.bytes(), want)
	}
}

// TestSharedFetchesStayWithinTheirRegistry: a fetch of a manifest or layer
// digest another registry stalls on is not merged with it.
func TestSharedFetchesStayWithinTheirRegistry(t *testing.T) {
	for _, tc := range []struct {
		name string
		same bool // the same image, else two images sharing a layer
	}{{"same image", true}, {"shared layer", false}} {
		t.Run(tc.name, func(t *testing.T) {
			stalledReg, healthyReg := newTestRegistry(t), newTestRegistry(t)
			shared := layerOf(t, file("usr/local/tomcat/conf/server.xml"))
			img := imageOf(t, "1000", "", "linux/amd64", shared)
			sref := stalledReg.push(t, "app:1", img)
			if !tc.same {
				img = imageOf(t, "2000", "", "linux/amd64", shared)
			}
			href := healthyReg.push(t, "app:1", img)
			stallBlob(t, stalledReg, "app", shared, make(chan struct{}))
			i, _ := newTestInspector(t, Options{FetchTimeout: 2 * time.Second}, stalledReg, healthyReg)
			if f := inspectOne(t, i, Request{Refs: []string{sref}}, 100*time.Millisecond); f.Status != policies.ImagePending {
				t.Fatalf("stalled: status %d why %q; want pending", f.Status, f.Why)
			}
			start := time.Now()
			f := inspectOne(t, i, Request{Refs: []string{href}}, 5*time.Second)
			if f.Status != policies.ImageKnown {
				t.Errorf("healthy registry's image after %s: status %d why %q; want known", time.Since(start).Round(time.Millisecond), f.Status, f.Why)
			}
			if why, ok := i.backedOff(healthyReg.host, time.Now()); ok {
				t.Errorf("the healthy registry is backed off: %s", why)
			}
		})
	}
}

// TestSharedLayerFetchBoundByAnotherImagesBudget: an image that waited for
// a layer fetch bounded by another image's smaller remaining budget
// fetches it again within its own.
func TestSharedLayerFetchBoundByAnotherImagesBudget(t *testing.T) {
	reg := newTestRegistry(t)
	pad := strings.Repeat("p", 90)
	var big, shared []entry
	for k := range 10 {
		big = append(big, file(fmt.Sprintf("big/%s%02d", pad, k)))
		shared = append(shared, file(fmt.Sprintf("shared/%s%02d", pad, k)))
	}
	sharedLayer := layerOf(t, shared...)
	release := make(chan struct{})
	// a indexes 1000 path bytes before the shared layer, b none: the
	// shared layer (1000 bytes) fits b's budget, not a's.
	a := reg.push(t, "app:a", imageOf(t, "", "", "linux/amd64", layerOf(t, big...), sharedLayer))
	b := reg.push(t, "app:b", imageOf(t, "2", "", "linux/amd64", sharedLayer))
	stallBlob(t, reg, "app", sharedLayer, release)
	i, _ := newTestInspector(t, Options{MaxIndexBytes: 1500}, reg)
	waitBlobs := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for reg.count("blobs") < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	i.Inspect(t.Context(), Request{Refs: []string{a}}, 0)
	waitBlobs(3) // a's config, big, shared (stalled)
	i.Inspect(t.Context(), Request{Refs: []string{b}}, 0)
	waitBlobs(4) // b's config; b then waits for a's fetch of shared
	time.Sleep(50 * time.Millisecond)
	close(release)
	if f := inspectOne(t, i, Request{Refs: []string{b}}, 5*time.Second); f.Status != policies.ImageKnown {
		t.Errorf("b: status %d why %q; want known (a's budget is not b's)", f.Status, f.Why)
	}
	if f := inspectOne(t, i, Request{Refs: []string{a}}, 5*time.Second); f.Status != policies.ImageFailed || !strings.Contains(f.Why, "images.maxIndexSize") {
		t.Errorf("a: status %d why %q; want failed, over maxIndexSize", f.Status, f.Why)
	}
}
