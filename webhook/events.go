package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/policies"
)

// EventReasonPodDenied is the reason of the Warning event podguard puts on a
// workload whose pods it denies.
const EventReasonPodDenied = "PodDenied"

// Limits of the denial events. Variables, so that tests can shrink them.
var (
	// denialQueueSize bounds the denials waiting for their event. When the
	// queue is full, a denial gets no event (counted as "dropped"): the
	// admission response never waits for one.
	denialQueueSize = 256
	// eventBurst events per workload and reason may be written at once,
	// then one per eventRefill. A controller retries a denied create with
	// backoff for as long as the template is broken; the event's count,
	// aggregated by client-go's correlator, says it goes on.
	eventBurst  = 5
	eventRefill = 5 * time.Minute
	// maxEventFindings of a denial's violations are quoted in its event,
	// and the message is cut at maxEventMessageBytes (the limit the API
	// server sets on an events.k8s.io note).
	maxEventFindings     = 3
	maxEventMessageBytes = 1024
	// ownerCacheSize ReplicaSets and Jobs are remembered with the workload
	// that owns them, for ownerCacheTTL: an RS that is orphaned or adopted
	// is seen within that time.
	ownerCacheSize = 1024
	ownerCacheTTL  = 5 * time.Minute
	// limiterCacheSize workloads have a rate limiter at a time; the least
	// recently denied lose theirs.
	limiterCacheSize = 4096
	lookupTimeout    = 5 * time.Second
)

// podOwners are the controllers whose pods' denials are reported, and for
// each, the kind of workload that may in turn control it: a ReplicaSet's
// Deployment, a Job's CronJob. The others are the workload themselves.
var podOwners = map[schema.GroupKind]*schema.GroupKind{
	{Group: "apps", Kind: "ReplicaSet"}:  {Group: "apps", Kind: "Deployment"},
	{Group: "batch", Kind: "Job"}:        {Group: "batch", Kind: "CronJob"},
	{Group: "apps", Kind: "StatefulSet"}: nil,
	{Group: "apps", Kind: "DaemonSet"}:   nil,
	{Kind: "ReplicationController"}:      nil,
}

// denial is a denied pod's controller and why it was denied.
type denial struct {
	namespace string
	owner     metav1.OwnerReference
	findings  []policies.Finding
}

// ownerKey names a pod's controller fully. The UID alone is not enough: a
// pod in another namespace can name a UID it learned, and must not be
// answered from what another namespace's controller resolved to.
type ownerKey struct {
	namespace, apiVersion, kind, name string
	uid                               types.UID
}

// ownerEntry is what a controller resolved to.
type ownerEntry struct {
	workload *corev1.ObjectReference
	expires  time.Time
}

// DenialEvents puts a Warning event (reason PodDenied) on the workload whose
// pods podguard denies, so that `kubectl describe deployment` says why no
// pods appear. A controller's own FailedCreate event is on its ReplicaSet
// (or Job), where few people look.
//
// Report only queues: a worker (Start) finds the workload, through the
// pod's controller and, for a ReplicaSet or a Job, that one's controller
// (a metadata-only GET, cached by UID), and records the event through
// client-go's event machinery, whose correlator folds repeats into a count.
// An explicit per-workload rate limit keeps a controller's retries from
// writing an event each.
type DenialEvents struct {
	reader client.Reader
	sink   record.EventSink
	host   string
	clock  clock.PassiveClock
	log    logr.Logger
	queue  chan denial

	owners   *lru.Cache // ownerKey → ownerEntry
	limiters *lru.Cache // workload UID and reason → flowcontrol.PassiveRateLimiter
}

// NewDenialEvents returns the reporter. reader reads ReplicaSet and Job
// metadata from the API server; sink writes the events; host names this
// replica in them (reportingInstance).
func NewDenialEvents(reader client.Reader, sink record.EventSink, host string, log logr.Logger) *DenialEvents {
	return &DenialEvents{
		reader:   reader,
		sink:     sink,
		host:     host,
		clock:    clock.RealClock{},
		log:      log,
		queue:    make(chan denial, denialQueueSize),
		owners:   lru.New(ownerCacheSize),
		limiters: lru.New(limiterCacheSize),
	}
}

// Report queues the event for a denied pod, if it has one: only a real
// (not dry-run) CREATE of a pod whose controller is a workload. A pod a
// person created has no controller, and they saw the denial themselves.
// It never blocks.
func (e *DenialEvents) Report(req admission.Request, pod *metav1.ObjectMeta, res *policies.Result) {
	if e == nil || req.Operation != admissionv1.Create || (req.DryRun != nil && *req.DryRun) || !res.Denied() {
		return
	}
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return
	}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil {
		return
	}
	if _, ok := podOwners[gv.WithKind(owner.Kind).GroupKind()]; !ok {
		return
	}
	select {
	case e.queue <- denial{namespace: req.Namespace, owner: *owner, findings: policies.WithoutKeys(res.Violations)}:
	default:
		denialEvents.WithLabelValues("dropped").Inc()
	}
}

// NeedLeaderElection is false: every replica reports the denials it made.
func (e *DenialEvents) NeedLeaderElection() bool { return false }

// Start records the queued denials until ctx is done.
func (e *DenialEvents) Start(ctx context.Context) error {
	ctx = klog.NewContext(ctx, e.log)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(e.sink)
	recorder := broadcaster.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: "podguard", Host: e.host}).WithLogger(e.log)
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-e.queue:
			e.record(ctx, recorder, d)
		}
	}
}

// record finds d's workload and records its event, within the rate limit.
func (e *DenialEvents) record(ctx context.Context, recorder record.EventRecorder, d denial) {
	workload, err := e.workloadOf(ctx, d.namespace, d.owner)
	log := e.log.WithValues("namespace", d.namespace, "kind", d.owner.Kind, "name", d.owner.Name)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && workload == nil):
		// Gone, or not the object the pod named: nothing to put an event on.
		denialEvents.WithLabelValues("owner_gone").Inc()
		return
	case err != nil:
		denialEvents.WithLabelValues("lookup_failed").Inc()
		log.Error(err, "finding the workload of a denied pod; no event")
		return
	}
	if !e.allow(workload.UID, EventReasonPodDenied) {
		denialEvents.WithLabelValues("rate_limited").Inc()
		return
	}
	recorder.Event(workload, corev1.EventTypeWarning, EventReasonPodDenied, denialMessage(d.owner, d.findings))
	denialEvents.WithLabelValues("recorded").Inc()
	log.V(1).Info("recorded a denial event", "workloadKind", workload.Kind, "workload", workload.Name)
}

// workloadOf returns the workload a denied pod's controller belongs to: a
// ReplicaSet's Deployment, a Job's CronJob, else the controller itself. It
// returns nil if the controller is no longer the object the pod names.
func (e *DenialEvents) workloadOf(ctx context.Context, namespace string, owner metav1.OwnerReference) (*corev1.ObjectReference, error) {
	self := &corev1.ObjectReference{APIVersion: owner.APIVersion, Kind: owner.Kind, Namespace: namespace, Name: owner.Name, UID: owner.UID}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil {
		return nil, err
	}
	// Every owner is read back, not only those with a parent to resolve: a
	// review that did not come from the API server could otherwise name any
	// workload and have podguard write events about it.
	parent := podOwners[gv.WithKind(owner.Kind).GroupKind()]
	now := e.clock.Now()
	key := ownerKey{namespace: namespace, apiVersion: owner.APIVersion, kind: owner.Kind, name: owner.Name, uid: owner.UID}
	if v, ok := e.owners.Get(key); ok {
		if entry := v.(ownerEntry); now.Before(entry.expires) {
			return entry.workload, nil
		}
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gv.WithKind(owner.Kind))
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	if err := e.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner.Name}, m); err != nil {
		return nil, fmt.Errorf("getting %s %s/%s: %w", owner.Kind, namespace, owner.Name, err)
	}
	if m.UID != owner.UID {
		return nil, nil
	}
	workload := self
	if c := metav1.GetControllerOfNoCopy(m); c != nil && parent != nil {
		if cgv, err := schema.ParseGroupVersion(c.APIVersion); err == nil && cgv.WithKind(c.Kind).GroupKind() == *parent {
			workload = &corev1.ObjectReference{APIVersion: c.APIVersion, Kind: c.Kind, Namespace: namespace, Name: c.Name, UID: c.UID}
		}
	}
	e.owners.Add(key, ownerEntry{workload: workload, expires: now.Add(ownerCacheTTL)})
	return workload, nil
}

// allow takes a token from the workload's bucket for reason.
func (e *DenialEvents) allow(workload types.UID, reason string) bool {
	key := string(workload) + "/" + reason
	var limiter flowcontrol.PassiveRateLimiter
	if v, ok := e.limiters.Get(key); ok {
		limiter = v.(flowcontrol.PassiveRateLimiter)
	} else {
		limiter = flowcontrol.NewTokenBucketPassiveRateLimiterWithClock(float32(1/eventRefill.Seconds()), eventBurst, e.clock)
		e.limiters.Add(key, limiter)
	}
	return limiter.TryAccept()
}

// denialMessage says which pods were denied, by which policies, and quotes
// the first violations, each with its field path and fix. Findings name
// fields, keys and paths, never values, as in the denial itself.
func denialMessage(owner metav1.OwnerReference, findings []policies.Finding) string {
	var policiesSeen []string
	for _, f := range findings {
		if !slices.Contains(policiesSeen, f.Policy) {
			policiesSeen = append(policiesSeen, f.Policy)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "podguard (%s) denied a pod of %s %s (%d %s): ", strings.Join(policiesSeen, ", "), owner.Kind, owner.Name,
		len(findings), plural(len(findings), "problem", "problems"))
	writeFirst(&b, len(findings), " | ", " ... and %d more", func(i int) { b.WriteString(findings[i].String()) })
	return truncate(b.String(), maxEventMessageBytes)
}

// writeFirst writes the first maxEventFindings of n findings to b with
// write, separated by sep, then more (a format of how many were left out).
func writeFirst(b *strings.Builder, n int, sep, more string, write func(i int)) {
	for i := range n {
		if i == maxEventFindings {
			fmt.Fprintf(b, more, n-i)
			return
		}
		if i > 0 {
			b.WriteString(sep)
		}
		write(i)
	}
}

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "..."
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
