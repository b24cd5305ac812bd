package webhook

import (
	"context"
	"fmt"
	"k8s.io/client-go/rest"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/audit"
	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

// guardServer serves /validate-state like podguard serve does, over a
// Snapshot world and a fixed list of dependents.
type guardServer struct {
	*httptest.Server
	world *policies.Snapshot
	// deps are what the lister returns; listed counts its calls.
	deps   audit.Dependents
	listed int
}

func newGuardServer(t *testing.T, cfgYAML string) *guardServer {
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
	gs := &guardServer{world: policies.NewSnapshot()}
	gs.world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app-env"}, Data: map[string]string{"keyinfo": "x"}})
	adm := NewAdmission(gs.world, st, logr.Discard())
	guard := &StateGuard{adm: adm, log: logr.Discard(), dependents: func(_ context.Context, ns string, ref audit.Ref) (audit.Dependents, error) {
		gs.listed++
		return gs.deps, nil
	}}
	mux := http.NewServeMux()
	mux.Handle("/validate-state", &reviewServer{name: "validate-state", handler: admission.HandlerFunc(guard.Handle), maxBytes: 64 << 10, log: logr.Discard()})
	gs.Server = httptest.NewServer(mux)
	t.Cleanup(gs.Close)
	return gs
}

// reader is a Deployment in team-a whose pods read ConfigMap configMap
// with envFrom.
func reader(name, configMap string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name},
	}
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "nginx:1.27", EnvFrom: []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}},
	}}}
	return d
}

var (
	configMapKind = metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	secretKind    = metav1.GroupVersionKind{Version: "v1", Kind: "Secret"}
)

func configMapJSON(t *testing.T, data map[string]string) []byte {
	return mustJSON(t, &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app-env"}, Data: data})
}

func withOld(raw []byte) reviewOpt {
	return func(r *admissionv1.AdmissionRequest) { r.OldObject = runtime.RawExtension{Raw: raw} }
}

func named(name string) reviewOpt { return func(r *admissionv1.AdmissionRequest) { r.Name = name } }

func inNamespace(ns string) reviewOpt {
	return func(r *admissionv1.AdmissionRequest) { r.Namespace = ns }
}

// update posts a ConfigMap app-env UPDATE from old to cur data.
func (s *guardServer) update(t *testing.T, old, cur map[string]string, opts ...reviewOpt) *admissionv1.AdmissionResponse {
	t.Helper()
	opts = append([]reviewOpt{named("app-env"), withOld(configMapJSON(t, old))}, opts...)
	code, resp, raw := s.post(t, review(t, configMapKind, admissionv1.Update, configMapJSON(t, cur), opts...))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, raw)
	}
	return resp
}

func (s *guardServer) post(t *testing.T, body []byte) (int, *admissionv1.AdmissionResponse, string) {
	t.Helper()
	return (&testServer{Server: s.Server}).post(t, "/validate-state", body)
}

func guardCount(result string) float64 {
	return testutil.ToFloat64(stateGuardRequests.WithLabelValues(result))
}

const wantWarning = `podguard: ConfigMap "app-env" key "1st.key" would make Deployment team-a/web lose environment variables on its pods' next start: [envfrom-keys] spec.template.spec.containers[0].envFrom[0]: ConfigMap "app-env" key "1st.key" would be skipped by the kubelet`

func TestStateGuardWarnsOfAKeyThatWorkloadsWouldLose(t *testing.T) {
	s := newGuardServer(t, "")
	s.deps.Items = []runtime.Object{reader("web", "app-env")}
	before := guardCount(guardWarned)
	resp := s.update(t, map[string]string{"keyinfo": "x"}, map[string]string{"keyinfo": "x", "1st.key": "y"})
	if !resp.Allowed {
		t.Fatalf("denied in warn mode: %+v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], wantWarning) {
		t.Fatalf("warnings = %q, want one starting with %q", resp.Warnings, wantWarning)
	}
	t.Logf("warning: %s", resp.Warnings[0])
	if n := utf8.RuneCountInString(resp.Warnings[0]); n > maxGuardWarningRunes {
		t.Errorf("the warning has %d runes, want at most %d (kube-apiserver cuts longer ones)", n, maxGuardWarningRunes)
	}
	if got := guardCount(guardWarned); got != before+1 {
		t.Errorf("podguard_state_guard_requests_total{result=warned} went from %v to %v, want one more", before, got)
	}
}

func TestStateGuardLetsAValueOnlyUpdateThroughWithoutListing(t *testing.T) {
	s := newGuardServer(t, "")
	s.deps.Items = []runtime.Object{reader("web", "app-env")}
	// Same key names, in another order, with other values: the hot path.
	resp := s.update(t, map[string]string{"keyinfo": "x", "1st.key": "a"}, map[string]string{"1st.key": "b", "keyinfo": "y"})
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("answer = allowed %v, warnings %q; want allowed silently", resp.Allowed, resp.Warnings)
	}
	if s.listed != 0 {
		t.Errorf("listed workloads %d times for a write that changes no key name, want 0", s.listed)
	}
}

func TestStateGuardDeniesInDenyMode(t *testing.T) {
	s := newGuardServer(t, "audit: {guard: deny}\n")
	s.deps.Items = []runtime.Object{reader("web", "app-env")}
	resp := s.update(t, map[string]string{"keyinfo": "x"}, map[string]string{"keyinfo": "x", "1st.key": "y"})
	if resp.Allowed {
		t.Fatalf("allowed in deny mode; warnings %q", resp.Warnings)
	}
	if msg := resp.Result.Message; !strings.Contains(msg, "podguard (audit.guard: deny) rejected this ConfigMap write") || !strings.Contains(msg, wantWarning) {
		t.Errorf("message = %q, want the rejection and %q", msg, wantWarning)
	}
	if msg := resp.Result.Message; !strings.Contains(msg, "Fix: rename the keys") {
		t.Errorf("message = %q, want the finding in full, with its fix (a denial is not cut to a warning's length)", msg)
	}
	if len(resp.Warnings) != 0 {
		t.Errorf("a denial carries warnings %q; warnings are never attached to a denial", resp.Warnings)
	}
}

// In a namespace whose policy runs in warn or audit mode, admission would
// admit the workloads' next pods: deny mode warns there instead of refusing
// the ConfigMap write, so that a namespace rolling a policy out is not
// blocked by it.
func TestStateGuardDeniesOnlyWhatAdmissionWouldDeny(t *testing.T) {
	for _, mode := range []string{"warn", "audit"} {
		t.Run(mode, func(t *testing.T) {
			s := newGuardServer(t, "audit: {guard: deny}\n")
			s.world.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{policies.ModeLabel: mode}}})
			s.deps.Items = []runtime.Object{reader("web", "app-env")}
			resp := s.update(t, map[string]string{"keyinfo": "x"}, map[string]string{"keyinfo": "x", "1st.key": "y"})
			if !resp.Allowed {
				t.Fatalf("denied in a namespace in mode %s: %s", mode, resp.Result.Message)
			}
			if w := strings.Join(resp.Warnings, "\n"); !strings.Contains(w, wantWarning) {
				t.Errorf("warnings %q, want %q", w, wantWarning)
			}
		})
	}
}

func TestStateGuardIsSilentOnAWriteThatFixesThings(t *testing.T) {
	s := newGuardServer(t, "audit: {guard: deny}\n")
	s.deps.Items = []runtime.Object{reader("web", "app-env")}
	resp := s.update(t, map[string]string{"keyinfo": "x", "1st.key": "y"}, map[string]string{"keyinfo": "x", "first.key": "y"})
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("answer = allowed %v, warnings %q, result %+v; want allowed silently", resp.Allowed, resp.Warnings, resp.Result)
	}
}

func TestStateGuardDoesNotRepeatWhatWasBrokenAlready(t *testing.T) {
	s := newGuardServer(t, "")
	s.deps.Items = []runtime.Object{reader("web", "app-env")}
	// 1st.key was dropped before; adding a good key changes nothing that
	// breaks, so nothing is said.
	resp := s.update(t, map[string]string{"1st.key": "x"}, map[string]string{"1st.key": "x", "good": "y"})
	if len(resp.Warnings) != 0 {
		t.Errorf("warnings = %q, want none: the write adds nothing that breaks", resp.Warnings)
	}
	// Adding a second bad key is new: the message names both.
	resp = s.update(t, map[string]string{"1st.key": "x"}, map[string]string{"1st.key": "x", "2nd.key": "y"})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `ConfigMap "app-env" key "2nd.key" would make Deployment team-a/web lose`) {
		t.Errorf("warnings = %q, want one naming the new key", resp.Warnings)
	}
}

func TestStateGuardWarnsOnCreate(t *testing.T) {
	s := newGuardServer(t, "")
	s.deps.Items = []runtime.Object{reader("web", "fresh")}
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "fresh"}, Data: map[string]string{"1st.key": "x"}}
	// generateName: the request names nothing, the object has its name.
	code, resp, raw := s.post(t, review(t, configMapKind, admissionv1.Create, mustJSON(t, cm), named("")))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, raw)
	}
	want := `podguard: ConfigMap "fresh" would make Deployment team-a/web lose environment variables`
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], want) {
		t.Errorf("warnings = %q, want one starting with %q", resp.Warnings, want)
	}
}

func TestStateGuardCapsTheWorkloadsItNames(t *testing.T) {
	s := newGuardServer(t, "")
	for i := range maxGuardWorkloads + 3 {
		s.deps.Items = append(s.deps.Items, reader(fmt.Sprintf("web-%02d", i), "app-env"))
	}
	resp := s.update(t, map[string]string{"keyinfo": "x"}, map[string]string{"keyinfo": "x", "1st.key": "y"})
	if len(resp.Warnings) != maxGuardWorkloads+1 {
		t.Fatalf("%d warnings, want %d and one that counts the rest:\n%s", len(resp.Warnings), maxGuardWorkloads+1, strings.Join(resp.Warnings, "\n"))
	}
	if last, want := resp.Warnings[maxGuardWorkloads], "podguard: and 3 more workloads would break likewise (podguard audit -n team-a lists them)"; last != want {
		t.Errorf("last warning = %q, want %q", last, want)
	}
	total := 0
	for _, w := range resp.Warnings {
		total += utf8.RuneCountInString(w)
	}
	if total > 4096 {
		t.Errorf("warnings total %d runes; kube-apiserver cuts each to 256 beyond 4,096", total)
	}
}

func TestStateGuardSaysWhenItsCheckIsIncomplete(t *testing.T) {
	s := newGuardServer(t, "audit: {guard: deny}\n")
	s.deps = audit.Dependents{Incomplete: true}
	before := guardCount(guardIncomplete)
	resp := s.update(t, map[string]string{"keyinfo": "x"}, map[string]string{"keyinfo": "x", "1st.key": "y"})
	if !resp.Allowed {
		t.Fatalf("denied with nothing found: %+v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `not every workload that reads ConfigMap "app-env" could be checked in time`) {
		t.Errorf("warnings = %q, want one saying the check is incomplete", resp.Warnings)
	}
	if got := guardCount(guardIncomplete); got != before+1 {
		t.Errorf("podguard_state_guard_requests_total{result=incomplete} went from %v to %v, want one more", before, got)
	}
}

func TestStateGuardLeavesAloneWhatIsNotItsToJudge(t *testing.T) {
	bad := func(t *testing.T) (map[string]string, map[string]string) {
		return map[string]string{"keyinfo": "x"}, map[string]string{"keyinfo": "x", "1st.key": "y"}
	}
	for _, tt := range []struct {
		name, config string
		opts         []reviewOpt
	}{
		{name: "allows everything with audit.guard: off", config: "audit: {guard: \"off\"}\n" /* unquoted, YAML 1.1 reads off as false */},
		{name: "allows a write in an excluded namespace", opts: []reviewOpt{inNamespace("kube-system")}},
		{name: "allows a write in a namespace labelled podguard.io/enabled=false", opts: []reviewOpt{inNamespace("opted-out")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newGuardServer(t, tt.config)
			s.world.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "opted-out", Labels: map[string]string{audit.EnabledLabel: "false"}}})
			s.deps.Items = []runtime.Object{reader("web", "app-env")}
			old, cur := bad(t)
			resp := s.update(t, old, cur, tt.opts...)
			if !resp.Allowed || len(resp.Warnings) != 0 || s.listed != 0 {
				t.Errorf("answer = allowed %v, warnings %q, listed %d times; want allowed silently, nothing listed", resp.Allowed, resp.Warnings, s.listed)
			}
		})
	}
}

func secretJSON(t *testing.T, data map[string][]byte) []byte {
	return mustJSON(t, &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "creds"}, Data: data})
}

func TestStateGuardJudgesSecretsOnlyWhenSecretKeysAreRead(t *testing.T) {
	secretReader := reader("web", "unused")
	secretReader.Spec.Template.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}
	update := func(t *testing.T, s *guardServer) *admissionv1.AdmissionResponse {
		t.Helper()
		old := secretJSON(t, map[string][]byte{"password": []byte("s3cret-old")})
		cur := secretJSON(t, map[string][]byte{"password": []byte("s3cret-new"), "1st.token": []byte("s3cret")})
		code, resp, raw := s.post(t, review(t, secretKind, admissionv1.Update, cur, named("creds"), withOld(old)))
		if code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", code, raw)
		}
		if strings.Contains(raw, "s3cret") {
			t.Errorf("the response quotes a Secret value: %s", raw)
		}
		return resp
	}
	t.Run("allows without listing when Secret key names are off", func(t *testing.T) {
		s := newGuardServer(t, "")
		s.deps.Items = []runtime.Object{secretReader}
		if resp := update(t, s); !resp.Allowed || len(resp.Warnings) != 0 || s.listed != 0 {
			t.Errorf("answer = allowed %v, warnings %q, listed %d times; want allowed silently, nothing listed", resp.Allowed, resp.Warnings, s.listed)
		}
	})
	t.Run("warns when envFromKeys.secrets is on", func(t *testing.T) {
		s := newGuardServer(t, "policies: {envFromKeys: {secrets: true}}\n")
		s.deps.Items = []runtime.Object{secretReader}
		resp := update(t, s)
		want := `podguard: Secret "creds" key "1st.token" would make Deployment team-a/web lose environment variables`
		if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], want) {
			t.Errorf("warnings = %q, want one starting with %q", resp.Warnings, want)
		}
	})
}

func TestKeyNamesOfReadsNamesNeverValues(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds"},"data":{"b":"dmFsdWU=","a":{"not":"a string"}},"stringData":{"c":"x"}}`)
	got, name, err := keyNamesOf(secretGVK, raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got.Env, want) || name != "creds" {
		t.Errorf("Secret %q keys = %q, want creds, %q", name, got.Env, want)
	}
	raw = []byte(`{"data":{"b":"1","a":"2"},"binaryData":{"bin":"AA==","a":"AA=="}}`)
	got, _, err = keyNamesOf(configMapGVK, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Env, []string{"a", "b"}) || !slices.Equal(got.FileOnly, []string{"bin"}) {
		t.Errorf("ConfigMap keys = %+v, want env [a b], file-only [bin] (binaryData never becomes env)", got)
	}
	for _, bad := range []string{``, `{"data":["a"]}`, `{"data":{"a":}}`} {
		if _, _, err := keyNamesOf(configMapGVK, []byte(bad)); err == nil {
			t.Errorf("keyNamesOf(%q) = no error", bad)
		}
	}
}

func TestOverrideWorldAnswersForOneObjectOnly(t *testing.T) {
	base := policies.NewSnapshot()
	base.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app-env"}, Data: map[string]string{"old": ""}})
	base.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "other"}, Data: map[string]string{"other": ""}})
	base.AddSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app-env"}, Data: map[string][]byte{"secret": nil}})
	w := overrideWorld{World: base, kind: "ConfigMap", namespace: "team-a", name: "app-env", obj: policies.KeyNames{Env: []string{"new"}}.Object()}
	for _, tt := range []struct {
		what string
		got  policies.Object
		want []string
	}{
		{"the overridden ConfigMap", w.ConfigMap("team-a", "app-env"), []string{"new"}},
		{"another ConfigMap", w.ConfigMap("team-a", "other"), []string{"other"}},
		{"a Secret of the same name", w.Secret("team-a", "app-env"), []string{"secret"}},
	} {
		if !slices.Equal(tt.got.EnvKeys, tt.want) {
			t.Errorf("%s: keys %q, want %q", tt.what, tt.got.EnvKeys, tt.want)
		}
	}
	if got := w.ConfigMap("team-b", "app-env"); got.Presence != policies.NotFound {
		t.Errorf("a ConfigMap of the same name in another namespace: %+v, want not found", got)
	}
}

func TestNewFailuresComparesPolicyFieldAndKeys(t *testing.T) {
	st, err := NewState(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	base := policies.NewSnapshot()
	at := func(keys ...string) policies.World {
		return overrideWorld{World: base, kind: "ConfigMap", namespace: "team-a", name: "app-env", obj: policies.KeyNames{Env: keys}.Object()}
	}
	d := reader("web", "app-env")
	var tenDropped []string
	for i := range 10 {
		tenDropped = append(tenDropped, fmt.Sprintf("0%d.key", i))
	}
	tenDropped = slices.Clip(tenDropped) // each append below copies
	for _, tt := range []struct {
		name        string
		before, now policies.World
		want        int
	}{
		{"a new dropped key is new", at("ok"), at("ok", "1st.key"), 1},
		{"the same dropped key is not", at("1st.key"), at("1st.key", "ok"), 0},
		{"a fix is not", at("1st.key"), at("first.key"), 0},
		{"another dropped key changes the message", at("1st.key"), at("1st.key", "2nd.key"), 1},
		// The message changes (one key fewer), but nothing new breaks: in
		// deny mode, refusing it would refuse the fix.
		{"a partial fix is not", at("1st.key", "2nd.key"), at("1st.key"), 0},
		{"a partial fix that adds a valid key is not", at("1st.key", "2nd.key"), at("1st.key", "ok"), 0},
		// The message lists the first 10 dropped keys; an eleventh is new
		// all the same.
		{"a dropped key beyond the ones a message lists is new", at(tenDropped...), at(append(tenDropped, "9th.key")...), 1},
		{"a dropped key renamed beyond the ones listed is new", at(append(tenDropped, "8th.key")...), at(append(tenDropped, "9th.key")...), 1},
		{"a dropped key removed beyond the ones listed is not", at(append(tenDropped, "9th.key")...), at(tenDropped...), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newFailures(context.Background(), d, tt.before, tt.now, st.Engine)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("new failures = %+v, want %d", got, tt.want)
			}
		})
	}
}

// TestNewFailuresBeyondTheListedFindings: a workload whose first ten
// envFrom references already fail has its eleventh counted in a summary
// finding; a key the write adds to the ConfigMap of that eleventh is new all
// the same, because the summary carries the keys it counts.
func TestNewFailuresBeyondTheListedFindings(t *testing.T) {
	st, err := NewState(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	base := policies.NewSnapshot()
	d := reader("web", "app-env")
	c := &d.Spec.Template.Spec.Containers[0]
	c.EnvFrom = nil
	for i := range policies.MaxFindingsPerPolicy {
		name := fmt.Sprintf("other-%d", i)
		base.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name}, Data: map[string]string{"1st.key": ""}})
		c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
	}
	c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-env"}}})
	at := func(keys ...string) policies.World {
		return overrideWorld{World: base, kind: "ConfigMap", namespace: "team-a", name: "app-env", obj: policies.KeyNames{Env: keys}.Object()}
	}
	for _, tt := range []struct {
		name        string
		before, now policies.World
		want        int
	}{
		{"a second dropped key is new", at("1st.key"), at("1st.key", "2nd.key"), 1},
		{"a fix of one of two is not", at("1st.key", "2nd.key"), at("1st.key"), 0},
		{"a valid key is not", at("1st.key"), at("1st.key", "ok"), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newFailures(context.Background(), d, tt.before, tt.now, st.Engine)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("new failures = %+v, want %d", got, tt.want)
			}
		})
	}
}

func TestStateGuardWarnsOfAKeyThatChangesWhatAMountHides(t *testing.T) {
	s := newGuardServer(t, "")
	d := reader("web", "unused")
	d.Spec.Template.Spec.Containers[0].EnvFrom = nil
	d.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/nginx/nginx.conf"}}
	d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-env"}}}}}
	s.deps.Items = []runtime.Object{d}
	// The key the mount path ends in: the classic mistake, a directory
	// named nginx.conf, appears with it.
	resp := s.update(t, map[string]string{"default.conf": "x"}, map[string]string{"default.conf": "x", "nginx.conf": "y"})
	want := `podguard: ConfigMap "app-env" key "nginx.conf" would change what a mount hides in Deployment team-a/web on its pods' next start: [mount-shadowing] spec.template.spec.containers[0].volumeMounts[0]`
	if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], want) {
		t.Errorf("warnings = %q, want one starting with %q", resp.Warnings, want)
	}
	// A mount already failed for what it hides (/etc): the key that makes
	// a directory named etc in it is new at the same field all the same,
	// and a value-only change to it is not.
	d.Spec.Template.Spec.Containers[0].VolumeMounts[0].MountPath = "/etc"
	resp = s.update(t, map[string]string{"a": "x"}, map[string]string{"a": "x", "etc": "y"})
	// One new failure (no "and 1 more"): the key's, not the /etc denial
	// that was there before.
	want = `podguard: ConfigMap "app-env" key "etc" would change what a mount hides in Deployment team-a/web on its pods' next start: [mount-shadowing] spec.template.spec.containers[0].volumeMounts[0].mountPath: mounting volume "conf" (ConfigMap "app-env") at /etc`
	if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], want) {
		t.Errorf("warnings = %q, want one starting with %q", resp.Warnings, want)
	}
	world := func(keys ...string) policies.World {
		return overrideWorld{World: policies.NewSnapshot(), kind: "ConfigMap", namespace: "team-a", name: "app-env", obj: policies.KeyNames{Env: keys}.Object()}
	}
	st, err := NewState(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	fs, err := newFailures(context.Background(), d, world("a"), world("a", "etc"), st.Engine)
	if err != nil || len(fs) != 1 || !strings.Contains(fs[0].Message, "creates a directory named etc") {
		t.Errorf("new failures = %+v, %v; want the one about the key etc", fs, err)
	}
	if resp = s.update(t, map[string]string{"a": "x", "etc": "y"}, map[string]string{"a": "x", "etc": "z", "b": "y"}); len(resp.Warnings) != 0 {
		t.Errorf("warnings = %q for a key that changes nothing, want none", resp.Warnings)
	}
}

func TestStateGuardNeverFailsAWriteForAReasonOfItsOwn(t *testing.T) {
	t.Run("a listing the API server refuses", func(t *testing.T) {
		s := newGuardServer(t, "audit: {guard: deny}\n")
		guard := &StateGuard{adm: NewAdmission(s.world, mustState(t, "audit: {guard: deny}\n"), logr.Discard()), log: logr.Discard(),
			dependents: func(context.Context, string, audit.Ref) (audit.Dependents, error) {
				return audit.Dependents{}, fmt.Errorf("pods is forbidden")
			}}
		resp := guard.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Kind: configMapKind, Operation: admissionv1.Create, Namespace: "team-a", Name: "app-env",
			Object: runtime.RawExtension{Raw: configMapJSON(t, map[string]string{"1st.key": "x"})},
		}})
		if !resp.Allowed || len(resp.Warnings) != 0 {
			t.Errorf("answer = allowed %v, warnings %q; want allowed", resp.Allowed, resp.Warnings)
		}
	})
	t.Run("an object whose keys cannot be read", func(t *testing.T) {
		s := newGuardServer(t, "audit: {guard: deny}\n")
		s.deps.Items = []runtime.Object{reader("web", "app-env")}
		code, resp, raw := s.post(t, review(t, configMapKind, admissionv1.Update, []byte(`{"data":["1st.key"]}`), named("app-env"), withOld(configMapJSON(t, nil))))
		if code != http.StatusOK || !resp.Allowed {
			t.Errorf("HTTP %d, %s; want allowed", code, raw)
		}
	})
}

func mustState(t *testing.T, cfgYAML string) *State {
	t.Helper()
	cfg, err := config.Parse("test", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"+cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// BenchmarkNewFailures judges a workload with 1 and 10 references to a
// ConfigMap of 100,000 keys, every one dropped, before and after a write
// that adds one more: what the guard spends on each dependent.
func BenchmarkNewFailures(b *testing.B) {
	st, err := NewState(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 100000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%06d.key", i)
	}
	before := overrideWorld{World: policies.NewSnapshot(), kind: "ConfigMap", namespace: "team-a", name: "app-env", obj: policies.KeyNames{Env: keys}.Object()}
	after := before
	after.obj = policies.KeyNames{Env: append(slices.Clip(keys), "9.new")}.Object()
	for _, refs := range []int{1, 10} {
		d := reader("web", "app-env")
		for range refs - 1 {
			d.Spec.Template.Spec.Containers[0].EnvFrom = append(d.Spec.Template.Spec.Containers[0].EnvFrom, d.Spec.Template.Spec.Containers[0].EnvFrom[0])
		}
		b.Run(fmt.Sprintf("refs=%d", refs), func(b *testing.B) {
			for b.Loop() {
				fs, err := newFailures(context.Background(), d, before, after, st.Engine)
				if err != nil || len(fs) != refs {
					b.Fatalf("new failures %d, %v; want %d", len(fs), err, refs)
				}
			}
		})
	}
}

func TestProtobufConfigLeavesTheOriginal(t *testing.T) {
	orig := &rest.Config{Host: "https://127.0.0.1:6443", QPS: 5}
	c := protobufConfig(orig)
	if c.ContentType != "application/vnd.kubernetes.protobuf" || !strings.HasPrefix(c.AcceptContentTypes, "application/vnd.kubernetes.protobuf,") || c.Host != orig.Host || c.QPS != 5 {
		t.Errorf("protobufConfig = content type %q, accept %q, host %q, QPS %v", c.ContentType, c.AcceptContentTypes, c.Host, c.QPS)
	}
	if orig.ContentType != "" || orig.AcceptContentTypes != "" {
		t.Errorf("the original config changed: %q %q", orig.ContentType, orig.AcceptContentTypes)
	}
}
