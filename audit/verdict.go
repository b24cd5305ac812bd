package audit

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/podguard/podguard/policies"
)

// Verdict is what the policies say of one audited object: what would break
// when its pods next start, and which validating policies found nothing.
type Verdict struct {
	// Failed are the violations, whatever the mode lets admission do with
	// them: a pod lost an environment variable or a directory all the same.
	Failed []Failure
	// Passed names the validating policies that ran and found nothing.
	Passed []string
	// Skipped says why no policy judged the object (a mirror pod), if so.
	Skipped string
}

// Failure is a violation and the mode admission applies to it in the
// object's namespace: enforce (the next pod is denied, so a rollout sticks
// on FailedCreate), warn (admitted, its author warned) or audit (admitted
// silently). Denials of mutating policies are always enforce.
type Failure struct {
	policies.Finding
	Mode policies.Mode
}

// forgetKeys drops the failures' key lists (Finding.Keys), which nothing
// published reads: a verdict the background audit keeps for every workload
// would otherwise hold a slice of every dropped key of every ConfigMap the
// workload reads.
func (v Verdict) forgetKeys() {
	for i := range v.Failed {
		v.Failed[i].Keys = nil
	}
}

// Fails reports whether any policy failed the object.
func (v Verdict) Fails() bool { return len(v.Failed) > 0 }

// FailedPolicies names the policies that failed the object, sorted, once each.
func (v Verdict) FailedPolicies() []string {
	var out []string
	for _, f := range v.Failed {
		out = append(out, f.Policy)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Judge gives the verdict on one pod-bearing object, as admission would see
// its next pod: a workload's template is mutated, then validated (Check); a
// Pod that already runs was mutated when it was admitted, so it is only
// validated.
func Judge(ctx context.Context, obj runtime.Object, w policies.World, engine *policies.Engine) (Verdict, error) {
	pod := policies.PodOf(obj)
	if pod == nil {
		return Verdict{}, nil
	}
	verdict := engine.CheckContext
	if _, isPod := obj.(*corev1.Pod); isPod {
		verdict = engine.ValidateContext
	}
	res, err := verdict(ctx, pod, w)
	if err != nil {
		return Verdict{}, err
	}
	return verdictOf(res), nil
}

func verdictOf(res *policies.Result) Verdict {
	v := Verdict{Skipped: res.Skipped}
	add := func(fs []policies.Finding, m policies.Mode) {
		for _, f := range fs {
			v.Failed = append(v.Failed, Failure{f, m})
		}
	}
	add(res.Violations, policies.ModeEnforce)
	add(res.Warned, policies.ModeWarn)
	add(res.Audited, policies.ModeAudit)
	failed := v.FailedPolicies()
	for _, name := range policies.ValidatingNames() {
		switch res.Outcomes[name] {
		case policies.OutcomePassed, policies.OutcomeWarned:
			if !slices.Contains(failed, name) {
				v.Passed = append(v.Passed, name)
			}
		}
	}
	return v
}

// Ref is a ConfigMap or Secret a pod reads, by kind ("ConfigMap", "Secret")
// and name, in the pod's namespace.
type Ref struct{ Kind, Name string }

// References lists the ConfigMaps and Secrets whose key names or existence a
// verdict on pod may depend on: envFrom, env valueFrom, and configMap,
// secret and projected volumes, each once.
func References(pod *policies.Pod) []Ref {
	var out []Ref
	seen := map[Ref]bool{} // a pod may name thousands: no quadratic dedup
	add := func(kind, name string) {
		r := Ref{kind, name}
		if name == "" || seen[r] {
			return
		}
		seen[r] = true
		out = append(out, r)
	}
	for _, c := range pod.Containers() {
		for _, e := range c.Container.EnvFrom {
			if e.ConfigMapRef != nil {
				add("ConfigMap", e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				add("Secret", e.SecretRef.Name)
			}
		}
		for _, e := range c.Container.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add("ConfigMap", r.Name)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add("Secret", r.Name)
			}
		}
	}
	for _, vol := range pod.Spec.Volumes {
		switch {
		case vol.ConfigMap != nil:
			add("ConfigMap", vol.ConfigMap.Name)
		case vol.Secret != nil:
			add("Secret", vol.Secret.SecretName)
		case vol.Projected != nil:
			for _, s := range vol.Projected.Sources {
				if s.ConfigMap != nil {
					add("ConfigMap", s.ConfigMap.Name)
				}
				if s.Secret != nil {
					add("Secret", s.Secret.Name)
				}
			}
		}
	}
	return out
}
