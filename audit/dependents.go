package audit

import (
	"context"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"

	"github.com/podguard/podguard/policies"
)

// Dependents are the pod-bearing objects of one namespace whose pods read
// a given ConfigMap or Secret, as Collect would report them: each once,
// under its top controller.
type Dependents struct {
	// Items are the objects, in the order Collect lists kinds (a
	// Deployment before a Pod), with their status cleared.
	Items []runtime.Object
	// Incomplete is set when the context ended before every kind was
	// listed: Items holds what was found until then.
	Incomplete bool
}

// ListDependents lists, with cs's credentials (podguard's, uncached: the
// admission guard runs on every replica, the background audit's informers
// only on the leader), the pod-bearing objects in namespace whose pod
// (template) references ref (References). Owned objects are folded into
// their controller exactly as Collect folds them: a ReplicaSet of a
// Deployment, the Pods of a ReplicaSet, Job, StatefulSet or DaemonSet, the
// Jobs of a CronJob are not reported on their own; nor are the objects that
// will not run again (a finished Pod or Job, a Pod being deleted, a
// ReplicaSet or ReplicationController scaled to 0), nor mirror pods.
//
// When ctx ends while listing, ListDependents returns what it found, with
// Incomplete set, and no error: a caller working to a deadline says that
// its answer is partial rather than failing. Other errors are the API
// server's.
func ListDependents(ctx context.Context, cs kubernetes.Interface, namespace string, ref Ref, pageSize int64) (Dependents, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	var out Dependents
	// present holds the UIDs of every object listed, whether it reads ref
	// or not, so that what it owns is folded into it.
	present := sets.New[types.UID]()
	for _, k := range auditedKinds {
		err := paginate(ctx, pageSize, func(lo metav1.ListOptions) (string, error) {
			objs, cont, err := listKind(ctx, cs, k, namespace, lo)
			if err != nil {
				return "", err
			}
			for _, o := range objs {
				m, _ := metaOf(o.obj)
				present.Insert(m.UID)
				if owner := metav1.GetControllerOf(m); owner != nil && present.Has(owner.UID) {
					continue
				}
				if o.done || isMirrorPod(o.obj) || !reads(o.obj, ref) {
					continue
				}
				slim(m)
				// A copy: the object alone, not the page it sits in.
				out.Items = append(out.Items, o.obj.DeepCopyObject())
			}
			return cont, nil
		})
		if err != nil {
			if ctx.Err() != nil {
				// Cut short by the caller's deadline, whatever error the
				// client made of it.
				out.Incomplete = true
				break
			}
			return Dependents{}, fmt.Errorf("listing %ss in %s: %w", k.gvk.Kind, namespace, err)
		}
	}
	// An owner listed after what it owns (an unusual controller chain)
	// still owns it.
	out.Items = slices.DeleteFunc(out.Items, func(obj runtime.Object) bool {
		m, _ := metaOf(obj)
		owner := metav1.GetControllerOf(m)
		return owner != nil && present.Has(owner.UID)
	})
	return out, nil
}

// reads reports whether obj's pod (template) references ref.
func reads(obj runtime.Object, ref Ref) bool {
	pod := policies.PodOf(obj)
	return pod != nil && slices.Contains(References(pod), ref)
}
