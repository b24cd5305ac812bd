package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/policies"
)

// fakeSink stores the events client-go's recorder writes, as the API server
// would, and counts the writes.
type fakeSink struct {
	mu      sync.Mutex
	writes  int
	events  map[string]*corev1.Event // by name
	written chan struct{}
}

func newFakeSink() *fakeSink {
	return &fakeSink{events: map[string]*corev1.Event{}, written: make(chan struct{}, 1000)}
}

func (s *fakeSink) store(e *corev1.Event) (*corev1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	stored := e.DeepCopy()
	s.events[e.Name] = stored
	s.written <- struct{}{}
	return stored.DeepCopy(), nil
}

func (s *fakeSink) Create(e *corev1.Event) (*corev1.Event, error)          { return s.store(e) }
func (s *fakeSink) Update(e *corev1.Event) (*corev1.Event, error)          { return s.store(e) }
func (s *fakeSink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) { return s.store(e) }

// about returns the stored events whose involvedObject is the named object.
func (s *fakeSink) about(kind, name string) []*corev1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*corev1.Event
	for _, e := range s.events {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e.DeepCopy())
		}
	}
	return out
}

func (s *fakeSink) all() []*corev1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*corev1.Event, 0, len(s.events))
	for _, e := range s.events {
		out = append(out, e.DeepCopy())
	}
	return out
}

func (s *fakeSink) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// countingReader counts the GETs that reach the API server.
type countingReader struct {
	client.Reader
	gets atomic.Int32
	err  error
}

// Get counts and fails the lookups of everything but the "flush"
// StatefulSets, which the tests report last to know that the queue has
// been worked through.
func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if !strings.HasPrefix(key.Name, "flush") {
		r.gets.Add(1)
		if r.err != nil {
			return r.err
		}
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// workloads in namespace team-a: a Deployment's ReplicaSet, a ReplicaSet of
// its own, a CronJob's Job and a Job of its own.
func workloadObjects() []client.Object {
	meta := func(name, uid string, owner ...metav1.OwnerReference) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID(uid), OwnerReferences: owner}
	}
	return []client.Object{
		&appsv1.ReplicaSet{ObjectMeta: meta("web-6d4cf", "rs-uid", controllerRef("apps/v1", "Deployment", "web", "deploy-uid"))},
		&appsv1.ReplicaSet{ObjectMeta: meta("lone", "lone-rs-uid")},
		&batchv1.Job{ObjectMeta: meta("backup-2900", "job-uid", controllerRef("batch/v1", "CronJob", "backup", "cronjob-uid"))},
		&batchv1.Job{ObjectMeta: meta("migrate", "lone-job-uid")},
		&appsv1.StatefulSet{ObjectMeta: meta("db", "sts-uid")},
		&appsv1.DaemonSet{ObjectMeta: meta("agent", "ds-uid")},
		&corev1.ReplicationController{ObjectMeta: meta("legacy", "rc-uid")},
		&appsv1.StatefulSet{ObjectMeta: meta("flush", "flush-uid")},
		&appsv1.StatefulSet{ObjectMeta: meta("flush-1", "flush-1-uid")},
		&appsv1.StatefulSet{ObjectMeta: meta("flush-2", "flush-2-uid")},
	}
}

func controllerRef(apiVersion, kind, name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: ptr.To(true)}
}

// startDenialEvents runs a DenialEvents over the workloads until the test ends.
func startDenialEvents(t *testing.T, reader client.Reader) (*DenialEvents, *fakeSink) {
	t.Helper()
	RegisterMetrics()
	sink := newFakeSink()
	e := NewDenialEvents(reader, sink, "podguard-0", logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e, sink
}

func fakeWorkloads() *countingReader {
	return &countingReader{Reader: fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(workloadObjects()...).Build()}
}

var envFromViolation = policies.Finding{Policy: "envfrom-keys", Field: "spec.containers[0].envFrom[0]",
	Message: `ConfigMap "app-config" key "1st.key" would be skipped by the target kubelet v1.29.3. Fix: rename the keys`}

// deniedPodOf is a CREATE of a pod controlled by owner (none if nil) that
// the policies denied.
func deniedPodOf(owner *metav1.OwnerReference, findings ...policies.Finding) (admission.Request, *metav1.ObjectMeta, *policies.Result) {
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid", Kind: podKind, Operation: admissionv1.Create, Namespace: "team-a",
	}}
	pod := &metav1.ObjectMeta{GenerateName: "web-", Namespace: "team-a"}
	if owner != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if len(findings) == 0 {
		findings = []policies.Finding{envFromViolation}
	}
	return req, pod, &policies.Result{Violations: findings}
}

// waitForEvent waits until an event about kind/name is stored.
func waitForEvent(t *testing.T, sink *fakeSink, kind, name string) *corev1.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if evs := sink.about(kind, name); len(evs) > 0 {
			return evs[0]
		}
		select {
		case <-sink.written:
		case <-deadline:
			t.Fatalf("no event about %s %s", kind, name)
		}
	}
}

func TestDenialEventGoesOnTheWorkloadUsersLookAt(t *testing.T) {
	tests := []struct {
		name        string
		owner       metav1.OwnerReference
		kind, onto  string
		uid         types.UID
		apiVersion  string
		wantLookups int32
	}{
		{"a Deployment's pod: on the Deployment, through its ReplicaSet", controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "rs-uid"), "Deployment", "web", "deploy-uid", "apps/v1", 1},
		{"a ReplicaSet's own pod: on the ReplicaSet", controllerRef("apps/v1", "ReplicaSet", "lone", "lone-rs-uid"), "ReplicaSet", "lone", "lone-rs-uid", "apps/v1", 1},
		{"a CronJob's pod: on the CronJob, through its Job", controllerRef("batch/v1", "Job", "backup-2900", "job-uid"), "CronJob", "backup", "cronjob-uid", "batch/v1", 1},
		{"a Job's own pod: on the Job", controllerRef("batch/v1", "Job", "migrate", "lone-job-uid"), "Job", "migrate", "lone-job-uid", "batch/v1", 1},
		{"a StatefulSet's pod: on the StatefulSet, once it is read back", controllerRef("apps/v1", "StatefulSet", "db", "sts-uid"), "StatefulSet", "db", "sts-uid", "apps/v1", 1},
		{"a DaemonSet's pod: on the DaemonSet, once it is read back", controllerRef("apps/v1", "DaemonSet", "agent", "ds-uid"), "DaemonSet", "agent", "ds-uid", "apps/v1", 1},
		{"a ReplicationController's pod: on it, once it is read back", controllerRef("v1", "ReplicationController", "legacy", "rc-uid"), "ReplicationController", "legacy", "rc-uid", "v1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reader := fakeWorkloads()
			e, sink := startDenialEvents(t, reader)
			e.Report(deniedPodOf(&tt.owner))
			ev := waitForEvent(t, sink, tt.kind, tt.onto)
			want := corev1.ObjectReference{APIVersion: tt.apiVersion, Kind: tt.kind, Namespace: "team-a", Name: tt.onto, UID: tt.uid}
			if ev.InvolvedObject != want {
				t.Errorf("involvedObject = %+v, want %+v", ev.InvolvedObject, want)
			}
			if ev.Namespace != "team-a" || ev.Type != corev1.EventTypeWarning || ev.Reason != "PodDenied" || ev.Source.Component != "podguard" || ev.ReportingController != "podguard" || ev.ReportingInstance != "podguard-0" {
				t.Errorf("event = namespace %q type %q reason %q source %+v reporting %q/%q", ev.Namespace, ev.Type, ev.Reason, ev.Source, ev.ReportingController, ev.ReportingInstance)
			}
			wantMsg := fmt.Sprintf(`podguard (envfrom-keys) denied a pod of %s %s (1 problem): [envfrom-keys] spec.containers[0].envFrom[0]: ConfigMap "app-config" key "1st.key" would be skipped by the target kubelet v1.29.3. Fix: rename the keys`, tt.owner.Kind, tt.owner.Name)
			if ev.Message != wantMsg {
				t.Errorf("message:\n got %s\nwant %s", ev.Message, wantMsg)
			}
			if got := reader.gets.Load(); got != tt.wantLookups {
				t.Errorf("%d lookups, want %d", got, tt.wantLookups)
			}
		})
	}
}

// A review that did not come from the API server (forged on the network)
// can name any controller. podguard writes no event about a workload that
// does not exist, or whose UID is not the one the pod names.
func TestNoDenialEventAboutAWorkloadThatIsNotThere(t *testing.T) {
	for _, owner := range []metav1.OwnerReference{
		controllerRef("apps/v1", "StatefulSet", "no-such-db", "forged-uid"),
		controllerRef("apps/v1", "DaemonSet", "agent", "forged-uid"),
		controllerRef("v1", "ReplicationController", "legacy", "forged-uid"),
	} {
		t.Run(owner.Kind, func(t *testing.T) {
			reader := fakeWorkloads()
			e, sink := startDenialEvents(t, reader)
			e.Report(deniedPodOf(&owner))
			// A real owner reported after it: once its event is there, the
			// forged one has been handled (the queue is in order).
			real := controllerRef("apps/v1", "ReplicaSet", "lone", "lone-rs-uid")
			e.Report(deniedPodOf(&real))
			waitForEvent(t, sink, "ReplicaSet", "lone")
			if evs := sink.about(owner.Kind, owner.Name); len(evs) > 0 {
				t.Errorf("an event about a %s the pod's reference does not match: %+v", owner.Kind, evs[0])
			}
		})
	}
}

func TestNoDenialEventWithoutAControllerOrForADryRun(t *testing.T) {
	RegisterMetrics()
	rs := controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "rs-uid")
	notController := rs
	notController.Controller = nil
	tests := []struct {
		name   string
		adjust func(*admission.Request, *metav1.ObjectMeta, *policies.Result)
	}{
		{"a pod a person created (no owner)", func(_ *admission.Request, p *metav1.ObjectMeta, _ *policies.Result) { p.OwnerReferences = nil }},
		{"a dry run", func(r *admission.Request, _ *metav1.ObjectMeta, _ *policies.Result) { r.DryRun = ptr.To(true) }},
		{"an owner that is not the controller", func(_ *admission.Request, p *metav1.ObjectMeta, _ *policies.Result) {
			p.OwnerReferences = []metav1.OwnerReference{notController}
		}},
		{"a controller that is not a workload", func(_ *admission.Request, p *metav1.ObjectMeta, _ *policies.Result) {
			p.OwnerReferences = []metav1.OwnerReference{controllerRef("example.com/v1", "Rollout", "web", "cr-uid")}
		}},
		{"an allowed pod", func(_ *admission.Request, _ *metav1.ObjectMeta, res *policies.Result) { res.Violations = nil }},
		{"an UPDATE", func(r *admission.Request, _ *metav1.ObjectMeta, _ *policies.Result) { r.Operation = admissionv1.Update }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not started: whatever Report queues stays in the queue.
			e := NewDenialEvents(fakeWorkloads(), newFakeSink(), "podguard-0", logr.Discard())
			req, pod, res := deniedPodOf(&rs)
			tt.adjust(&req, pod, res)
			e.Report(req, pod, res)
			if n := len(e.queue); n != 0 {
				t.Errorf("%d denials queued, want none", n)
			}
		})
	}
}

// The admission response never waits for the event: Report queues, and
// drops (and counts) when the queue is full.
func TestDenialEventsAreDroppedWhenTheQueueIsFull(t *testing.T) {
	RegisterMetrics()
	old := denialQueueSize
	denialQueueSize = 2
	t.Cleanup(func() { denialQueueSize = old })
	e := NewDenialEvents(fakeWorkloads(), newFakeSink(), "podguard-0", logr.Discard()) // not started: nothing drains
	rs := controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "rs-uid")
	before := testutil.ToFloat64(denialEvents.WithLabelValues("dropped"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			e.Report(deniedPodOf(&rs))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Report blocked on a full queue")
	}
	if got := testutil.ToFloat64(denialEvents.WithLabelValues("dropped")) - before; got != 3 {
		t.Errorf("dropped = %v, want 3", got)
	}
}

// A controller retries a denied create with backoff for as long as the
// template is broken. Its workload gets eventBurst writes (one Event, its
// count going up), then one per eventRefill; the ReplicaSet is read once.
func TestRetriedDenialsDoNotStormTheWorkloadsEvents(t *testing.T) {
	reader := fakeWorkloads()
	e, sink := startDenialEvents(t, reader)
	fakeClock := clocktesting.NewFakePassiveClock(time.Now())
	e.clock = fakeClock
	rs := controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "rs-uid")
	limitedBefore := testutil.ToFloat64(denialEvents.WithLabelValues("rate_limited"))

	const retries = 20
	for range retries {
		e.Report(deniedPodOf(&rs))
	}
	// The recorder writes in order: once an event about another workload is
	// written, every earlier one has been.
	flush := func(name string) {
		t.Helper()
		sts := controllerRef("apps/v1", "StatefulSet", name, name+"-uid")
		e.Report(deniedPodOf(&sts))
		waitForEvent(t, sink, "StatefulSet", name)
	}
	flush("flush-1")

	evs := sink.about("Deployment", "web")
	if len(evs) != 1 {
		t.Fatalf("%d events on the Deployment, want 1 whose count goes up", len(evs))
	}
	if evs[0].Count != int32(eventBurst) {
		t.Errorf("count = %d, want %d (the burst)", evs[0].Count, eventBurst)
	}
	if got := sink.writeCount(); got != eventBurst+1 {
		t.Errorf("%d writes to the API server, want %d for the Deployment and 1 for the flush", got, eventBurst+1)
	}
	if got := testutil.ToFloat64(denialEvents.WithLabelValues("rate_limited")) - limitedBefore; got != retries-float64(eventBurst) {
		t.Errorf("rate_limited = %v, want %d", got, retries-eventBurst)
	}
	if got := reader.gets.Load(); got != 1 {
		t.Errorf("the ReplicaSet was read %d times, want once (cached by UID)", got)
	}

	// Later, the workload may say again that it still fails.
	fakeClock.SetTime(fakeClock.Now().Add(eventRefill))
	e.Report(deniedPodOf(&rs))
	flush("flush-2")
	if evs := sink.about("Deployment", "web"); len(evs) != 1 || evs[0].Count != int32(eventBurst)+1 {
		t.Errorf("after %s: events %d, count %d; want 1 event, count %d", eventRefill, len(evs), evs[0].Count, eventBurst+1)
	}
}

func TestDenialEventOwnerLookups(t *testing.T) {
	RegisterMetrics()
	t.Run("a ReplicaSet that is not the one the pod names gets no event", func(t *testing.T) {
		e, sink := startDenialEvents(t, fakeWorkloads())
		before := testutil.ToFloat64(denialEvents.WithLabelValues("owner_gone"))
		stale := controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "an-older-uid")
		e.Report(deniedPodOf(&stale))
		gone := controllerRef("apps/v1", "ReplicaSet", "deleted", "deleted-uid")
		e.Report(deniedPodOf(&gone))
		sts := controllerRef("apps/v1", "StatefulSet", "flush", "flush-uid")
		e.Report(deniedPodOf(&sts))
		waitForEvent(t, sink, "StatefulSet", "flush")
		if got := sink.writeCount(); got != 1 {
			t.Errorf("%d writes, want only the flush", got)
		}
		if got := testutil.ToFloat64(denialEvents.WithLabelValues("owner_gone")) - before; got != 2 {
			t.Errorf("owner_gone = %v, want 2", got)
		}
	})
	t.Run("a failed lookup is counted, and retried on the next denial", func(t *testing.T) {
		reader := fakeWorkloads()
		reader.err = errors.New("connection refused")
		e, sink := startDenialEvents(t, reader)
		before := testutil.ToFloat64(denialEvents.WithLabelValues("lookup_failed"))
		rs := controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "rs-uid")
		e.Report(deniedPodOf(&rs))
		sts := controllerRef("apps/v1", "StatefulSet", "flush", "flush-uid")
		e.Report(deniedPodOf(&sts))
		waitForEvent(t, sink, "StatefulSet", "flush")
		if got := testutil.ToFloat64(denialEvents.WithLabelValues("lookup_failed")) - before; got != 1 {
			t.Errorf("lookup_failed = %v, want 1", got)
		}
		reader.err = nil
		e.Report(deniedPodOf(&rs))
		waitForEvent(t, sink, "Deployment", "web")
	})
}

func TestDenialMessageIsBounded(t *testing.T) {
	var findings []policies.Finding
	for i := range 10 {
		policy := "envfrom-keys"
		if i%2 == 1 {
			policy = "mount-shadowing"
		}
		findings = append(findings, policies.Finding{Policy: policy, Field: fmt.Sprintf("spec.containers[%d]", i), Message: strings.Repeat("é", 100) + " Fix: do it"})
	}
	rs := controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "rs-uid")
	msg := denialMessage(rs, findings)
	if len(msg) > maxEventMessageBytes {
		t.Errorf("message is %d bytes, over %d", len(msg), maxEventMessageBytes)
	}
	if !utf8.ValidString(msg) {
		t.Error("message was cut inside a character")
	}
	if !strings.HasPrefix(msg, "podguard (envfrom-keys, mount-shadowing) denied a pod of ReplicaSet web-6d4cf (10 problems): [envfrom-keys] spec.containers[0]: ") {
		t.Errorf("message does not start with the policies and the first finding: %s", msg)
	}
	if strings.Contains(msg, "spec.containers[3]") {
		t.Errorf("more than %d findings quoted: %s", maxEventFindings, msg)
	}

	short := denialMessage(rs, findings[:4])
	if !strings.HasSuffix(short, "... and 1 more") {
		t.Errorf("message does not say how many findings it leaves out: %s", short)
	}
}

// An event is as careful as a log line: the findings name keys and paths,
// never values.
func TestDenialEventsNeverCarryValues(t *testing.T) {
	s := newTestServer(t, "cluster: {kubeletVersion: \"1.29\"}\n")
	e, sink := startDenialEvents(t, fakeWorkloads())
	s.adm.events = e
	const secret = "hunter2-do-not-record"
	sts := controllerRef("apps/v1", "StatefulSet", "db", "sts-uid")
	obj := podJSON(t, func(p *corev1.Pod) {
		p.Name, p.GenerateName = "", "db-"
		p.OwnerReferences = []metav1.OwnerReference{sts}
		p.Annotations = map[string]string{"note": secret}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", Value: secret}}
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
	})
	_, resp, raw := s.post(t, "/validate", review(t, podKind, admissionv1.Create, obj, func(r *admissionv1.AdmissionRequest) { r.Name = "" }))
	if resp.Allowed {
		t.Fatalf("allowed: %s", raw)
	}
	ev := waitForEvent(t, sink, "StatefulSet", "db")
	if !strings.Contains(ev.Message, `[envfrom-keys] spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key"`) {
		t.Errorf("the event does not quote the violation: %s", ev.Message)
	}
	// The test world's ConfigMap values are "x", "y" and "z".
	if strings.Contains(ev.Message, secret) || strings.Contains(ev.Message, `"z"`) {
		t.Errorf("the event carries a value: %s", ev.Message)
	}
}

// The owner cache must not answer for a pod in another namespace that names
// a cached controller's UID: that once let a pod author put text of their
// choosing into events on another tenant's Deployment.
func TestDenialEventCacheIsNotSharedAcrossNamespaces(t *testing.T) {
	reader := fakeWorkloads()
	e, sink := startDenialEvents(t, reader)
	rs := controllerRef("apps/v1", "ReplicaSet", "web-6d4cf", "rs-uid")
	e.Report(deniedPodOf(&rs))
	waitForEvent(t, sink, "Deployment", "web")

	req, pod, res := deniedPodOf(&rs)
	req.Namespace, pod.Namespace = "evil", "evil"
	e.Report(req, pod, res)
	forged := controllerRef("apps/v1", "ReplicaSet", "whatever", "rs-uid")
	req, pod, res = deniedPodOf(&forged)
	e.Report(req, pod, res)
	// The queue is in order: once this one is written, the others were handled.
	flush := controllerRef("apps/v1", "StatefulSet", "flush", "flush-uid")
	e.Report(deniedPodOf(&flush))
	waitForEvent(t, sink, "StatefulSet", "flush")

	if evs := sink.about("Deployment", "web"); len(evs) != 1 || evs[0].Count > 1 {
		t.Errorf("the Deployment got %d events %v; want the one real denial", len(evs), evs)
	}
	for _, ev := range sink.all() {
		if ev.Namespace == "evil" || strings.Contains(ev.Message, "whatever") {
			t.Errorf("an event from a pod naming another workload's UID: %s/%s %q", ev.Namespace, ev.InvolvedObject.Name, ev.Message)
		}
	}
}
