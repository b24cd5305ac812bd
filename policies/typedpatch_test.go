package policies

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podguard/podguard/internal/typedpatch/patchtest"
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
		patchtest.Check(t, input, subject, out)
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
				patchtest.Check(t, fmt.Sprintf("pod %d settings %d world %d", i, vi, wi), in, out)
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
