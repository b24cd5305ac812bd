// Package check runs podguard's policies offline over manifests, for
// `podguard check` and `podguard mutate`: the same engine, and the same
// mutate-then-validate path, as the admission webhook, over a World made of
// the manifests themselves.
package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/podguard/podguard/policies"
)

// Report is what `podguard check` found in its input.
type Report struct {
	// Results has one entry per pod-bearing object, in input order.
	Results []Result `json:"results"`
	// Errors are inputs that could not be read or parsed. The rest of the
	// input is still checked.
	Errors []InputError `json:"errors,omitempty"`
	// InputWarnings are about inputs read as kubectl reads them, but likely
	// not as meant: a key set twice (the last value wins), bytes that are
	// not UTF-8. They never fail a check.
	InputWarnings []InputError `json:"inputWarnings,omitempty"`
	Summary       Summary      `json:"summary"`
}

// Result is the verdict on one pod-bearing object.
type Result struct {
	// File is the manifest the object was read from; empty for an object
	// read from a cluster (`podguard audit`), which Kind, Namespace and
	// Name identify. Without a file, JSON leaves out file, document and
	// line.
	File string `json:"file"`
	// Document is the 0-based index of the YAML document in its file, and
	// Line the 1-based line where it starts.
	Document   int    `json:"document"`
	Line       int    `json:"line"`
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// Violations would make the cluster reject the object (or its pods).
	Violations []policies.Finding `json:"violations"`
	// Warnings are returned to the client but do not block.
	Warnings []string `json:"warnings"`
	// Mutations names the policies that would change the object's pods.
	Mutations []string `json:"mutations"`
	// ImageAware is set when every image of the object's pods was
	// inspected (--images), so the verdicts rest on what the images ship
	// rather than on heuristics.
	ImageAware bool `json:"imageAware,omitempty"`
	// Images says, with --images, what was learnt of each image.
	Images []ImageResult `json:"images,omitempty"`

	// FieldLines gives, for each field path of a violation or warning,
	// the line of File it is written on, or, for a field the file does not
	// write (a mutation adds it), the line of its deepest part that it
	// does. Absent for an object read from a cluster.
	FieldLines map[string]int `json:"fieldLines,omitempty"`
}

// findingLines maps each field path of r's violations and warnings to the
// line of File it is written on, with fieldLines (Item.FieldLines).
func (r *Result) findingLines(fieldLines func(paths ...string) []int) map[string]int {
	if fieldLines == nil {
		return nil
	}
	var fields []string
	for _, v := range r.Violations {
		fields = append(fields, v.Field)
	}
	for _, w := range r.Warnings {
		fields = append(fields, warningFinding(w).Field)
	}
	fields = slices.DeleteFunc(fields, func(f string) bool { return f == "" })
	slices.Sort(fields)
	fields = slices.Compact(fields)
	if len(fields) == 0 {
		return nil
	}
	out := make(map[string]int, len(fields))
	for i, line := range fieldLines(fields...) {
		out[fields[i]] = line
	}
	return out
}

// ImageResult is what `podguard check --images` learnt of one image.
type ImageResult struct {
	Ref string `json:"ref"`
	// Status is "inspected", "pending", "failed" or "not-inspected".
	Status   string `json:"status"`
	Digest   string `json:"digest,omitempty"`
	Platform string `json:"platform,omitempty"`
	User     string `json:"user,omitempty"`
	// Reason says why an image was not inspected.
	Reason string `json:"reason,omitempty"`
}

// imageStatusNames are ImageResult.Status's values.
var imageStatusNames = map[policies.ImageStatus]string{
	policies.ImageKnown:        "inspected",
	policies.ImagePending:      "pending",
	policies.ImageFailed:       "failed",
	policies.ImageNotInspected: "not-inspected",
}

// MarshalJSON leaves out file, document and line when the object was not
// read from a file.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	var v any = plain(r)
	if r.File == "" {
		v = struct {
			plain
			File     string `json:"file,omitempty"`
			Document int    `json:"document,omitempty"`
			Line     int    `json:"line,omitempty"`
		}{plain: plain(r)}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// Denied reports whether the cluster would reject the object.
func (r *Result) Denied() bool { return len(r.Violations) > 0 }

// InputError is an input that could not be read or parsed, or, in
// InputWarnings, one read with a warning.
type InputError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (e InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	}
	return e.File + ": " + e.Message
}

// Summary counts what was checked.
type Summary struct {
	Files int `json:"files"`
	// Namespaces counts the namespaces audited (`podguard audit`).
	Namespaces int `json:"namespaces,omitempty"`
	Documents  int `json:"documents"`
	Checked    int `json:"checked"`
	Denied     int `json:"denied"`
	Violations int `json:"violations"`
	// Warnings counts the objects' warnings and the input warnings.
	Warnings int `json:"warnings"`
	Mutated  int `json:"mutated"`
	Errors   int `json:"errors"`
	// ImageAware counts the objects whose images were all inspected; it is
	// present only with --images.
	ImageAware *int `json:"imageAware,omitempty"`
}

// ExitCode is `podguard check`'s exit status for the report: 2 when some
// input could not be read or parsed, else 1 when anything would be
// rejected, else 0. Warnings never fail a check.
func (r *Report) ExitCode() int {
	switch {
	case len(r.Errors) > 0:
		return 2
	case r.Summary.Violations > 0:
		return 1
	default:
		return 0
	}
}
