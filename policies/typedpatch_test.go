package policies

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/podguard/podguard/internal/typedpatch"
)

// TestTypedPatchMatchesAFullDiff is the differential test behind the
// webhook's patches. /mutate used to answer with jsonpatch.CreatePatch over
// both pods marshalled whole; it now answers with typedpatch.Diff, which
// encodes only the fields that changed. For every mutation golden and for
// generated pods under every config variant and cluster, both patches,
// applied to the pod as it came in, must give the same document, and that
// document must be the mutated pod.
func TestTypedPatchMatchesAFullDiff(t *testing.T) {
	compared := 0
	engine := NewEngine(fixtureSettings(t))
	for _, input := range fixtureInputs(t, "testdata/mutate") {
		world, subject := loadFixture(t, input)
		res, err := engine.Mutate(PodOf(subject), world)
		if err != nil {
			t.Fatal(err)
		}
		out := subject.DeepCopyObject()
		SetPod(out, res.Pod)
		compareTypedPatch(t, input, subject, out)
		compared++
	}

	rng := rand.New(rand.NewPCG(20261202, 20261202))
	variants := settingsVariants()
	worlds := propertyWorlds()
	mutated := 0
	for i := range 60 {
		pod := randomPod(rng)
		for vi, s := range variants {
			engine := NewEngine(s)
			for wi, world := range worlds {
				res, err := engine.Mutate(pod, world)
				if err != nil {
					t.Fatal(err)
				}
				in := &corev1.Pod{ObjectMeta: pod.Meta, Spec: pod.Spec}
				out := &corev1.Pod{ObjectMeta: res.Pod.Meta, Spec: res.Pod.Spec}
				compareTypedPatch(t, fmt.Sprintf("pod %d settings %d world %d", i, vi, wi), in, out)
				compared++
				if len(res.Mutated) > 0 {
					mutated++
				}
			}
		}
	}
	if mutated < compared/2 {
		t.Errorf("only %d of %d generated cases were mutated: the comparison is mostly of unchanged pods", mutated, compared)
	}
}

// compareTypedPatch checks typedpatch.Diff(in, out) against the full diff.
func compareTypedPatch[T any](t *testing.T, name string, in, out T) {
	t.Helper()
	before, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	after, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	full, err := jsonpatch.CreatePatch(before, after)
	if err != nil {
		t.Fatal(err)
	}
	typed, err := typedpatch.Diff(in, out)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if (len(full) == 0) != (len(typed) == 0) {
		t.Errorf("%s: the full diff has %d operations, the typed one %d", name, len(full), len(typed))
	}
	want := applyOps(t, name, before, full)
	got := applyOps(t, name, before, typed)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s: the typed patch gives another pod\nfull:  %s\ntyped: %s", name, opsJSON(full), opsJSON(typed))
	}
	var mutated any
	if err := json.Unmarshal(after, &mutated); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mutated, got) {
		t.Errorf("%s: the typed patch does not give the mutated pod\npatch: %s", name, opsJSON(typed))
	}
}

func applyOps(t *testing.T, name string, doc []byte, ops []jsonpatch.JsonPatchOperation) any {
	t.Helper()
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatchapply.DecodePatch(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	patched, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("%s: applying %s: %v", name, raw, err)
	}
	var out any
	if err := json.Unmarshal(patched, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func opsJSON(ops []jsonpatch.JsonPatchOperation) string {
	raw, _ := json.Marshal(ops)
	return string(raw)
}
