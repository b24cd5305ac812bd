package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

// maxResponseBytes is the bound on any answer: a denial's message and causes
// (each at most maxDenialBytes), warnings, and a patch, which grows with
// the pod (podguard adds a few fields per container and at most 64
// sidecars).
func maxResponseBytes(request int) int { return 256<<10 + 2*request }

// bigWorld has ConfigMap "big" in team-a: 5,000 keys that kubelets up to
// 1.29 drop, and that are not POSIX names.
func bigWorld(s *testServer) {
	data := map[string]string{}
	for i := range 5000 {
		data[fmt.Sprintf("%d.key", i)] = ""
	}
	s.world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "big"}, Data: data})
}

// worstPods are the inputs and their neighbours, as Pods.
func worstPods(t testing.TB) map[string][]byte {
	t.Helper()
	pod := func(mutate func(*corev1.Pod)) []byte {
		p := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
		}
		mutate(p)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	entries := make([]string, 50000)
	for i := range entries {
		entries[i] = fmt.Sprintf("web=/var/log/d%d", i)
	}
	return map[string][]byte{
		"20,000 commas": pod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{policies.LogsAnnotation: strings.Repeat(",", 20000)}
		}),
		"50,000 entries": pod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{policies.LogsAnnotation: strings.Join(entries, ",")}
		}),
		"64 entries": pod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{policies.LogsAnnotation: strings.Join(entries[:64], ",")}
		}),
		"20,000 skip names": pod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{policies.SkipAnnotation: strings.Repeat("nope,", 20000)}
		}),
		"1,000 envFrom refs to 5,000 bad keys": pod(func(p *corev1.Pod) {
			for range 1000 {
				p.Spec.Containers[0].EnvFrom = append(p.Spec.Containers[0].EnvFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "big"}}})
			}
		}),
		"100 containers x 100 mounts": pod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "big"}}}}}
			p.Spec.Containers = nil
			for i := range 100 {
				c := corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "bad image " + strings.Repeat("x", 1000)}
				for j := range 100 {
					c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "cfg", MountPath: fmt.Sprintf("/etc/%d.key", j)})
				}
				p.Spec.Containers = append(p.Spec.Containers, c)
			}
		}),
	}
}

func TestTheWorstPodsGetBoundedAnswers(t *testing.T) {
	s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\npolicies:\n  imagePullSecrets:\n    registries: [{registry: docker.io, secrets: [hub]}]\n")
	bigWorld(s)
	// The same webhooks with the shipped request size limit.
	mux := http.NewServeMux()
	for _, name := range []string{"mutate", "validate"} {
		handle := admission.HandlerFunc(s.adm.Mutate)
		if name == "validate" {
			handle = s.adm.Validate
		}
		mux.Handle("/"+name, &reviewServer{name: name, handler: handle, maxBytes: DefaultMaxRequestBytes, log: logr.Discard()})
	}
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Server.Close)
	for name, obj := range worstPods(t) {
		for _, path := range []string{"/mutate", "/validate"} {
			t.Run(name+path, func(t *testing.T) {
				body := review(t, podKind, admissionv1.Create, obj)
				start := time.Now()
				code, resp, raw := s.post(t, path, body)
				if code != http.StatusOK {
					t.Fatalf("HTTP %d: %s", code, raw)
				}
				t.Logf("request %d bytes, response %d bytes, %v", len(body), len(raw), time.Since(start))
				if len(raw) > maxResponseBytes(len(body)) {
					t.Errorf("response is %d bytes, over %d", len(raw), maxResponseBytes(len(body)))
				}
				runes := 0
				for _, w := range resp.Warnings {
					runes += utf8.RuneCountInString(w)
				}
				if runes > maxWarningRunes {
					t.Errorf("%d runes of warnings, over %d", runes, maxWarningRunes)
				}
				if resp.Result != nil && len(resp.Result.Message) > maxDenialBytes {
					t.Errorf("denial of %d bytes, over %d", len(resp.Result.Message), maxDenialBytes)
				}
			})
		}
	}
}

func TestWarningsStayWithinTheAPIServersShare(t *testing.T) {
	ws := make([]string, 50)
	for i := range ws {
		ws[i] = fmt.Sprintf("podguard [envfrom-keys] spec.containers[%d].envFrom[0]: %s", i, strings.Repeat("é", 300))
	}
	got := boundWarnings(ws)
	runes := 0
	for _, w := range got {
		runes += utf8.RuneCountInString(w)
	}
	if runes > maxWarningRunes {
		t.Errorf("%d runes, over %d", runes, maxWarningRunes)
	}
	if len(got) != 6 || got[0] != ws[0] || !strings.HasPrefix(got[5], "podguard: 45 more warnings not shown") {
		t.Errorf("got %d warnings, the last %q; want the first 5 and a count of 45", len(got), got[len(got)-1])
	}
	if one := boundWarnings([]string{strings.Repeat("x", 5000)}); len(one) != 1 || utf8.RuneCountInString(one[0]) > maxWarningRunes {
		t.Errorf("one long warning: %d warnings of %d runes", len(one), utf8.RuneCountInString(one[0]))
	}
	if short := boundWarnings(ws[:2]); len(short) != 2 {
		t.Errorf("two short warnings became %d", len(short))
	}
}

func TestAMutationPastTheDeadlineIsTimedOutNotPatched(t *testing.T) {
	RegisterMetrics()
	cfg, err := config.Parse("test", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	adm := NewAdmission(policies.NewSnapshot(), st, funcr.New(func(prefix, args string) { logs.WriteString(args + "\n") }, funcr.Options{}))
	obj := mustJSON(t, &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a",
		Annotations: map[string]string{policies.LogsAnnotation: "/logs"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}})
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "u1", Kind: podKind, Operation: admissionv1.Create, Namespace: "team-a", Object: runtime.RawExtension{Raw: obj}}}

	mutatedCount := func() float64 {
		return testutil.ToFloat64(policyOutcomes.WithLabelValues("mutate", policies.LogSidecarName, string(policies.OutcomeMutated)))
	}
	before := mutatedCount()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	resp := adm.Mutate(ctx, req)
	if got := mutatedCount() - before; got != 0 {
		t.Errorf("a timed-out mutation counted log-sidecar as mutated %v times", got)
	}
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusGatewayTimeout || len(resp.Patches) > 0 {
		t.Fatalf("response %+v, want a 504 error without a patch", resp)
	}
	if resultOf(&resp) != "timeout" {
		t.Errorf("result %q, want timeout", resultOf(&resp))
	}
	if strings.Contains(logs.String(), `"patched"`) || !strings.Contains(logs.String(), `"decision"="timeout"`) {
		t.Errorf("logs %s: want a timeout decision and no patched one", logs.String())
	}

	// The same request in time is patched, and counted.
	resp = adm.Mutate(context.Background(), req)
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("in time: %+v, want a patch", resp.Result)
	}
	if got := mutatedCount() - before; got != 1 {
		t.Errorf("a mutation in time counted log-sidecar as mutated %v times, want 1", got)
	}
}

func TestTheTimeoutOnTheURLBecomesTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration
	}{
		{"", 9 * time.Second},
		{"?timeout=5s", 4 * time.Second},
		{"?timeout=1s", 500 * time.Millisecond},
		{"?timeout=2m", 29 * time.Second},
		{"?timeout=bogus", 9 * time.Second},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mutate"+tc.query, nil)
		start := time.Now()
		ctx, cancel, _ := requestContext(r)
		deadline, ok := ctx.Deadline()
		cancel()
		if got := deadline.Sub(start); !ok || got > tc.want+10*time.Millisecond || got < tc.want-100*time.Millisecond {
			t.Errorf("%q: deadline in %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestAnHTTPCallPastItsTimeoutFailsAndIsNotPatched(t *testing.T) {
	s := newTestServer(t, "")
	obj := podJSON(t, func(p *corev1.Pod) { p.Annotations = map[string]string{policies.LogsAnnotation: "/logs"} })
	resp, err := http.Post(s.URL+"/mutate?timeout=1ns", "application/json", bytes.NewReader(review(t, podKind, admissionv1.Create, obj)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("HTTP %d, want 504, so that the API server applies the failurePolicy", resp.StatusCode)
	}
}

func TestAResponseWrittenTooLateIsCountedUndelivered(t *testing.T) {
	RegisterMetrics()
	s := &reviewServer{name: "mutate", log: logr.Discard()}
	before := testutil.ToFloat64(admissionUndelivered.WithLabelValues("mutate", "patched"))
	resp := admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/labels", Value: map[string]string{}})
	s.delivered(httptest.NewRequest(http.MethodPost, "/mutate", nil), time.Now().Add(-time.Millisecond), "u1", &resp, nil)
	s.delivered(httptest.NewRequest(http.MethodPost, "/mutate", nil), time.Now().Add(time.Minute), "u2", &resp, nil)
	if got := testutil.ToFloat64(admissionUndelivered.WithLabelValues("mutate", "patched")) - before; got != 1 {
		t.Errorf("undelivered patched = %v, want 1 (the late one only)", got)
	}
}

// FuzzAdmissionReview sends whole request bodies to /mutate and /validate,
// as kube-apiserver (or anyone who reaches the port) would: podguard must
// not panic, must answer with an HTTP error or a valid AdmissionReview for
// the request's uid, and must keep the answer within maxResponseBytes.
func FuzzAdmissionReview(f *testing.F) {
	pods := worstPods(f)
	// Small seeds only: the fuzzer minimizes every new input, through both
	// webhooks, and the worst shapes have tests of their own above.
	small := func(b []byte) bool { return len(b) < 4<<10 }
	for _, obj := range pods {
		if small(obj) {
			f.Add(reviewBytes(f, podKind, obj))
		}
	}
	for _, obj := range [][]byte{
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","annotations":{"podguard.io/logs":"/l,,x=/y","podguard.io/skip":"all,nope"}},"spec":{"containers":[{"name":"a","image":"10.0.0.130:5000/x","envFrom":[{"configMapRef":{"name":"abcdocker-configmap"},"prefix":"1"}]}]}}`),
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"volumes":[{"name":"v","configMap":{"name":"abcdocker-configmap"}}],"containers":[{"name":"a","image":"x","volumeMounts":[{"name":"v","mountPath":"/etc/keyinfo"},{"name":"v","mountPath":"/a.conf"}]}]}}`),
	} {
		f.Add(reviewBytes(f, podKind, obj))
	}
	f.Add(reviewBytes(f, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		[]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{},"template":{"metadata":{"annotations":{"podguard.io/logs":",,,"}},"spec":{"containers":[{"name":"a","image":"x"}]}}}}`)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":"x"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))

	s := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/mutate", "/validate"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			s.ServeHTTP(rec, req)
			if rec.Body.Len() > maxResponseBytes(len(body)) {
				t.Fatalf("%s: %d-byte answer to a %d-byte request", path, rec.Body.Len(), len(body))
			}
			switch rec.Code {
			case http.StatusOK:
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusInternalServerError, http.StatusGatewayTimeout:
				return
			default:
				t.Fatalf("%s: HTTP %d: %s", path, rec.Code, rec.Body.String())
			}
			var in, out admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
				t.Fatalf("%s: a request podguard could not read was answered 200", path)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || out.Response.UID != in.Request.UID {
				t.Fatalf("%s: not a valid AdmissionReview for uid %q: %v %s", path, in.Request.UID, err, rec.Body.String())
			}
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
				t.Fatalf("%s: envelope %s/%s", path, out.APIVersion, out.Kind)
			}
			runes := 0
			for _, w := range out.Response.Warnings {
				runes += utf8.RuneCountInString(w)
			}
			if runes > maxWarningRunes {
				t.Fatalf("%s: %d runes of warnings", path, runes)
			}
		}
	})
}

// newFuzzServer is the two webhooks behind one mux, with the worlds of the
// other tests, called without a network.
func newFuzzServer(f *testing.F) http.Handler {
	RegisterMetrics()
	cfg, err := config.Parse("test", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\ncluster: {kubeletVersion: \"1.29\"}\npolicies:\n  imagePullSecrets:\n    registries: [{registry: \"10.0.0.130:5000\", secrets: [myregistrykey]}]\n"))
	if err != nil {
		f.Fatal(err)
	}
	st, err := NewState(cfg)
	if err != nil {
		f.Fatal(err)
	}
	world := policies.NewSnapshot()
	world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "abcdocker-configmap"},
		Data: map[string]string{"keyinfo": "x", "abcdockerDir": "y", "1st.key": "z"}})
	adm := NewAdmission(world, st, logr.Discard())
	mux := http.NewServeMux()
	mux.Handle("/mutate", &reviewServer{name: "mutate", handler: admission.HandlerFunc(adm.Mutate), maxBytes: DefaultMaxRequestBytes, log: logr.Discard()})
	mux.Handle("/validate", &reviewServer{name: "validate", handler: admission.HandlerFunc(adm.Validate), maxBytes: DefaultMaxRequestBytes, log: logr.Discard()})
	return mux
}

func reviewBytes(t testing.TB, kind metav1.GroupVersionKind, obj []byte) []byte {
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &admissionv1.AdmissionRequest{UID: "fuzz", Kind: kind, Operation: admissionv1.Create, Namespace: "team-a", Object: runtime.RawExtension{Raw: obj}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
