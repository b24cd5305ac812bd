package check

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/podguard/podguard/manifests"
	"github.com/podguard/podguard/policies"
)

// fakeImages knows the images in known, reports every other one pending,
// and counts the calls by wait.
type fakeImages struct {
	known    map[string]policies.ImageFacts
	prefetch int
	waited   []time.Duration
}

func (f *fakeImages) InspectPod(_ context.Context, pod *policies.Pod, platform string, _ []string, wait time.Duration) map[string]policies.ImageFacts {
	if wait == 0 {
		f.prefetch++
	} else {
		f.waited = append(f.waited, wait)
	}
	out := map[string]policies.ImageFacts{}
	for _, img := range pod.Images() {
		if k, ok := f.known[img.Ref]; ok {
			k.Platform = platform
			out[img.Ref] = k
			continue
		}
		out[img.Ref] = policies.ImageFacts{Ref: img.Ref, Status: policies.ImagePending, Why: "the registry did not answer within 1s"}
	}
	return out
}

// emptyFS is an image that ships nothing.
type emptyFS struct{}

func (emptyFS) Stat(p string) (policies.FileKind, string) {
	if p == "/" {
		return policies.FileDir, p
	}
	return policies.FileAbsent, p
}
func (emptyFS) Files(string, int) (int, []string) { return 0, nil }

const imagePods = `apiVersion: v1
kind: Pod
metadata: {name: known, namespace: shop}
spec:
  containers:
  - {name: app, image: "127.0.0.1:5000/app:1"}
---
apiVersion: v1
kind: Pod
metadata: {name: pending, namespace: shop}
spec:
  containers:
  - {name: app, image: "127.0.0.1:5000/app:1"}
  - {name: slow, image: "127.0.0.1:5000/slow:1"}
`

func runWithImages(t *testing.T, src policies.ImageSource) *Report {
	t.Helper()
	docs, warns, errs := manifests.Load([]string{"-"}, strings.NewReader(imagePods))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	opts := Options{Namespace: "default", Images: src, ImageWait: time.Minute}
	rep, err := Run(docs, warns, nil, policies.NewEngine(defaultSettings()), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func defaultSettings() *policies.Settings {
	s := &policies.Settings{}
	s.Default()
	return s
}

func TestImagesAreInspectedOncePerPodAfterOnePrefetch(t *testing.T) {
	src := &fakeImages{known: map[string]policies.ImageFacts{
		"127.0.0.1:5000/app:1": {Ref: "127.0.0.1:5000/app:1", Status: policies.ImageKnown, Digest: "sha256:abc", User: "1000", FS: emptyFS{}},
	}}
	rep := runWithImages(t, src)
	if src.prefetch != 2 || len(src.waited) != 2 || src.waited[0] != time.Minute {
		t.Errorf("prefetches %d, waits %v: want both pods prefetched, then each waited for once with the given wait", src.prefetch, src.waited)
	}
	known, pending := rep.Results[0], rep.Results[1]
	if !known.ImageAware || len(known.Images) != 1 || known.Images[0] != (ImageResult{Ref: "127.0.0.1:5000/app:1", Status: "inspected", Digest: "sha256:abc", Platform: "linux/amd64", User: "1000"}) {
		t.Errorf("known pod: imageAware %v, images %+v", known.ImageAware, known.Images)
	}
	if pending.ImageAware || len(pending.Images) != 2 || pending.Images[1].Status != "pending" || pending.Images[1].Reason == "" {
		t.Errorf("pending pod: imageAware %v, images %+v", pending.ImageAware, pending.Images)
	}
	if rep.Summary.ImageAware == nil || *rep.Summary.ImageAware != 1 {
		t.Errorf("summary imageAware = %v, want 1", rep.Summary.ImageAware)
	}
}

func TestImageAwareResultsAreMarkedInEveryFormat(t *testing.T) {
	rep := runWithImages(t, &fakeImages{known: map[string]policies.ImageFacts{
		"127.0.0.1:5000/app:1": {Ref: "127.0.0.1:5000/app:1", Status: policies.ImageKnown, Digest: "sha256:abc", FS: emptyFS{}},
	}})
	// Text lists only objects with findings: give both one.
	for i := range rep.Results {
		rep.Results[i].Warnings = append(rep.Results[i].Warnings, "podguard [mount-shadowing] spec: something")
	}

	text := string(render(t, rep, FormatText))
	for _, want := range []string{"Pod shop/known (image-aware)\n", "IMAGE 127.0.0.1:5000/slow:1 pending: the registry did not answer within 1s", "1 of 2 image-aware"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Pod shop/pending (image-aware)") {
		t.Errorf("a pod with a pending image is marked image-aware:\n%s", text)
	}

	var js struct {
		Results []struct {
			ImageAware bool          `json:"imageAware"`
			Images     []ImageResult `json:"images"`
		} `json:"results"`
		Summary struct {
			ImageAware *int `json:"imageAware"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(render(t, rep, FormatJSON), &js); err != nil {
		t.Fatal(err)
	}
	if !js.Results[0].ImageAware || js.Results[1].ImageAware || js.Results[0].Images[0].Digest != "sha256:abc" || js.Summary.ImageAware == nil || *js.Summary.ImageAware != 1 {
		t.Errorf("JSON: %+v", js)
	}

	_, _, _, results := sarif(t, rep)
	props, _ := results[0]["properties"].(map[string]any)
	if props["imageAware"] != true {
		t.Errorf("SARIF result properties = %v, want imageAware true", results[0]["properties"])
	}
	if props, _ := results[1]["properties"].(map[string]any); props["imageAware"] != false {
		t.Errorf("SARIF result properties = %v, want imageAware false", results[1]["properties"])
	}

	junit := string(render(t, rep, FormatJUnit))
	if !strings.Contains(junit, `<property name="podguard.imageAware" value="true"></property>`) || !strings.Contains(junit, `<property name="podguard.imageAware" value="false"></property>`) {
		t.Errorf("JUnit lacks the imageAware properties:\n%s", junit)
	}
}

func TestWithoutImagesNothingIsMarked(t *testing.T) {
	rep := runWithImages(t, nil)
	out := string(render(t, rep, FormatJSON))
	if strings.Contains(out, "imageAware") || strings.Contains(out, `"images"`) {
		t.Errorf("a check without --images mentions images:\n%s", out)
	}
}
