package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/podguard/podguard/policies"
)

// Env is what the config in force gives the background audit. A config
// reload gives a new one.
type Env struct {
	Engine *policies.Engine
	// World returns the world to judge a pod with: the informers' view,
	// the pinned kubelet version, and what the image inspector already
	// knows of the pod's images (it is never waited for).
	World func(ctx context.Context, pod *policies.Pod) policies.World
	// Exclude are the namespaces the webhook skips (namespaces.exclude).
	Exclude []string
	// Interval is how often every object is judged again.
	Interval time.Duration
	// Events records a Warning event on an object whose verdict turns from
	// pass to fail.
	Events bool
}

// Audited is one judged object and its verdict, as published.
type Audited struct {
	Ref     corev1.ObjectReference
	Verdict Verdict
}

// Publisher receives the verdicts, one namespace at a time.
type Publisher interface {
	// Publish replaces what is known of namespace with items (none: the
	// namespace has nothing audited any more).
	Publish(ctx context.Context, namespace string, items []Audited) error
	// Previous returns, for each object reported before this replica
	// began to write (the policy reports it finds), the policies that
	// failed it (an empty list: it passed), and the namespaces those
	// reports are in. Read once per term, so that a restart neither repeats
	// events nor misses a turn, and reports of namespaces with nothing left
	// to audit are removed.
	Previous(ctx context.Context) (map[types.UID][]string, []string, error)
}

// ErrNotPublished is a Publish that wrote nothing, there being nowhere to
// write to: not a failure, not a write.
var ErrNotPublished = errors.New("no report API to publish to")

// Refresher is a Publisher whose destination can change while a term runs
// (a report API installed after podguard started, audit.reports changed by
// a reload). Refresh is called every few seconds; true means everything
// must be published again.
type Refresher interface {
	Refresh(ctx context.Context) bool
}

// EventRecorder records a Warning event on an audited object.
type EventRecorder interface {
	Failed(ref corev1.ObjectReference, newly []Failure)
}

// Change is something a verdict may depend on that changed.
type Change struct {
	// Kind is "ConfigMap", "Secret", "Namespace", or "Cluster" (a Node's
	// kubelet version or architecture: every object is judged again).
	Kind            string
	Namespace, Name string
}

// Background is the background audit: informers over the audited kinds,
// a queue of objects to judge, and the verdicts, published per namespace.
// It runs while Run's context lives (the audit lease is held); Notify and
// Reconfigure may be called at any time.
type Background struct {
	client    kubernetes.Interface
	env       func() Env
	scope     func(ctx context.Context) (labels.Selector, error)
	namespace func(name string) (policies.Namespace, bool)
	publisher Publisher
	events    EventRecorder
	ready     func() bool
	log       logr.Logger

	mu  sync.Mutex
	run *auditRun // nil while not leading
	// reconfig is closed, and replaced, on every Reconfigure.
	reconfig chan struct{}
}

// BackgroundOptions configure NewBackground.
type BackgroundOptions struct {
	Client kubernetes.Interface
	Env    func() Env
	// Scope returns the namespaces the webhook admits, as a label selector
	// of Namespaces (the validating webhook's namespaceSelector).
	Scope func(ctx context.Context) (labels.Selector, error)
	// Namespace returns a namespace's labels (the admission world's).
	Namespace func(name string) (policies.Namespace, bool)
	Publisher Publisher
	Events    EventRecorder
	// Ready reports whether the world's own caches (ConfigMaps, Secrets,
	// Namespaces, Nodes) have synced: a verdict made before would take a
	// ConfigMap for unknown and pass what fails. Nil means always.
	Ready func() bool
	Log   logr.Logger
}

// NewBackground returns the background audit.
func NewBackground(o BackgroundOptions) *Background {
	ready := o.Ready
	if ready == nil {
		ready = func() bool { return true }
	}
	return &Background{client: o.Client, env: o.Env, scope: o.Scope, namespace: o.Namespace, publisher: o.Publisher, events: o.Events, ready: ready, log: o.Log, reconfig: make(chan struct{})}
}

// reconfigured returns a channel closed at the next Reconfigure.
func (b *Background) reconfigured() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reconfig
}

// objKey names an audited object.
type objKey struct {
	kind            int // index in auditedKinds
	namespace, name string
}

// stored is an object's last verdict.
type stored struct {
	ref      corev1.ObjectReference
	verdict  Verdict
	failing  []string
	notified bool
}

// auditRun is one term as the writer: its informers, queues and verdicts.
type auditRun struct {
	b *Background
	// stores are the informers' stores, one per auditedKinds entry.
	stores  []toolscache.Indexer
	queue   workqueue.TypedRateLimitingInterface[objKey]
	nsQueue workqueue.TypedDelayingInterface[string]

	mu       sync.Mutex
	verdicts map[string]map[objKey]*stored // by namespace
	previous map[types.UID][]string        // from the reports found at start
	reported []string                      // the namespaces those are in
	selector labels.Selector
	cluster  string // the kubelet and architectures last judged with
	ready    bool   // the first pass is done: namespaces may be published
	parked   sets.Set[string]
}

// nsDelay batches a namespace's changes into one write.
const nsDelay = 2 * time.Second

// Run audits until ctx ends: call it while holding the audit lease. It
// returns nil when ctx ends, or an error when the informers cannot start.
func (b *Background) Run(ctx context.Context) error {
	r := newAuditRun(b)
	defer r.queue.ShutDown()
	defer r.nsQueue.ShutDown()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var informers []toolscache.SharedIndexInformer
	for i, k := range auditedKinds {
		inf, err := newInformer(b.client, k)
		if err != nil {
			return err
		}
		kind := i
		enqueue := func(obj any) {
			if key, err := toolscache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				ns, name, _ := toolscache.SplitMetaNamespaceKey(key)
				r.queue.Add(objKey{kind, ns, name})
			}
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: enqueue, DeleteFunc: enqueue,
			UpdateFunc: func(old, cur any) {
				// A status update (most updates: a Deployment's replicas,
				// a Pod's conditions) leaves what is kept the same.
				if !sameKept(old, cur) {
					enqueue(cur)
				}
			},
		}); err != nil {
			return err
		}
		informers = append(informers, inf)
		r.stores = append(r.stores, inf.GetIndexer())
		go inf.RunWithContext(ctx)
	}
	for i, inf := range informers {
		if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s informer did not sync", auditedKinds[i].gvk.Kind)
		}
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), b.ready) {
		return nil
	}
	if b.publisher != nil {
		prev, reported, err := b.publisher.Previous(ctx)
		if err != nil {
			b.log.Error(err, "reading the policy reports written before; verdicts that turned to fail while podguard was down get no event")
		}
		r.previous, r.reported = prev, reported
	}
	b.mu.Lock()
	b.run = r
	b.mu.Unlock()
	leading.Set(1)
	defer func() {
		// What this term published is another term's to say now.
		b.mu.Lock()
		if b.run == r {
			b.run = nil
			leading.Set(0)
			resetGauges()
		}
		b.mu.Unlock()
	}()

	if err := r.firstPass(ctx); err != nil || ctx.Err() != nil {
		return err
	}

	go r.publishLoop(ctx)
	go func() {
		for ctx.Err() == nil {
			r.processOne(ctx)
		}
	}()
	next := time.Now().Add(b.env().Interval)
	tick := time.NewTicker(scopePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			switch {
			case now.After(next):
				// Everything again, and every namespace written again
				// (a write of what is there already is none): what no
				// event told, a report deleted by hand.
				r.refreshScope(ctx)
				r.enqueueAll()
				r.markAllDirty()
				lastPass.SetToCurrentTime()
				next = now.Add(b.env().Interval)
			case r.refreshScope(ctx):
				// The webhook configuration now selects other namespaces.
				r.enqueueAll()
			}
			if rf, ok := b.publisher.(Refresher); ok && rf.Refresh(ctx) {
				r.markAllDirty()
			}
		}
	}
}

// markAllDirty publishes every namespace again: those with verdicts and
// those reported at the term's start.
func (r *auditRun) markAllDirty() {
	r.mu.Lock()
	names := slices.Collect(maps.Keys(r.verdicts))
	names = append(names, r.reported...)
	r.mu.Unlock()
	for _, ns := range names {
		r.markDirty(ns)
	}
}

// newAuditRun returns a term's state, its stores not yet set.
func newAuditRun(b *Background) *auditRun {
	return &auditRun{
		b:        b,
		queue:    workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[objKey](), workqueue.TypedRateLimitingQueueConfig[objKey]{Name: "podguard-audit"}),
		nsQueue:  workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "podguard-audit-reports"}),
		verdicts: map[string]map[objKey]*stored{},
		parked:   sets.New[string](),
	}
}

// firstPass judges every stored object, then publishes every namespace at
// once. It returns false if ctx ended first.
func (r *auditRun) firstPass(ctx context.Context) error {
	start := time.Now()
	r.refreshScope(ctx)
	r.mu.Lock()
	known := r.selector != nil
	r.mu.Unlock()
	if !known {
		// Judging every namespace would report on those the webhook
		// leaves alone, and remove them again a moment later.
		return errors.New("the webhook's namespaceSelector could not be read")
	}
	r.setClusterKey(r.clusterKey())
	r.enqueueAll()
	for r.queue.Len() > 0 && ctx.Err() == nil {
		r.processOne(ctx)
	}
	if ctx.Err() != nil {
		return nil
	}
	r.mu.Lock()
	r.ready = true
	parked := r.parked.UnsortedList()
	r.parked = nil
	r.mu.Unlock()
	// Namespaces podguard reported before but that have nothing now.
	r.mu.Lock()
	for _, ns := range r.reported {
		if _, ok := r.verdicts[ns]; !ok && !slices.Contains(parked, ns) {
			parked = append(parked, ns)
		}
	}
	r.mu.Unlock()
	slices.Sort(parked)
	for _, ns := range parked {
		if ctx.Err() != nil {
			return nil
		}
		r.publish(ctx, ns)
	}
	passDuration.Observe(time.Since(start).Seconds())
	lastPass.SetToCurrentTime()
	r.b.log.Info("audit pass done", "objects", r.count(), "namespaces", len(parked), "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// scopePoll is how often the webhook's namespaceSelector is read again: one
// GET of one object, by the writer only.
const scopePoll = 10 * time.Second

// Notify tells the audit that something verdicts depend on changed.
func (b *Background) Notify(c Change) {
	b.mu.Lock()
	r := b.run
	b.mu.Unlock()
	if r == nil {
		return
	}
	switch c.Kind {
	case "ConfigMap", "Secret":
		r.enqueueIndex(refsIndex, refKey(c.Kind, c.Namespace, c.Name))
	case "Namespace":
		r.enqueueIndex(toolscache.NamespaceIndex, c.Name)
	case "Cluster":
		if key := r.clusterKey(); key != r.clusterKeyLast() {
			r.b.log.Info("the Nodes changed what the policies target: auditing everything again", "cluster", key)
			r.setClusterKey(key)
			r.enqueueAll()
		}
	}
}

// Reconfigure judges everything again with the config in force.
func (b *Background) Reconfigure(ctx context.Context) {
	b.mu.Lock()
	r := b.run
	close(b.reconfig)
	b.reconfig = make(chan struct{})
	b.mu.Unlock()
	if r != nil {
		r.refreshScope(ctx)
		r.enqueueAll()
	}
}

func (r *auditRun) clusterKey() string {
	w := r.b.env().World(context.Background(), &policies.Pod{})
	c := w.Cluster()
	v := "unknown"
	if c.KubeletVersion != nil {
		v = c.KubeletVersion.String()
	}
	return fmt.Sprintf("kubelet %s, architectures %v", v, c.NodeArches)
}

func (r *auditRun) clusterKeyLast() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cluster
}

func (r *auditRun) setClusterKey(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cluster = k
}

// refreshScope reads the webhook's namespaceSelector again, and reports
// whether it changed.
func (r *auditRun) refreshScope(ctx context.Context) bool {
	sel, err := r.b.scope(ctx)
	if err != nil {
		r.b.log.Error(err, "reading which namespaces the webhook admits; keeping the last known scope")
		return false
	}
	r.mu.Lock()
	changed := r.selector == nil || r.selector.String() != sel.String()
	r.selector = sel
	r.mu.Unlock()
	if changed {
		r.b.log.Info("auditing the namespaces the webhook admits", "namespaceSelector", sel.String())
	}
	return changed
}

func (r *auditRun) enqueueAll() {
	for i, store := range r.stores {
		for _, key := range store.ListKeys() {
			ns, name, _ := toolscache.SplitMetaNamespaceKey(key)
			r.queue.Add(objKey{i, ns, name})
		}
	}
}

func (r *auditRun) enqueueIndex(index, value string) {
	for i, store := range r.stores {
		keys, err := store.IndexKeys(index, value)
		if err != nil {
			continue
		}
		for _, key := range keys {
			ns, name, _ := toolscache.SplitMetaNamespaceKey(key)
			r.queue.Add(objKey{i, ns, name})
		}
	}
}

// inScope reports whether the webhook judges pods in namespace.
func (r *auditRun) inScope(namespace string) bool {
	env := r.b.env()
	if slices.Contains(env.Exclude, namespace) {
		return false
	}
	ns, ok := r.b.namespace(namespace)
	if !ok {
		// Not (yet) in the namespace cache: the webhook would apply its
		// config to it; judge it, and a namespace event judges it again.
		ns = policies.Namespace{Name: namespace}
	}
	r.mu.Lock()
	sel := r.selector
	r.mu.Unlock()
	if sel == nil {
		return true
	}
	set := labels.Set(ns.Labels)
	if _, has := set[corev1.LabelMetadataName]; !has {
		set = labels.Merge(set, labels.Set{corev1.LabelMetadataName: namespace})
	}
	return sel.Matches(set)
}

// processOne judges the next object of the queue.
func (r *auditRun) processOne(ctx context.Context) {
	key, shutdown := r.queue.Get()
	if shutdown {
		return
	}
	defer r.queue.Done(key)
	if err := r.judge(ctx, key); err != nil {
		if r.queue.NumRequeues(key) < 5 {
			r.queue.AddRateLimited(key)
			return
		}
		r.b.log.Error(err, "judging an object failed", "kind", auditedKinds[key.kind].gvk.Kind, "namespace", key.namespace, "name", key.name)
	}
	r.queue.Forget(key)
}

func (r *auditRun) judge(ctx context.Context, key objKey) error {
	item, exists, err := r.stores[key.kind].GetByKey(key.namespace + "/" + key.name)
	if err != nil {
		return err
	}
	c, judged := item.(*compact)
	if !exists || !judged || c.done || !r.inScope(key.namespace) {
		r.forget(key)
		return nil
	}
	obj, err := c.object(key.kind)
	if err != nil {
		return err
	}
	pod := policies.PodOf(obj)
	if pod == nil {
		r.forget(key)
		return nil
	}
	env := r.b.env()
	started := time.Now()
	v, err := Judge(ctx, obj, env.World(ctx, pod), env.Engine)
	judgeDuration.Observe(time.Since(started).Seconds())
	if err != nil {
		return err
	}
	v.forgetKeys()
	if v.Skipped != "" {
		r.forget(key)
		return nil
	}
	gvk := auditedKinds[key.kind].gvk
	ref := corev1.ObjectReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Namespace: c.Namespace, Name: c.Name, UID: c.UID}
	r.record(ctx, key, ref, v, env.Events)
	return nil
}

// record keeps a verdict, sends the event of a turn to fail, and marks the
// namespace for publishing when what is published changed.
func (r *auditRun) record(ctx context.Context, key objKey, ref corev1.ObjectReference, v Verdict, events bool) {
	failing := v.FailedPolicies()
	r.mu.Lock()
	byNS := r.verdicts[key.namespace]
	if byNS == nil {
		byNS = map[objKey]*stored{}
		r.verdicts[key.namespace] = byNS
	}
	old := byNS[key]
	var before []string
	known := false
	switch {
	case old != nil && old.ref.UID == ref.UID:
		before, known = old.failing, true
	case r.previous != nil:
		before, known = r.previous[ref.UID]
	}
	byNS[key] = &stored{ref: ref, verdict: v, failing: failing}
	changed := old == nil || !sameVerdict(old.verdict, v) || old.ref.UID != ref.UID
	r.mu.Unlock()

	if known && events && r.b.events != nil {
		var newly []Failure
		for _, f := range v.Failed {
			if !slices.Contains(before, f.Policy) {
				newly = append(newly, f)
			}
		}
		if len(newly) > 0 {
			r.b.events.Failed(ref, newly)
			turnedToFail.Inc()
		}
	}
	if changed {
		r.markDirty(key.namespace)
	}
}

func (r *auditRun) forget(key objKey) {
	r.mu.Lock()
	_, had := r.verdicts[key.namespace][key]
	delete(r.verdicts[key.namespace], key)
	if len(r.verdicts[key.namespace]) == 0 {
		delete(r.verdicts, key.namespace)
	}
	r.mu.Unlock()
	if had {
		r.markDirty(key.namespace)
	}
}

func (r *auditRun) markDirty(ns string) {
	r.mu.Lock()
	if !r.ready {
		r.parked.Insert(ns)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.nsQueue.AddAfter(ns, nsDelay)
}

func (r *auditRun) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.verdicts {
		n += len(m)
	}
	return n
}

func (r *auditRun) publishLoop(ctx context.Context) {
	for {
		ns, shutdown := r.nsQueue.Get()
		if shutdown {
			return
		}
		r.publish(ctx, ns)
		r.nsQueue.Done(ns)
	}
}

// publish sends one namespace's verdicts, sorted, and sets its gauges.
func (r *auditRun) publish(ctx context.Context, ns string) {
	r.mu.Lock()
	items := make([]Audited, 0, len(r.verdicts[ns]))
	for _, s := range r.verdicts[ns] {
		items = append(items, Audited{Ref: s.ref, Verdict: s.verdict})
	}
	r.mu.Unlock()
	slices.SortFunc(items, func(a, b Audited) int {
		return cmp.Or(cmp.Compare(a.Ref.Kind, b.Ref.Kind), cmp.Compare(a.Ref.Name, b.Ref.Name))
	})
	setViolationGauges(ns, items)
	if r.b.publisher == nil {
		return
	}
	if err := r.b.publisher.Publish(ctx, ns, items); err != nil {
		if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrNotPublished) {
			return
		}
		reportWrites.WithLabelValues("failure").Inc()
		r.b.log.Error(err, "writing the policy reports; retrying", "namespace", ns)
		r.nsQueue.AddAfter(ns, 30*time.Second)
		return
	}
	reportWrites.WithLabelValues("success").Inc()
}

// sameVerdict compares what is published of two verdicts.
func sameVerdict(a, b Verdict) bool {
	return slices.Equal(a.Passed, b.Passed) && slices.EqualFunc(a.Failed, b.Failed, func(x, y Failure) bool {
		return x.Policy == y.Policy && x.Field == y.Field && x.Message == y.Message && x.Mode == y.Mode
	})
}
