package deploy_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/utils/ptr"
)

// caOnlyPolicyName is the ValidatingAdmissionPolicy, and its binding, that
// holds podguard's ServiceAccount to the caBundle of its webhook
// configurations in the self-managed overlays.
const caOnlyPolicyName = "podguard-webhook-ca-only"

// checkCAOnlyPolicy checks, in a self-managed overlay, that the policy is
// there, bound to deny, fails closed, intercepts CREATE, UPDATE and DELETE of
// both webhook configurations, and applies to the ServiceAccount the
// Deployment runs as, and to nothing narrower. What its expressions allow is
// proven against a real API server by e2e's TestSelfManagedCannotEscalate.
func checkCAOnlyPolicy(r *render, o overlay, p *problems) {
	if o.tls != selfManaged {
		// Only the self-managed variant may write webhook configurations
		// at all (checkRBAC).
		return
	}
	var policy *admissionregistrationv1.ValidatingAdmissionPolicy
	for _, vap := range r.policies {
		if vap.Name == caOnlyPolicyName {
			policy = vap
		}
	}
	if policy == nil {
		p.add("render", "", "has no ValidatingAdmissionPolicy %s: RBAC alone lets podguard's ServiceAccount patch all of its webhook configurations, not only caBundle", caOnlyPolicyName)
		return
	}
	ref := describe("ValidatingAdmissionPolicy", "", policy.Name)
	spec := policy.Spec
	if fp := ptr.Deref(spec.FailurePolicy, admissionregistrationv1.Fail); fp != admissionregistrationv1.Fail {
		p.add(ref, "spec.failurePolicy", "%s, want Fail: an expression that errors must not let a change through", fp)
	}
	if spec.ParamKind != nil {
		p.add(ref, "spec.paramKind", "set; the policy needs no parameters, and a missing one would make the binding deny or skip")
	}
	mc := spec.MatchConstraints
	if mc == nil {
		p.add(ref, "spec.matchConstraints", "missing")
	} else {
		for _, res := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
			for _, op := range []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete} {
				if !policyIntercepts(mc.ResourceRules, res, op) {
					p.add(ref, "spec.matchConstraints.resourceRules", "no rule intercepts %s of admissionregistration.k8s.io/v1 %s named %s", op, res, configurationName)
				}
			}
		}
		if len(mc.ExcludeResourceRules) > 0 {
			p.add(ref, "spec.matchConstraints.excludeResourceRules", "set; nothing of the webhook configurations may be left out")
		}
		if sel := mc.ObjectSelector; sel != nil && (len(sel.MatchLabels) > 0 || len(sel.MatchExpressions) > 0) {
			p.add(ref, "spec.matchConstraints.objectSelector", "set; it would let a configuration whose labels podguard changes slip out")
		}
	}
	// The one matchCondition names the ServiceAccount the Deployment runs
	// as; another would narrow the policy further.
	d := r.deployment(p)
	if d == nil {
		return
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	want := "request.userInfo.username == 'system:serviceaccount:" + d.Namespace + ":" + sa + "'"
	if len(spec.MatchConditions) != 1 || strings.TrimSpace(spec.MatchConditions[0].Expression) != want {
		p.add(ref, "spec.matchConditions", "%s, want exactly one: %s (the ServiceAccount of %s)", mustJSON(spec.MatchConditions), want, deploymentRef(d))
	}
	if len(spec.Validations) == 0 {
		p.add(ref, "spec.validations", "none; the policy allows everything")
	}
	for i, v := range spec.Validations {
		if v.Message == "" && v.MessageExpression == "" {
			p.add(ref, "spec.validations["+strconv.Itoa(i)+"]", "no message; a refusal must say what podguard may change")
		}
	}

	var bound bool
	for _, b := range r.policyBindings {
		if b.Spec.PolicyName != policy.Name {
			continue
		}
		bref := describe("ValidatingAdmissionPolicyBinding", "", b.Name)
		bound = true
		if !slices.Contains(b.Spec.ValidationActions, admissionregistrationv1.Deny) {
			p.add(bref, "spec.validationActions", "%q, want Deny: a warning or an audit annotation stops nothing", b.Spec.ValidationActions)
		}
		if b.Spec.ParamRef != nil {
			p.add(bref, "spec.paramRef", "set; the policy takes no parameters")
		}
		if b.Spec.MatchResources != nil {
			p.add(bref, "spec.matchResources", "set; it could only narrow the policy")
		}
	}
	if !bound {
		p.add(ref, "", "no ValidatingAdmissionPolicyBinding binds it, so the API server never applies it")
	}
}

// policyIntercepts reports whether a policy's resource rules match op on a
// webhook configuration named configurationName, wildcards included.
func policyIntercepts(rules []admissionregistrationv1.NamedRuleWithOperations, resource string, op admissionregistrationv1.OperationType) bool {
	in := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, r := range rules {
		if in(r.APIGroups, admissionregistrationv1.GroupName) && in(r.APIVersions, "v1") &&
			(in(r.Resources, resource) || slices.Contains(r.Resources, "*/*")) &&
			(slices.Contains(r.Operations, op) || slices.Contains(r.Operations, admissionregistrationv1.OperationAll)) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, configurationName)) {
			return true
		}
	}
	return false
}

// TestCAOnlyPolicyChecksCatchBreakage breaks the policy or its binding one
// way at a time and expects checkCAOnlyPolicy to say so.
func TestCAOnlyPolicyChecksCatchBreakage(t *testing.T) {
	tests := []struct {
		name   string
		breaks func(t *testing.T, r *render)
		want   string
	}{
		{"no policy", func(t *testing.T, r *render) {
			r.policies = nil
		}, "has no ValidatingAdmissionPolicy podguard-webhook-ca-only"},
		{"no binding", func(t *testing.T, r *render) {
			r.policyBindings = nil
		}, "no ValidatingAdmissionPolicyBinding binds it"},
		{"binding only warns", func(t *testing.T, r *render) {
			caOnlyBinding(t, r).Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}
		}, `spec.validationActions: ["Warn"], want Deny`},
		{"fails open", func(t *testing.T, r *render) {
			caOnlyPolicy(t, r).Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		}, "spec.failurePolicy: Ignore, want Fail"},
		{"DELETE not intercepted", func(t *testing.T, r *render) {
			rules := caOnlyPolicy(t, r).Spec.MatchConstraints.ResourceRules
			for i := range rules {
				rules[i].Operations = slices.DeleteFunc(rules[i].Operations, func(op admissionregistrationv1.OperationType) bool { return op == admissionregistrationv1.Delete })
			}
		}, "no rule intercepts DELETE of admissionregistration.k8s.io/v1 mutatingwebhookconfigurations"},
		{"another configuration's name", func(t *testing.T, r *render) {
			rules := caOnlyPolicy(t, r).Spec.MatchConstraints.ResourceRules
			for i := range rules {
				rules[i].ResourceNames = []string{"other"}
			}
		}, "no rule intercepts UPDATE of admissionregistration.k8s.io/v1 validatingwebhookconfigurations named podguard"},
		{"another ServiceAccount", func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Template.Spec.ServiceAccountName = "podguard-v2"
		}, "want exactly one: request.userInfo.username == 'system:serviceaccount:podguard-system:podguard-v2'"},
		{"a narrowing matchCondition", func(t *testing.T, r *render) {
			vap := caOnlyPolicy(t, r)
			vap.Spec.MatchConditions = append(vap.Spec.MatchConditions, admissionregistrationv1.MatchCondition{Name: "never", Expression: "false"})
		}, "spec.matchConditions"},
		{"no validations", func(t *testing.T, r *render) {
			caOnlyPolicy(t, r).Spec.Validations = nil
		}, "spec.validations: none"},
	}
	for _, dir := range []string{"self-managed/opt-in", "self-managed/cluster-wide"} {
		for _, tt := range tests {
			t.Run(dir+"/"+tt.name, func(t *testing.T) {
				o := overlayByDir(t, dir)
				intact, err := load(o.dir)
				if err != nil {
					t.Fatal(err)
				}
				var p problems
				checkCAOnlyPolicy(intact, o, &p)
				if len(p) > 0 {
					t.Fatalf("the intact overlay already has problems:\n%s", strings.Join(p, "\n"))
				}
				broken, err := load(o.dir)
				if err != nil {
					t.Fatal(err)
				}
				tt.breaks(t, broken)
				checkCAOnlyPolicy(broken, o, &p)
				if !slices.ContainsFunc(p, func(msg string) bool { return strings.Contains(msg, tt.want) }) {
					t.Errorf("no problem contains %q; got:\n%s", tt.want, strings.Join(p, "\n"))
				}
			})
		}
	}
}

func caOnlyPolicy(t *testing.T, r *render) *admissionregistrationv1.ValidatingAdmissionPolicy {
	t.Helper()
	for _, vap := range r.policies {
		if vap.Name == caOnlyPolicyName {
			return vap
		}
	}
	t.Fatalf("no ValidatingAdmissionPolicy %s", caOnlyPolicyName)
	return nil
}

func caOnlyBinding(t *testing.T, r *render) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	t.Helper()
	for _, b := range r.policyBindings {
		if b.Spec.PolicyName == caOnlyPolicyName {
			return b
		}
	}
	t.Fatalf("no binding of %s", caOnlyPolicyName)
	return nil
}
