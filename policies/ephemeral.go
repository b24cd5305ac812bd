package policies

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// ValidateEphemeral judges the ephemeral containers an UPDATE of
// pods/ephemeralcontainers adds (kubectl debug), named in added, as a new
// pod's containers are judged: the validating policies, with the pod's skip
// annotation and the admin's exemptions. The pod's other containers, and the
// ephemeral containers it already had, were judged when they were added and
// are not judged again. Field paths are those of the pod:
// spec.ephemeralContainers[i].
func (e *Engine) ValidateEphemeral(pod *Pod, added sets.Set[string], world World) (*Result, error) {
	view := *pod
	view.Spec.InitContainers, view.Spec.Containers = nil, nil
	// The ephemeral containers the pod already had become stubs with only
	// their name, at their own index (so that the added ones keep their
	// field paths): they yield no findings, and so cannot use up a policy's
	// findings budget before the added ones are judged.
	view.Spec.EphemeralContainers = make([]corev1.EphemeralContainer, len(pod.Spec.EphemeralContainers))
	for i, c := range pod.Spec.EphemeralContainers {
		if added.Has(c.Name) {
			view.Spec.EphemeralContainers[i] = c
		} else {
			view.Spec.EphemeralContainers[i].Name = c.Name
		}
	}
	res, err := e.Validate(&view, world)
	if err != nil || res.Skipped != "" {
		return res, err
	}
	var existing []string
	for _, c := range view.allContainers() {
		if !added.Has(c.name) {
			existing = append(existing, c.path)
		}
	}
	rep := dropFindingsUnder(Report{Violations: res.Violations, Warnings: res.Warnings}, existing)
	res.Violations, res.Warnings = rep.Violations, rep.Warnings
	// The outcomes follow what is left.
	denied, warned := sets.New[string](), sets.New[string]()
	for _, f := range res.Violations {
		denied.Insert(f.Policy)
	}
	for _, f := range res.Warnings {
		warned.Insert(f.Policy)
	}
	for policy, o := range res.Outcomes {
		switch {
		case o != OutcomeDenied && o != OutcomeWarned:
		case denied.Has(policy):
			res.Outcomes[policy] = OutcomeDenied
		case warned.Has(policy):
			res.Outcomes[policy] = OutcomeWarned
		default:
			res.Outcomes[policy] = OutcomePassed
		}
	}
	return res, nil
}
