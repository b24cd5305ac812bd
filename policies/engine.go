package policies

import (
	"fmt"
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
)

// Outcome is what one policy did to one pod, for metrics.
type Outcome string

const (
	OutcomeMutated   Outcome = "mutated"
	OutcomeUnchanged Outcome = "unchanged"
	OutcomePassed    Outcome = "passed"
	OutcomeWarned    Outcome = "warned"
	OutcomeDenied    Outcome = "denied"
	OutcomeSkipped   Outcome = "skipped"
	OutcomeError     Outcome = "error"
)

// Engine runs the enabled policies in registry order. It is immutable and
// safe for concurrent use; a config reload builds a new one.
type Engine struct {
	mutators   []Mutator
	validators []Validator
}

// NewEngine builds the enabled policies from defaulted, validated settings.
func NewEngine(s *Settings) *Engine {
	e := &Engine{}
	for _, r := range Registry {
		if !r.Enabled(s) {
			continue
		}
		switch p := r.Build(s).(type) {
		case Mutator:
			e.mutators = append(e.mutators, p)
		case Validator:
			e.validators = append(e.validators, p)
		}
	}
	return e
}

// Result is what the engine decided about one pod.
type Result struct {
	// Pod is the mutated pod (Mutate only); the input pod when nothing changed.
	Pod *Pod
	// Mutated names the policies that changed the pod, in the order they ran.
	Mutated    []string
	Violations []Finding
	Warnings   []Finding
	// Outcomes maps each policy that ran, or was skipped, to what it did.
	Outcomes map[string]Outcome
	// Skipped explains why the whole pod was skipped ("mirror pod"), if it was.
	Skipped string
}

// Denied reports whether any policy denied the pod.
func (r *Result) Denied() bool { return len(r.Violations) > 0 }

// PolicyError is returned when a policy panics. The pod must not be admitted
// on a half-run policy set, so the caller answers with an error.
type PolicyError struct {
	Policy string
	Value  any
	Stack  []byte
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("policy %q failed: %v", e.Policy, e.Value)
}

// Mutate runs every mutator in order, each on the output of the one before.
// The input pod is not modified.
func (e *Engine) Mutate(pod *Pod, world World) (*Result, error) {
	res, skip := start(pod, e.mutators)
	if res.Skipped != "" {
		return res, nil
	}
	for _, m := range e.mutators {
		if skip.Has(m.Name()) {
			res.Outcomes[m.Name()] = OutcomeSkipped
			continue
		}
		var out *Pod
		var rep Report
		err := guard(m.Name(), func() { out, rep = m.Mutate(Input{Pod: res.Pod, World: world}) })
		if err != nil {
			res.Outcomes[m.Name()] = OutcomeError
			return res, err
		}
		// A mutator returns its input when it changes nothing (the Mutator
		// contract, which TestMutateGolden's second pass enforces): a deep
		// comparison here cost podguard check nearly half its time.
		changed := out != nil && out != res.Pod
		if changed {
			res.Pod = out
			res.Mutated = append(res.Mutated, m.Name())
		}
		res.Outcomes[m.Name()] = res.add(m.Name(), rep, true, changed)
	}
	return res, nil
}

// Validate runs every validator on the pod.
func (e *Engine) Validate(pod *Pod, world World) (*Result, error) {
	res, skip := start(pod, e.validators)
	if res.Skipped != "" {
		return res, nil
	}
	for _, v := range e.validators {
		if skip.Has(v.Name()) {
			res.Outcomes[v.Name()] = OutcomeSkipped
			continue
		}
		var rep Report
		if err := guard(v.Name(), func() { rep = v.Validate(Input{Pod: pod, World: world}) }); err != nil {
			res.Outcomes[v.Name()] = OutcomeError
			return res, err
		}
		res.Outcomes[v.Name()] = res.add(v.Name(), rep, false, false)
	}
	return res, nil
}

// Check is what the cluster does to a pod: the mutating policies, then the
// validating policies on the mutated pod. A workload's pods are mutated
// before they are validated, and a mutating policy can deny them (a
// malformed podguard.io/logs annotation), so this is the verdict on a
// workload's template as much as on a pod. The admission webhook's /validate
// uses it for workloads (a Pod arrives there already mutated), and
// `podguard check` for everything, so the two cannot drift apart.
func (e *Engine) Check(pod *Pod, world World) (*Result, error) {
	res, err := e.Mutate(pod, world)
	if err != nil || res.Skipped != "" || res.Denied() {
		return res, err
	}
	v, err := e.Validate(res.Pod, world)
	res.Violations = append(res.Violations, v.Violations...)
	seen := map[string]bool{}
	for _, w := range res.Warnings {
		seen[w.String()] = true
	}
	for _, w := range v.Warnings {
		if !seen[w.String()] { // the skip annotation is reported by both passes
			res.Warnings = append(res.Warnings, w)
		}
	}
	for name, o := range v.Outcomes {
		res.Outcomes[name] = o
	}
	return res, err
}

// start handles what applies before any policy runs: mirror pods and the
// skip annotation. When the whole pod is skipped, every policy's outcome is
// "skipped".
func start[P Policy](pod *Pod, all []P) (*Result, sets.Set[string]) {
	res := &Result{Pod: pod, Outcomes: map[string]Outcome{}}
	skipAll := func(why string) (*Result, sets.Set[string]) {
		res.Skipped = why
		for _, p := range all {
			res.Outcomes[p.Name()] = OutcomeSkipped
		}
		return res, nil
	}
	if _, mirror := pod.Meta.Annotations[MirrorPodAnnotation]; mirror {
		return skipAll("mirror pod")
	}
	raw, ok := pod.Meta.Annotations[SkipAnnotation]
	if !ok {
		return res, nil
	}
	known := sets.New(Names()...)
	for _, p := range all {
		known.Insert(p.Name())
	}
	skip, unknown := parseSkip(raw, known)
	if skip.Has("all") {
		return skipAll(SkipAnnotation + ": all")
	}
	if len(unknown) > 0 {
		res.Warnings = append(res.Warnings, Finding{
			Policy: "podguard",
			Field:  pod.MetaPath.Child("annotations").Key(SkipAnnotation).String(),
			Message: fmt.Sprintf("names unknown policies %s; known policies are %s, or \"all\"",
				quoteList(unknown), quoteList(sets.List(known))),
		})
	}
	return res, skip
}

// parseSkip splits the skip annotation into the policy names it lists and
// those it lists that do not exist.
func parseSkip(raw string, known sets.Set[string]) (sets.Set[string], []string) {
	skip := sets.New[string]()
	var unknown []string
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		skip.Insert(name)
		if name != "all" && !known.Has(name) {
			unknown = append(unknown, name)
		}
	}
	return skip, unknown
}

// add stamps the policy name on a report's findings, keeps them, and returns
// the policy's outcome.
func (r *Result) add(policy string, rep Report, mutator, changed bool) Outcome {
	for _, f := range rep.Violations {
		f.Policy = policy
		r.Violations = append(r.Violations, f)
	}
	for _, f := range rep.Warnings {
		f.Policy = policy
		r.Warnings = append(r.Warnings, f)
	}
	switch {
	case len(rep.Violations) > 0:
		return OutcomeDenied
	case changed:
		return OutcomeMutated
	case len(rep.Warnings) > 0:
		return OutcomeWarned
	case mutator:
		return OutcomeUnchanged
	default:
		return OutcomePassed
	}
}

// guard runs one policy, turning a panic into a PolicyError so that one bad
// policy cannot take the server down.
func guard(policy string, fn func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PolicyError{Policy: policy, Value: v, Stack: debug.Stack()}
		}
	}()
	fn()
	return nil
}

// quoteList renders names as `"a", "b"`, the way Kubernetes quotes lists in
// messages.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
