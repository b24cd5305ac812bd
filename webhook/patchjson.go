package webhook

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// encodePatch encodes JSON patch operations byte for byte as
// json.Marshal(ops) does (TestEncodePatchIsJSONMarshal), at half the cost:
// json.Marshal calls each Operation's MarshalJSON, which marshals the
// operation again, and then re-scans what it returned. Here each value is
// marshalled once, into one buffer.
func encodePatch(ops []jsonpatch.JsonPatchOperation) ([]byte, error) {
	out := make([]byte, 0, 256)
	out = append(out, '[')
	for i, op := range ops {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"op":`...)
		out = appendString(out, op.Operation)
		out = append(out, `,"path":`...)
		out = appendString(out, op.Path)
		// As Operation.MarshalJSON: value is written when set, and as
		// null for an add or a replace without one.
		if op.Value != nil || op.Operation == "add" || op.Operation == "replace" {
			v, err := json.Marshal(op.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, `,"value":`...)
			out = append(out, v...)
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

// appendString appends s as encoding/json writes a string: quoted, with
// <, >, & and the JavaScript line separators escaped, and invalid UTF-8
// replaced.
func appendString(out []byte, s string) []byte {
	if !strings.ContainsAny(s, "<>&\u2028\u2029") && utf8.ValidString(s) {
		if q, err := jsontext.AppendQuote(out, s); err == nil {
			return q
		}
	}
	q, _ := json.Marshal(s)
	return append(out, q...)
}

// complete fills in what the API server needs of a response, as
// admission.Response.Complete does: the request's UID, a status code, and
// the patch encoded with its type.
func complete(resp *admission.Response, req admission.Request) error {
	resp.UID = req.UID
	if resp.Result == nil {
		resp.Result = &metav1.Status{}
	}
	if resp.Result.Code == 0 {
		resp.Result.Code = 200
	}
	if len(resp.Patches) == 0 {
		return nil
	}
	patch, err := encodePatch(resp.Patches)
	if err != nil {
		return err
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	return nil
}
