package deploy_test

import (
	"testing"

	"github.com/google/cel-go/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// TestSecretAccessSendsSecretsToTheStateGuard checks that
// components/secret-access, the install that lets podguard read Secret key
// names, adds Secret writes to the state guard's rules, on every overlay
// (its patch addresses the guard by index, and tests the name there), and
// that without it no Secret is sent to podguard.
func TestSecretAccessSendsSecretsToTheStateGuard(t *testing.T) {
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			plain, err := load(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range plain.hooks() {
				if intercepts(h.rules, "", "v1", "secrets", admissionregistrationv1.Create) || intercepts(h.rules, "", "v1", "secrets", admissionregistrationv1.Update) {
					t.Errorf("%s %s: sends Secret writes without components/secret-access", h.config, h.where("rules"))
				}
			}
			r := renderWithComponent(t, o.dir, "secret-access", "")
			found := false
			for _, h := range r.hooks() {
				if !h.stateGuard() {
					continue
				}
				found = true
				for _, op := range ops {
					if !intercepts(h.rules, "", "v1", "secrets", op) {
						t.Errorf("%s %s: does not intercept %s secrets with components/secret-access", h.config, h.where("rules"), op)
					}
					if !intercepts(h.rules, "", "v1", "configmaps", op) {
						t.Errorf("%s %s: no longer intercepts %s configmaps with components/secret-access", h.config, h.where("rules"), op)
					}
				}
			}
			if !found {
				t.Errorf("no %s with components/secret-access", stateGuardName)
			}
		})
	}
}

// TestStateGuardIsSentOnlyKeyNameChanges evaluates the guard's shipped
// matchConditions with CEL, as the API server does, over the writes it must
// and must not be sent: a value-only UPDATE, the usual ConfigMap write,
// never reaches podguard.
func TestStateGuardIsSentOnlyKeyNameChanges(t *testing.T) {
	r, err := load("opt-in")
	if err != nil {
		t.Fatal(err)
	}
	var conditions []admissionregistrationv1.MatchCondition
	for _, c := range r.validating {
		for _, w := range c.Webhooks {
			if w.Name == "state.podguard.io" {
				conditions = w.MatchConditions
			}
		}
	}
	if len(conditions) == 0 {
		t.Fatal("the state guard has no matchConditions")
	}
	env, err := cel.NewEnv(cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType), cel.Variable("request", cel.DynType))
	if err != nil {
		t.Fatal(err)
	}
	cm := func(data map[string]any, binary map[string]any) map[string]any {
		o := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "app-env"}}
		if data != nil {
			o["data"] = data
		}
		if binary != nil {
			o["binaryData"] = binary
		}
		return o
	}
	for _, tt := range []struct {
		what        string
		op          string
		object, old map[string]any
		want        bool
	}{
		{"a CREATE", "CREATE", cm(map[string]any{"a": "1"}, nil), nil, true},
		{"an UPDATE of values only", "UPDATE", cm(map[string]any{"a": "2", "b": "x"}, nil), cm(map[string]any{"a": "1", "b": "x"}, nil), false},
		{"an UPDATE of labels only, without data", "UPDATE", cm(nil, nil), cm(nil, nil), false},
		{"an UPDATE that adds a key", "UPDATE", cm(map[string]any{"a": "1", "1st.key": "x"}, nil), cm(map[string]any{"a": "1"}, nil), true},
		{"an UPDATE that renames a key", "UPDATE", cm(map[string]any{"b": "1"}, nil), cm(map[string]any{"a": "1"}, nil), true},
		{"an UPDATE that removes every key", "UPDATE", cm(nil, nil), cm(map[string]any{"a": "1"}, nil), true},
		{"an UPDATE that gives a ConfigMap its first keys", "UPDATE", cm(map[string]any{"a": "1"}, nil), cm(nil, nil), true},
		{"an UPDATE that adds a binaryData key", "UPDATE", cm(map[string]any{"a": "1"}, map[string]any{"cert.der": "AA=="}), cm(map[string]any{"a": "1"}, nil), true},
		{"an UPDATE of a binaryData value only", "UPDATE", cm(nil, map[string]any{"k": "AQ=="}), cm(nil, map[string]any{"k": "AA=="}), false},
		{"a Secret UPDATE through stringData", "UPDATE", map[string]any{"kind": "Secret", "stringData": map[string]any{"new": "x"}, "data": map[string]any{"a": "MQ=="}},
			map[string]any{"kind": "Secret", "data": map[string]any{"a": "MQ=="}}, true},
	} {
		t.Run(tt.what, func(t *testing.T) {
			var old any
			if tt.old != nil {
				old = tt.old
			}
			sent := true
			for _, mc := range conditions {
				ast, iss := env.Compile(mc.Expression)
				if iss.Err() != nil {
					t.Fatalf("%s does not compile: %v", mc.Name, iss.Err())
				}
				prg, err := env.Program(ast)
				if err != nil {
					t.Fatal(err)
				}
				out, _, err := prg.Eval(map[string]any{"object": tt.object, "oldObject": old, "request": map[string]any{"operation": tt.op}})
				if err != nil {
					t.Fatalf("%s fails: %v", mc.Name, err)
				}
				if b, ok := out.Value().(bool); !ok || !b {
					sent = false
				}
			}
			if sent != tt.want {
				t.Errorf("sent = %v, want %v", sent, tt.want)
			}
		})
	}
}
