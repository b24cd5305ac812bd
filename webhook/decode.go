package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/policies"
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
// metadata.managedFields, which no policy reads and which is a third of a
// typical pod's JSON, is skipped (its shape is checked). The review's object
// is decoded into its type in the same pass as the review (decodeReview);
// object and oldObject are also kept as slices of the request body, never
// copied. TestDecodeMatchesTheAPIServersDecoder and FuzzDecodeObject check
// the result against the decoder podguard used before (controller-runtime's
// admission.Decoder, the API machinery's universal deserializer); the only
// differences need inputs the API server never sends (YAML, a name given
// twice, apiVersion or kind in another case, errors inside managedFields).
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
//
// When the object is a Pod or a pod-bearing workload (the request's kind,
// which the API server writes before the object, says so), it is decoded
// into its type in the same pass and returned as obj; handlers get it with
// objectOf. Any error on that path, or an object of another kind, falls
// back to decoding the review alone, so that errors are reported exactly as
// decodeObject reports them.
func decodeReview(body []byte) (review *admissionv1.AdmissionReview, obj runtime.Object, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, errors.New("malformed AdmissionReview: the request body is empty")
	}
	if review, obj, ok := decodeReviewAndObject(body); ok {
		return review, obj, nil
	}
	review = &admissionv1.AdmissionReview{}
	if err := jsonv2.Unmarshal(body, review, reviewOptions); err != nil {
		return nil, nil, fmt.Errorf("malformed AdmissionReview: %w", err)
	}
	if err := checkReview(review); err != nil {
		return nil, nil, err
	}
	return review, nil, nil
}

func checkReview(review *admissionv1.AdmissionReview) error {
	if gvk := review.GroupVersionKind(); gvk != admissionv1.SchemeGroupVersion.WithKind("AdmissionReview") {
		return fmt.Errorf("malformed AdmissionReview: apiVersion %q kind %q, expected admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return errors.New("malformed AdmissionReview: request is missing")
	}
	if review.Request.UID == "" {
		return errors.New("malformed AdmissionReview: request.uid is missing")
	}
	return nil
}

// reviewIn and requestIn are an AdmissionReview as decodeReviewAndObject
// reads it: requestIn's object and oldObject shadow the AdmissionRequest's.
type reviewIn struct {
	metav1.TypeMeta `json:",inline"`
	Request         *requestIn `json:"request"`
}

type requestIn struct {
	*admissionv1.AdmissionRequest `json:",inline"`
	Object                        objectIn             `json:"object"`
	OldObject                     runtime.RawExtension `json:"oldObject"`
}

// objectIn decodes the request's object into the type its kind names, and
// keeps where it is in the body.
type objectIn struct {
	req  *admissionv1.AdmissionRequest
	body []byte
	obj  runtime.Object
	kind metav1.GroupVersionKind // that obj was decoded as
	raw  []byte
}

func (o *objectIn) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	o.obj, o.raw = nil, nil
	var newObject func() runtime.Object
	if o.req != nil { // nil in a requestIn the decoder made itself: a repeated "request"
		o.kind = o.req.Kind
		newObject = policies.PodBearingKinds[schema.GroupVersionKind(o.kind)]
	}
	if newObject == nil || dec.PeekKind() != '{' {
		v, err := dec.ReadValue()
		if err == nil && v.Kind() != 'n' {
			o.raw = v
		}
		return err
	}
	start := dec.InputOffset()
	obj := newObject()
	if err := jsonv2.UnmarshalDecode(dec, obj, objectOptions); err != nil {
		return err
	}
	end := dec.InputOffset()
	if start < 0 || end > int64(len(o.body)) || start > end {
		return errors.New("object outside the body")
	}
	// Between the name and the value: white space and the colon.
	o.raw = bytes.TrimLeft(o.body[start:end], " \t\r\n:")
	o.obj = obj
	return nil
}

// decodeReviewAndObject is decodeReview's one pass: ok is false on any
// error, which the caller then finds and reports the usual way.
func decodeReviewAndObject(body []byte) (_ *admissionv1.AdmissionReview, _ runtime.Object, ok bool) {
	defer func() {
		// A shape this path did not foresee is the two-pass path's to judge.
		if recover() != nil {
			ok = false
		}
	}()
	req := &requestIn{AdmissionRequest: &admissionv1.AdmissionRequest{}}
	req.Object.req, req.Object.body = req.AdmissionRequest, body
	in := reviewIn{Request: req}
	if jsonv2.Unmarshal(body, &in, reviewOptions) != nil || in.Request != req {
		return nil, nil, false
	}
	req.AdmissionRequest.Object.Raw = req.Object.raw
	req.AdmissionRequest.OldObject.Raw = req.OldObject.Raw
	review := &admissionv1.AdmissionReview{TypeMeta: in.TypeMeta, Request: req.AdmissionRequest}
	if checkReview(review) != nil {
		return nil, nil, false
	}
	obj := req.Object.obj
	if obj != nil && (req.Object.kind != req.AdmissionRequest.Kind || checkKind(obj) != nil) {
		// Decoded as another kind than the request's in the end (a kind
		// given twice), or naming another kind itself.
		return nil, nil, false
	}
	return review, obj, true
}

// decodedKey is the context key of the object decodeReview decoded.
type decodedKey struct{}

type decoded struct {
	kind metav1.GroupVersionKind
	obj  runtime.Object
}

// withObject returns ctx carrying the object decodeReview decoded for a
// request of the given kind, if it decoded one.
func withObject(ctx context.Context, kind metav1.GroupVersionKind, obj runtime.Object) context.Context {
	if obj == nil {
		return ctx
	}
	return context.WithValue(ctx, decodedKey{}, decoded{kind, obj})
}

// decodedObject is the object decodeReview decoded for req, or nil.
func decodedObject(ctx context.Context, req admission.Request) runtime.Object {
	if d, ok := ctx.Value(decodedKey{}).(decoded); ok && d.kind == req.Kind {
		return d.obj
	}
	return nil
}

// objectOf returns the request's object as the type its kind names
// (policies.PodBearingKinds): the one decodeReview decoded in the same
// pass, or else decoded from the request now.
func objectOf(ctx context.Context, req admission.Request) (runtime.Object, error) {
	if obj := decodedObject(ctx, req); obj != nil {
		return obj, nil
	}
	newObject := policies.PodBearingKinds[schema.GroupVersionKind(req.Kind)]
	if newObject == nil {
		return nil, fmt.Errorf("podguard does not decode a %s", req.Kind.Kind)
	}
	obj := newObject()
	return obj, decodeObject(req.Object, obj)
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
	return checkKind(obj)
}

// checkKind refuses an object that says it is of another kind than its type.
func checkKind(obj runtime.Object) error {
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
