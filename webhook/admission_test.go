package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

// testServer serves /mutate and /validate like podguard serve does, over a
// Snapshot world.
type testServer struct {
	*httptest.Server
	adm   *Admission
	world *policies.Snapshot
}

func newTestServer(t *testing.T, cfgYAML string) *testServer {
	t.Helper()
	RegisterMetrics()
	cfg, err := config.Parse("test", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"+cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	world := policies.NewSnapshot()
	world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "abcdocker-configmap"},
		Data: map[string]string{"keyinfo": "x", "abcdockerDir": "y", "1st.key": "z"}})
	world.AddSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "myregistrykey"}})
	adm := NewAdmission(world, st, logr.Discard())
	mux := http.NewServeMux()
	mux.Handle("/mutate", &reviewServer{name: "mutate", handler: admission.HandlerFunc(adm.Mutate), maxBytes: 64 << 10, log: logr.Discard()})
	mux.Handle("/validate", &reviewServer{name: "validate", handler: admission.HandlerFunc(adm.Validate), maxBytes: 64 << 10, log: logr.Discard()})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, adm: adm, world: world}
}

const registryConfig = `
policies:
  imagePullSecrets:
    registries:
    - {registry: "10.0.0.130:5000", secrets: [myregistrykey]}
`

func podJSON(t *testing.T, mutate func(*corev1.Pod)) []byte {
	t.Helper()
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "10.0.0.130:5000/nginx:latest"}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return mustJSON(t, p)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type reviewOpt func(*admissionv1.AdmissionRequest)

func review(t *testing.T, kind metav1.GroupVersionKind, op admissionv1.Operation, obj []byte, opts ...reviewOpt) []byte {
	t.Helper()
	req := &admissionv1.AdmissionRequest{
		UID: types.UID("uid-" + strings.ToLower(string(op))), Kind: kind, Operation: op,
		Namespace: "team-a", Name: "web", Object: runtime.RawExtension{Raw: obj},
	}
	for _, o := range opts {
		o(req)
	}
	return mustJSON(t, admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
}

var (
	podKind        = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	deploymentKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
)

// post sends a body and returns the HTTP status and, for 200, the response.
func (s *testServer) post(t *testing.T, path string, body []byte) (int, *admissionv1.AdmissionResponse, string) {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, string(raw)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, raw)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("bad response envelope: %s", raw)
	}
	return resp.StatusCode, out.Response, string(raw)
}

func applyPatch(t *testing.T, obj []byte, resp *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	out := obj
	if len(resp.Patch) > 0 {
		if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patch type = %v", resp.PatchType)
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("decoding patch: %v", err)
		}
		if out, err = p.Apply(obj); err != nil {
			t.Fatalf("applying patch: %v", err)
		}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

func TestMutateAddsPullSecretWithWarningAndAuditAnnotation(t *testing.T) {
	s := newTestServer(t, registryConfig)
	obj := podJSON(t, nil)
	before := testutil.ToFloat64(policyOutcomes.WithLabelValues("mutate", policies.ImagePullSecretsName, "mutated"))

	code, resp, raw := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj))
	if code != http.StatusOK || !resp.Allowed {
		t.Fatalf("status %d: %s", code, raw)
	}
	if resp.UID != "uid-create" {
		t.Errorf("uid = %q", resp.UID)
	}
	pod := applyPatch(t, obj, resp)
	if len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "myregistrykey" {
		t.Errorf("imagePullSecrets = %v", pod.Spec.ImagePullSecrets)
	}
	if got := resp.AuditAnnotations["mutated-by"]; got != "security-context,image-pull-secrets" {
		t.Errorf("audit annotation = %q", got)
	}
	if len(resp.Warnings) != 1 || resp.Warnings[0] != "podguard mutated this pod (security-context, image-pull-secrets): /spec/containers/0/securityContext, /spec/imagePullSecrets, /spec/securityContext" {
		t.Errorf("warnings = %q", resp.Warnings)
	}
	if after := testutil.ToFloat64(policyOutcomes.WithLabelValues("mutate", policies.ImagePullSecretsName, "mutated")); after != before+1 {
		t.Errorf("mutated outcome counter went from %v to %v", before, after)
	}

	// Idempotent: the mutated pod comes back unchanged.
	_, again, _ := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, mustJSON(t, pod)))
	if !again.Allowed || len(again.Patch) > 0 || len(again.Warnings) > 0 {
		t.Errorf("second pass: allowed=%v patch=%s warnings=%q", again.Allowed, again.Patch, again.Warnings)
	}
}

func TestMutatePatchKeepsFieldsPodguardDoesNotKnow(t *testing.T) {
	s := newTestServer(t, registryConfig)
	var obj map[string]any
	if err := json.Unmarshal(podJSON(t, nil), &obj); err != nil {
		t.Fatal(err)
	}
	obj["spec"].(map[string]any)["someFutureField"] = map[string]any{"enabled": true}
	raw := mustJSON(t, obj)
	_, resp, _ := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, raw))
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"someFutureField":{"enabled":true}`) {
		t.Errorf("the patch removed a field newer than podguard's API types: %s", resp.Patch)
	}
}

func TestRequestsPodguardDoesNotActOnAreAllowedUnchanged(t *testing.T) {
	s := newTestServer(t, registryConfig)
	badPod := podJSON(t, func(p *corev1.Pod) {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
	})
	tests := []struct {
		name string
		body []byte
	}{
		{"a DELETE", review(t, podKind, admissionv1.Delete, nil, func(r *admissionv1.AdmissionRequest) { r.OldObject.Raw = badPod })},
		{"a CONNECT", review(t, podKind, admissionv1.Connect, []byte(`{"kind":"PodExecOptions","apiVersion":"v1"}`), func(r *admissionv1.AdmissionRequest) { r.SubResource = "exec" })},
		{"a subresource", review(t, podKind, admissionv1.Update, badPod, func(r *admissionv1.AdmissionRequest) { r.SubResource = "status"; r.OldObject.Raw = badPod })},
		{"another kind", review(t, metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, admissionv1.Create, []byte(`{"kind":"ConfigMap","apiVersion":"v1","data":{"1st":"x"}}`))},
		{"a pod UPDATE", review(t, podKind, admissionv1.Update, badPod, func(r *admissionv1.AdmissionRequest) { r.OldObject.Raw = badPod })},
		{"a pod in an excluded namespace", review(t, podKind, admissionv1.Create, badPod, func(r *admissionv1.AdmissionRequest) { r.Namespace = "kube-system" })},
	}
	for _, tt := range tests {
		for _, path := range []string{"/mutate", "/validate"} {
			t.Run(tt.name+" on "+path, func(t *testing.T) {
				code, resp, raw := s.post(t, path, tt.body)
				if code != http.StatusOK || !resp.Allowed || len(resp.Patch) > 0 || len(resp.Warnings) > 0 {
					t.Errorf("want allowed unchanged, got %d: %s", code, raw)
				}
				if resp != nil && resp.UID == "" {
					t.Error("response has no uid")
				}
			})
		}
	}
}

func TestValidateDeniesWithEveryViolationAndNoWarnings(t *testing.T) {
	s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\n")
	obj := podJSON(t, func(p *corev1.Pod) {
		ref := corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}
		missing := corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "not-there"}}}
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{ref, missing}
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", EnvFrom: []corev1.EnvFromSource{ref}}}
	})
	_, resp, raw := s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj))
	if resp.Allowed {
		t.Fatalf("allowed: %s", raw)
	}
	if resp.Result.Code != http.StatusForbidden {
		t.Errorf("code = %d", resp.Result.Code)
	}
	msg := resp.Result.Message
	for _, want := range []string{
		"podguard rejected this Pod (2 problems):",
		`- [envfrom-keys] spec.initContainers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" would be skipped by the target kubelet v1.29`,
		`- [envfrom-keys] spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message does not contain %q:\n%s", want, msg)
		}
	}
	if len(resp.Warnings) > 0 {
		t.Errorf("a denial carries warnings: %q", resp.Warnings)
	}
	var fields []string
	for _, c := range resp.Result.Details.Causes {
		fields = append(fields, c.Field)
	}
	if got := strings.Join(fields, ","); got != "spec.initContainers[0].envFrom[0],spec.containers[0].envFrom[0]" {
		t.Errorf("cause fields = %s", got)
	}
	if resp.AuditAnnotations["denied-by"] != "envfrom-keys" {
		t.Errorf("audit annotations = %v", resp.AuditAnnotations)
	}
}

func TestValidateWorkloads(t *testing.T) {
	s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\n")
	deployment := func(cm string, replicas int32) []byte {
		d := &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "web", Image: "nginx",
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}},
			}}}}},
		}
		return mustJSON(t, d)
	}
	bad, good := deployment("abcdocker-configmap", 1), deployment("not-there", 1)

	t.Run("denies a bad template on CREATE with the template's field path", func(t *testing.T) {
		_, resp, raw := s.post(t, "/validate", review(t, deploymentKind, admissionv1.Create, bad))
		if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.template.spec.containers[0].envFrom[0]: ConfigMap \"abcdocker-configmap\"") {
			t.Errorf("want a denial at the template path, got %s", raw)
		}
	})
	t.Run("allows a template whose ConfigMap is missing, with a warning", func(t *testing.T) {
		_, resp, raw := s.post(t, "/validate", review(t, deploymentKind, admissionv1.Create, good))
		if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `ConfigMap "not-there" was not found`) {
			t.Errorf("got %s", raw)
		}
	})
	t.Run("denies an UPDATE that introduces the problem", func(t *testing.T) {
		_, resp, raw := s.post(t, "/validate", review(t, deploymentKind, admissionv1.Update, bad, func(r *admissionv1.AdmissionRequest) { r.OldObject.Raw = good }))
		if resp.Allowed {
			t.Errorf("allowed: %s", raw)
		}
	})
	t.Run("allows an UPDATE that leaves an old problem's template alone, with a warning", func(t *testing.T) {
		scaled := deployment("abcdocker-configmap", 5)
		_, resp, raw := s.post(t, "/validate", review(t, deploymentKind, admissionv1.Update, scaled, func(r *admissionv1.AdmissionRequest) { r.OldObject.Raw = bad }))
		if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "(existing, not introduced by this update)") {
			t.Errorf("got %s", raw)
		}
	})
}

func TestDryRunIsAnsweredLikeARealRequest(t *testing.T) {
	s := newTestServer(t, registryConfig)
	obj := podJSON(t, nil)
	_, real, _ := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj))
	_, dry, _ := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj, func(r *admissionv1.AdmissionRequest) { r.DryRun = ptr.To(true) }))
	// The order of patch operations is not significant: compare the results.
	realPod, dryPod := applyPatch(t, obj, real), applyPatch(t, obj, dry)
	if !apiequality.Semantic.DeepEqual(realPod, dryPod) || real.Allowed != dry.Allowed || strings.Join(real.Warnings, "|") != strings.Join(dry.Warnings, "|") {
		t.Errorf("dry run differs: real %s %q, dry %s %q", real.Patch, real.Warnings, dry.Patch, dry.Warnings)
	}
}

func TestConfigReloadChangesAnswers(t *testing.T) {
	s := newTestServer(t, "")
	obj := podJSON(t, nil)
	_, resp, _ := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj))
	if got := applyPatch(t, obj, resp).Spec.ImagePullSecrets; len(got) > 0 {
		t.Fatalf("added pull secrets without a registry rule: %v", got)
	}
	cfg, err := config.Parse("test", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"+registryConfig))
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.adm.SetState(st)
	_, resp, _ = s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj))
	if got := applyPatch(t, obj, resp).Spec.ImagePullSecrets; len(got) != 1 {
		t.Fatalf("the reloaded rule was not applied: %v", got)
	}
}

func TestLogsNeverContainObjectContents(t *testing.T) {
	s := newTestServer(t, registryConfig)
	var logs strings.Builder
	s.adm.log = funcr.New(func(prefix, args string) { logs.WriteString(prefix + " " + args + "\n") }, funcr.Options{Verbosity: 10})
	const secret = "hunter2-do-not-log"
	for _, path := range []string{"/mutate", "/validate"} {
		obj := podJSON(t, func(p *corev1.Pod) {
			p.Annotations = map[string]string{"note": secret}
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", Value: secret}}
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
		})
		s.post(t, path, review(t, podKind, admissionv1.Create, obj))
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "value-of") {
		t.Errorf("object contents reached the logs:\n%s", logs.String())
	}
}

func TestValidateRejectsAWorkloadWhosePodsTheMutatingWebhookWouldReject(t *testing.T) {
	s := newTestServer(t, "")
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"podguard.io/logs": "logs"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
		}},
	}
	_, resp, raw := s.post(t, "/validate", review(t, deploymentKind, admissionv1.Create, mustJSON(t, d)))
	if resp.Allowed || !strings.Contains(resp.Result.Message, `[log-sidecar] spec.template.metadata.annotations[podguard.io/logs]: "logs" is not an absolute path`) {
		t.Errorf("want the template's malformed annotation denied at apply time, got %s", raw)
	}
}

// /mutate has already run on a Pod that reaches /validate (or failed open):
// /validate judges the Pod as it is and does not re-run the mutations, whose
// objections /mutate raises itself.
func TestValidateJudgesAPodAsItIs(t *testing.T) {
	s := newTestServer(t, "")
	obj := podJSON(t, func(p *corev1.Pod) { p.Annotations = map[string]string{"podguard.io/logs": "logs"} })
	_, resp, raw := s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj))
	if !resp.Allowed {
		t.Errorf("/validate re-ran a mutating policy on a Pod: %s", raw)
	}
	_, resp, raw = s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj))
	if resp.Allowed || !strings.Contains(resp.Result.Message, `"logs" is not an absolute path`) {
		t.Errorf("/mutate did not reject the malformed annotation: %s", raw)
	}
}

// scaleReview is an UPDATE of resource's scale subresource, from 1 replica
// to replicas, as kubectl scale sends it.
func scaleReview(t *testing.T, resource metav1.GroupVersionResource, name string, replicas int32, opts ...reviewOpt) []byte {
	t.Helper()
	scale := func(n int32) []byte {
		return mustJSON(t, &autoscalingv1.Scale{
			TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a"},
			Spec:       autoscalingv1.ScaleSpec{Replicas: n},
		})
	}
	opts = append([]reviewOpt{func(r *admissionv1.AdmissionRequest) {
		r.Name, r.Resource, r.SubResource, r.OldObject.Raw = name, resource, "scale", scale(1)
		r.RequestKind, r.RequestResource, r.RequestSubResource = &r.Kind, &r.Resource, "scale"
	}}, opts...)
	return review(t, metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, admissionv1.Update, scale(replicas), opts...)
}

func TestScaleIsNeverDeniedAndWarnsOfPodsThatWouldBe(t *testing.T) {
	s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\n")
	template := func(cm string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx",
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}}}}}}
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "team-a", Name: name} }
	bad, good := template("abcdocker-configmap"), template("not-there")
	broken := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Template: bad}}
	reader := &countingReader{Reader: fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(
		broken.DeepCopy(),
		&appsv1.Deployment{ObjectMeta: meta("fine"), Spec: appsv1.DeploymentSpec{Template: good}},
		&appsv1.ReplicaSet{ObjectMeta: meta("web-6d4cf"), Spec: appsv1.ReplicaSetSpec{Template: bad}},
		&appsv1.StatefulSet{ObjectMeta: meta("db"), Spec: appsv1.StatefulSetSpec{Template: bad}},
		&corev1.ReplicationController{ObjectMeta: meta("legacy"), Spec: corev1.ReplicationControllerSpec{Template: &bad}},
	).Build()}
	s.adm.workloads = reader

	// What /validate says of an UPDATE that leaves the broken template as
	// it was: a scale says the same.
	_, update, raw := s.post(t, "/validate", review(t, deploymentKind, admissionv1.Update, mustJSON(t, broken), func(r *admissionv1.AdmissionRequest) { r.OldObject.Raw = mustJSON(t, broken) }))
	if !update.Allowed || len(update.Warnings) != 1 || !strings.Contains(update.Warnings[0], "(existing, not introduced by this update)") {
		t.Fatalf("template-unchanged UPDATE: %s", raw)
	}
	wantWarning := update.Warnings[0]

	apps := func(resource string) metav1.GroupVersionResource {
		return metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: resource}
	}
	rcs := metav1.GroupVersionResource{Version: "v1", Resource: "replicationcontrollers"}
	for _, tt := range []struct {
		name     string
		resource metav1.GroupVersionResource
		object   string
		replicas int32
		opts     []reviewOpt
		reader   client.Reader
		warning  string // "" for none
		lookups  int32
	}{
		{"warns when a Deployment whose pods would be denied is scaled up", apps("deployments"), "web", 3, nil, reader, wantWarning, 1},
		{"warns for a ReplicaSet", apps("replicasets"), "web-6d4cf", 3, nil, reader, "[envfrom-keys] spec.template.spec.containers[0].envFrom[0]", 1},
		{"warns for a StatefulSet", apps("statefulsets"), "db", 3, nil, reader, "[envfrom-keys] spec.template.spec.containers[0].envFrom[0]", 1},
		{"warns for a ReplicationController", rcs, "legacy", 3, nil, reader, "[envfrom-keys] spec.template.spec.containers[0].envFrom[0]", 1},
		{"says nothing when scaling to 0, and reads nothing", apps("deployments"), "web", 0, nil, reader, "", 0},
		{"warns of what the template's pods will meet, as on any UPDATE", apps("deployments"), "fine", 3, nil, reader, `ConfigMap "not-there" was not found`, 1},
		{"allows without a warning when the workload is gone", apps("deployments"), "gone", 3, nil, reader, "", 1},
		{"allows without a warning when reading fails", apps("deployments"), "web", 3, nil, &countingReader{err: errors.New("forbidden")}, "", 0},
		{"allows without a warning when podguard has no reader", apps("deployments"), "web", 3, nil, nil, "", 0},
		{"ignores an excluded namespace", apps("deployments"), "web", 3, []reviewOpt{func(r *admissionv1.AdmissionRequest) { r.Namespace = "kube-system" }}, reader, "", 0},
		{"ignores a kind podguard does not know", metav1.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "rollouts"}, "web", 3, nil, reader, "", 0},
		{"answers a dry run like a real scale", apps("deployments"), "web", 3, []reviewOpt{func(r *admissionv1.AdmissionRequest) { r.DryRun = ptr.To(true) }}, reader, wantWarning, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.adm.workloads = tt.reader
			before := reader.gets.Load()
			code, resp, raw := s.post(t, "/validate", scaleReview(t, tt.resource, tt.object, tt.replicas, tt.opts...))
			if code != http.StatusOK || !resp.Allowed {
				t.Fatalf("a scale was not allowed: %d %s", code, raw)
			}
			switch {
			case tt.warning == "" && len(resp.Warnings) > 0:
				t.Errorf("warnings = %q, want none", resp.Warnings)
			case tt.warning != "" && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tt.warning)):
				t.Errorf("warnings = %q, want one containing %q", resp.Warnings, tt.warning)
			}
			if got := reader.gets.Load() - before; tt.reader == reader && got != tt.lookups {
				t.Errorf("%d GETs, want %d", got, tt.lookups)
			}
		})
	}

	t.Run("allows without a warning when a policy panics", func(t *testing.T) {
		s.adm.workloads = reader
		s.adm.world = panickingWorld{s.world}
		defer func() { s.adm.world = s.world }()
		code, resp, raw := s.post(t, "/validate", scaleReview(t, apps("deployments"), "web", 3))
		if code != http.StatusOK || !resp.Allowed || len(resp.Warnings) > 0 {
			t.Errorf("got %d %s, want allowed without a warning", code, raw)
		}
	})
}

// TestEveryDecisionIsLogged checks that each answer leaves exactly one
// "admission" line at info level (funcr's verbosity 0), with its decision,
// plain allows included.
func TestEveryDecisionIsLogged(t *testing.T) {
	s := newTestServer(t, registryConfig)
	var lines []string
	s.adm.log = funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: 0})
	plain := podJSON(t, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx" })
	private := podJSON(t, nil)
	denied := podJSON(t, func(p *corev1.Pod) {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
	})
	for _, tt := range []struct {
		path, decision string
		obj            []byte
	}{
		{"/validate", "allowed", plain},
		{"/mutate", "patched", private},
		{"/validate", "denied", denied},
		{"/validate", "allowed", plain},
	} {
		before := len(lines)
		s.post(t, tt.path, review(t, podKind, admissionv1.Create, tt.obj))
		got := lines[before:]
		if len(got) != 1 || !strings.Contains(got[0], `"decision"="`+tt.decision+`"`) {
			t.Errorf("%s: logged %q, want one line with decision %s", tt.path, got, tt.decision)
		}
	}
}

// TestDecisionsNameAPodByItsGenerateName: a ReplicaSet's pod has no name
// yet; its decision line names it by its generateName, from the object
// decodeReview decoded, or from the raw object when there is none.
func TestDecisionsNameAPodByItsGenerateName(t *testing.T) {
	s := newTestServer(t, "")
	var lines []string
	s.adm.log = funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{})
	obj := podJSON(t, func(p *corev1.Pod) { p.Name, p.GenerateName = "", "web-7d9f-" })
	body := review(t, podKind, admissionv1.Create, obj, func(r *admissionv1.AdmissionRequest) { r.Name = "" })
	for _, path := range []string{"/mutate", "/validate"} {
		lines = nil
		s.post(t, path, body)
		if len(lines) != 1 || !strings.Contains(lines[0], `"name"="web-7d9f-*"`) {
			t.Errorf("%s logged %q, want the name web-7d9f-*", path, lines)
		}
	}
	var req admission.Request
	req.Object.Raw = obj
	if got := objectName(context.Background(), req); got != "web-7d9f-*" {
		t.Errorf("from the raw object: %q, want web-7d9f-*", got)
	}
}

// TestAuditModeAdmitsSilentlyAndRecords: a validating policy in audit mode
// admits the pod without a warning for its author, logs what it would have
// denied on the decision line, and counts the outcome "audited".
func TestAuditModeAdmitsSilentlyAndRecords(t *testing.T) {
	s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\npolicies:\n  envFromKeys: {mode: audit}\n")
	var lines []string
	s.adm.log = funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{})
	obj := podJSON(t, func(p *corev1.Pod) {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
	})
	audited := policyOutcomes.WithLabelValues("validate", policies.EnvFromKeysName, string(policies.OutcomeAudited))
	before := testutil.ToFloat64(audited)
	_, resp, _ := s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj))
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	for _, w := range resp.Warnings {
		if strings.Contains(w, "[envfrom-keys]") {
			t.Errorf("audit mode warned the author: %q", w)
		}
	}
	if after := testutil.ToFloat64(audited); after != before+1 {
		t.Errorf("audited outcomes went from %v to %v, want one more", before, after)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"audited"=[{"policy"="envfrom-keys" "field"="spec.containers[0].envFrom[0]"}]`) {
		t.Errorf("decision lines = %q, want one listing the audited finding", lines)
	}
}

// jsonLogLines returns a logger that writes JSON lines as podguard serve's
// does (zap), and the lines written so far, decoded.
func jsonLogLines(t *testing.T) (logr.Logger, func() []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	var mu sync.Mutex
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})), zapcore.DebugLevel)
	return zapr.NewLogger(zap.New(core)), func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		var out []map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("log line %q is not JSON: %v", line, err)
			}
			out = append(out, m)
		}
		return out
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestDecisionLinesNamePoliciesAndFields: a denial's decision line lists
// each violation by policy and field path, in every mode, and never a
// message (which quotes key names) or a value.
func TestDecisionLinesNamePoliciesAndFields(t *testing.T) {
	envFrom := func(p *corev1.Pod) {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", Value: "hunter2"}}
	}
	want := []any{map[string]any{"policy": "envfrom-keys", "field": "spec.containers[0].envFrom[0]"}}
	for _, tc := range []struct {
		mode, key, decision string
	}{
		{"enforce", "violations", "denied"},
		{"warn", "warned", "allowed"},
		{"audit", "audited", "allowed"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\npolicies:\n  envFromKeys: {mode: "+tc.mode+"}\n")
			log, lines := jsonLogLines(t)
			s.adm.log = log
			s.post(t, "/validate", review(t, podKind, admissionv1.Create, podJSON(t, envFrom)))
			got := lines()
			if len(got) != 1 {
				t.Fatalf("%d lines, want 1: %v", len(got), got)
			}
			line := got[0]
			if line["decision"] != tc.decision {
				t.Errorf("decision = %v, want %s", line["decision"], tc.decision)
			}
			if !apiequality.Semantic.DeepEqual(line[tc.key], want) {
				t.Errorf("%s = %#v, want %#v", tc.key, line[tc.key], want)
			}
			raw, _ := json.Marshal(line)
			for _, leak := range []string{"hunter2", "1st.key", "message"} {
				if strings.Contains(string(raw), leak) {
					t.Errorf("the line quotes %q: %s", leak, raw)
				}
			}
		})
	}
}

// TestMutationWarningsSetting: admission.mutationWarnings decides the
// warning about the mutation itself; the policies' own warnings, the
// audit annotation and the patch are the same in every mode.
func TestMutationWarningsSetting(t *testing.T) {
	const cfg = `
policies:
  imagePullSecrets:
    registries:
    - {registry: "10.0.0.130:5000", secrets: [myregistrykey, not-created-yet]}
`
	for _, tc := range []struct {
		setting string
		want    []string // the mutation warnings
	}{
		{"", []string{"podguard mutated this pod (security-context, image-pull-secrets): /spec/containers/0/securityContext, /spec/imagePullSecrets, /spec/securityContext"}},
		{"admission: {mutationWarnings: on}", []string{"podguard mutated this pod (security-context, image-pull-secrets): /spec/containers/0/securityContext, /spec/imagePullSecrets, /spec/securityContext"}},
		{"admission: {mutationWarnings: summary}", []string{"podguard mutated this pod (security-context, image-pull-secrets)"}},
		{"admission: {mutationWarnings: off}", nil},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			s := newTestServer(t, cfg+tc.setting+"\n")
			obj := podJSON(t, nil)
			_, resp, raw := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, obj))
			if resp == nil || !resp.Allowed || len(resp.Patch) == 0 {
				t.Fatalf("not patched: %s", raw)
			}
			var mutation, policy []string
			for _, w := range resp.Warnings {
				if strings.HasPrefix(w, "podguard mutated") {
					mutation = append(mutation, w)
				} else {
					policy = append(policy, w)
				}
			}
			if !slices.Equal(mutation, tc.want) {
				t.Errorf("mutation warnings = %q, want %q", mutation, tc.want)
			}
			if len(policy) != 1 || !strings.Contains(policy[0], "[image-pull-secrets]") || !strings.Contains(policy[0], "not-created-yet") {
				t.Errorf("the policy's own warnings = %q, want the missing pull secret's", policy)
			}
			if got := resp.AuditAnnotations["mutated-by"]; got != "security-context,image-pull-secrets" {
				t.Errorf("audit annotation = %q", got)
			}
			if pod := applyPatch(t, obj, resp); len(pod.Spec.ImagePullSecrets) != 2 {
				t.Errorf("imagePullSecrets = %v", pod.Spec.ImagePullSecrets)
			}
		})
	}
}
