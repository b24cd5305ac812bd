package policies

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Mode is what a validating policy does with its violations, in the spirit
// of Pod Security Admission's enforce/warn/audit levels.
//
// Modes apply to the violations of the validating policies (envfrom-keys,
// mount-shadowing) only. The denials a mutating policy makes are always
// enforced: log-sidecar's denials say that the pod asked for a sidecar in
// a form podguard cannot carry out (admitting it would silently drop the
// logs it asked for), and security-context's runAsNonRoot denial is of a pod
// the kubelet would refuse to start anyway (CreateContainerConfigError), so
// admitting it would only move the failure to run time.
type Mode string

const (
	// ModeEnforce denies a pod with violations: the default.
	ModeEnforce Mode = "enforce"
	// ModeWarn admits it, each violation turned into a warning that says
	// it would be denied under enforce.
	ModeWarn Mode = "warn"
	// ModeAudit admits it silently; the violations are kept in
	// Result.Audited, for the logs and metrics.
	ModeAudit Mode = "audit"
)

var modeNames = []string{string(ModeEnforce), string(ModeWarn), string(ModeAudit)}

// Namespace labels that override the config per namespace.
const (
	// ModeLabel sets the mode of every validating policy in a namespace.
	ModeLabel = "podguard.io/mode"
	// ModeLabelPrefix, followed by a policy name, sets one policy's mode in
	// a namespace ("podguard.io/mode.envfrom-keys"); it wins over ModeLabel.
	ModeLabelPrefix = ModeLabel + "."
	// ProfileLabel chooses the security-context profile in a namespace.
	ProfileLabel = "podguard.io/security-context-profile"
)

func (m Mode) valid() bool { return m == ModeEnforce || m == ModeWarn || m == ModeAudit }

// defaultMode fills an unset mode.
func defaultMode(m *Mode) {
	if *m == "" {
		*m = ModeEnforce
	}
}

// validateMode checks a policy's configured mode; path is the policy's.
// Unset is enforce.
func validateMode(m Mode, path *field.Path) field.ErrorList {
	if m != "" && !m.valid() {
		return field.ErrorList{field.NotSupported(path.Child("mode"), string(m), modeNames)}
	}
	return nil
}

// modes is what a namespace's labels make of the configured modes.
type modes struct {
	configured map[string]Mode
	// all and per are the namespace's valid labels.
	all      Mode
	per      map[string]Mode
	warnings []Finding
}

// resolveModes reads a namespace's mode labels. configured holds the config's
// mode of every enabled validating policy; validating lists every validating
// policy, enabled or not. An invalid label is ignored (the config's mode
// stays) and reported as a warning naming it: a typo must neither fail the
// request nor silently loosen or tighten the namespace.
func resolveModes(configured map[string]Mode, validating []string, ns Namespace, known bool) modes {
	m := modes{configured: configured}
	if !known || len(ns.Labels) == 0 {
		return m
	}
	bad := func(label, value, why string) {
		m.warnings = append(m.warnings, Finding{Policy: "podguard", Message: fmt.Sprintf(
			"namespace %s has label %s=%s, which %s: the label is ignored and podguard's configured modes apply",
			quote(ns.Name), label, quote(value), why)})
	}
	// Built only for an invalid label: this runs on every request, and every
	// namespace has labels (kubernetes.io/metadata.name at least).
	notAMode := func() string { return fmt.Sprintf("is not a mode (%s)", quoteList(modeNames)) }
	if v, ok := ns.Labels[ModeLabel]; ok {
		if Mode(v).valid() {
			m.all = Mode(v)
		} else {
			bad(ModeLabel, v, notAMode())
		}
	}
	var perPolicy []string // allocated only when the namespace has one
	for label := range ns.Labels {
		if len(label) > len(ModeLabelPrefix) && strings.HasPrefix(label, ModeLabelPrefix) {
			perPolicy = append(perPolicy, label)
		}
	}
	// In label order, so that the warnings come in a stable order.
	slices.Sort(perPolicy)
	for _, label := range perPolicy {
		policy := strings.TrimPrefix(label, ModeLabelPrefix)
		v := ns.Labels[label]
		switch {
		case !contains(validating, policy) && contains(Names(), policy):
			bad(label, v, fmt.Sprintf("names a mutating policy; modes apply only to the validating policies %s", quoteList(validating)))
		case !contains(validating, policy):
			bad(label, v, fmt.Sprintf("names no policy; modes apply to the validating policies %s", quoteList(validating)))
		case !Mode(v).valid():
			bad(label, v, notAMode())
		default:
			if m.per == nil {
				m.per = map[string]Mode{}
			}
			m.per[policy] = Mode(v)
		}
	}
	return m
}

// of returns a policy's mode, and where it comes from.
func (m modes) of(policy string) (Mode, string) {
	if v, ok := m.per[policy]; ok {
		return v, "namespace label " + ModeLabelPrefix + policy
	}
	if m.all != "" {
		return m.all, "namespace label " + ModeLabel
	}
	if v, ok := m.configured[policy]; ok {
		return v, "podguard's config"
	}
	return ModeEnforce, "the default"
}

// applyMode turns a validating policy's violations into what its mode makes
// of them: denials (enforce), warnings that say so (warn), or audited
// findings (audit). It returns the report to add, and the violations the
// mode let through: those it turned into warnings (warn) or kept silent
// (audit), as the policy wrote them.
func applyMode(rep Report, mode Mode, source string) (Report, []Finding) {
	if len(rep.Violations) == 0 || mode == ModeEnforce {
		return rep, nil
	}
	admitted := rep.Violations
	if mode == ModeAudit {
		rep.Violations = nil
		return rep, admitted
	}
	rep.Warnings = slices.Clone(rep.Warnings)
	for _, v := range rep.Violations {
		if _, beyond := isNotListed(v); !beyond {
			v.Message = fmt.Sprintf("would be denied under mode enforce (mode warn, from %s): %s", source, v.Message)
		}
		rep.Warnings = append(rep.Warnings, v)
	}
	rep.Violations = nil
	return rep, admitted
}

// profileFor returns the security-context profile for a pod's namespace:
// the ProfileLabel's when it is valid, else the configured one, with a
// warning naming the invalid label.
func profileFor(configured string, world World, namespace string) (string, string) {
	if world == nil {
		return configured, ""
	}
	ns, ok := world.Namespace(namespace)
	if !ok {
		return configured, ""
	}
	v, ok := ns.Labels[ProfileLabel]
	switch {
	case !ok:
		return configured, ""
	case v == ProfileBaseline || v == ProfileRestricted:
		return v, ""
	}
	return configured, fmt.Sprintf("namespace %s has label %s=%s, which is not a profile (%s): the label is ignored and the configured profile %s applies",
		quote(ns.Name), ProfileLabel, quote(v), quoteList([]string{ProfileBaseline, ProfileRestricted}), quote(configured))
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
