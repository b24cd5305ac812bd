package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

// reviewBodies are the captured request bodies of testdata/reviews, with
// the webhook each was sent to.
var reviewBodies = []struct{ file, path string }{
	{"nginx-mutate.json", "/mutate"},
	{"tomcat-mutate.json", "/mutate"},
	{"nginx-validate.json", "/validate"},
	{"deployment-validate.json", "/validate"},
}

// BenchmarkReview measures one AdmissionReview through podguard's handler
// (body read, decode, policies, patch, response encoded), side by side with
// the null webhook's handler (hack/nullwebhook: decode, answer allowed) on
// the same body in the same run. -benchmem gives the bytes allocated per
// review; the goals are ≤ 10 KiB per /validate and ≤ 25 KiB per /mutate.
// TLS and HTTP/2 cost the same for both and are left out here; `make perf`
// measures them, over loopback, as CPU per review.
func BenchmarkReview(b *testing.B) {
	RegisterMetrics()
	cfg, err := config.Parse("bench", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"))
	if err != nil {
		b.Fatal(err)
	}
	st, err := NewState(cfg)
	if err != nil {
		b.Fatal(err)
	}
	adm := NewAdmission(policies.NewSnapshot(), st, logr.Discard())
	servers := map[string]http.Handler{
		"/mutate":   &reviewServer{name: "mutate", handler: admission.HandlerFunc(adm.Mutate), maxBytes: DefaultMaxRequestBytes, log: logr.Discard()},
		"/validate": &reviewServer{name: "validate", handler: admission.HandlerFunc(adm.Validate), maxBytes: DefaultMaxRequestBytes, log: logr.Discard()},
	}
	for _, rb := range reviewBodies {
		body, err := os.ReadFile(filepath.Join("testdata", "reviews", rb.file))
		if err != nil {
			b.Fatal(err)
		}
		name := rb.file[:len(rb.file)-len(".json")]
		b.Run(name+"/podguard", func(b *testing.B) { benchHandler(b, servers[rb.path], rb.path, body) })
		b.Run(name+"/null", func(b *testing.B) { benchHandler(b, http.HandlerFunc(nullReview), rb.path, body) })
	}
}

func benchHandler(b *testing.B, h http.Handler, path string, body []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	rd := bytes.NewReader(body)
	w := &discardResponse{header: http.Header{}}
	req := httptest.NewRequest(http.MethodPost, path, rd)
	req.Header.Set("Content-Type", "application/json")
	cpu := processCPU()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != 0 && w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
	// CPU time, garbage collection included, is steadier than wall time on
	// a busy machine, and it is what `make perf` compares.
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nullReview is hack/nullwebhook's handler: decode the review with
// encoding/json and answer allowed with the same uid.
func nullReview(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	resp := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&resp)
}

// discardResponse is an http.ResponseWriter that keeps the status only.
type discardResponse struct {
	header http.Header
	code   int
}

func (d *discardResponse) Header() http.Header         { return d.header }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(code int)        { d.code = code }
