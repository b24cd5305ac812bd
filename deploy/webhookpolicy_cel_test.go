package deploy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// caOnlyPrograms caches compiled expressions across the evaluations of one
// test (which runs its cases in sequence).
var caOnlyPrograms = map[string]cel.Program{}

// caOnlyVerdict is what the policy decides about one request.
type caOnlyVerdict struct {
	matched bool     // the matchConditions selected the request
	denials []string // the messages of the validations that failed
}

// evalCAOnlyPolicy evaluates the shipped policy's matchConditions,
// variables, validations and messages with CEL, over objects given as the
// API server gives them (unstructured JSON). Variables are evaluated in
// order, each seeing the ones before, as the API server does (it evaluates
// them lazily; an error in one is an error here even when nothing uses it,
// which is stricter). The extended strings library is version 2, the one
// API servers 1.30 to 1.33 have, so nothing newer slips in.
func evalCAOnlyPolicy(t *testing.T, vap *admissionregistrationv1.ValidatingAdmissionPolicy, username, operation string, oldObj, newObj map[string]any) caOnlyVerdict {
	t.Helper()
	env, err := cel.NewEnv(
		cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType), cel.Variable("request", cel.DynType),
		cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(ext.StringsVersion(2)),
	)
	if err != nil {
		t.Fatal(err)
	}
	eval := func(what, expr string, vars map[string]any) any {
		t.Helper()
		prg, ok := caOnlyPrograms[expr]
		if !ok {
			ast, iss := env.Compile(expr)
			if iss.Err() != nil {
				t.Fatalf("%s does not compile: %v", what, iss.Err())
			}
			if prg, err = env.Program(ast); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			caOnlyPrograms[expr] = prg
		}
		var object, oldObject any = newObj, oldObj
		if newObj == nil {
			object = nil
		}
		if oldObj == nil {
			oldObject = nil
		}
		out, _, err := prg.Eval(map[string]any{
			"object": object, "oldObject": oldObject, "variables": vars,
			"request": map[string]any{"operation": operation, "userInfo": map[string]any{"username": username}},
		})
		if err != nil {
			// failurePolicy Fail: the API server would refuse the request.
			t.Fatalf("%s fails on %s: %v", what, operation, err)
		}
		return out.Value()
	}
	vars := map[string]any{}
	for _, mc := range vap.Spec.MatchConditions {
		if ok, _ := eval("matchConditions "+mc.Name, mc.Expression, vars).(bool); !ok {
			return caOnlyVerdict{}
		}
	}
	for _, v := range vap.Spec.Variables {
		vars[v.Name] = eval("variables."+v.Name, v.Expression, vars)
	}
	verdict := caOnlyVerdict{matched: true}
	for i, v := range vap.Spec.Validations {
		if ok, _ := eval(fmt.Sprintf("validations[%d]", i), v.Expression, vars).(bool); ok {
			continue
		}
		msg := v.Message
		if v.MessageExpression != "" {
			msg, _ = eval(fmt.Sprintf("validations[%d].messageExpression", i), v.MessageExpression, vars).(string)
		}
		verdict.denials = append(verdict.denials, msg)
	}
	return verdict
}

// TestCAOnlyPolicyExpressions runs the policy's CEL over changes the API
// server cannot show in e2e: fields no API version has yet (it would prune
// them), and absent versus present fields, as well as the ordinary ones.
func TestCAOnlyPolicyExpressions(t *testing.T) {
	const podguardSA = "system:serviceaccount:podguard-system:podguard"
	r, err := load("self-managed/opt-in")
	if err != nil {
		t.Fatal(err)
	}
	vap := caOnlyPolicy(t, r)
	// The shipped validating configuration, as JSON, as the API server has
	// it once podguard has set a caBundle.
	base := func(t *testing.T) map[string]any {
		t.Helper()
		c := r.validating[0].DeepCopy()
		c.APIVersion, c.Kind = "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"
		c.ResourceVersion, c.Generation = "100", 1
		if len(c.Webhooks) != 2 || c.Webhooks[1].Name != "state.podguard.io" {
			t.Fatalf("the shipped configuration has webhooks %v, want validate.podguard.io and state.podguard.io", c.Webhooks)
		}
		for i := range c.Webhooks {
			c.Webhooks[i].ClientConfig.CABundle = []byte("old CA")
		}
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	hook := func(obj map[string]any, i int) map[string]any {
		return obj["webhooks"].([]any)[i].(map[string]any)
	}
	const refused = "podguard's ServiceAccount may only change webhooks[*].clientConfig.caBundle of a webhook configuration, not "
	tests := []struct {
		name      string
		change    func(obj map[string]any)
		wantDeny  string // "" when allowed
		operation string // default UPDATE
	}{
		{name: "caBundle changed in every webhook", change: func(o map[string]any) {
			hook(o, 0)["clientConfig"].(map[string]any)["caBundle"] = "bmV3"
			hook(o, 1)["clientConfig"].(map[string]any)["caBundle"] = "bmV3"
		}},
		{name: "caBundle removed", change: func(o map[string]any) {
			delete(hook(o, 0)["clientConfig"].(map[string]any), "caBundle")
		}},
		{name: "what the API server writes on every update", change: func(o map[string]any) {
			md := o["metadata"].(map[string]any)
			md["resourceVersion"], md["generation"] = "101", 2
			md["managedFields"] = []any{map[string]any{"manager": "podguard", "operation": "Update"}}
		}},
		{name: "nothing", change: func(map[string]any) {}},
		{name: "a field no API version has yet, in a webhook", change: func(o map[string]any) {
			hook(o, 1)["sendSecretsToo"] = true
		}, wantDeny: refused + "webhooks[state.podguard.io].sendSecretsToo"},
		{name: "a field no API version has yet, in clientConfig", change: func(o map[string]any) {
			hook(o, 0)["clientConfig"].(map[string]any)["proxyURL"] = "https://attacker.example"
		}, wantDeny: refused + "webhooks[validate.podguard.io].clientConfig.proxyURL"},
		{name: "a field no API version has yet, at the top", change: func(o map[string]any) {
			o["defaults"] = map[string]any{"failurePolicy": "Ignore"}
		}, wantDeny: refused + "defaults"},
		{name: "a field no API version has yet, in metadata", change: func(o map[string]any) {
			o["metadata"].(map[string]any)["shadowLabels"] = map[string]any{"a": "b"}
		}, wantDeny: refused + "metadata.shadowLabels"},
		{name: "a field removed", change: func(o map[string]any) {
			delete(hook(o, 0), "failurePolicy")
		}, wantDeny: refused + "webhooks[validate.podguard.io].failurePolicy"},
		{name: "several fields of two webhooks, named in a stable order", change: func(o map[string]any) {
			h := hook(o, 0)
			h["timeoutSeconds"], h["failurePolicy"] = 30, "Ignore"
			h["rules"] = append(h["rules"].([]any), map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE"}, "resources": []any{"secrets"}})
			h["namespaceSelector"] = map[string]any{}
			hook(o, 1)["clientConfig"].(map[string]any)["url"] = "https://attacker.example"
			hook(o, 1)["clientConfig"].(map[string]any)["caBundle"] = "bmV3"
		}, wantDeny: refused + "webhooks[validate.podguard.io].rules, webhooks[validate.podguard.io].namespaceSelector, webhooks[validate.podguard.io].failurePolicy, webhooks[validate.podguard.io].timeoutSeconds, webhooks[state.podguard.io].clientConfig.url"},
		{name: "webhooks swapped", change: func(o map[string]any) {
			w := o["webhooks"].([]any)
			w[0], w[1] = w[1], w[0]
		}, wantDeny: refused + "add, remove, rename or reorder webhooks: [validate.podguard.io, state.podguard.io] became [state.podguard.io, validate.podguard.io]"},
		{name: "every webhook removed", change: func(o map[string]any) {
			delete(o, "webhooks")
		}, wantDeny: refused + "add, remove, rename or reorder webhooks: [validate.podguard.io, state.podguard.io] became []"},
		{name: "labels and annotations", change: func(o map[string]any) {
			md := o["metadata"].(map[string]any)
			md["annotations"] = map[string]any{"cert-manager.io/inject-ca-from": "x/y"}
			md["labels"].(map[string]any)["extra"] = "x"
		}, wantDeny: refused + "metadata.labels, metadata.annotations"},
		{name: "a delete", operation: "DELETE", wantDeny: "podguard's ServiceAccount may not create or delete webhook configurations; it may only change webhooks[*].clientConfig.caBundle"},
		{name: "a create", operation: "CREATE", wantDeny: "podguard's ServiceAccount may not create or delete webhook configurations; it may only change webhooks[*].clientConfig.caBundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.operation
			if op == "" {
				op = "UPDATE"
			}
			oldObj, newObj := base(t), base(t)
			if tt.change != nil {
				tt.change(newObj)
			}
			switch op {
			case "DELETE":
				newObj = nil
			case "CREATE":
				oldObj = nil
			}
			// CEL iterates Go maps in random order: the message must not
			// depend on it.
			var first []string
			for run := 0; run < 20; run++ {
				v := evalCAOnlyPolicy(t, vap, podguardSA, op, oldObj, newObj)
				if !v.matched {
					t.Fatal("the policy does not apply to podguard's ServiceAccount")
				}
				if run == 0 {
					first = v.denials
				} else if strings.Join(v.denials, "\n") != strings.Join(first, "\n") {
					t.Fatalf("the refusal changes from run to run:\n%s\n---\n%s", strings.Join(first, "\n"), strings.Join(v.denials, "\n"))
				}
			}
			switch {
			case tt.wantDeny == "" && len(first) > 0:
				t.Errorf("refused: %q", first)
			case tt.wantDeny != "" && (len(first) != 1 || first[0] != tt.wantDeny):
				t.Errorf("got refusals %q\nwant exactly %q", first, tt.wantDeny)
			}
		})
	}
	t.Run("another identity is not matched", func(t *testing.T) {
		for _, user := range []string{"system:serviceaccount:other:podguard", "system:serviceaccount:podguard-system:default", "admin"} {
			if v := evalCAOnlyPolicy(t, vap, user, "DELETE", base(t), nil); v.matched {
				t.Errorf("the policy applies to %s", user)
			}
		}
	})
}
