package config

import (
	"encoding/json"
	"reflect"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// AdmissionConfig configures what the admission responses carry besides the
// decision.
//
//	admission:
//	  mutationWarnings: on   # or summary, off
type AdmissionConfig struct {
	// MutationWarnings is the warning a mutated pod's creator sees (kubectl
	// prints it): "on" (default: one warning naming the policies that
	// changed the pod and the paths they changed), "summary" (one warning
	// naming the policies only), or "off" (none). The audit annotation
	// mutate.podguard.io/mutated-by and the decision log record every
	// mutation whatever it says, and the policies' own warnings are kept.
	MutationWarnings MutationWarnings `json:"mutationWarnings,omitempty"`
}

// MutationWarnings is admission.mutationWarnings. YAML reads an unquoted
// on and off as true and false, so those are taken for "on" and "off".
type MutationWarnings string

// The admission.mutationWarnings values.
const (
	MutationWarningsOn      MutationWarnings = "on"
	MutationWarningsSummary MutationWarnings = "summary"
	MutationWarningsOff     MutationWarnings = "off"
)

func (m *MutationWarnings) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*m = MutationWarningsOn
		return nil
	case "false":
		*m = MutationWarningsOff
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[MutationWarnings]()}
	}
	*m = MutationWarnings(s)
	return nil
}

// Default fills the unset fields.
func (c *AdmissionConfig) Default() {
	if c.MutationWarnings == "" {
		c.MutationWarnings = MutationWarningsOn
	}
}

// Validate checks a defaulted AdmissionConfig; p is its path.
func (c *AdmissionConfig) Validate(p *field.Path) field.ErrorList {
	switch c.MutationWarnings {
	case MutationWarningsOn, MutationWarningsSummary, MutationWarningsOff:
		return nil
	}
	return field.ErrorList{field.NotSupported(p.Child("mutationWarnings"), c.MutationWarnings,
		[]MutationWarnings{MutationWarningsOn, MutationWarningsSummary, MutationWarningsOff})}
}
