package inspector

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podguard/podguard/policies"
)

func inspectOne(t testing.TB, i *Inspector, req Request, wait time.Duration) policies.ImageFacts {
	t.Helper()
	out := i.Inspect(context.Background(), req, wait)
	if len(out) != 1 {
		t.Fatalf("Inspect returned %d facts, want 1", len(out))
	}
	for _, f := range out {
		return f
	}
	panic("unreachable")
}

func mustKnown(t testing.TB, f policies.ImageFacts) {
	t.Helper()
	if f.Status != policies.ImageKnown || f.FS == nil {
		t.Fatalf("%s: status %d, why %q; want known", f.Ref, f.Status, f.Why)
	}
}

func TestInspectSyntheticImages(t *testing.T) {
	reg := newTestRegistry(t)
	base := layerOf(t, dir("etc/"), file("etc/passwd"), dir("usr/"), dir("usr/bin/"), file("usr/bin/sh"))
	images := map[string]struct {
		img      v1.Image
		user     string
		workdir  string
		present  []string
		absent   []string
		confFile int // files under /usr/local/tomcat/conf
	}{
		"tomcat:9": {
			img: imageOf(t, "", "/usr/local/tomcat", "linux/amd64", base,
				layerOf(t, dir("usr/local/tomcat/conf/"), file("usr/local/tomcat/conf/server.xml"), file("usr/local/tomcat/conf/web.xml"),
					file("usr/local/tomcat/conf/context.xml"), file("usr/local/tomcat/conf/logging.properties"), dir("usr/local/tomcat/logs/"))),
			workdir: "/usr/local/tomcat", present: []string{"/usr/local/tomcat/conf/server.xml"}, absent: []string{"/etc/pki"}, confFile: 4,
		},
		"ubuntu:24.04": {
			img:  imageOf(t, "0", "", "linux/amd64", base, layerOf(t, dir("etc/ssl/"), dir("etc/ssl/certs/"), file("etc/ssl/certs/ca-certificates.crt"))),
			user: "0", present: []string{"/etc/ssl/certs/ca-certificates.crt"}, absent: []string{"/etc/pki", "/etc/pki/tls/certs"},
		},
		"ubi:9": {
			img:  imageOf(t, "1001", "/opt/app-root/src", "linux/amd64", base, zstdLayerOf(t, dir("etc/pki/"), dir("etc/pki/tls/"), dir("etc/pki/tls/certs/"), file("etc/pki/tls/certs/ca-bundle.crt"))),
			user: "1001", workdir: "/opt/app-root/src", present: []string{"/etc/pki/tls/certs/ca-bundle.crt"},
		},
		"named:1": {
			img:  imageOf(t, "tomcat", "", "linux/amd64", base),
			user: "tomcat", present: []string{"/usr/bin/sh"},
		},
		"whiteout:1": {
			img: imageOf(t, "", "", "linux/amd64", base,
				layerOf(t, dir("opt/"), dir("opt/app/"), file("opt/app/config.yaml"), file("opt/keep")),
				layerOf(t, file("opt/.wh.app"))),
			present: []string{"/opt/keep"}, absent: []string{"/opt/app/config.yaml"},
		},
	}
	i, _ := newTestInspector(t, Options{}, reg)
	for tag, want := range images {
		ref := reg.push(t, tag, want.img)
		t.Run(tag, func(t *testing.T) {
			f := inspectOne(t, i, Request{Namespace: "default", Refs: []string{ref}}, 10*time.Second)
			mustKnown(t, f)
			d, _ := want.img.Digest()
			if f.Ref != ref || f.Digest != d.String() || f.Platform != "linux/amd64" || f.User != want.user || f.WorkingDir != want.workdir {
				t.Errorf("facts = ref %q digest %s platform %s user %q workdir %q; want %q %s linux/amd64 %q %q",
					f.Ref, f.Digest, f.Platform, f.User, f.WorkingDir, ref, d, want.user, want.workdir)
			}
			for _, p := range want.present {
				if k, _ := f.FS.Stat(p); k == policies.FileAbsent {
					t.Errorf("Stat(%s) = absent, want present", p)
				}
			}
			for _, p := range want.absent {
				if k, _ := f.FS.Stat(p); k != policies.FileAbsent {
					t.Errorf("Stat(%s) = %d, want absent", p, k)
				}
			}
			if want.confFile > 0 {
				if n, _ := f.FS.Files("/usr/local/tomcat/conf", 10); n != want.confFile {
					t.Errorf("Files(conf) = %d, want %d", n, want.confFile)
				}
			}
		})
	}
}

func TestInspectMultiArchPicksThePlatform(t *testing.T) {
	reg := newTestRegistry(t)
	base := layerOf(t, file("bin/sh"))
	amd := imageOf(t, "1", "", "linux/amd64", base)
	arm := imageOf(t, "2", "", "linux/arm64/v8", base)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref := reg.push(t, "multi:1", idx)
	amdDigest, _ := amd.Digest()
	armDigest, _ := arm.Digest()
	i, _ := newTestInspector(t, Options{}, reg)
	for _, tc := range []struct {
		platform, user, digest, why string
	}{
		{"linux/amd64", "1", amdDigest.String(), ""},
		{"", "1", amdDigest.String(), ""},
		{"linux/arm64", "2", armDigest.String(), ""},
		{"linux/arm64/v8", "2", armDigest.String(), ""},
		{"linux/s390x", "", "", "no linux/s390x image in the index"},
	} {
		f := inspectOne(t, i, Request{Refs: []string{ref}, Platform: tc.platform}, 10*time.Second)
		if tc.why != "" {
			if f.Status != policies.ImageFailed || !strings.Contains(f.Why, tc.why) {
				t.Errorf("%q: status %d why %q; want failed with %q", tc.platform, f.Status, f.Why, tc.why)
			}
			continue
		}
		mustKnown(t, f)
		if f.User != tc.user || f.Digest != tc.digest {
			t.Errorf("%q: user %q digest %s; want %q %s", tc.platform, f.User, f.Digest, tc.user, tc.digest)
		}
	}
}

func TestTagCacheAvoidsManifestGETsUntilItExpires(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:1", imageOf(t, "1000", "", "linux/amd64", layerOf(t, file("app"))))
	const ttl = 300 * time.Millisecond
	i, _ := newTestInspector(t, Options{TagTTL: ttl, Backoff: time.Minute}, reg)
	req := Request{Refs: []string{ref}}
	first := inspectOne(t, i, req, 10*time.Second)
	mustKnown(t, first)
	if n := reg.count("manifests"); n != 1 {
		t.Fatalf("first Inspect: %d manifest requests, want 1", n)
	}
	blobs := reg.count("blobs")
	mustKnown(t, inspectOne(t, i, req, 10*time.Second))
	if n := reg.count("manifests"); n != 1 {
		t.Errorf("cached Inspect: %d manifest requests, want still 1", n)
	}
	// eventually waits for the background re-resolution.
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("after 5s: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// warm inspects ref after its TTL, with a slow registry: the last
	// digest is served at once.
	warm := func(what string) policies.ImageFacts {
		t.Helper()
		time.Sleep(ttl + 50*time.Millisecond)
		reg.delay.Store(int64(300 * time.Millisecond))
		defer reg.delay.Store(0)
		start := time.Now()
		f := inspectOne(t, i, req, 10*time.Second)
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("%s: a warm Inspect after TagTTL took %s, waiting for the registry", what, took)
		}
		mustKnown(t, f)
		return f
	}
	if f := warm("same digest"); f.Digest != first.Digest {
		t.Errorf("after TagTTL: digest %s, want %s", f.Digest, first.Digest)
	}
	eventually("one manifest HEAD", func() bool { return reg.count("HEAD manifests") == 1 })
	if n := reg.count("GET manifests"); n != 1 {
		t.Errorf("after TagTTL: %d manifest GETs, want still 1 (a HEAD re-resolves)", n)
	}
	if n := reg.count("blobs"); n != blobs {
		t.Errorf("after TagTTL: %d blob GETs, want still %d (the digest's index is cached)", n, blobs)
	}

	// The tag moves: the stale answer that finds out is the old digest;
	// after that the new image is inspected, and served once known.
	moved := imageOf(t, "2000", "", "linux/amd64", layerOf(t, file("app2")))
	reg.push(t, "app:1", moved)
	movedDigest, _ := moved.Digest()
	if f := warm("moved tag"); f.Digest != first.Digest {
		t.Errorf("a moved tag: digest %s served at once, want the last known %s", f.Digest, first.Digest)
	}
	eventually("the moved tag's new digest", func() bool {
		return inspectOne(t, i, req, 0).Digest == movedDigest.String()
	})

	// A failing registry: the last digest is kept.
	reg.status.Store(http.StatusInternalServerError)
	if f := warm("failing registry"); f.Digest != movedDigest.String() {
		t.Errorf("failing registry: digest %s, want %s", f.Digest, movedDigest)
	}
	eventually("the registry backed off", func() bool { _, ok := i.backedOff(reg.host, time.Now()); return ok })
	if f := inspectOne(t, i, req, 0); f.Status != policies.ImageKnown || f.Digest != movedDigest.String() {
		t.Errorf("after a failed re-resolution: status %d digest %s why %q; want the last digest kept", f.Status, f.Digest, f.Why)
	}
	reg.status.Store(0)
}

func TestReResolutionFallsBackToGETWithoutHEAD(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:1", imageOf(t, "1000", "", "linux/amd64", layerOf(t, file("app"))))
	reg.noHead.Store(true)
	i, _ := newTestInspector(t, Options{TagTTL: 100 * time.Millisecond}, reg)
	req := Request{Refs: []string{ref}}
	mustKnown(t, inspectOne(t, i, req, 10*time.Second))
	time.Sleep(150 * time.Millisecond)
	mustKnown(t, inspectOne(t, i, req, 10*time.Second))
	deadline := time.Now().Add(5 * time.Second)
	for reg.count("GET manifests") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h, g := reg.count("HEAD manifests"), reg.count("GET manifests"); h != 1 || g != 2 {
		t.Errorf("a registry without HEAD: %d HEADs and %d GETs, want 1 (refused) and 2", h, g)
	}
	if _, ok := i.backedOff(reg.host, time.Now()); ok {
		t.Errorf("a 405 on HEAD backed the registry off")
	}
}

func TestDigestPinnedRefsNeverExpire(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, "1000", "", "linux/amd64", layerOf(t, file("app")))
	reg.push(t, "app:1", img)
	d, _ := img.Digest()
	ref := reg.host + "/app@" + d.String()
	i, _ := newTestInspector(t, Options{TagTTL: 50 * time.Millisecond}, reg)
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{ref}}, 10*time.Second))
	manifests := reg.count("manifests")
	time.Sleep(100 * time.Millisecond)
	mustKnown(t, inspectOne(t, i, Request{Refs: []string{ref}}, 10*time.Second))
	time.Sleep(100 * time.Millisecond)
	if n := reg.count("manifests"); n != manifests {
		t.Errorf("a digest-pinned ref after TagTTL: %d more manifest requests, want none", n-manifests)
	}
}

func TestConcurrentInspectsFetchOnce(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:1", imageOf(t, "1000", "", "linux/amd64", layerOf(t, file("a")), layerOf(t, file("b"))))
	reg.delay.Store(int64(50 * time.Millisecond))
	i, _ := newTestInspector(t, Options{}, reg)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			mustKnown(t, inspectOne(t, i, Request{Refs: []string{ref, ref}}, 10*time.Second))
		})
	}
	wg.Wait()
	// One manifest, one config, two layers.
	if m, b := reg.count("manifests"), reg.count("blobs"); m != 1 || b != 3 {
		t.Errorf("8 concurrent Inspects: %d manifest and %d blob GETs, want 1 and 3", m, b)
	}
}

func TestBudgetReturnsPendingThenKnown(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "slow:1", imageOf(t, "1000", "", "linux/amd64", layerOf(t, file("a"))))
	reg.delay.Store(int64(200 * time.Millisecond))
	i, _ := newTestInspector(t, Options{}, reg)
	const wait = 100 * time.Millisecond
	start := time.Now()
	f := inspectOne(t, i, Request{Refs: []string{ref}}, wait)
	if took := time.Since(start); took > wait+50*time.Millisecond {
		t.Errorf("Inspect took %s, want at most %s", took, wait+50*time.Millisecond)
	}
	if f.Status != policies.ImagePending || !strings.Contains(f.Why, "not inspected yet: the fetch was still running after") {
		t.Errorf("slow registry: status %d why %q; want pending", f.Status, f.Why)
	}
	// The fetch went on in the background.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if f = inspectOne(t, i, Request{Refs: []string{ref}}, 0); f.Status == policies.ImageKnown {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("after the background fetch: status %d why %q; want known", f.Status, f.Why)
}

func TestFailingRegistryIsBackedOffWithoutDialling(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("a"))))
	ref2 := reg.push(t, "other:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("b"))))
	reg.status.Store(http.StatusInternalServerError)
	i, dl := newTestInspector(t, Options{Backoff: 20 * time.Second}, reg)
	f := inspectOne(t, i, Request{Refs: []string{ref}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "HTTP 500") {
		t.Fatalf("500: status %d why %q; want failed with HTTP 500", f.Status, f.Why)
	}
	dials, requests := len(dl.list()), reg.count("other")+reg.count("manifests")
	reg.status.Store(0)
	f = inspectOne(t, i, Request{Refs: []string{ref2}}, 5*time.Second)
	want := fmt.Sprintf("registry %s failed 0s ago (HTTP 500); retrying after 20s", reg.host)
	if f.Status != policies.ImageFailed || f.Why != want {
		t.Errorf("backed off: status %d why %q; want failed with %q", f.Status, f.Why, want)
	}
	if d, r := len(dl.list()), reg.count("other")+reg.count("manifests"); d != dials || r != requests {
		t.Errorf("during back-off: %d dials and %d requests, want %d and %d", d, r, dials, requests)
	}
}

func TestPullSecretsAreReadOnlyAfterA401(t *testing.T) {
	reg := newTestRegistry(t)
	public := reg.push(t, "public:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("a"))))
	private := reg.push(t, "team/private:1", imageOf(t, "1000", "", "linux/amd64", layerOf(t, file("secret-app"))))
	reg.private["team/private"] = "puller:s3cr3t-pa55"
	var reads atomic.Int32
	secrets := map[string]*corev1.Secret{
		"apps/myregistrykey": {Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{
			corev1.DockerConfigJsonKey: []byte(`{"auths":{"http://` + reg.host + `/v1/":{"username":"puller","password":"s3cr3t-pa55"}}}`)}},
		"apps/wrong": {Type: corev1.SecretTypeDockercfg, Data: map[string][]byte{
			corev1.DockerConfigKey: []byte(`{"` + reg.host + `":{"auth":"cHVsbGVyOndyb25nLXBhc3N3b3Jk"}}`)}},
		"apps/elsewhere": {Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{
			corev1.DockerConfigJsonKey: []byte(`{"auths":{"10.0.0.130:5000":{"username":"puller","password":"s3cr3t-pa55"}}}`)}},
	}
	i, _ := newTestInspector(t, Options{PullSecrets: func(_ context.Context, ns, n string) (*corev1.Secret, error) {
		reads.Add(1)
		if s, ok := secrets[ns+"/"+n]; ok {
			return s.DeepCopy(), nil
		}
		return nil, fmt.Errorf("secrets %q not found", n)
	}}, reg)

	mustKnown(t, inspectOne(t, i, Request{Namespace: "apps", Refs: []string{public}, PullSecrets: []string{"myregistrykey"}}, 5*time.Second))
	if n := reads.Load(); n != 0 {
		t.Errorf("public image: %d secret reads, want 0", n)
	}
	f := inspectOne(t, i, Request{Namespace: "apps", Refs: []string{private}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "401") || !strings.Contains(f.Why, "no imagePullSecrets") {
		t.Errorf("private, anonymous: status %d why %q; want failed with 401", f.Status, f.Why)
	}
	f = inspectOne(t, i, Request{Namespace: "apps", Refs: []string{private}, PullSecrets: []string{"elsewhere", "wrong"}}, 5*time.Second)
	if f.Status != policies.ImageFailed || !strings.Contains(f.Why, `"elsewhere" has no credentials`) || !strings.Contains(f.Why, `"wrong" was refused`) {
		t.Errorf("private, wrong secrets: status %d why %q", f.Status, f.Why)
	}
	f = inspectOne(t, i, Request{Namespace: "apps", Refs: []string{private}, PullSecrets: []string{"wrong", "myregistrykey"}}, 5*time.Second)
	mustKnown(t, f)
	if f.User != "1000" {
		t.Errorf("private with secret: user %q, want 1000", f.User)
	}
	// The same namespace and secrets reuse the resolution without reading
	// the secrets again.
	reads.Store(0)
	mustKnown(t, inspectOne(t, i, Request{Namespace: "apps", Refs: []string{private}, PullSecrets: []string{"wrong", "myregistrykey"}}, 5*time.Second))
	if n := reads.Load(); n != 0 {
		t.Errorf("cached private image: %d secret reads, want 0", n)
	}
	// A public image resolved anonymously is shared with every namespace.
	manifests := reg.count("manifests")
	mustKnown(t, inspectOne(t, i, Request{Namespace: "other", Refs: []string{public}}, 5*time.Second))
	if n := reg.count("manifests"); n != manifests {
		t.Errorf("a public image from another namespace: %d manifest GETs, want none", n-manifests)
	}
	// Another namespace without the secret cannot reuse the resolution.
	reads.Store(0)
	f = inspectOne(t, i, Request{Namespace: "other", Refs: []string{private}, PullSecrets: []string{"myregistrykey"}}, 5*time.Second)
	if f.Status != policies.ImageFailed {
		t.Errorf("private from another namespace: status %d why %q; want failed", f.Status, f.Why)
	}
	if reads.Load() == 0 {
		t.Errorf("another namespace: the secret reader was not asked")
	}
	for _, s := range []string{"s3cr3t", "cHVsbGVy", "wrong-password"} {
		if strings.Contains(f.Why, s) {
			t.Errorf("Why %q quotes the secret", f.Why)
		}
	}
}

// After a tag's TTL, a re-resolution that shows the tag moved to an image
// podguard cannot index, or that the tag is gone, ends the old answer: the
// pod is judged by the image it will run, or by the heuristics with a
// warning, never by the image the tag used to name.
func TestAMovedTagNeverKeepsTheOldImagesFacts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		move  func(t *testing.T, reg *testRegistry)
		wants string // in the Why of the answer once the move is seen
	}{
		{"to an image over maxEntries", func(t *testing.T, reg *testRegistry) {
			reg.push(t, "app:1", imageOf(t, "", "", "linux/amd64", layerOf(t, file("a"), file("b"), file("c"), file("d"), file("e"), file("f"))))
		}, "images.maxEntries"},
		{"away: the tag is gone", func(t *testing.T, reg *testRegistry) { reg.status.Store(http.StatusNotFound) }, "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t)
			ref := reg.push(t, "app:1", imageOf(t, "1000", "", "linux/amd64", layerOf(t, file("app"))))
			const ttl = 200 * time.Millisecond
			i, _ := newTestInspector(t, Options{TagTTL: ttl, Backoff: time.Minute, MaxEntries: 4}, reg)
			req := Request{Refs: []string{ref}}
			old := inspectOne(t, i, req, 10*time.Second)
			mustKnown(t, old)

			tc.move(t, reg)
			time.Sleep(ttl + 50*time.Millisecond)
			inspectOne(t, i, req, 0) // stale: served once, and checked again
			deadline := time.Now().Add(5 * time.Second)
			var f policies.ImageFacts
			for {
				f = inspectOne(t, i, req, 2*time.Second)
				if f.Digest != old.Digest || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if f.Status != policies.ImageFailed || !strings.Contains(f.Why, tc.wants) {
				t.Fatalf("after the move: status %d digest %s why %q; want failed, naming %q", f.Status, f.Digest, f.Why, tc.wants)
			}
			for range 10 {
				if f := inspectOne(t, i, req, 0); f.Known() && f.Digest == old.Digest {
					t.Fatalf("the old image's facts are served again after the move")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
