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
	configMaps   map[types.NamespacedName][]string
	secrets      map[types.NamespacedName][]string
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
		configMaps:   map[types.NamespacedName][]string{},
		secrets:      map[types.NamespacedName][]string{},
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

func (s *Snapshot) lookup(m map[types.NamespacedName][]string, namespace, name string) Object {
	keys, ok := m[types.NamespacedName{Namespace: namespace, Name: name}]
	if !ok {
		where := ""
		if s.Source != "" {
			where = "in " + s.Source
		}
		return Object{Presence: NotFound, Where: where}
	}
	return Object{Presence: Found, Keys: keys, KeysKnown: true}
}

// ConfigMapKeys returns the sorted key names of a ConfigMap's data and
// binaryData.
func ConfigMapKeys(cm *corev1.ConfigMap) []string {
	return sortedKeys(maps.Keys(cm.Data), maps.Keys(cm.BinaryData))
}

// SecretKeys returns the sorted key names of a Secret's data and stringData.
func SecretKeys(sec *corev1.Secret) []string {
	return sortedKeys(maps.Keys(sec.Data), maps.Keys(sec.StringData))
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
