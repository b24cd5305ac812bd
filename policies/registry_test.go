package policies

import (
	"regexp"
	"testing"
)

func TestRegistry(t *testing.T) {
	kebab := regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	seen := map[string]bool{}
	for i, r := range Registry {
		if !kebab.MatchString(r.Name) {
			t.Errorf("Registry[%d]: name %q is not kebab-case", i, r.Name)
		}
		if r.Name == "all" {
			t.Errorf("Registry[%d]: %q is reserved for podguard.io/skip", i, r.Name)
		}
		if seen[r.Name] {
			t.Errorf("Registry[%d]: duplicate policy name %q", i, r.Name)
		}
		seen[r.Name] = true
		if r.Enabled == nil || r.Build == nil || r.Default == nil || r.Validate == nil {
			t.Errorf("Registry[%d] %q: every hook must be set", i, r.Name)
			continue
		}
		s := defaultSettings()
		if !r.Enabled(s) {
			t.Errorf("%q is off by default; every policy is on by default", r.Name)
		}
		p := r.Build(s)
		if p.Name() != r.Name {
			t.Errorf("Registry[%d] builds a policy named %q, registered as %q", i, p.Name(), r.Name)
		}
		_, isMutator := p.(Mutator)
		_, isValidator := p.(Validator)
		if isMutator == isValidator {
			t.Errorf("%q must be exactly one of Mutator and Validator", r.Name)
		}
	}
}

func TestRegistryRunsMutatorsBeforeValidators(t *testing.T) {
	validating := false
	for _, r := range Registry {
		_, isValidator := r.Build(defaultSettings()).(Validator)
		if validating && !isValidator {
			t.Errorf("mutator %q is registered after a validator; validators must see the fully mutated pod", r.Name)
		}
		validating = validating || isValidator
	}
}

func TestDefaultSettingsAreValid(t *testing.T) {
	if errs := defaultSettings().Validate(nil); len(errs) > 0 {
		t.Fatalf("defaults do not validate: %v", errs.ToAggregate())
	}
}
