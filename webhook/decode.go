package webhook

import (
	"bytes"
	"errors"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// Decoding is on the hot path of every admission request, so each object is
// decoded once, straight into its typed value, with the JSON v2 decoder
// (github.com/go-json-experiment/json, the implementation behind Go's
// encoding/json/v2). It is set up to read what the API server's own decoder
// (sigs.k8s.io/json) reads:
//   - field names match case-sensitively, unknown fields are ignored;
//   - a repeated name is accepted (the later value wins), and invalid UTF-8
//     is replaced, not refused;
//   - the k8s types' own UnmarshalJSON methods (Quantity, Time,
//     IntOrString, RawExtension) are used as they are.
//
// Two things are deliberately not decoded: metadata.managedFields, which no
// policy reads and which is a third of a typical pod's JSON; and the
// AdmissionReview's object and oldObject, which are kept as slices of the
// request body (no copy) until the handler decodes them into their type.
// TestDecodeMatchesTheAPIServersDecoder checks the result against the
// decoder podguard used before (controller-runtime's admission.Decoder) on
// every pod and workload in the test data.
var (
	// reviewOptions decode an AdmissionReview; object and oldObject alias the body.
	reviewOptions = jsonv2.JoinOptions(
		jsontext.AllowDuplicateNames(true),
		jsontext.AllowInvalidUTF8(true),
		jsonv2.WithUnmarshalers(jsonv2.UnmarshalFromFunc(aliasRawExtension)),
	)
	// objectOptions decode an admitted object into its Go type.
	objectOptions = jsonv2.JoinOptions(
		jsontext.AllowDuplicateNames(true),
		jsontext.AllowInvalidUTF8(true),
		jsonv2.WithUnmarshalers(jsonv2.UnmarshalFromFunc(skipManagedFields)),
	)
)

// aliasRawExtension reads a raw object without copying it: the slice points
// into the request body, which outlives the request's handling. JSON null
// leaves it empty, as runtime.RawExtension's own UnmarshalJSON does.
func aliasRawExtension(dec *jsontext.Decoder, re *runtime.RawExtension) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if v.Kind() == 'n' {
		re.Raw = nil
		return nil
	}
	re.Raw = v
	return nil
}

// skipManagedFields reads past metadata.managedFields: no policy reads it.
// What it skips must still be null or a list of objects, as the API server
// always sends; the entries' own fields are not checked.
func skipManagedFields(dec *jsontext.Decoder, _ *[]metav1.ManagedFieldsEntry) error {
	switch k := dec.PeekKind(); k {
	case 'n':
		return dec.SkipValue()
	case '[':
	default:
		return fmt.Errorf("metadata.managedFields: expected a list, got %s", k)
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != ']' {
		if k := dec.PeekKind(); k != '{' {
			if k == 0 {
				_, err := dec.ReadToken()
				return err
			}
			return fmt.Errorf("metadata.managedFields: expected an object, got %s", k)
		}
		if err := dec.SkipValue(); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// decodeReview parses an admission.k8s.io/v1 AdmissionReview and checks that
// it carries a request podguard can answer. The request's object and
// oldObject point into body: body must not be reused before the request has
// been answered.
func decodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("malformed AdmissionReview: the request body is empty")
	}
	var review admissionv1.AdmissionReview
	if err := jsonv2.Unmarshal(body, &review, reviewOptions); err != nil {
		return nil, fmt.Errorf("malformed AdmissionReview: %w", err)
	}
	if gvk := review.GroupVersionKind(); gvk != admissionv1.SchemeGroupVersion.WithKind("AdmissionReview") {
		return nil, fmt.Errorf("malformed AdmissionReview: apiVersion %q kind %q, expected admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return nil, errors.New("malformed AdmissionReview: request is missing")
	}
	if review.Request.UID == "" {
		return nil, errors.New("malformed AdmissionReview: request.uid is missing")
	}
	return &review, nil
}

// decodeObject decodes an admitted object into obj, whose type is the one
// the request's kind names. An object that names another kind is refused,
// as the API server's decoder refuses to decode one kind into another.
func decodeObject(raw runtime.RawExtension, obj runtime.Object) error {
	if len(raw.Raw) == 0 {
		return errors.New("there is no content to decode")
	}
	if err := jsonv2.Unmarshal(raw.Raw, obj, objectOptions); err != nil {
		return err
	}
	want, err := kindOf(obj)
	if err != nil {
		return err
	}
	// What the object says it is, completed from what it is decoded as, as
	// the API machinery's JSON serializer does.
	got := obj.GetObjectKind().GroupVersionKind()
	if got.Kind == "" {
		got.Kind = want.Kind
	}
	if got.Version == "" && (got.Group == "" || got.Group == want.Group) {
		got.Group, got.Version = want.Group, want.Version
	}
	if got != want {
		return fmt.Errorf("the object is a %s %s, not a %s %s", got.GroupVersion(), got.Kind, want.GroupVersion(), want.Kind)
	}
	return nil
}

// kindOf is the group and kind of a typed object, from the client-go scheme.
func kindOf(obj runtime.Object) (schema.GroupVersionKind, error) {
	gvks, _, err := clientgoscheme.Scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return schema.GroupVersionKind{}, fmt.Errorf("podguard cannot decode a %T: %w", obj, err)
	}
	return gvks[0], nil
}
