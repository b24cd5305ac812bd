package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/discovery"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/policies"
)

// secretMetadata is how the metadata-only Secret informer is addressed.
func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// CacheOptions configures the informer cache so that it holds only what the
// policies read. Every transform runs before an object is stored:
//   - ConfigMaps and Secrets keep their key names, never their values (nor
//     the last-applied-configuration annotation, which repeats them);
//   - Namespaces keep their labels and annotations;
//   - Nodes keep their kubelet version;
//   - a metadata-only Secret informer answers "does this Secret exist".
//
// Objects are read without copying, so nothing may modify what the cache
// returns.
func CacheOptions() cache.Options {
	noCopy := ptr.To(true)
	return cache.Options{
		ReaderFailOnMissingInformer: true,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Transform: keysOnly, UnsafeDisableDeepCopy: noCopy},
			// Configures both Secret informers, key names and metadata-only:
			// the cache is keyed by GroupVersionKind.
			&corev1.Secret{}:    {Transform: keysOnly, UnsafeDisableDeepCopy: noCopy},
			&corev1.Namespace{}: {Transform: keysOnly, UnsafeDisableDeepCopy: noCopy},
			&corev1.Node{}:      {Transform: keysOnly, UnsafeDisableDeepCopy: noCopy},
		},
	}
}

// keyNamesField is where keysOnly keeps a cached ConfigMap's or Secret's key
// names: the only entry of a ConfigMap's data, or of a Secret's stringData.
// The API server can never produce it, which is what makes the transform
// safe to apply to its own output (client-go 0.36 applies a transform twice
// to the objects of the initial list: once into WatchList's temporary store,
// again in RealFIFO.Replace):
//   - "/" is not allowed in a ConfigMap or Secret key, so no real object has
//     this key, and a user cannot forge a cached entry;
//   - a Secret's stringData is write-only: the API server merges it into
//     data and never returns it.
//
// Its value is the data keys, sorted and joined by "\n" (a key cannot
// contain one), then, only when there are any, "\x00" and a ConfigMap's
// binaryData keys likewise. The string is interned: one string per object is
// far smaller than a map of empty values, and key sets repeat across
// namespaces (the same chart installed many times). See
// BenchmarkConfigMapCacheMemory.
const keyNamesField = "podguard.io/key-names"

// encodeKeyNames is the value stored under keyNamesField.
func encodeKeyNames(k policies.KeyNames) string {
	s := strings.Join(k.Env, "\n")
	if len(k.FileOnly) > 0 {
		s += "\x00" + strings.Join(k.FileOnly, "\n")
	}
	return unique.Make(s).Value()
}

// decodeKeyNames reads what encodeKeyNames stored.
func decodeKeyNames(s string) policies.KeyNames {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	env, fileOnly, _ := strings.Cut(s, "\x00")
	return policies.KeyNames{Env: split(env), FileOnly: split(fileOnly)}
}

// transformed reports whether m holds only keyNamesField: keysOnly's output.
func transformed[V any](m map[string]V) bool {
	_, ok := m[keyNamesField]
	return ok && len(m) == 1
}

// keysOnly reduces a cached object to what the policies read. It is
// idempotent: keysOnly(keysOnly(x)) equals keysOnly(x) for every object, which
// TestCacheTransformsAreIdempotent checks for each kind.
func keysOnly(obj any) (any, error) {
	meta := func(m metav1.ObjectMeta) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: m.Name, Namespace: unique.Make(m.Namespace).Value(), ResourceVersion: m.ResourceVersion}
	}
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		keys := o.Data
		if !transformed(o.Data) || len(o.BinaryData) > 0 {
			keys = map[string]string{keyNamesField: encodeKeyNames(policies.ConfigMapKeys(o))}
		}
		return &corev1.ConfigMap{ObjectMeta: meta(o.ObjectMeta), Data: keys}, nil
	case *corev1.Secret:
		keys := o.StringData
		if !transformed(o.StringData) || len(o.Data) > 0 {
			keys = map[string]string{keyNamesField: encodeKeyNames(policies.SecretKeys(o))}
		}
		return &corev1.Secret{ObjectMeta: meta(o.ObjectMeta), StringData: keys, Type: o.Type}, nil
	case *metav1.PartialObjectMetadata:
		return &metav1.PartialObjectMetadata{TypeMeta: o.TypeMeta, ObjectMeta: meta(o.ObjectMeta)}, nil
	case *corev1.Namespace:
		m := meta(o.ObjectMeta)
		m.Labels, m.Annotations = o.Labels, o.Annotations
		return &corev1.Namespace{ObjectMeta: m}, nil
	case *corev1.Node:
		out := &corev1.Node{ObjectMeta: meta(o.ObjectMeta)}
		out.Status.NodeInfo.KubeletVersion = o.Status.NodeInfo.KubeletVersion
		out.Status.NodeInfo.Architecture = o.Status.NodeInfo.Architecture
		return out, nil
	}
	// Tombstones (DeletedFinalStateUnknown) and anything else pass through.
	return obj, nil
}

// ClusterWorld is the World of a live cluster, read from informer caches.
type ClusterWorld struct {
	cache     cache.Cache
	discovery discovery.ServerVersionInterface
	log       logr.Logger

	mu        sync.Mutex
	informers map[string]cache.Informer
	// What the config needs of Secrets: key names (envFromKeys.secrets), or
	// only which exist (image-pull-secrets with registries).
	secretKeys, secretMeta atomic.Bool
	// canReadSecrets asks the API server whether podguard may list and
	// watch Secrets. RBAC grants it only to installs that need it.
	canReadSecrets func(context.Context) (bool, error)
	secretsDenied  atomic.Bool // the last check said no

	// notify, when set, is told of every change a verdict may depend on
	// (SetNotify): the background audit judges again what it touches.
	notify atomic.Pointer[func(kind, namespace, name string)]

	kubeletDirty atomic.Bool
	kubelet      atomic.Pointer[version.Version]
	arches       atomic.Pointer[[]string]
	server       atomic.Pointer[version.Version]
}

// NewClusterWorld returns a World over c. Call Start (the manager does) to
// register its informers. canReadSecrets tells whether podguard may list and
// watch Secrets; nil means it may.
func NewClusterWorld(c cache.Cache, dc discovery.ServerVersionInterface, canReadSecrets func(context.Context) (bool, error), log logr.Logger) *ClusterWorld {
	if canReadSecrets == nil {
		canReadSecrets = func(context.Context) (bool, error) { return true, nil }
	}
	w := &ClusterWorld{cache: c, discovery: dc, canReadSecrets: canReadSecrets, log: log, informers: map[string]cache.Informer{}}
	w.kubeletDirty.Store(true)
	return w
}

// SecretAccessChecker returns a canReadSecrets for NewClusterWorld that asks
// the API server (SelfSubjectAccessReview) whether the caller may list and
// watch Secrets in every namespace.
func SecretAccessChecker(client authorizationv1client.SelfSubjectAccessReviewsGetter) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		for _, verb := range []string{"list", "watch"} {
			review, err := client.SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{
					ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "secrets"},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return false, fmt.Errorf("asking whether podguard may %s secrets: %w", verb, err)
			}
			if !review.Status.Allowed {
				return false, nil
			}
		}
		return true, nil
	}
}

// Start registers the informers, follows Node changes, and refreshes the API
// server's version until ctx is done. It implements manager.Runnable.
func (w *ClusterWorld) Start(ctx context.Context) error {
	for name, obj := range map[string]client.Object{
		"configmaps": &corev1.ConfigMap{}, "namespaces": &corev1.Namespace{}, "nodes": &corev1.Node{},
	} {
		inf, err := w.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("starting %s informer: %w", name, err)
		}
		if name == "nodes" {
			mark := func(any) { w.kubeletDirty.Store(true); w.changed("Cluster", "", "") }
			if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
				AddFunc: mark, DeleteFunc: mark, UpdateFunc: func(_, n any) { mark(n) },
			}); err != nil {
				return fmt.Errorf("watching nodes: %w", err)
			}
		} else if err := w.watchChanges(inf, name); err != nil {
			return err
		}
		w.mu.Lock()
		w.informers[name] = inf
		w.mu.Unlock()
	}
	if err := w.SetSecretNeeds(ctx, w.secretKeys.Load(), w.secretMeta.Load()); err != nil {
		return err
	}
	w.refreshServerVersion()
	ticker := time.NewTicker(10 * time.Minute)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			w.refreshServerVersion()
			// RBAC may have been granted since.
			if w.secretsDenied.Load() {
				if err := w.SetSecretNeeds(ctx, w.secretKeys.Load(), w.secretMeta.Load()); err != nil {
					w.log.Error(err, "checking Secret access again")
				}
			}
		}
	}
}

// SetSecretNeeds starts or stops the Secret informers to match what the
// config needs: key names (envFromKeys.secrets), which also tell which
// Secrets exist, or only which exist (image-pull-secrets with registries),
// from a metadata-only informer. Both list every Secret, so both are off
// unless needed, and the RBAC that allows them is an optional part of the
// install. If the config needs them but podguard may not list and watch
// Secrets, they stay off: Secrets are then unknown to the policies, which
// skip what depends on them, and podguard_secret_access_denied is 1. Before
// Start it only records the wish.
func (w *ClusterWorld) SetSecretNeeds(ctx context.Context, keys, metadata bool) error {
	w.secretKeys.Store(keys)
	w.secretMeta.Store(metadata)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.informers) == 0 {
		return nil // not started yet
	}
	wantKeys, wantMeta := keys, metadata && !keys
	if wantKeys || wantMeta {
		ok, err := w.canReadSecrets(ctx)
		if err != nil {
			return err
		}
		if !ok {
			w.log.Error(nil, "the config needs to read Secrets (envFromKeys.secrets, or imagePullSecrets.registries), but podguard may not list and watch them: policies treat Secrets as unknown. Add deploy/components/secret-access to the install.")
			wantKeys, wantMeta = false, false
		}
		w.setSecretsDenied(!ok)
	} else {
		w.setSecretsDenied(false)
	}
	if err := w.toggle(ctx, "secrets", &corev1.Secret{}, wantKeys, "caching Secret key names (never values) for envFromKeys.secrets"); err != nil {
		return err
	}
	return w.toggle(ctx, "secrets (metadata)", secretMetadata(), wantMeta, "caching Secret metadata for image-pull-secrets")
}

func (w *ClusterWorld) setSecretsDenied(denied bool) {
	w.secretsDenied.Store(denied)
	if denied {
		secretAccessDenied.Set(1)
	} else {
		secretAccessDenied.Set(0)
	}
}

// toggle starts or stops one informer. w.mu is held.
func (w *ClusterWorld) toggle(ctx context.Context, name string, obj client.Object, on bool, why string) error {
	_, running := w.informers[name]
	switch {
	case on && !running:
		inf, err := w.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("starting %s informer: %w", name, err)
		}
		if err := w.watchChanges(inf, name); err != nil {
			return err
		}
		w.informers[name] = inf
		w.log.Info(why)
	case !on && running:
		delete(w.informers, name)
		if err := w.cache.RemoveInformer(ctx, obj); err != nil {
			return fmt.Errorf("stopping %s informer: %w", name, err)
		}
		w.log.Info("stopped the " + name + " informer")
	}
	return nil
}

// SetNotify sets the function told of every change a verdict may depend on:
// a ConfigMap or Secret created, deleted, or whose key names changed
// ("ConfigMap", namespace, name), a namespace's labels ("Namespace", "",
// name), a Node's kubelet or architecture ("Cluster").
func (w *ClusterWorld) SetNotify(fn func(kind, namespace, name string)) { w.notify.Store(&fn) }

func (w *ClusterWorld) changed(kind, namespace, name string) {
	if fn := w.notify.Load(); fn != nil {
		(*fn)(kind, namespace, name)
	}
}

// watchChanges tells notify of the changes of one informer's objects that a
// verdict may depend on. Objects are compared as the cache keeps them, so
// that a change of values only, the usual ConfigMap update, is nothing.
func (w *ClusterWorld) watchChanges(inf cache.Informer, name string) error {
	var kind string
	var same func(old, cur any) bool
	switch name {
	case "configmaps":
		kind = "ConfigMap"
		same = func(old, cur any) bool {
			o, ok1 := old.(*corev1.ConfigMap)
			c, ok2 := cur.(*corev1.ConfigMap)
			return ok1 && ok2 && maps.Equal(o.Data, c.Data)
		}
	case "secrets":
		kind = "Secret"
		same = func(old, cur any) bool {
			o, ok1 := old.(*corev1.Secret)
			c, ok2 := cur.(*corev1.Secret)
			return ok1 && ok2 && maps.Equal(o.StringData, c.StringData)
		}
	case "secrets (metadata)":
		kind = "Secret"
		same = func(any, any) bool { return true } // only existence is known
	case "namespaces":
		kind = "Namespace"
		same = func(old, cur any) bool {
			o, ok1 := old.(*corev1.Namespace)
			c, ok2 := cur.(*corev1.Namespace)
			return ok1 && ok2 && maps.Equal(o.Labels, c.Labels) && maps.Equal(o.Annotations, c.Annotations)
		}
	default:
		return nil
	}
	tell := func(obj any) {
		if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if m, ok := obj.(metav1.Object); ok {
			if kind == "Namespace" {
				w.changed(kind, "", m.GetName())
			} else {
				w.changed(kind, m.GetNamespace(), m.GetName())
			}
		}
	}
	_, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: tell, DeleteFunc: tell,
		UpdateFunc: func(old, cur any) {
			if !same(old, cur) {
				tell(cur)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching %s: %w", name, err)
	}
	return nil
}

// Synced is a readiness check: every informer has synced.
func (w *ClusterWorld) Synced(*http.Request) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.informers) == 0 {
		return errors.New("informers not started")
	}
	for name, inf := range w.informers {
		if !inf.HasSynced() {
			return fmt.Errorf("%s cache not synced", name)
		}
	}
	return nil
}

func (w *ClusterWorld) synced(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	inf, ok := w.informers[name]
	return ok && inf.HasSynced()
}

// Namespace implements policies.World.
func (w *ClusterWorld) Namespace(name string) (policies.Namespace, bool) {
	var ns corev1.Namespace
	if !w.synced("namespaces") || w.cache.Get(context.Background(), client.ObjectKey{Name: name}, &ns) != nil {
		return policies.Namespace{}, false
	}
	return policies.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}, true
}

// ConfigMap implements policies.World.
func (w *ClusterWorld) ConfigMap(namespace, name string) policies.Object {
	if !w.synced("configmaps") {
		return policies.Object{Presence: policies.Unknown}
	}
	var cm corev1.ConfigMap
	return lookupResult(w.cache.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &cm),
		func() policies.Object { return cachedKeys(cm.Data) })
}

// Secret implements policies.World. Key names are known only while the
// Secret key-name cache runs; otherwise the metadata-only cache answers
// whether the Secret exists; with neither (see SetSecretNeeds), the Secret is
// unknown.
func (w *ClusterWorld) Secret(namespace, name string) policies.Object {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	if w.synced("secrets") {
		var s corev1.Secret
		return lookupResult(w.cache.Get(context.Background(), key, &s), func() policies.Object { return cachedKeys(s.StringData) })
	}
	if !w.synced("secrets (metadata)") {
		return policies.Object{Presence: policies.Unknown}
	}
	obj := lookupResult(w.cache.Get(context.Background(), key, secretMetadata()), nil)
	return obj
}

// cachedKeys reads the key names keysOnly stored. An object stored without
// them (which keysOnly never does) has unknown keys, so nothing is concluded
// from it: failing open here is what once hid every pre-existing ConfigMap.
func cachedKeys(stored map[string]string) policies.Object {
	joined, ok := stored[keyNamesField]
	if !ok {
		return policies.Object{Presence: policies.Found}
	}
	return decodeKeyNames(joined).Object()
}

// lookupResult turns a cache read into what the World reports. keys, when
// not nil, reads the key names of the object found.
func lookupResult(err error, keys func() policies.Object) policies.Object {
	switch {
	case err == nil && keys != nil:
		return keys()
	case err == nil:
		return policies.Object{Presence: policies.Found}
	case apierrors.IsNotFound(err):
		return policies.Object{Presence: policies.NotFound}
	default:
		return policies.Object{Presence: policies.Unknown}
	}
}

// Cluster implements policies.World: the oldest kubelet among the Nodes and
// the API server's version.
func (w *ClusterWorld) Cluster() policies.Cluster {
	if w.kubeletDirty.Load() && w.synced("nodes") {
		w.kubeletDirty.Store(false)
		w.readNodes()
	}
	c := policies.Cluster{KubeletVersion: w.kubelet.Load(), ServerVersion: w.server.Load()}
	if a := w.arches.Load(); a != nil {
		c.NodeArches = *a
	}
	return c
}

// Image implements policies.World: the informers know nothing of images;
// the admission wraps the world with the inspector's answers per request.
func (w *ClusterWorld) Image(ref string) policies.ImageFacts {
	return policies.ImageFacts{Ref: ref, Status: policies.ImageNotInspected}
}

// readNodes lists the cached Nodes for the oldest kubelet and the
// architectures; it runs only after a Node changed.
func (w *ClusterWorld) readNodes() {
	var nodes corev1.NodeList
	if err := w.cache.List(context.Background(), &nodes); err != nil {
		w.kubeletDirty.Store(true)
		return
	}
	w.kubelet.Store(OldestKubelet(nodes.Items, w.log))
	arches := policies.NodeArches(nodes.Items)
	w.arches.Store(&arches)
}

// OldestKubelet returns the oldest kubelet version among nodes, or nil when
// no node reports a parsable one (policies.OldestKubelet, logging the nodes
// it ignores).
func OldestKubelet(nodes []corev1.Node, log logr.Logger) *version.Version {
	return policies.OldestKubelet(nodes, func(node, v string) {
		log.V(1).Info("ignoring unparsable kubelet version", "node", node, "version", v)
	})
}

func (w *ClusterWorld) refreshServerVersion() {
	info, err := w.discovery.ServerVersion()
	if err != nil {
		w.log.Error(err, "reading the API server's version; native sidecar support is assumed absent until it is known")
		return
	}
	v, err := policies.ParseKubeVersion(info.GitVersion)
	if err != nil {
		w.log.Error(err, "parsing the API server's version", "version", info.GitVersion)
		return
	}
	w.server.Store(v)
}
