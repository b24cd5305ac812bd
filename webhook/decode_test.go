package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/podguard/podguard/policies"
)

// decodeCorpus is every object podguard's tests hold: the policy goldens,
// the examples, the captured reviews and the review fuzz corpus, as JSON,
// each with the kind it is decoded as.
func decodeCorpus(t testing.TB) []decodeCase {
	t.Helper()
	var out []decodeCase
	var yamlFiles []string
	for _, glob := range []string{"../policies/testdata/*/*.yaml", "../policies/testdata/*/*/*.yaml", "../examples/*/*.yaml", "../examples/*.yaml"} {
		m, _ := filepath.Glob(glob)
		yamlFiles = append(yamlFiles, m...)
	}
	for _, path := range yamlFiles {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(f))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			raw, err := yaml.YAMLToJSON(doc)
			if err != nil || len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			if json.Unmarshal(raw, &tm) != nil {
				continue
			}
			if gvk := tm.GroupVersionKind(); policies.PodBearingKinds[gvk] != nil {
				out = append(out, decodeCase{path, gvk, raw})
			}
		}
		f.Close()
	}
	for path, body := range reviewCorpus(t) {
		var review admissionv1.AdmissionReview
		if json.Unmarshal(body, &review) != nil || review.Request == nil || len(review.Request.Object.Raw) == 0 {
			continue
		}
		gvk := schema.GroupVersionKind(review.Request.Kind)
		if policies.PodBearingKinds[gvk] == nil {
			gvk = podGVK
		}
		out = append(out, decodeCase{path, gvk, review.Request.Object.Raw})
	}
	return out
}

type decodeCase struct {
	name string
	gvk  schema.GroupVersionKind
	raw  []byte
}

// fuzzBytes reads the []byte of a one-value fuzz corpus file.
func fuzzBytes(file []byte) ([]byte, bool) {
	_, v, ok := strings.Cut(string(file), "\n")
	v = strings.TrimSpace(v)
	if !ok || !strings.HasPrefix(v, "[]byte(") || !strings.HasSuffix(v, ")") {
		return nil, false
	}
	var s string
	if err := json.Unmarshal([]byte(v[len("[]byte("):len(v)-1]), &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// TestDecodeMatchesTheAPIServersDecoder checks decodeObject against the
// decoder podguard used before it (controller-runtime's admission.Decoder,
// which is the API machinery's universal deserializer): on every object in
// the corpus, both fail, or both give the same object but for
// metadata.managedFields, which decodeObject skips.
func TestDecodeMatchesTheAPIServersDecoder(t *testing.T) {
	cases := decodeCorpus(t)
	if len(cases) < 100 {
		t.Fatalf("only %d objects in the corpus: the test data moved", len(cases))
	}
	decoded := 0
	for _, c := range cases {
		if compareDecoders(t, c.name, c.gvk, c.raw) {
			decoded++
		}
	}
	if decoded < 50 {
		t.Errorf("only %d of %d objects decoded: the comparison is mostly of errors", decoded, len(cases))
	}
}

// TestDecodeObjectEdgeCases are inputs where JSON decoders are known to
// differ: both decoders must agree on them.
func TestDecodeObjectEdgeCases(t *testing.T) {
	for name, raw := range map[string]string{
		"a repeated field":             `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","name":"b"}}`,
		"a repeated struct":            `{"spec":{"hostname":"a"},"spec":{"subdomain":"b"}}`,
		"invalid UTF-8":                "{\"metadata\":{\"name\":\"a\xffb\"}}",
		"a field in another case":      `{"Metadata":{"Name":"a"},"spec":{"HostName":"x"}}`,
		"null fields":                  `{"metadata":null,"spec":{"containers":null,"hostname":null}}`,
		"an exponent in an int":        `{"spec":{"terminationGracePeriodSeconds":1e2}}`,
		"a fraction in an int":         `{"spec":{"terminationGracePeriodSeconds":1.5}}`,
		"an int out of range":          `{"spec":{"priority":4294967296}}`,
		"a string for an int":          `{"spec":{"priority":"1"}}`,
		"a quantity as a number":       `{"spec":{"containers":[{"name":"a","resources":{"limits":{"cpu":0.5}}}]}}`,
		"a bad quantity":               `{"spec":{"containers":[{"name":"a","resources":{"limits":{"cpu":"lots"}}}]}}`,
		"an int-or-string":             `{"spec":{"containers":[{"name":"a","livenessProbe":{"httpGet":{"port":"http"}}}]}}`,
		"a time":                       `{"metadata":{"creationTimestamp":"2026-12-02T02:00:00Z"}}`,
		"a bad time":                   `{"metadata":{"creationTimestamp":"yesterday"}}`,
		"another kind":                 `{"kind":"Deployment","apiVersion":"apps/v1"}`,
		"another version":              `{"kind":"Pod","apiVersion":"v2"}`,
		"unknown fields":               `{"kind":"Pod","apiVersion":"v1","spec":{"futureField":{"x":[1,2]}}}`,
		"trailing data":                `{"kind":"Pod"} {}`,
		"not an object":                `[1]`,
		"null":                         `null`,
		"an escaped name":              `{"metadata":{"n\u0061me":"a"}}`,
		"an escaped surrogate pair":    `{"metadata":{"name":"\ud83d\ude00"}}`,
		"a lone surrogate":             `{"metadata":{"name":"\ud83d"}}`,
		"managed fields":               `{"metadata":{"managedFields":[{"manager":"m","fieldsV1":{"f:x":{}}}]}}`,
		"malformed managed fields":     `{"metadata":{"managedFields":"x"}}`,
		"deeply nested unknown fields": `{"spec":{"x":` + strings.Repeat(`[`, 5000) + strings.Repeat(`]`, 5000) + `}}`,
	} {
		t.Run(name, func(t *testing.T) { compareDecoders(t, name, podGVK, []byte(raw)) })
	}
}

// compareDecoders decodes raw with both decoders and reports whether both
// succeeded.
func compareDecoders(t *testing.T, name string, gvk schema.GroupVersionKind, raw []byte) bool {
	t.Helper()
	old, fresh := policies.PodBearingKinds[gvk](), policies.PodBearingKinds[gvk]()
	oldErr := admission.NewDecoder(clientgoscheme.Scheme).DecodeRaw(runtime.RawExtension{Raw: raw}, old)
	newErr := decodeObject(runtime.RawExtension{Raw: raw}, fresh)
	if oldErr != nil && newErr == nil {
		// The one difference allowed: decodeObject does not decode the
		// entries of metadata.managedFields, so it does not see their
		// errors. Without them, the old decoder must agree.
		old = policies.PodBearingKinds[gvk]()
		oldErr = admission.NewDecoder(clientgoscheme.Scheme).DecodeRaw(runtime.RawExtension{Raw: withoutManagedFields(t, raw)}, old)
	}
	if oldErr != nil && newErr == nil && typeKeysInAnotherCase(raw) {
		// The other difference allowed: the old decoder found apiVersion
		// and kind with encoding/json, which matches names in any case,
		// before decoding the object case-sensitively. The API server
		// writes them as apiVersion and kind.
		return false
	}
	if (oldErr == nil) != (newErr == nil) {
		t.Errorf("%s: the API machinery's decoder says %v, decodeObject %v\nobject: %.300s", name, oldErr, newErr, raw)
		return false
	}
	if oldErr != nil {
		return false
	}
	if m, ok := old.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	if !reflect.DeepEqual(old, fresh) {
		a, _ := json.Marshal(old)
		b, _ := json.Marshal(fresh)
		t.Errorf("%s: the decoders disagree\nAPI machinery: %s\ndecodeObject:  %s", name, a, b)
	}
	return true
}

// FuzzDecodeObject checks decodeObject against the API machinery's decoder
// on arbitrary input.
func FuzzDecodeObject(f *testing.F) {
	for _, c := range decodeCorpus(f) {
		if c.gvk == podGVK && len(c.raw) < 4<<10 {
			f.Add(c.raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		// An object reaches podguard inside an AdmissionReview, as a JSON
		// value that the API server wrote: never YAML (which the API
		// machinery's decoder also reads), never with a name twice (where
		// the two decoders merge a repeated list differently).
		if !jsontext.Value(raw).IsValid(jsontext.AllowInvalidUTF8(true)) {
			t.Skip()
		}
		compareDecoders(t, "fuzz", podGVK, raw)
	})
}

// withoutManagedFields copies a JSON object but for metadata.managedFields.
func withoutManagedFields(t *testing.T, raw []byte) []byte {
	t.Helper()
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var out bytes.Buffer
	enc := jsontext.NewEncoder(&out, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			return out.Bytes()
		}
		if err != nil {
			return raw
		}
		if tok.Kind() == '"' && dec.StackDepth() == 2 && dec.StackPointer() == "/metadata/managedFields" {
			if _, idx := dec.StackIndex(2); idx%2 == 1 {
				// tok is the name: skip its value too.
				if err := dec.SkipValue(); err != nil {
					return raw
				}
				continue
			}
		}
		if err := enc.WriteToken(tok); err != nil {
			return raw
		}
	}
}

// typeKeysInAnotherCase reports whether raw names apiVersion or kind in
// another case, e.g. "ApiVersion".
func typeKeysInAnotherCase(raw []byte) bool {
	var folded, exact metav1.TypeMeta
	if json.Unmarshal(raw, &folded) != nil {
		return false
	}
	if kjson.UnmarshalCaseSensitivePreserveInts(raw, &exact) != nil {
		return true
	}
	return folded != exact
}

// TestDecodeReviewKeepsTheObjectInTheBody checks that object and oldObject
// are slices of the request body, not copies: the handler decodes them
// from there, and reviewServer releases the body only after answering.
func TestDecodeReviewKeepsTheObjectInTheBody(t *testing.T) {
	body, err := os.ReadFile("testdata/reviews/nginx-mutate.json")
	if err != nil {
		t.Fatal(err)
	}
	review, obj, err := decodeReview(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.(*corev1.Pod); !ok {
		t.Errorf("the pod was not decoded in the same pass: %T", obj)
	}
	raw := review.Request.Object.Raw
	if len(raw) == 0 || !bytes.Contains(body, raw) {
		t.Fatalf("object not decoded: %.100s", raw)
	}
	start := uintptr(unsafe.Pointer(&body[0]))
	if p := uintptr(unsafe.Pointer(&raw[0])); p < start || p >= start+uintptr(len(body)) {
		t.Errorf("the object was copied out of the body")
	}
	if review.Request.OldObject.Raw != nil {
		t.Errorf("a CREATE has no oldObject, got %.100s", review.Request.OldObject.Raw)
	}
}

// TestDecodeReviewInOnePassMatchesTwo compares decodeReview's one pass
// (review and object together) with the review decoded alone and the
// object then decoded with decodeObject, on the captured reviews and the
// review fuzz corpus: the same request, the same raw object, and the same
// decoded object exactly when decodeObject succeeds.
func TestDecodeReviewInOnePassMatchesTwo(t *testing.T) {
	onePass := 0
	for path, body := range reviewCorpus(t) {
		if compareReviewDecoding(t, path, body) {
			onePass++
		}
	}
	if onePass < 20 {
		t.Errorf("only %d reviews were decoded in one pass", onePass)
	}
}

// compareReviewDecoding checks one body and reports whether its object was
// decoded in the same pass.
func compareReviewDecoding(t *testing.T, name string, body []byte) bool {
	t.Helper()
	review, obj, err := decodeReview(body)
	slow := &admissionv1.AdmissionReview{}
	slowErr := jsonv2.Unmarshal(body, slow, reviewOptions)
	if slowErr == nil && len(bytes.TrimSpace(body)) > 0 {
		slowErr = checkReview(slow)
	} else if slowErr == nil {
		slowErr = errors.New("empty")
	}
	if (err == nil) != (slowErr == nil) {
		t.Fatalf("%s: one pass says %v, two passes %v", name, err, slowErr)
	}
	if err != nil {
		return false
	}
	if !reflect.DeepEqual(review, slow) {
		t.Fatalf("%s: the requests differ\none pass:  %+v\ntwo passes: %+v", name, review.Request, slow.Request)
	}
	newObject := policies.PodBearingKinds[schema.GroupVersionKind(slow.Request.Kind)]
	if newObject == nil {
		if obj != nil {
			t.Fatalf("%s: a %s was decoded as a %T", name, slow.Request.Kind.Kind, obj)
		}
		return false
	}
	want := newObject()
	if decodeObject(slow.Request.Object, want) != nil {
		if obj != nil {
			t.Fatalf("%s: decodeObject fails on the object, the one pass gave %T", name, obj)
		}
		return false
	}
	if obj == nil {
		// The one pass gave up (the object came before the kind, say): the
		// handler decodes it, which is not wrong, only slower.
		return false
	}
	if !reflect.DeepEqual(obj, want) {
		t.Fatalf("%s: the objects differ", name)
	}
	return true
}

// FuzzDecodeReview compares the one pass with two on arbitrary bodies.
func FuzzDecodeReview(f *testing.F) {
	for _, body := range reviewCorpus(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) { compareReviewDecoding(t, "fuzz", body) })
}

// reviewCorpus is every AdmissionReview body the tests hold, by file: the
// captured reviews and the review fuzz corpus.
func reviewCorpus(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, path := range append(mustGlob(t, "testdata/reviews/*.json"), mustGlob(t, "testdata/fuzz/FuzzAdmissionReview/*")...) {
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(body), "go test fuzz v1") {
			var ok bool
			if body, ok = fuzzBytes(body); !ok {
				continue
			}
		}
		out[path] = body
	}
	return out
}

func mustGlob(t testing.TB, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDecodeReviewWithRepeatedNames: the API server never repeats a name,
// anyone else may. A repeated request or kind must neither panic nor give
// an object of another kind than the request's.
func TestDecodeReviewWithRepeatedNames(t *testing.T) {
	for _, body := range []string{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null,"request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"object":{}}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"}},"request":{"object":{"spec":{}}}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a"}]}},"kind":{"group":"apps","version":"v1","kind":"Deployment"}}}`,
	} {
		review, obj, err := decodeReview([]byte(body))
		if err != nil {
			continue
		}
		if obj != nil && reflect.TypeOf(obj) != reflect.TypeOf(policies.PodBearingKinds[schema.GroupVersionKind(review.Request.Kind)]()) {
			t.Errorf("a %s request got a %T", review.Request.Kind.Kind, obj)
		}
		compareReviewDecoding(t, body, []byte(body))
	}
}
