// Package patchtest checks typedpatch.Diff against the full diff it stands
// for, for the tests of typedpatch and of the policies.
package patchtest

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"

	"github.com/podguard/podguard/internal/typedpatch"
)

// Check computes typedpatch.Diff(before, after) and the full diff,
// jsonpatch.CreatePatch over json.Marshal of both, applies each to before's
// JSON, and fails t unless both are empty or neither is, both give the same
// document, and that document is after's JSON. It returns the typed
// operations.
func Check(t testing.TB, name string, before, after any) []jsonpatch.JsonPatchOperation {
	t.Helper()
	bj, err := json.Marshal(before)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	aj, err := json.Marshal(after)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	full, err := jsonpatch.CreatePatch(bj, aj)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	typed, err := typedpatch.Diff(before, after)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if (len(full) == 0) != (len(typed) == 0) {
		t.Errorf("%s: the full diff has %d operations, the typed one %d: %s", name, len(full), len(typed), opsJSON(typed))
	}
	got := Apply(t, name, bj, typed)
	if want := Apply(t, name, bj, full); !reflect.DeepEqual(want, got) {
		t.Errorf("%s: the typed patch gives another document than the full diff\nfull:  %s\ntyped: %s", name, opsJSON(full), opsJSON(typed))
	}
	var want any
	if err := json.Unmarshal(aj, &want); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s: the typed patch %s gives\n%v\nwant\n%v", name, opsJSON(typed), got, want)
	}
	return typed
}

// Apply applies ops to doc with an RFC 6902 implementation of its own
// (evanphx/json-patch) and returns the result, decoded.
func Apply(t testing.TB, name string, doc []byte, ops []jsonpatch.JsonPatchOperation) any {
	t.Helper()
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p, err := jsonpatchapply.DecodePatch(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	patched, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("%s: applying %s: %v", name, raw, err)
	}
	var out any
	if err := json.Unmarshal(patched, &out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func opsJSON(ops []jsonpatch.JsonPatchOperation) string {
	raw, _ := json.Marshal(ops)
	return string(raw)
}
