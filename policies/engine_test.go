package policies

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// fakeMutator adds a label; it records the pods it saw.
type fakeMutator struct {
	name  string
	label string
	seen  []*Pod
	panic bool
}

func (f *fakeMutator) Name() string { return f.name }
func (f *fakeMutator) Mutate(in Input) (*Pod, Report) {
	f.seen = append(f.seen, in.Pod)
	if f.panic {
		var m map[string]string
		m["boom"] = "x" // a real nil-map panic, as a buggy policy would have
	}
	if in.Pod.Meta.Labels[f.label] == "yes" {
		return in.Pod, Report{}
	}
	out := in.Pod.DeepCopy()
	if out.Meta.Labels == nil {
		out.Meta.Labels = map[string]string{}
	}
	out.Meta.Labels[f.label] = "yes"
	return out, Report{}
}

type fakeValidator struct {
	name string
	deny bool
}

func (f *fakeValidator) Name() string { return f.name }
func (f *fakeValidator) Validate(in Input) Report {
	var r Report
	if f.deny {
		r.Deny(in.Pod.SpecPath.Child("containers").Index(0), "no")
	}
	r.Warn(nil, "looked")
	return r
}

func TestEngineRunsMutatorsInOrderOnEachOthersOutput(t *testing.T) {
	first, second := &fakeMutator{name: "first", label: "a"}, &fakeMutator{name: "second", label: "b"}
	e := &Engine{mutators: []Mutator{first, second}}
	in := testPod("nginx")
	res, err := e.Mutate(in, NewSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Mutated, ","); got != "first,second" {
		t.Errorf("Mutated = %q, want first,second", got)
	}
	if second.seen[0].Meta.Labels["a"] != "yes" {
		t.Error("second mutator did not see the first one's output")
	}
	if len(in.Meta.Labels) != 0 {
		t.Errorf("input pod was modified: %v", in.Meta.Labels)
	}
	if res.Outcomes["first"] != OutcomeMutated || res.Outcomes["second"] != OutcomeMutated {
		t.Errorf("outcomes = %v", res.Outcomes)
	}
	again, _ := e.Mutate(res.Pod, NewSnapshot())
	if len(again.Mutated) != 0 || again.Outcomes["first"] != OutcomeUnchanged {
		t.Errorf("second pass mutated %v, outcomes %v", again.Mutated, again.Outcomes)
	}
}

func TestEngineSkips(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		byNode      bool
		wantRun     []string
		wantSkipped string
		wantWarning string
	}{
		{name: "runs every policy on an ordinary pod", wantRun: []string{"first", "second"}},
		{name: "never touches a mirror pod a kubelet creates", annotations: map[string]string{corev1.MirrorPodAnnotationKey: "abc"}, byNode: true, wantSkipped: "mirror pod"},
		{name: "runs every policy on a pod that only carries the mirror annotation", annotations: map[string]string{corev1.MirrorPodAnnotationKey: "abc"}, wantRun: []string{"first", "second"}},
		{name: "runs every policy on a pod a kubelet creates without the mirror annotation", byNode: true, wantRun: []string{"first", "second"}},
		{name: "skips everything with skip: all", annotations: map[string]string{SkipAnnotation: "all"}, wantSkipped: SkipAnnotation + ": all"},
		{name: "skips the listed policies only", annotations: map[string]string{SkipAnnotation: " first ,"}, wantRun: []string{"second"}},
		{name: "warns about an unknown policy name and runs the rest", annotations: map[string]string{SkipAnnotation: "frist"},
			wantRun: []string{"first", "second"}, wantWarning: `names unknown policies "frist"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, second := &fakeMutator{name: "first", label: "a"}, &fakeMutator{name: "second", label: "b"}
			e := &Engine{mutators: []Mutator{first, second}}
			pod := testPod("nginx")
			pod.Meta.Annotations = tt.annotations
			pod.CreatedByNode = tt.byNode
			res, err := e.Mutate(pod, NewSnapshot())
			if err != nil {
				t.Fatal(err)
			}
			if res.Skipped != tt.wantSkipped {
				t.Errorf("Skipped = %q, want %q", res.Skipped, tt.wantSkipped)
			}
			if got := strings.Join(res.Mutated, ","); got != strings.Join(tt.wantRun, ",") {
				t.Errorf("Mutated = %q, want %q", got, strings.Join(tt.wantRun, ","))
			}
			for _, m := range []*fakeMutator{first, second} {
				ran := len(m.seen) > 0
				if ran != strings.Contains(","+strings.Join(tt.wantRun, ",")+",", ","+m.name+",") {
					t.Errorf("policy %s ran = %v", m.name, ran)
				}
				if !ran && res.Outcomes[m.name] != OutcomeSkipped {
					t.Errorf("outcome of %s = %q, want skipped", m.name, res.Outcomes[m.name])
				}
			}
			var warnings []string
			for _, w := range res.Warnings {
				warnings = append(warnings, w.String())
			}
			if tt.wantWarning == "" && len(warnings) > 0 || !strings.Contains(strings.Join(warnings, "\n"), tt.wantWarning) {
				t.Errorf("warnings = %q, want one containing %q", warnings, tt.wantWarning)
			}
		})
	}
}

func TestEngineRecoversAPanickingPolicy(t *testing.T) {
	e := &Engine{mutators: []Mutator{&fakeMutator{name: "ok", label: "a"}, &fakeMutator{name: "buggy", panic: true}}}
	res, err := e.Mutate(testPod("nginx"), NewSnapshot())
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Policy != "buggy" || len(pe.Stack) == 0 {
		t.Fatalf("err = %v, want a PolicyError for buggy with a stack", err)
	}
	if !strings.Contains(err.Error(), `policy "buggy" failed`) {
		t.Errorf("error message %q does not name the policy", err)
	}
	if res.Outcomes["buggy"] != OutcomeError {
		t.Errorf("outcome = %q, want error", res.Outcomes["buggy"])
	}
}

func TestEngineValidatorsReportEveryViolationWithItsPolicy(t *testing.T) {
	e := &Engine{validators: []Validator{&fakeValidator{name: "one", deny: true}, &fakeValidator{name: "two", deny: true}, &fakeValidator{name: "three"}}}
	res, err := e.Validate(testPod("nginx"), NewSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Denied() || len(res.Violations) != 2 {
		t.Fatalf("violations = %v, want 2", res.Violations)
	}
	if got := res.Violations[1].String(); got != "[two] spec.containers[0]: no" {
		t.Errorf("violation = %q", got)
	}
	want := map[string]Outcome{"one": OutcomeDenied, "two": OutcomeDenied, "three": OutcomeWarned}
	for k, v := range want {
		if res.Outcomes[k] != v {
			t.Errorf("outcome[%s] = %q, want %q", k, res.Outcomes[k], v)
		}
	}
}

func TestNewEngineLeavesOutDisabledPolicies(t *testing.T) {
	s := defaultSettings()
	s.EnvFromKeys.Enabled = ptr.To(false)
	e := NewEngine(s)
	for _, v := range e.validators {
		if v.Name() == EnvFromKeysName {
			t.Fatal("disabled envfrom-keys policy was built")
		}
	}
	if len(e.mutators) == 0 {
		t.Fatal("enabled image-pull-secrets policy was not built")
	}
}

// denyUnlabelled denies pods without the label fakeMutator "a" adds.
type denyUnlabelled struct{}

func (denyUnlabelled) Name() string { return "needs-label" }
func (denyUnlabelled) Validate(in Input) Report {
	var r Report
	if in.Pod.Meta.Labels["a"] != "yes" {
		r.Deny(in.Pod.MetaPath.Child("labels"), "missing")
	}
	return r
}

func TestCheckValidatesTheMutatedPod(t *testing.T) {
	e := &Engine{mutators: []Mutator{&fakeMutator{name: "labeller", label: "a"}}, validators: []Validator{denyUnlabelled{}}}
	res, err := e.Check(testPod("nginx"), NewSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if res.Denied() {
		t.Errorf("validation saw the pod before mutation: %v", res.Violations)
	}
	if res.Outcomes["labeller"] != OutcomeMutated || res.Outcomes["needs-label"] != OutcomePassed {
		t.Errorf("outcomes = %v", res.Outcomes)
	}
	alone := &Engine{validators: []Validator{denyUnlabelled{}}}
	if res, _ := alone.Check(testPod("nginx"), NewSnapshot()); !res.Denied() {
		t.Error("without the mutator the pod should be denied")
	}
}
