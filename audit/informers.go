package audit

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/podguard/podguard/policies"
)

// The background audit's informers keep only what the policies read:
//
//   - an object whose controller is itself audited (a Deployment's
//     ReplicaSets, a ReplicaSet's Pods, a CronJob's Jobs) is kept as a
//     name only, a *metav1.PartialObjectMetadata: its controller owns the
//     verdict, and it is listed only because a watch cannot leave it out;
//   - a mirror pod likewise: the kubelet owns it, podguard never judges it;
//   - any other object keeps its identity (name, namespace, UID, controller
//     reference), its pod template or Pod spec, the replica count, and of
//     its status only whether it will run again.
//
// slimForAudit is idempotent (client-go applies a transform twice to the objects of
// an initial list), which TestSlimIsIdempotent checks for every kind.

// kindInfo describes one audited kind: how to list and watch it, and how to
// slim it.
type kindInfo struct {
	gvk schema.GroupVersionKind
	obj func() runtime.Object
	// list lists a page of one namespace ("": every namespace).
	list func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error)
	// watch opens a watch of every namespace.
	watch func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error)
}

// auditedKinds are the audited kinds, for the background audit's informers
// and for the lists of Collect and ListDependents, in this order, so that
// an owner is listed before what it owns (a CronJob before its Jobs, a
// Deployment before its ReplicaSets, every workload before the Pods).
var auditedKinds = []kindInfo{
	{appsv1.SchemeGroupVersion.WithKind("Deployment"), func() runtime.Object { return &appsv1.Deployment{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().Deployments(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().Deployments("").Watch(ctx, lo)
		}},
	{appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), func() runtime.Object { return &appsv1.ReplicaSet{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().ReplicaSets(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().ReplicaSets("").Watch(ctx, lo)
		}},
	{appsv1.SchemeGroupVersion.WithKind("StatefulSet"), func() runtime.Object { return &appsv1.StatefulSet{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().StatefulSets(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().StatefulSets("").Watch(ctx, lo)
		}},
	{appsv1.SchemeGroupVersion.WithKind("DaemonSet"), func() runtime.Object { return &appsv1.DaemonSet{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().DaemonSets(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().DaemonSets("").Watch(ctx, lo)
		}},
	{batchv1.SchemeGroupVersion.WithKind("CronJob"), func() runtime.Object { return &batchv1.CronJob{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.BatchV1().CronJobs(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.BatchV1().CronJobs("").Watch(ctx, lo)
		}},
	{batchv1.SchemeGroupVersion.WithKind("Job"), func() runtime.Object { return &batchv1.Job{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.BatchV1().Jobs(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.BatchV1().Jobs("").Watch(ctx, lo)
		}},
	{corev1.SchemeGroupVersion.WithKind("ReplicationController"), func() runtime.Object { return &corev1.ReplicationController{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().ReplicationControllers(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().ReplicationControllers("").Watch(ctx, lo)
		}},
	{corev1.SchemeGroupVersion.WithKind("Pod"), func() runtime.Object { return &corev1.Pod{} },
		func(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Pods(ns).List(ctx, lo)
		},
		func(ctx context.Context, cs kubernetes.Interface, lo metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Pods("").Watch(ctx, lo)
		}},
}

// auditedControllers are the kinds whose objects own the verdict for what
// they control: an object controlled by one of them is not judged on its
// own. The background audit cannot wait for the controller to be listed (a
// watch has no order), so it goes by the controller reference's kind: an
// object whose controller is gone is being garbage-collected.
var auditedControllers = map[schema.GroupKind]bool{}

func init() {
	for _, k := range auditedKinds {
		auditedControllers[k.gvk.GroupKind()] = true
	}
}

// controlledByAudited reports an object whose controller is an audited kind.
func controlledByAudited(m metav1.Object) bool {
	owner := metav1.GetControllerOfNoCopy(m)
	if owner == nil {
		return false
	}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	return err == nil && auditedControllers[gv.WithKind(owner.Kind).GroupKind()]
}

// refsIndex indexes the audited objects by the ConfigMaps and Secrets their
// pods read: "ConfigMap/namespace/name".
const refsIndex = "refs"

func refKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

func indexRefs(obj any) ([]string, error) {
	if c, ok := obj.(*compact); ok {
		return c.refs, nil
	}
	return nil, nil
}

// nameOnly is what an informer keeps of an object that is not judged on its
// own.
func nameOnly(m metav1.Object) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: unique.Make(m.GetNamespace()).Value()}}
}

// slimMeta keeps an object's identity and its controller reference.
func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         unique.Make(m.Namespace).Value(),
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp,
	}
	if owner := metav1.GetControllerOfNoCopy(m); owner != nil {
		out.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return out
}

// sameKept reports whether an update left what the informers keep of an
// object unchanged, resourceVersion aside.
func sameKept(old, cur any) bool {
	switch o := old.(type) {
	case *metav1.PartialObjectMetadata:
		_, ok := cur.(*metav1.PartialObjectMetadata)
		return ok
	case *compact:
		c, ok := cur.(*compact)
		// refs follow from pod.
		return ok && o.UID == c.UID && o.done == c.done && bytes.Equal(o.pod, c.pod) &&
			o.DeletionTimestamp.Equal(c.DeletionTimestamp) && slices.EqualFunc(o.OwnerReferences, c.OwnerReferences, func(a, b metav1.OwnerReference) bool { return a.UID == b.UID })
	}
	return false
}

// compact is what an informer keeps of an object the audit judges: its
// identity and controller reference, whether it will run again, and its pod
// (a Pod's labels, annotations and spec; a workload's template) encoded as
// protobuf. Decoded, a template is about 11 KB of Go structs; encoded, a
// third of that, and it is decoded only to be judged or indexed
// (BenchmarkBackgroundAudit).
type compact struct {
	metav1.ObjectMeta
	// pod is a corev1.PodTemplateSpec, protobuf-encoded; empty when done.
	pod []byte
	// done is an object that starts no pod again (willNotRunAgain).
	done bool
	// refs are its refsIndex keys, computed once from the decoded pod.
	refs []string
}

// slimForAudit is the informers' transform (see above).
func slimForAudit(obj any) (any, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil // a tombstone
	}
	switch obj.(type) {
	case *metav1.PartialObjectMetadata, *compact:
		return obj, nil
	}
	ro := asObject(obj)
	if controlledByAudited(m) || isMirrorPod(ro) {
		return nameOnly(m), nil
	}
	pod := policies.PodOf(ro)
	om, _ := metaOf(ro)
	out := &compact{ObjectMeta: slimMeta(om), done: willNotRunAgain(ro)}
	if pod == nil || out.done {
		// Never judged: nothing of its pod is kept.
		out.done = true
		return out, nil
	}
	t := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: pod.Meta.Labels, Annotations: withoutLastApplied(pod.Meta.Annotations)}, Spec: pod.Spec}
	b, err := t.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the pod of %s/%s: %w", m.GetNamespace(), m.GetName(), err)
	}
	out.pod = b
	for _, r := range References(pod) {
		out.refs = append(out.refs, refKey(r.Kind, out.Namespace, r.Name))
	}
	return out, nil
}

// GetObjectKind and DeepCopyObject make a compact a runtime.Object, so
// that a page of them is a list a reflector reads (listSlim).
func (c *compact) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (c *compact) DeepCopyObject() runtime.Object {
	out := *c
	out.ObjectMeta = *c.ObjectMeta.DeepCopy()
	out.pod = slices.Clone(c.pod)
	out.refs = slices.Clone(c.refs)
	return &out
}

// listPageSize is how many objects a page of listSlim holds at most.
const listPageSize = 500

// listSlim lists one page of kind k for an informer, each object slimmed
// (slimForAudit) before the page is returned. client-go's pager gathers
// every page of an initial list before the store sees one object, and a
// reflector starts with resourceVersion "0", which the watch cache answers
// whole, ignoring the limit: against an API server that cannot stream the
// list, 100,000 whole Pods were held at once (1.2 GiB, make perf phase C).
// The first page is therefore asked for without a resourceVersion, which
// the API server pages, and every page is slimmed here.
func listSlim(ctx context.Context, cs kubernetes.Interface, k kindInfo, lo metav1.ListOptions) (runtime.Object, error) {
	if lo.ResourceVersion == "0" && lo.Continue == "" {
		lo.ResourceVersion, lo.ResourceVersionMatch = "", ""
	}
	if lo.Limit <= 0 || lo.Limit > listPageSize {
		lo.Limit = listPageSize
	}
	items, la, err := listPage(ctx, cs, k, "", lo)
	if err != nil {
		return nil, err
	}
	out := &metav1.List{
		ListMeta: metav1.ListMeta{ResourceVersion: la.GetResourceVersion(), Continue: la.GetContinue(), RemainingItemCount: la.GetRemainingItemCount()},
		Items:    make([]runtime.RawExtension, len(items)),
	}
	for i, o := range items {
		s, err := slimForAudit(o)
		if err != nil {
			return nil, err
		}
		out.Items[i].Object = s.(runtime.Object)
	}
	return out, nil
}

// object rebuilds the typed object a compact was made of, with what the
// policies read: its identity and its pod (template).
func (c *compact) object(kind int) (runtime.Object, error) {
	var t corev1.PodTemplateSpec
	if err := t.Unmarshal(c.pod); err != nil {
		return nil, fmt.Errorf("decoding the pod of %s/%s: %w", c.Namespace, c.Name, err)
	}
	meta := *c.ObjectMeta.DeepCopy()
	var obj runtime.Object
	switch auditedKinds[kind].gvk.Kind {
	case "Pod":
		meta.Labels, meta.Annotations = t.Labels, t.Annotations
		obj = &corev1.Pod{ObjectMeta: meta, Spec: t.Spec}
	case "Deployment":
		obj = &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Template: t}}
	case "ReplicaSet":
		obj = &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Template: t}}
	case "StatefulSet":
		obj = &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Template: t}}
	case "DaemonSet":
		obj = &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Template: t}}
	case "Job":
		obj = &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Template: t}}
	case "CronJob":
		obj = &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}}}}
	case "ReplicationController":
		obj = &corev1.ReplicationController{ObjectMeta: meta, Spec: corev1.ReplicationControllerSpec{Template: &t}}
	default:
		return nil, fmt.Errorf("no audited kind %d", kind)
	}
	obj.GetObjectKind().SetGroupVersionKind(auditedKinds[kind].gvk)
	return obj, nil
}

func asObject(obj any) runtime.Object {
	o, _ := obj.(runtime.Object)
	return o
}

func withoutLastApplied(a map[string]string) map[string]string {
	if _, ok := a[lastApplied]; !ok {
		return a
	}
	out := make(map[string]string, len(a)-1)
	for k, v := range a {
		if k != lastApplied {
			out[k] = v
		}
	}
	return out
}

// willNotRunAgain reports a judged object that starts no pod again: a
// finished or terminating Pod, a finished Job, a ReplicaSet or
// ReplicationController scaled to 0 (an Argo Rollout's old revisions).
func willNotRunAgain(obj runtime.Object) bool {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed || o.DeletionTimestamp != nil
	case *batchv1.Job:
		return jobFinished(&o.Status)
	case *appsv1.ReplicaSet:
		return scaledToZero(o.Spec.Replicas)
	case *corev1.ReplicationController:
		return scaledToZero(o.Spec.Replicas)
	}
	return false
}

// newInformer returns the informer of one kind, slimmed and indexed by
// namespace and by the ConfigMaps and Secrets its pods read. Where the API
// server streams the initial list (watch-list), each object is slimmed as
// it arrives; where it cannot, the list comes in pages that are slimmed as
// they arrive (listSlim): either way no more than a page of whole objects
// is held.
func newInformer(cs kubernetes.Interface, k kindInfo) (toolscache.SharedIndexInformer, error) {
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			return listSlim(ctx, cs, k, lo)
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			return k.watch(ctx, cs, lo)
		},
	}
	// A fake clientset (the tests') cannot stream a watch list; the
	// wrapper tells the reflector so.
	inf := toolscache.NewSharedIndexInformerWithOptions(toolscache.ToListWatcherWithWatchListSemantics(lw, cs), k.obj(), toolscache.SharedIndexInformerOptions{
		Indexers:          toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc, refsIndex: indexRefs},
		ObjectDescription: k.gvk.Kind,
	})
	if err := inf.SetTransform(slimForAudit); err != nil {
		return nil, fmt.Errorf("%s informer: %w", k.gvk.Kind, err)
	}
	return inf, nil
}
