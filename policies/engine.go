package policies

import (
	"context"
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
	// OutcomeExempted is a policy an admin's exemption rule lifted for the
	// whole pod.
	OutcomeExempted Outcome = "exempted"
	// OutcomeAudited is a validating policy in audit mode that found
	// violations: the pod was admitted, and the violations recorded.
	OutcomeAudited Outcome = "audited"
)

// Engine runs the enabled policies in registry order. It is immutable and
// safe for concurrent use; a config reload builds a new one.
type Engine struct {
	mutators   []Mutator
	validators []Validator
	// exemptions are the admin's; nil lets pods skip every policy (tests).
	exemptions *exemptions
	// modes are the configured modes of the enabled validating policies;
	// validating names every validating policy, for the label warnings.
	modes      map[string]Mode
	validating []string
	// pullSecrets is the image-pull-secrets policy when it runs, whose rules
	// also name the secrets an image is inspected with.
	pullSecrets *imagePullSecrets
}

// EngineOption configures NewEngine.
type EngineOption func(*Engine)

// WithExemptions applies the admin's exemptions (the config's
// `exemptions:`), defaulted and validated. Without it the engine uses the
// defaults: pods may skip DefaultPodSkippable, and no rules.
func WithExemptions(ex *Exemptions) EngineOption {
	return func(e *Engine) { e.exemptions = compileExemptions(ex) }
}

// NewEngine builds the enabled policies from defaulted, validated settings.
func NewEngine(s *Settings, opts ...EngineOption) *Engine {
	e := &Engine{exemptions: compileExemptions(&Exemptions{})}
	for _, o := range opts {
		o(e)
	}
	e.modes = map[string]Mode{}
	for _, r := range Registry {
		if r.Mode != nil {
			e.validating = append(e.validating, r.Name)
		}
		if !r.Enabled(s) {
			continue
		}
		if r.Mode != nil {
			e.modes[r.Name] = r.Mode(s)
		}
		switch p := r.Build(s).(type) {
		case Mutator:
			e.mutators = append(e.mutators, p)
			if ps, ok := p.(*imagePullSecrets); ok {
				e.pullSecrets = ps
			}
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
	// Audited are the violations of validating policies in audit mode: the
	// pod is admitted without a word to its author, and they are recorded
	// (the decision log, the "audited" outcome).
	Audited []Finding
	// Warned are the violations of validating policies in warn mode, as the
	// policy wrote them: the pod is admitted, and Warnings carry them to its
	// author, each prefixed with what enforce would have done.
	Warned []Finding
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
	return e.MutateContext(context.Background(), pod, world)
}

// MutateContext is Mutate for a request that may end before the policies
// do: it checks ctx between policies, the policies check it in their loops
// over the pod, and once it is done it returns its error instead of a
// verdict (a policy stopped half-way must not decide anything).
func (e *Engine) MutateContext(ctx context.Context, pod *Pod, world World) (*Result, error) {
	res, plan := start(e, pod, e.mutators, world)
	if res.Skipped != "" {
		return res, nil
	}
	for _, m := range e.mutators {
		if plan.leftOut(res, m.Name()) {
			continue
		}
		if err := ctxErr(ctx); err != nil {
			return res, err
		}
		var out *Pod
		var rep Report
		in := Input{Pod: res.Pod, World: world, Ctx: ctx}
		if names := plan.exempt.containers[m.Name()]; names != nil {
			in.exempt = containerPaths(res.Pod, names)
		}
		err := guard(m.Name(), func() { out, rep = m.Mutate(in) })
		if err == nil {
			err = ctxErr(ctx)
		}
		if err != nil {
			res.Outcomes[m.Name()] = OutcomeError
			return res, err
		}
		if names := plan.exempt.containers[m.Name()]; names != nil {
			out, rep = exceptContainers(res.Pod, out, rep, names)
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
	return e.ValidateContext(context.Background(), pod, world)
}

// ValidateContext is Validate for a request that may end first (see
// MutateContext).
func (e *Engine) ValidateContext(ctx context.Context, pod *Pod, world World) (*Result, error) {
	res, plan := start(e, pod, e.validators, world)
	if res.Skipped != "" || len(e.validators) == 0 {
		return res, nil
	}
	var ns Namespace
	var known bool
	if world != nil {
		ns, known = world.Namespace(pod.Namespace)
	}
	modes := resolveModes(e.modes, e.validating, ns, known)
	res.Warnings = append(res.Warnings, modes.warnings...)
	for _, v := range e.validators {
		if plan.leftOut(res, v.Name()) {
			continue
		}
		if err := ctxErr(ctx); err != nil {
			return res, err
		}
		var rep Report
		in := Input{Pod: pod, World: world, Ctx: ctx}
		if names := plan.exempt.containers[v.Name()]; names != nil {
			in.exempt = containerPaths(pod, names)
		}
		err := guard(v.Name(), func() { rep = v.Validate(in) })
		if err == nil {
			err = ctxErr(ctx)
		}
		if err != nil {
			res.Outcomes[v.Name()] = OutcomeError
			return res, err
		}
		if in.exempt != nil {
			// in.report() dropped them already, before they counted
			// against the budget; this catches a Report made otherwise.
			rep = dropFindingsUnder(rep, in.exempt)
		}
		mode, source := modes.of(v.Name())
		rep, admitted := applyMode(rep, mode, source)
		res.Outcomes[v.Name()] = res.add(v.Name(), rep, false, false)
		switch {
		case len(admitted) > 0 && mode == ModeAudit:
			res.Audited = appendCapped(res.Audited, v.Name(), admitted, "violation")
			res.Outcomes[v.Name()] = OutcomeAudited
		case len(admitted) > 0:
			res.Warned = appendCapped(res.Warned, v.Name(), admitted, "violation")
		}
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
	return e.CheckContext(context.Background(), pod, world)
}

// CheckContext is Check for a request that may end first (see
// MutateContext).
func (e *Engine) CheckContext(ctx context.Context, pod *Pod, world World) (*Result, error) {
	res, err := e.MutateContext(ctx, pod, world)
	if err != nil || res.Skipped != "" || res.Denied() {
		return res, err
	}
	v, err := e.ValidateContext(ctx, res.Pod, world)
	res.Violations = append(res.Violations, v.Violations...)
	res.Audited = append(res.Audited, v.Audited...)
	res.Warned = append(res.Warned, v.Warned...)
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

// plan is what applies to one pass over a pod before any policy runs.
type plan struct {
	// skipped are the policies the pod skips with podguard.io/skip, as far
	// as the admin lets it.
	skipped sets.Set[string]
	exempt  podExemptions
}

// leftOut reports whether policy does not run on the pod, and records why.
func (p plan) leftOut(res *Result, policy string) bool {
	switch {
	case p.exempt.whole.Has(policy):
		res.Outcomes[policy] = OutcomeExempted
	case p.skipped.Has(policy):
		res.Outcomes[policy] = OutcomeSkipped
	default:
		return false
	}
	return true
}

// start handles what applies before any policy runs: mirror pods, the
// admin's exemptions and the skip annotation. When the whole pod is
// skipped, every policy's outcome is "skipped".
func start[P Policy](e *Engine, pod *Pod, all []P, world World) (*Result, plan) {
	res := &Result{Pod: pod, Outcomes: map[string]Outcome{}}
	skipAll := func(why string) (*Result, plan) {
		res.Skipped = why
		for _, p := range all {
			res.Outcomes[p.Name()] = OutcomeSkipped
		}
		return res, plan{}
	}
	// Only a kubelet creates mirror pods; anyone can write the annotation.
	if _, mirror := pod.Meta.Annotations[MirrorPodAnnotation]; mirror && pod.CreatedByNode {
		return skipAll("mirror pod")
	}
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name()
	}
	pl := plan{skipped: sets.New[string](), exempt: e.exemptions.exemptionsFor(pod, world, names)}
	raw, ok := pod.Meta.Annotations[SkipAnnotation]
	if !ok {
		return res, pl
	}
	known := sets.New(Names()...).Insert(names...)
	skip, unknown := parseSkip(raw, known)
	if skip.Has(AllPolicies) && e.exemptions.podMaySkip(AllPolicies) {
		return skipAll(SkipAnnotation + ": all")
	}
	var refused []string
	for _, name := range names {
		if !skip.Has(name) && !skip.Has(AllPolicies) {
			continue
		}
		if e.exemptions.podMaySkip(name) {
			pl.skipped.Insert(name)
		} else if !pl.exempt.whole.Has(name) {
			refused = append(refused, name)
		}
	}
	annotation := pod.MetaPath.Child("annotations").Key(SkipAnnotation).String()
	if len(unknown) > 0 {
		res.Warnings = append(res.Warnings, Finding{
			Policy: "podguard",
			Field:  annotation,
			Message: fmt.Sprintf("names unknown policies %s; known policies are %s, or \"all\"",
				quoteList(unknown), quoteList(sets.List(known))),
		})
	}
	if len(refused) > 0 {
		res.Warnings = append(res.Warnings, Finding{
			Policy: "podguard",
			Field:  annotation,
			Message: fmt.Sprintf("does not skip %s: pods may skip only %s (exemptions.podSkippable in podguard's config), so %s still %s. A cluster admin can exempt pods with exemptions.rules",
				quoteList(refused), e.exemptions.skippableList(), plural(len(refused), "it", "they"), plural(len(refused), "applies", "apply")),
		})
	}
	return res, pl
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
	r.Violations = appendCapped(r.Violations, policy, rep.Violations, "violation")
	r.Warnings = appendCapped(r.Warnings, policy, rep.Warnings, "warning")
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
// messages: at most MaxListed of them, each cut to MaxQuoted bytes, then
// "and 9,990 more".
func quoteList(names []string) string {
	q := make([]string, 0, min(len(names), MaxListed)+1)
	for _, n := range names[:min(len(names), MaxListed)] {
		q = append(q, quote(n))
	}
	if more := len(names) - MaxListed; more > 0 {
		q = append(q, "and "+thousands(more)+" more")
	}
	return strings.Join(q, ", ")
}
