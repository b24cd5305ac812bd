package policies

import (
	"iter"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Snapshot is a World held in memory: the objects `podguard check` found in
// its manifests, or a test's fixtures. Objects absent from a snapshot are
// NotFound; Secrets are tracked only when TrackSecrets is set.
type Snapshot struct {
	mu           sync.RWMutex
	namespaces   map[string]Namespace
	configMaps   map[types.NamespacedName]KeyNames
	secrets      map[types.NamespacedName]KeyNames
	TrackSecrets bool
	Versions     Cluster
	// Source names where the objects came from ("the given manifests"), for
	// messages about objects that are not there.
	Source string
}

// NewSnapshot returns an empty Snapshot that tracks Secrets.
func NewSnapshot() *Snapshot {
	return &Snapshot{
		namespaces:   map[string]Namespace{},
		configMaps:   map[types.NamespacedName]KeyNames{},
		secrets:      map[types.NamespacedName]KeyNames{},
		TrackSecrets: true,
	}
}

// AddNamespace records a namespace's labels and annotations.
func (s *Snapshot) AddNamespace(ns *corev1.Namespace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.namespaces[ns.Name] = Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}
}

// AddConfigMap records a ConfigMap's key names; its values are not kept.
func (s *Snapshot) AddConfigMap(cm *corev1.ConfigMap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.configMaps[types.NamespacedName{Namespace: cm.Namespace, Name: cm.Name}] = ConfigMapKeys(cm)
}

// AddSecret records a Secret's key names; its values are not kept.
func (s *Snapshot) AddSecret(sec *corev1.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[types.NamespacedName{Namespace: sec.Namespace, Name: sec.Name}] = SecretKeys(sec)
}

func (s *Snapshot) Namespace(name string) (Namespace, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ns, ok := s.namespaces[name]
	return ns, ok
}

func (s *Snapshot) ConfigMap(namespace, name string) Object {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookup(s.configMaps, namespace, name)
}

func (s *Snapshot) Secret(namespace, name string) Object {
	if !s.TrackSecrets {
		return Object{Presence: Unknown}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookup(s.secrets, namespace, name)
}

func (s *Snapshot) Cluster() Cluster { return s.Versions }

// Image knows nothing of images: `podguard check --images` wraps the
// snapshot with WithImages.
func (s *Snapshot) Image(ref string) ImageFacts { return notInspected(ref) }

func (s *Snapshot) lookup(m map[types.NamespacedName]KeyNames, namespace, name string) Object {
	keys, ok := m[types.NamespacedName{Namespace: namespace, Name: name}]
	if !ok {
		where := ""
		if s.Source != "" {
			where = "in " + s.Source
		}
		return Object{Presence: NotFound, Where: where}
	}
	return keys.Object()
}

// KeyNames are the key names of a ConfigMap or Secret, split the way the
// kubelet uses them: envFrom exports Env only, a volume projects Env and
// FileOnly. Both are sorted and disjoint.
type KeyNames struct {
	// Env are the keys envFrom exports: a ConfigMap's data, a Secret's data.
	Env []string
	// FileOnly are the keys that appear only as files in a volume: a
	// ConfigMap's binaryData.
	FileOnly []string
}

// Object returns what a World reports for an existing object with these keys.
func (k KeyNames) Object() Object {
	all := k.Env
	if len(k.FileOnly) > 0 {
		all = sortedKeys(slices.Values(k.Env), slices.Values(k.FileOnly))
	}
	return Object{Presence: Found, Keys: all, EnvKeys: k.Env, KeysKnown: true}
}

// ConfigMapKeys returns a ConfigMap's key names: data for envFrom, and
// binaryData, which the kubelet only ever projects as files.
func ConfigMapKeys(cm *corev1.ConfigMap) KeyNames {
	env := sortedKeys(maps.Keys(cm.Data))
	var fileOnly []string
	for k := range cm.BinaryData {
		if _, dup := cm.Data[k]; !dup { // the API server rejects this; a manifest may not
			fileOnly = append(fileOnly, k)
		}
	}
	slices.Sort(fileOnly)
	return KeyNames{Env: env, FileOnly: fileOnly}
}

// SecretKeys returns a Secret's key names. Both data and stringData count:
// the API server merges stringData into data on write, so a manifest's
// stringData keys are data keys in the cluster.
func SecretKeys(sec *corev1.Secret) KeyNames {
	return KeyNames{Env: sortedKeys(maps.Keys(sec.Data), maps.Keys(sec.StringData))}
}

// sortedKeys merges key sequences into one sorted list without duplicates.
func sortedKeys(seqs ...iter.Seq[string]) []string {
	var keys []string
	for _, seq := range seqs {
		keys = slices.AppendSeq(keys, seq)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
