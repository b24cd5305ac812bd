package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/podguard/podguard/policies"
)

func TestBadRequestsGetAClearHTTPError(t *testing.T) {
	s := newTestServer(t, "")
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		wantCode    int
		wantMessage string
		reason      string
	}{
		{name: "a body that is not JSON", body: []byte("{not json"), wantCode: 400, wantMessage: "malformed AdmissionReview", reason: "malformed"},
		{name: "an empty body", body: nil, wantCode: 400, wantMessage: "the request body is empty", reason: "malformed"},
		{name: "a review without a request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), wantCode: 400, wantMessage: "request is missing", reason: "malformed"},
		{name: "a request without a uid", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`), wantCode: 400, wantMessage: "request.uid is missing", reason: "malformed"},
		{name: "a v1beta1 review", body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), wantCode: 400, wantMessage: "expected admission.k8s.io/v1 AdmissionReview", reason: "malformed"},
		{name: "a field of the wrong type", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}`), wantCode: 400, wantMessage: "malformed AdmissionReview", reason: "malformed"},
		{name: "a body over the size limit", body: bytes.Repeat([]byte(" "), 65<<10), wantCode: 413, wantMessage: "larger than the 65536-byte limit", reason: "too_large"},
		{name: "another content type", contentType: "text/yaml", body: []byte("{}"), wantCode: 415, wantMessage: `content type "text/yaml" not supported`, reason: "content_type"},
		{name: "a GET", method: http.MethodGet, wantCode: 405, wantMessage: "method GET not allowed", reason: "method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, ct := tt.method, tt.contentType
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" {
				ct = "application/json"
			}
			before := testutil.ToFloat64(badRequests.WithLabelValues("validate", tt.reason))
			req, err := http.NewRequest(method, s.URL+"/validate", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(body.String(), tt.wantMessage) {
				t.Errorf("got %d %q, want %d with %q", resp.StatusCode, body.String(), tt.wantCode, tt.wantMessage)
			}
			if after := testutil.ToFloat64(badRequests.WithLabelValues("validate", tt.reason)); after != before+1 {
				t.Errorf("bad request counter %q went from %v to %v", tt.reason, before, after)
			}
		})
	}
}

func TestAnObjectThatIsNotAPodGetsAClearDenial(t *testing.T) {
	s := newTestServer(t, "")
	for _, path := range []string{"/mutate", "/validate"} {
		body := review(t, podKind, admissionv1.Create, []byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":"nginx"}}`))
		code, resp, raw := s.post(t, path, body)
		if code != http.StatusOK || resp.Allowed || resp.UID == "" {
			t.Fatalf("%s: want a denial with a uid, got %d %s", path, code, raw)
		}
		if resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "podguard could not decode the object as a Pod") {
			t.Errorf("%s: result = %+v", path, resp.Result)
		}
	}
}

// panickingWorld stands in for a buggy World: a policy that reads a
// ConfigMap panics.
type panickingWorld struct{ policies.World }

func (panickingWorld) ConfigMap(string, string) policies.Object { panic("index out of range") }

func TestAPanickingPolicyIsAnsweredWithAnErrorCountedAndSurvived(t *testing.T) {
	s := newTestServer(t, "")
	s.adm.world = panickingWorld{s.world}
	before := testutil.ToFloat64(policyPanics.WithLabelValues(policies.EnvFromKeysName))
	obj := podJSON(t, func(p *corev1.Pod) {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "x"}}}}
	})

	code, _, raw := s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj))
	if code != http.StatusInternalServerError || !strings.Contains(raw, `policy "envfrom-keys" failed: index out of range`) {
		t.Errorf("got %d %q, want HTTP 500 naming the policy", code, raw)
	}
	if after := testutil.ToFloat64(policyPanics.WithLabelValues(policies.EnvFromKeysName)); after != before+1 {
		t.Errorf("panic counter went from %v to %v", before, after)
	}

	// The server keeps serving.
	s.adm.world = s.world
	code, resp, raw := s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj))
	if code != http.StatusOK || !resp.Allowed {
		t.Errorf("after a panic: %d %s", code, raw)
	}
}

// TestRejectionsAreCountedAndTheirLogsBounded: anyone who reaches the port
// can send garbage; every rejection is counted, and the lines it logs are
// bounded by rejectLogs (a burst of 100, then 10 a second).
func TestRejectionsAreCountedAndTheirLogsBounded(t *testing.T) {
	RegisterMetrics()
	var lines int
	s := &reviewServer{name: "validate", maxBytes: 1 << 10, log: funcr.New(func(_, _ string) { lines++ }, funcr.Options{})}
	before := testutil.ToFloat64(badRequests.WithLabelValues("validate", "malformed"))
	const n = 1000
	for range n {
		req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader("{not json"))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if got := testutil.ToFloat64(badRequests.WithLabelValues("validate", "malformed")) - before; got != n {
		t.Errorf("%v rejections counted, want %d", got, n)
	}
	if lines == 0 || lines > 150 {
		t.Errorf("%d rejections logged %d lines, want between 1 and 150", n, lines)
	}
}
