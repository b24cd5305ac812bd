package webhook

import (
	"bytes"
	"encoding/json"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEncodePatchIsJSONMarshal compares encodePatch with json.Marshal on
// operations of every kind and on values with what encoding/json escapes.
func TestEncodePatchIsJSONMarshal(t *testing.T) {
	var nilPod *corev1.Pod
	cases := [][]jsonpatch.JsonPatchOperation{
		nil,
		{},
		{jsonpatch.NewOperation("remove", "/spec/containers/1", nil)},
		{jsonpatch.NewOperation("add", "/metadata/annotations/a~1b", nil)},
		{jsonpatch.NewOperation("replace", "/spec/x", nilPod)},
		{jsonpatch.NewOperation("add", "/metadata/annotations/x<y>&z", "<script>&\u2028\u2029")},
		{jsonpatch.NewOperation("add", "/metadata/labels/\xff", "bad \xfe utf-8")},
		{jsonpatch.NewOperation("replace", "/spec/priority", int32(7)), jsonpatch.NewOperation("test", "/a", map[string]any{"b": []any{1.5, "c", nil, true}})},
		{jsonpatch.NewOperation("add", "/spec/containers/0/resources", corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}})},
		{jsonpatch.NewOperation("add", "/metadata/creationTimestamp", metav1.Unix(1700000000, 0))},
		{jsonpatch.NewOperation("replace", "/spec/raw", json.RawMessage(`{"a": 1}`))},
	}
	for _, ops := range cases {
		want, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) == 0 {
			continue // Complete never encodes an empty patch
		}
		if !bytes.Equal(got, want) {
			t.Errorf("encodePatch gives\n%s\njson.Marshal\n%s", got, want)
		}
	}
}

// TestCompleteIsResponseComplete compares complete with controller-runtime's
// Response.Complete.
func TestCompleteIsResponseComplete(t *testing.T) {
	req := admission.Request{}
	req.UID = "u-1"
	for _, resp := range []admission.Response{
		admission.Allowed(""),
		admission.Denied("no"),
		admission.Errored(400, errAny),
		admission.Patched("", jsonpatch.NewOperation("add", "/spec/x", map[string]string{"a": "<b>"})),
		{},
	} {
		want, got := resp, resp
		if resp.Result != nil {
			r1, r2 := *resp.Result, *resp.Result
			want.Result, got.Result = &r1, &r2
		}
		if err := want.Complete(req); err != nil {
			t.Fatal(err)
		}
		if err := complete(&got, req); err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(want)
		b, _ := json.Marshal(got)
		if !bytes.Equal(a, b) {
			t.Errorf("complete gives\n%s\nComplete\n%s", b, a)
		}
	}
}

var errAny = json.Unmarshal([]byte("x"), new(any))
