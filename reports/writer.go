package reports

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-logr/logr"
	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wgv1alpha2 "github.com/podguard/podguard/reports/wgpolicy/v1alpha2"
)

// ErrAPINotServed is returned (wrapped) when the API server does not serve
// the report API a Writer writes: its CRD is not installed, or was removed.
// Test with errors.Is.
var ErrAPINotServed = errors.New("report API not served")

// AddToScheme adds the types of both report APIs to a scheme, as the client
// of a Writer needs.
func AddToScheme(s *runtime.Scheme) error {
	return errors.Join(orv1alpha1.AddToScheme(s), wgv1alpha2.AddToScheme(s))
}

// listPageSize is how many reports Load asks for at once.
const listPageSize = 250

// Writer writes podguard's reports in one API with a controller-runtime
// client, and reads them back.
//
// It writes with get-compare-create/update/delete under optimistic
// concurrency (resourceVersion), not server-side apply: it must read a
// namespace's reports anyway, to keep the timestamps of unchanged results
// and to find the chunks to delete; podguard owns the objects whole; and a
// no-op is then a list and nothing else. Labels and annotations others add
// to a report are kept. A conflict (another writer, a podguard restarted
// while the old one still ran) is retried from a fresh read; since the
// names are fixed, the writers converge on the same objects and never
// duplicate them.
//
// The client should read from the API server (client.New), not from a
// cache: Sync compares with what it reads, and Load pages through lists.
type Writer struct {
	c   client.Client
	api string
	log logr.Logger
	now func() time.Time
}

// NewWriter returns a Writer of reports in api (APIOpenReports or
// APIWGPolicy). c's scheme must know the API's types (AddToScheme).
func NewWriter(c client.Client, api string, log logr.Logger) *Writer {
	return &Writer{c: c, api: api, log: log, now: time.Now}
}

// API is the report API the Writer writes.
func (w *Writer) API() string { return w.api }

// Sync makes podguard's reports in namespace exactly what Build gives for
// entries: it creates the missing ones, updates those whose content changed
// (an unchanged result keeps its timestamp, so an unchanged audit writes
// nothing), and deletes the chunks no longer needed; no entries (or none
// with results) deletes them all. It returns an error wrapping
// ErrAPINotServed when the API is not served.
func (w *Writer) Sync(ctx context.Context, namespace string, entries []Entry) error {
	desired, err := Build(w.api, namespace, entries, w.now())
	if err != nil {
		return err
	}
	// What another writer did meanwhile is retried, object by object (put),
	// and then (a report deleted under its precondition) from a fresh list.
	err = retry.OnError(retry.DefaultRetry, retriable, func() error { return w.sync(ctx, namespace, desired) })
	if err != nil {
		return fmt.Errorf("syncing the %s reports of namespace %s: %w", w.api, namespace, notServed(err))
	}
	return nil
}

func (w *Writer) sync(ctx context.Context, namespace string, desired []client.Object) error {
	existing, err := w.list(ctx, client.InNamespace(namespace))
	if err != nil {
		return err
	}
	byName := map[string]client.Object{}
	timestamps := map[string]metav1.Timestamp{}
	for _, obj := range existing {
		byName[obj.GetName()] = obj
		for _, it := range itemsOf(obj) {
			timestamps[it.contentKey()] = it.Timestamp
		}
	}

	for _, want := range desired {
		have := byName[want.GetName()] // nil when it was not there
		delete(byName, want.GetName())
		if err := w.put(ctx, want, have, timestamps); err != nil {
			return err
		}
	}

	for _, name := range slices.Sorted(maps.Keys(byName)) {
		obj := byName[name]
		err := w.c.Delete(ctx, obj, client.Preconditions{UID: ptrTo(obj.GetUID()), ResourceVersion: ptrTo(obj.GetResourceVersion())})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		w.log.V(1).Info("deleted report", "namespace", namespace, "name", name, "api", w.api)
	}
	return nil
}

// putBackoff paces the retries of one object's write: another writer that
// syncs the same namespace at the same time collides with this one object
// by object, a few times at most.
var putBackoff = wait.Backoff{Steps: 8, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.5}

// put makes the report want exist with its content, over have (the report
// of that name when the namespace was listed; nil if there was none). When
// another writer created or changed it meanwhile, put reads it again and
// retries: the results that writer stored keep their timestamps, so two
// writers of the same audit converge without rewriting each other.
func (w *Writer) put(ctx context.Context, want, have client.Object, timestamps map[string]metav1.Timestamp) error {
	key := client.ObjectKeyFromObject(want)
	// reread replaces have with the stored report, after a write failed
	// with err because of it, and returns err for the retry.
	reread := func(err error) error {
		got := w.newObject()
		switch gerr := w.c.Get(ctx, key, got); {
		case apierrors.IsNotFound(gerr):
			have = nil
			return err
		case gerr != nil:
			return gerr
		}
		if got.GetLabels()[ManagedByLabel] != ManagedBy {
			return fmt.Errorf("report %s exists without label %s=%s: it is not podguard's, and podguard will not overwrite it", key, ManagedByLabel, ManagedBy)
		}
		for _, it := range itemsOf(got) {
			timestamps[it.contentKey()] = it.Timestamp
		}
		have = got
		return err
	}
	return retry.OnError(putBackoff, retriable, func() error {
		keepTimestamps(itemsOf(want), timestamps, func(i int, ts metav1.Timestamp) { w.setTimestamp(want, i, ts) })
		if have == nil {
			err := w.c.Create(ctx, want)
			if apierrors.IsAlreadyExists(err) {
				return reread(err)
			}
			if err == nil {
				w.log.V(1).Info("created report", "namespace", key.Namespace, "name", key.Name, "api", w.api)
			}
			return err
		}
		if w.sameContent(have, want) {
			return nil
		}
		err := w.c.Update(ctx, w.withContent(have, want))
		if apierrors.IsConflict(err) || (apierrors.IsNotFound(err) && !isResourceNotFound(err)) {
			return reread(err)
		}
		if err == nil {
			w.log.V(1).Info("updated report", "namespace", key.Namespace, "name", key.Name, "api", w.api)
		}
		return err
	})
}

// retriable reports whether a write failed because another writer changed
// the object meanwhile: a conflict, an object created or removed.
func retriable(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || (apierrors.IsNotFound(err) && !isResourceNotFound(err))
}

// Load reads what podguard wrote before, in every namespace: for every
// object's UID, the policies whose result was fail (sorted, once each; an
// empty, non-nil list for an object that only passed), and
// the namespaces that hold podguard's reports (sorted). It lists by
// ManagedByLabel, a page at a time.
func (w *Writer) Load(ctx context.Context) (failing map[types.UID][]string, namespaces []string, err error) {
	failing = map[types.UID][]string{}
	nsSet := map[string]bool{}
	opts := []client.ListOption{client.MatchingLabels{ManagedByLabel: ManagedBy}, client.Limit(listPageSize)}
	for cont := ""; ; {
		list := w.newList()
		if list == nil {
			return nil, nil, fmt.Errorf("unknown report API %q", w.api)
		}
		if err := w.c.List(ctx, list, append(opts, client.Continue(cont))...); err != nil {
			return nil, nil, fmt.Errorf("listing podguard's %s reports: %w", w.api, notServed(err))
		}
		objs, err := w.listItems(list)
		if err != nil {
			return nil, nil, err
		}
		for _, obj := range objs {
			nsSet[obj.GetNamespace()] = true
			for _, it := range itemsOf(obj) {
				for _, r := range it.Resources {
					if r.UID == "" {
						continue
					}
					if _, seen := failing[r.UID]; !seen {
						failing[r.UID] = []string{}
					}
					if Status(it.Result) == StatusFail && !slices.Contains(failing[r.UID], it.Policy) {
						failing[r.UID] = append(failing[r.UID], it.Policy)
					}
				}
			}
		}
		if cont = list.GetContinue(); cont == "" {
			break
		}
	}
	for _, ps := range failing {
		slices.Sort(ps)
	}
	return failing, slices.Sorted(maps.Keys(nsSet)), nil
}

// list lists podguard's reports.
func (w *Writer) list(ctx context.Context, opts ...client.ListOption) ([]client.Object, error) {
	list := w.newList()
	if list == nil {
		return nil, fmt.Errorf("unknown report API %q", w.api)
	}
	if err := w.c.List(ctx, list, append(opts, client.MatchingLabels{ManagedByLabel: ManagedBy})...); err != nil {
		return nil, err
	}
	return w.listItems(list)
}

func (w *Writer) newList() client.ObjectList {
	switch w.api {
	case APIOpenReports:
		return &orv1alpha1.ReportList{}
	case APIWGPolicy:
		return &wgv1alpha2.PolicyReportList{}
	}
	return nil
}

func (w *Writer) newObject() client.Object {
	if w.api == APIOpenReports {
		return &orv1alpha1.Report{}
	}
	return &wgv1alpha2.PolicyReport{}
}

func (w *Writer) listItems(list client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := list.(type) {
	case *orv1alpha1.ReportList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *wgv1alpha2.PolicyReportList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		return nil, fmt.Errorf("unexpected list type %T", list)
	}
	return out, nil
}

func (w *Writer) setTimestamp(obj client.Object, i int, ts metav1.Timestamp) {
	switch r := obj.(type) {
	case *orv1alpha1.Report:
		r.Results[i].Timestamp = ts
	case *wgv1alpha2.PolicyReport:
		r.Results[i].Timestamp = ts
	}
}

// keepTimestamps gives each item whose content was already reported the
// timestamp it was reported with.
func keepTimestamps(items []item, old map[string]metav1.Timestamp, set func(int, metav1.Timestamp)) {
	for i, it := range items {
		if ts, ok := old[it.contentKey()]; ok {
			set(i, ts)
		}
	}
}

// sameContent reports whether have already holds what want holds: the
// managed-by label, the source, summary and results (timestamps included:
// keepTimestamps gave unchanged results their old ones), and no scope.
func (w *Writer) sameContent(have, want client.Object) bool {
	if have.GetLabels()[ManagedByLabel] != ManagedBy {
		return false
	}
	switch h := have.(type) {
	case *orv1alpha1.Report:
		x := want.(*orv1alpha1.Report)
		return h.Source == x.Source && h.Scope == nil && h.ScopeSelector == nil && h.Configuration == nil &&
			h.Summary == x.Summary && sameItems(itemsOf(h), itemsOf(x))
	case *wgv1alpha2.PolicyReport:
		x := want.(*wgv1alpha2.PolicyReport)
		return h.Scope == nil && h.ScopeSelector == nil &&
			h.Summary == x.Summary && sameItems(itemsOf(h), itemsOf(x))
	}
	return false
}

func sameItems(a, b []item) bool {
	return slices.EqualFunc(a, b, func(x, y item) bool {
		return x.Timestamp == y.Timestamp && x.contentKey() == y.contentKey()
	})
}

// withContent is have (its metadata, resourceVersion included) with want's
// content.
func (w *Writer) withContent(have, want client.Object) client.Object {
	upd := have.DeepCopyObject().(client.Object)
	labels := upd.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedBy
	upd.SetLabels(labels)
	switch u := upd.(type) {
	case *orv1alpha1.Report:
		x := want.(*orv1alpha1.Report)
		u.Source, u.Scope, u.ScopeSelector, u.Configuration = x.Source, nil, nil, nil
		u.Summary, u.Results = x.Summary, x.Results
	case *wgv1alpha2.PolicyReport:
		x := want.(*wgv1alpha2.PolicyReport)
		u.Scope, u.ScopeSelector = nil, nil
		u.Summary, u.Results = x.Summary, x.Results
	}
	return upd
}

// notServed wraps err with ErrAPINotServed when it says that the API server
// does not serve the resource: no REST mapping for the kind, or a 404 on a
// list (which, for an existing resource, answers an empty list).
func notServed(err error) error {
	if err == nil {
		return nil
	}
	if meta.IsNoMatchError(err) || isResourceNotFound(err) {
		return fmt.Errorf("%w: %w", ErrAPINotServed, err)
	}
	return err
}

// isResourceNotFound reports whether err is the API server's 404 for a
// resource it does not serve, rather than for an object that is missing.
func isResourceNotFound(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsNotFound(err) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

func ptrTo[T any](v T) *T { return &v }
