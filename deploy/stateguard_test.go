package deploy_test

import (
	"testing"

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
