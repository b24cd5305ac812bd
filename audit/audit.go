// Package audit lists what already runs in a cluster and judges it as the
// admission webhook would, for `podguard audit`: the same World (Namespaces,
// ConfigMap and Secret key names, the oldest kubelet, the API server's
// version) and the same verdicts, through check.Judge.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/podguard/podguard/check"
	"github.com/podguard/podguard/policies"
)

// DefaultPageSize is how many objects one list request asks for.
const DefaultPageSize = 500

// Options say what to audit and what the World knows.
type Options struct {
	// Namespace audits one namespace, in scope or not (with a note); empty
	// audits all in scope but Exclude.
	Namespace string
	// Exclude are the namespaces the webhook skips (namespaces.exclude).
	Exclude []string
	// OptIn audits only the namespaces labelled podguard.io/enabled=true,
	// as the opt-in overlay's webhooks admit; without it, every namespace
	// but those labelled podguard.io/enabled=false, as the cluster-wide
	// overlay's.
	OptIn bool
	// Selector is a label selector for the workloads and Pods.
	Selector string
	// KubeletVersion, when set, is the kubelet the policies target instead
	// of the oldest among the Nodes (--kubelet-version, cluster.kubeletVersion).
	KubeletVersion *version.Version
	// SecretKeys and SecretMetadata are what the webhook would cache of
	// Secrets with the same config (config.SecretKeysEnabled,
	// SecretMetadataEnabled): key names, only which exist, or, with
	// neither, nothing (Secrets are Unknown).
	SecretKeys, SecretMetadata bool
	// PageSize is the Limit of each list request; 0 is DefaultPageSize.
	PageSize int64
	// Metadata, when set, lists Secrets as metadata only
	// (PartialObjectMetadata) when only which exist is needed
	// (SecretMetadata without SecretKeys); without it, full Secrets are
	// listed and only their names kept.
	Metadata metadata.Interface
}

// EnabledLabel scopes the webhook to namespaces: the cluster-wide overlay
// skips those labelled false, the opt-in overlay admits only those
// labelled true (deploy/components/cluster-wide, opt-in).
const EnabledLabel = "podguard.io/enabled"

// inScope says whether the webhook, as deployed with or without the
// opt-in overlay, admits pods in a namespace with these labels.
func inScope(nsLabels map[string]string, optIn bool) bool {
	v, ok := nsLabels[EnabledLabel]
	if optIn {
		return ok && v == "true"
	}
	return !ok || v != "false"
}

// Inventory is what was read from the cluster: the World the policies see,
// and the objects to judge, in the order they are reported.
type Inventory struct {
	World policies.World
	Items []check.Item
	// Namespaces counts the namespaces audited.
	Namespaces int
	// Notes are said once on stderr: what the World does not know, and why.
	Notes []string
	// Skipped counts the objects not judged because they will not run
	// again: a finished Pod or Job, a Pod being deleted, a ReplicaSet or
	// ReplicationController scaled to 0 reported on its own.
	Skipped int
}

// listed is an object with its status cleared, and whether, by that
// status (read before it was cleared) or its spec, it will not run again.
type listed struct {
	obj  runtime.Object
	done bool
}

// Collect lists, with cs's credentials, what the verdicts depend on and the
// pod-bearing objects to judge. A workload owns the verdict for its pods:
// an object whose controller (ownerReferences controller: true) is another
// audited object is not judged on its own. Errors are the API server's:
// unreachable, or forbidden to list what the verdicts need.
func Collect(ctx context.Context, cs kubernetes.Interface, opts Options) (*Inventory, error) {
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	inv := &Inventory{}
	snap := policies.NewSnapshot()
	w := &world{Snapshot: snap, secretNames: sets.New[types.NamespacedName]()}
	inv.World = w

	info, err := cs.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("reading the API server's version: %w", err)
	}
	if snap.Versions.ServerVersion, err = policies.ParseKubeVersion(info.GitVersion); err != nil {
		inv.Notes = append(inv.Notes, fmt.Sprintf("the API server's version %q is not parsable: native sidecars are assumed absent", info.GitVersion))
	}

	// Nodes: the oldest kubelet and the architectures, as the webhook
	// reads them; a pinned kubelet version makes them optional.
	var nodes []corev1.Node
	err = paginate(ctx, opts.PageSize, func(lo metav1.ListOptions) (string, error) {
		l, err := cs.CoreV1().Nodes().List(ctx, lo)
		if err != nil {
			return "", err
		}
		nodes = append(nodes, l.Items...)
		return l.Continue, nil
	})
	switch {
	case err == nil:
		snap.Versions.KubeletVersion = policies.OldestKubelet(nodes, nil)
		snap.Versions.NodeArches = policies.NodeArches(nodes)
	case apierrors.IsForbidden(err) && opts.KubeletVersion != nil:
		inv.Notes = append(inv.Notes, "listing Nodes is forbidden: the kubelet version given is used, and the Nodes' architectures are unknown")
	default:
		return nil, fmt.Errorf("listing Nodes (for the oldest kubelet version; --kubelet-version makes this optional): %w", err)
	}
	if opts.KubeletVersion != nil {
		snap.Versions.KubeletVersion = opts.KubeletVersion
	}

	// Namespaces: those audited, with their labels and annotations.
	excluded := sets.New(opts.Exclude...)
	audited := sets.New[string]()
	outOfScope := false
	lo := metav1.ListOptions{}
	if opts.Namespace != "" {
		lo.FieldSelector = "metadata.name=" + opts.Namespace
	}
	err = paginate(ctx, opts.PageSize, func(lo2 metav1.ListOptions) (string, error) {
		lo2.FieldSelector = lo.FieldSelector
		l, err := cs.CoreV1().Namespaces().List(ctx, lo2)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			ns := &l.Items[i]
			if opts.Namespace != "" && ns.Name != opts.Namespace {
				continue
			}
			scoped := inScope(ns.Labels, opts.OptIn)
			if opts.Namespace == "" && (excluded.Has(ns.Name) || !scoped) {
				continue
			}
			if !scoped {
				outOfScope = true
			}
			snap.AddNamespace(ns)
			audited.Insert(ns.Name)
		}
		return l.Continue, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing Namespaces: %w", err)
	}
	if opts.Namespace != "" && !audited.Has(opts.Namespace) {
		return nil, fmt.Errorf("namespace %q not found", opts.Namespace)
	}
	if opts.Namespace != "" && excluded.Has(opts.Namespace) {
		inv.Notes = append(inv.Notes, fmt.Sprintf("namespace %s is in namespaces.exclude: the webhook admits its pods unchecked; audited anyway as asked", opts.Namespace))
	}
	if outOfScope {
		label := EnabledLabel + "=false"
		if opts.OptIn {
			label = "no " + EnabledLabel + "=true (--opt-in)"
		}
		inv.Notes = append(inv.Notes, fmt.Sprintf("namespace %s has %s: the webhook admits its pods unchecked; audited anyway as asked", opts.Namespace, label))
	}
	inv.Namespaces = audited.Len()
	in := func(ns string) bool { return audited.Has(ns) }

	// ConfigMaps and Secrets: key names only.
	err = paginate(ctx, opts.PageSize, func(lo metav1.ListOptions) (string, error) {
		l, err := cs.CoreV1().ConfigMaps(opts.Namespace).List(ctx, lo)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			if in(l.Items[i].Namespace) {
				snap.AddConfigMap(&l.Items[i])
			}
		}
		return l.Continue, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing ConfigMaps: %w", err)
	}
	w.secrets = secretsUnknown
	if opts.SecretKeys || opts.SecretMetadata {
		if !opts.SecretKeys && opts.Metadata != nil {
			err = listSecretNames(ctx, opts.Metadata, opts.Namespace, opts.PageSize, func(ns, name string) {
				if in(ns) {
					w.secretNames.Insert(types.NamespacedName{Namespace: ns, Name: name})
				}
			})
		} else {
			err = paginate(ctx, opts.PageSize, func(lo metav1.ListOptions) (string, error) {
				l, err := cs.CoreV1().Secrets(opts.Namespace).List(ctx, lo)
				if err != nil {
					return "", err
				}
				for i := range l.Items {
					s := &l.Items[i]
					if !in(s.Namespace) {
						continue
					}
					if opts.SecretKeys {
						snap.AddSecret(s)
					} else {
						w.secretNames.Insert(types.NamespacedName{Namespace: s.Namespace, Name: s.Name})
					}
				}
				return l.Continue, nil
			})
		}
		switch {
		case err == nil && opts.SecretKeys:
			w.secrets = secretsKeys
		case err == nil:
			w.secrets = secretsMetadata
		case apierrors.IsForbidden(err):
			inv.Notes = append(inv.Notes, "listing Secrets is forbidden: Secrets are unknown, as to a webhook without Secret access, so nothing is concluded from them")
		default:
			return nil, fmt.Errorf("listing Secrets: %w", err)
		}
	}

	// The pod-bearing objects. present holds the UIDs of every audited
	// object listed, owned or not, so that a Pod of a ReplicaSet of a
	// Deployment is collapsed into the Deployment.
	present := sets.New[types.UID]()
	var skippedOwners []types.UID
	rank := map[string]int{}
	for i, k := range auditedKinds {
		rank[k.gvk.GroupKind().String()] = i
		err := paginate(ctx, opts.PageSize, func(lo metav1.ListOptions) (string, error) {
			lo.LabelSelector = opts.Selector
			objs, cont, err := listKind(ctx, cs, k, opts.Namespace, lo)
			if err != nil {
				return "", err
			}
			for _, o := range objs {
				obj := o.obj
				m, _ := metaOf(obj)
				if !in(m.Namespace) {
					continue
				}
				present.Insert(m.UID)
				if owner := metav1.GetControllerOf(m); owner != nil && present.Has(owner.UID) {
					continue
				}
				if isMirrorPod(obj) {
					continue
				}
				if o.done {
					// Counted once every owner is listed, below.
					var ownerUID types.UID
					if owner := metav1.GetControllerOf(m); owner != nil {
						ownerUID = owner.UID
					}
					skippedOwners = append(skippedOwners, ownerUID)
					continue
				}
				slim(m)
				// A copy: the object alone, not the page it sits in, stays
				// in memory until it is judged.
				inv.Items = append(inv.Items, check.Item{Object: obj.DeepCopyObject(), Admitted: k.gvk.Kind == "Pod"})
			}
			return cont, nil
		})
		if err != nil {
			return nil, fmt.Errorf("listing %ss: %w", k.gvk.Kind, err)
		}
	}
	// An owner listed after what it owns (an unusual controller chain)
	// still owns it.
	inv.Items = slices.DeleteFunc(inv.Items, func(it check.Item) bool {
		m, _ := metaOf(it.Object)
		owner := metav1.GetControllerOf(m)
		return owner != nil && present.Has(owner.UID)
	})
	for _, owner := range skippedOwners {
		if owner == "" || !present.Has(owner) {
			inv.Skipped++
		}
	}
	if inv.Skipped > 0 {
		inv.Notes = append(inv.Notes, fmt.Sprintf("%d objects that will not run again were not judged (finished Pods and Jobs, Pods being deleted, ReplicaSets and ReplicationControllers scaled to 0)", inv.Skipped))
	}
	slices.SortStableFunc(inv.Items, func(a, b check.Item) int {
		ma, _ := metaOf(a.Object)
		mb, _ := metaOf(b.Object)
		ka, kb := a.Object.GetObjectKind().GroupVersionKind().GroupKind().String(), b.Object.GetObjectKind().GroupVersionKind().GroupKind().String()
		return cmp.Or(cmp.Compare(ma.Namespace, mb.Namespace), cmp.Compare(rank[ka], rank[kb]), cmp.Compare(ma.Name, mb.Name))
	})
	return inv, nil
}

// Run collects and judges: the check Report of what runs in the cluster,
// and the notes to say once.
func Run(ctx context.Context, cs kubernetes.Interface, engine *policies.Engine, opts Options, copts check.Options) (*check.Report, []string, error) {
	inv, err := Collect(ctx, cs, opts)
	if err != nil {
		return nil, nil, err
	}
	rep, err := check.Judge(inv.Items, inv.World, engine, copts)
	if err != nil {
		return nil, inv.Notes, err
	}
	rep.Summary.Namespaces = inv.Namespaces
	rep.Summary.Documents = len(inv.Items)
	return rep, inv.Notes, nil
}

// paginate calls list with Limit and Continue until the API server has no
// more, so that memory holds one page of the raw list at a time.
func paginate(ctx context.Context, limit int64, list func(metav1.ListOptions) (string, error)) error {
	cont := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, err := list(metav1.ListOptions{Limit: limit, Continue: cont})
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		cont = next
	}
}

func metaOf(obj runtime.Object) (*metav1.ObjectMeta, bool) {
	if a, ok := obj.(interface{ GetObjectMeta() metav1.Object }); ok {
		if m, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return m, true
		}
	}
	return &metav1.ObjectMeta{}, false
}

// isMirrorPod reports a static pod's mirror: the annotation the kubelet
// writes, and the Node it names as controller. The webhook skips those too.
func isMirrorPod(obj runtime.Object) bool {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return false
	}
	if _, mirror := p.Annotations[policies.MirrorPodAnnotation]; !mirror {
		return false
	}
	owner := metav1.GetControllerOf(p)
	return owner != nil && owner.Kind == "Node" && owner.APIVersion == "v1"
}

// lastApplied is kubectl's copy of the whole object: no policy reads it.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// slim drops what no policy reads, so that memory holds what is judged.
func slim(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	m.Annotations = withoutLastApplied(m.Annotations)
}

type secretMode int

const (
	secretsUnknown secretMode = iota
	secretsMetadata
	secretsKeys
)

// world is the Snapshot with Secrets known as the webhook would know them
// with the same config: key names, only which exist, or nothing.
type world struct {
	*policies.Snapshot
	secrets     secretMode
	secretNames sets.Set[types.NamespacedName]
}

func (w *world) Secret(namespace, name string) policies.Object {
	switch w.secrets {
	case secretsKeys:
		return w.Snapshot.Secret(namespace, name)
	case secretsMetadata:
		if w.secretNames.Has(types.NamespacedName{Namespace: namespace, Name: name}) {
			return policies.Object{Presence: policies.Found}
		}
		return policies.Object{Presence: policies.NotFound}
	default:
		return policies.Object{Presence: policies.Unknown}
	}
}
