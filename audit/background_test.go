package audit

import (
	"context"
	"errors"
	"fmt"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	k8stesting "k8s.io/client-go/testing"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/policies"
)

// lockedWorld is a Snapshot a test may change while the audit reads it.
type lockedWorld struct {
	mu   sync.Mutex
	snap *policies.Snapshot
}

func (w *lockedWorld) Namespace(n string) (policies.Namespace, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap.Namespace(n)
}
func (w *lockedWorld) ConfigMap(ns, n string) policies.Object {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap.ConfigMap(ns, n)
}
func (w *lockedWorld) Secret(ns, n string) policies.Object {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap.Secret(ns, n)
}
func (w *lockedWorld) Cluster() policies.Cluster { return policies.Cluster{} }
func (w *lockedWorld) Image(ref string) policies.ImageFacts {
	return policies.ImageFacts{Ref: ref, Status: policies.ImageNotInspected}
}

func (w *lockedWorld) setConfigMap(ns, name string, keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := map[string]string{}
	for _, k := range keys {
		data[k] = "v"
	}
	w.snap.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data})
}

// recorder is a Publisher and an EventRecorder that keeps what it is given.
type recorder struct {
	mu        sync.Mutex
	published map[string][]Audited
	writes    int
	events    []string
	previous  map[types.UID][]string
	reported  []string
}

func (r *recorder) Publish(_ context.Context, ns string, items []Audited) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published[ns] = items
	r.writes++
	return nil
}

func (r *recorder) Previous(context.Context) (map[types.UID][]string, []string, error) {
	return r.previous, r.reported, nil
}

func (r *recorder) Failed(ref corev1.ObjectReference, newly []Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range newly {
		r.events = append(r.events, fmt.Sprintf("%s %s/%s %s", ref.Kind, ref.Namespace, ref.Name, f.Policy))
	}
}

// summary is "Kind/name:fail(policies)" or "Kind/name:pass" per item.
func (r *recorder) summary(ns string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, it := range r.published[ns] {
		s := it.Ref.Kind + "/" + it.Ref.Name + ":pass"
		if it.Verdict.Fails() {
			s = it.Ref.Kind + "/" + it.Ref.Name + ":fail(" + strings.Join(it.Verdict.FailedPolicies(), ",") + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func (r *recorder) eventList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func envTemplate(cm string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": cm}, Annotations: map[string]string{"example.com/owner": "team-a"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Image: "registry.example/app:1",
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}},
	}}}}
}

func ctrl(kind, apiVersion, name string, uid types.UID) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
}

// runningObjects is what exists before the audit starts: a Deployment with its
// ReplicaSet and Pod, a bare Pod, a CronJob with a Job, a finished bare
// Job, a ReplicaSet scaled to 0, and the same in an excluded namespace and
// in one the webhook's selector leaves out.
func runningObjects() []runtime.Object {
	var objs []runtime.Object
	for _, ns := range []string{"shop", "kube-system", "off"} {
		objs = append(objs,
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", UID: types.UID(ns + "-web")}, Spec: appsv1.DeploymentSpec{Template: envTemplate("web-env")}},
			&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1", UID: types.UID(ns + "-web-1"), OwnerReferences: ctrl("Deployment", "apps/v1", "web", types.UID(ns+"-web"))}, Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1), Template: envTemplate("web-env")}},
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1-abc", UID: types.UID(ns + "-web-1-abc"), OwnerReferences: ctrl("ReplicaSet", "apps/v1", "web-1", types.UID(ns+"-web-1"))}, Spec: envTemplate("web-env").Spec},
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "debug", UID: types.UID(ns + "-debug"), Labels: map[string]string{"run": "debug"},
				Annotations: map[string]string{"example.com/owner": "team-a", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}, Spec: envTemplate("other").Spec},
			&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly", UID: types.UID(ns + "-nightly")}, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: envTemplate("web-env")}}}},
			&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly-1", UID: types.UID(ns + "-nightly-1"), OwnerReferences: ctrl("CronJob", "batch/v1", "nightly", types.UID(ns+"-nightly"))}, Spec: batchv1.JobSpec{Template: envTemplate("web-env")}},
			&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "migrate", UID: types.UID(ns + "-migrate")}, Spec: batchv1.JobSpec{Template: envTemplate("web-env")},
				Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}},
			&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old", UID: types.UID(ns + "-old")}, Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Template: envTemplate("web-env")}},
		)
	}
	return objs
}

func startBackground(t *testing.T, world *lockedWorld, rec *recorder, opts ...func(*BackgroundOptions)) (*Background, context.CancelFunc) {
	t.Helper()
	s := &policies.Settings{}
	s.Default()
	engine := policies.NewEngine(s)
	world.mu.Lock()
	for _, ns := range []string{"shop", "kube-system"} {
		world.snap.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{corev1.LabelMetadataName: ns}}})
	}
	world.snap.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "off", Labels: map[string]string{corev1.LabelMetadataName: "off", EnabledLabel: "false"}}})
	world.mu.Unlock()
	sel, err := labels.Parse(EnabledLabel + "!=false")
	if err != nil {
		t.Fatal(err)
	}
	o := BackgroundOptions{
		Client: fake.NewClientset(runningObjects()...),
		Env: func() Env {
			return Env{Engine: engine, World: func(context.Context, *policies.Pod) policies.World { return world },
				Exclude: []string{"kube-system"}, Interval: time.Hour, Events: true}
		},
		Scope:     func(context.Context) (labels.Selector, error) { return sel, nil },
		Namespace: world.Namespace,
		Publisher: rec,
		Events:    rec,
		Log:       testr.New(t),
	}
	for _, f := range opts {
		f(&o)
	}
	b := NewBackground(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b, cancel
}

// A term waits for the world's caches: judged with a ConfigMap still
// unknown, a Deployment would pass, then fail with an event once the
// cache fills.
func TestBackgroundWaitsForTheWorld(t *testing.T) {
	world := &lockedWorld{snap: policies.NewSnapshot()}
	world.setConfigMap("shop", "other", "OK")
	var ready atomic.Bool
	rec := &recorder{published: map[string][]Audited{}, previous: map[types.UID][]string{"shop-web": {"envfrom-keys"}}}
	startBackground(t, world, rec, func(o *BackgroundOptions) { o.Ready = ready.Load })
	time.Sleep(3 * nsDelay / 2)
	if got := rec.summary("shop"); got != "" {
		t.Fatalf("published %q before the world synced", got)
	}
	world.setConfigMap("shop", "web-env", "1st.key")
	ready.Store(true)
	waitFor(t, "the first pass", func() bool { return rec.summary("shop") != "" })
	if got, want := rec.summary("shop"), "CronJob/nightly:fail(envfrom-keys) Deployment/web:fail(envfrom-keys) Pod/debug:pass"; got != want {
		t.Errorf("published %q, want %q", got, want)
	}
	if ev := rec.eventList(); len(ev) != 0 {
		t.Errorf("events %v: web failed before, and nightly was never reported", ev)
	}
}

// Without the webhook's namespaceSelector, a term does not start: judging
// every namespace would report on those the webhook leaves alone.
func TestBackgroundNeedsTheScope(t *testing.T) {
	world := &lockedWorld{snap: policies.NewSnapshot()}
	rec := &recorder{published: map[string][]Audited{}}
	s := &policies.Settings{}
	s.Default()
	engine := policies.NewEngine(s)
	b := NewBackground(BackgroundOptions{
		Client: fake.NewClientset(runningObjects()...),
		Env: func() Env {
			return Env{Engine: engine, World: func(context.Context, *policies.Pod) policies.World { return world }, Interval: time.Hour}
		},
		Scope:     func(context.Context) (labels.Selector, error) { return nil, errors.New("the API server is restarting") },
		Namespace: world.Namespace,
		Publisher: rec,
		Log:       testr.New(t),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "namespaceSelector") {
		t.Errorf("Run = %v, want an error naming the namespaceSelector", err)
	}
	if len(rec.published) != 0 {
		t.Errorf("published %v", rec.published)
	}
}

// A term's gauges end with it: the next writer exports its own, and the
// sum over replicas counts each violation once.
func TestBackgroundGaugesEndWithTheTerm(t *testing.T) {
	world := &lockedWorld{snap: policies.NewSnapshot()}
	world.setConfigMap("shop", "web-env", "1st.key")
	world.setConfigMap("shop", "other", "OK")
	rec := &recorder{published: map[string][]Audited{}}
	_, cancel := startBackground(t, world, rec)
	waitFor(t, "the first pass", func() bool { return rec.summary("shop") != "" })
	if n := testutil.CollectAndCount(violations); n == 0 {
		t.Fatal("no violations series while the term runs")
	}
	cancel()
	waitFor(t, "the term's series to go", func() bool {
		return testutil.CollectAndCount(violations) == 0 && testutil.CollectAndCount(auditedObjects) == 0 && testutil.ToFloat64(leading) == 0
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBackgroundAuditsWhatRunsOncePerWorkload(t *testing.T) {
	world := &lockedWorld{snap: policies.NewSnapshot()}
	world.setConfigMap("shop", "web-env", "1st.key", "GOOD")
	world.setConfigMap("shop", "other", "OK")
	rec := &recorder{published: map[string][]Audited{}, reported: []string{"gone"}}
	startBackground(t, world, rec)

	want := "CronJob/nightly:fail(envfrom-keys) Deployment/web:fail(envfrom-keys) Pod/debug:pass"
	waitFor(t, "the first pass to publish namespace shop", func() bool { return rec.summary("shop") != "" })
	if got := rec.summary("shop"); got != want {
		t.Errorf("published %q\nwant      %q (a workload owns its ReplicaSets, Pods and Jobs; a finished Job and a ReplicaSet at 0 are not judged)", got, want)
	}
	rec.mu.Lock()
	_, excluded := rec.published["kube-system"]
	_, off := rec.published["off"]
	gone, reportedGone := rec.published["gone"]
	rec.mu.Unlock()
	if excluded || off {
		t.Errorf("published namespaces the webhook does not admit: kube-system %v, off %v", excluded, off)
	}
	if !reportedGone || len(gone) != 0 {
		t.Errorf("a namespace reported before with nothing to audit now must be published empty (its reports removed), got %v %v", reportedGone, gone)
	}
	// Nothing was reported before: no verdict turned, so no event.
	if ev := rec.eventList(); len(ev) != 0 {
		t.Errorf("events on the first audit with no reports before: %v", ev)
	}
	for _, it := range rec.published["shop"] {
		if it.Ref.Kind == "Deployment" && (it.Ref.APIVersion != "apps/v1" || it.Ref.UID != "shop-web") {
			t.Errorf("Deployment reference %+v", it.Ref)
		}
		// The verdicts kept for every workload keep no key lists (they
		// would hold every dropped key of every ConfigMap once per reader).
		for _, f := range it.Verdict.Failed {
			if f.Keys != nil {
				t.Errorf("%s/%s: the kept failure %s holds keys %q", it.Ref.Kind, it.Ref.Name, f.Policy, f.Keys)
			}
		}
	}
}

func TestBackgroundJudgesAgainWhenAConfigMapChanges(t *testing.T) {
	world := &lockedWorld{snap: policies.NewSnapshot()}
	world.setConfigMap("shop", "web-env", "GOOD")
	world.setConfigMap("shop", "other", "OK")
	rec := &recorder{published: map[string][]Audited{}}
	b, _ := startBackground(t, world, rec)
	waitFor(t, "the first pass", func() bool { return rec.summary("shop") != "" })
	if got := rec.summary("shop"); got != "CronJob/nightly:pass Deployment/web:pass Pod/debug:pass" {
		t.Fatalf("first pass %q", got)
	}

	// The ConfigMap gains a key the kubelet drops: the workloads that read
	// it fail, each gets an event, and the other ConfigMap's reader stays.
	world.setConfigMap("shop", "web-env", "GOOD", "1st.key")
	b.Notify(Change{Kind: "ConfigMap", Namespace: "shop", Name: "web-env"})
	want := "CronJob/nightly:fail(envfrom-keys) Deployment/web:fail(envfrom-keys) Pod/debug:pass"
	waitFor(t, "the change to be published", func() bool { return rec.summary("shop") == want })
	wantEvents := []string{"CronJob shop/nightly envfrom-keys", "Deployment shop/web envfrom-keys"}
	waitFor(t, "the events", func() bool { return len(rec.eventList()) >= 2 })
	ev := rec.eventList()
	slices.Sort(ev)
	if !reflect.DeepEqual(ev, wantEvents) {
		t.Errorf("events %v, want %v", ev, wantEvents)
	}

	// A change of a ConfigMap nobody reads judges nothing again.
	rec.mu.Lock()
	writes := rec.writes
	rec.mu.Unlock()
	world.setConfigMap("shop", "unread", "1x")
	b.Notify(Change{Kind: "ConfigMap", Namespace: "shop", Name: "unread"})
	time.Sleep(3 * nsDelay / 2)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.writes != writes {
		t.Errorf("a ConfigMap no workload reads caused %d writes", rec.writes-writes)
	}
}

func TestBackgroundEventsAcrossARestart(t *testing.T) {
	world := &lockedWorld{snap: policies.NewSnapshot()}
	world.setConfigMap("shop", "web-env", "1st.key")
	world.setConfigMap("shop", "other", "OK")
	// The reports found at start: the Deployment passed (before its
	// ConfigMap changed while podguard was down), the CronJob failed
	// already.
	rec := &recorder{published: map[string][]Audited{}, previous: map[types.UID][]string{
		"shop-web": {}, "shop-nightly": {"envfrom-keys"},
	}}
	startBackground(t, world, rec)
	waitFor(t, "the first pass", func() bool { return rec.summary("shop") != "" })
	if ev := rec.eventList(); !reflect.DeepEqual(ev, []string{"Deployment shop/web envfrom-keys"}) {
		t.Errorf("events %v: only the Deployment turned from pass to fail", ev)
	}
}

func TestSlimForAuditIsIdempotentAndKeepsWhatPoliciesRead(t *testing.T) {
	for _, obj := range runningObjects() {
		once, err := slimForAudit(obj.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		twice, err := slimForAudit(once)
		if err != nil {
			t.Fatal(err)
		}
		m := obj.(metav1.Object)
		if !reflect.DeepEqual(once, twice) {
			t.Errorf("%T %s: slimForAudit is not idempotent", obj, m.GetName())
		}
		_, stub := once.(*metav1.PartialObjectMetadata)
		if owned := metav1.GetControllerOf(m) != nil; stub != owned {
			t.Errorf("%T %s: kept as a name only = %v, controlled by an audited kind = %v", obj, m.GetName(), stub, owned)
		}
		if stub {
			continue
		}
		c := once.(*compact)
		if c.done != willNotRunAgain(obj) {
			t.Errorf("%T %s: done = %v, will not run again = %v", obj, m.GetName(), c.done, willNotRunAgain(obj))
		}
		if c.done {
			if c.pod != nil {
				t.Errorf("%T %s: a pod kept for an object never judged", obj, m.GetName())
			}
			continue
		}
		kind := slices.IndexFunc(auditedKinds, func(k kindInfo) bool { return reflect.TypeOf(k.obj()) == reflect.TypeOf(obj) })
		back, err := c.object(kind)
		if err != nil {
			t.Fatal(err)
		}
		got, want := policies.PodOf(back), policies.PodOf(obj)
		if !reflect.DeepEqual(got.Spec, want.Spec) || !reflect.DeepEqual(got.Meta.Labels, want.Meta.Labels) || !reflect.DeepEqual(got.Meta.Annotations, withoutLastApplied(want.Meta.Annotations)) { // kubectl's copy of the object: no policy reads it
			t.Errorf("%T %s: the pod the policies read changed:\ngot  %+v\nwant %+v", obj, m.GetName(), got, want)
		}
		if got.SpecPath.String() != want.SpecPath.String() || back.GetObjectKind().GroupVersionKind() != auditedKinds[kind].gvk {
			t.Errorf("%T %s: rebuilt as %v at %s", obj, m.GetName(), back.GetObjectKind().GroupVersionKind(), got.SpecPath)
		}
	}
}

// TestListSlimPagesAndSlims: the informers' list asks for pages of at most
// listPageSize without the resourceVersion "0" the watch cache answers
// whole, and returns each page slimmed, so that client-go's pager never
// gathers whole objects.
func TestListSlimPagesAndSlims(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "rs", Controller: ptr.To(true)}
	owned := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1-a", OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "debug", Annotations: map[string]string{"big": strings.Repeat("x", 1000)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
	cs := fake.NewClientset(owned, bare)
	var asked []metav1.ListOptions
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		asked = append(asked, a.(k8stesting.ListActionImpl).ListOptions)
		return false, nil, nil
	})
	var podKind kindInfo
	for _, k := range auditedKinds {
		if k.gvk.Kind == "Pod" {
			podKind = k
		}
	}
	for _, lo := range []metav1.ListOptions{{ResourceVersion: "0", Limit: 500}, {ResourceVersion: "0"}, {Limit: 100000}} {
		asked = nil
		l, err := listSlim(context.Background(), cs, podKind, lo)
		if err != nil {
			t.Fatal(err)
		}
		if len(asked) != 1 || asked[0].ResourceVersion != "" || asked[0].Limit <= 0 || asked[0].Limit > listPageSize {
			t.Errorf("options %+v: asked the API server for %+v, want a page of at most %d without resourceVersion 0", lo, asked, listPageSize)
		}
		items, err := apimeta.ExtractList(l)
		if err != nil || len(items) != 2 {
			t.Fatalf("options %+v: %d items, %v", lo, len(items), err)
		}
		for _, it := range items {
			switch o := it.(type) {
			case *metav1.PartialObjectMetadata:
				if o.Name != "web-1-a" {
					t.Errorf("%s came back as a name only; only the ReplicaSet's pod should", o.Name)
				}
			case *compact:
				if o.Name != "debug" || len(o.pod) == 0 {
					t.Errorf("compact %s with a pod of %d bytes", o.Name, len(o.pod))
				}
			default:
				t.Errorf("an item came back whole: %T", it)
			}
		}
	}
}
