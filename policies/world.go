package policies

import (
	"k8s.io/apimachinery/pkg/util/version"
)

// World is everything a policy may know beyond the pod itself. The webhook
// implements it with informer caches; `podguard check` with the manifests it
// was given. Implementations must be safe for concurrent use and must never
// hold Secret values: only key names.
type World interface {
	// Namespace returns the labels and annotations of a namespace, and false
	// when the namespace is not known.
	Namespace(name string) (Namespace, bool)
	// ConfigMap returns what is known of a ConfigMap's keys.
	ConfigMap(namespace, name string) Object
	// Secret returns what is known of a Secret: whether it exists and, when
	// Secret keys are cached, its key names.
	Secret(namespace, name string) Object
	// Cluster returns the versions that decide kubelet behaviour.
	Cluster() Cluster
	// Image returns what is known of an image the pod references, for the
	// platform the pod runs on. A World without an image inspector knows
	// nothing (ImageNotInspected); the webhook and `podguard check --images`
	// wrap theirs with WithImages.
	Image(ref string) ImageFacts
}

// Namespace is the part of a Namespace that policies read.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Presence says what a World knows about an object's existence.
type Presence int

const (
	// Unknown means the World does not track this kind of object (for
	// example Secrets when their cache is disabled), so no conclusion may be
	// drawn from it.
	Unknown Presence = iota
	// Found means the object exists.
	Found
	// NotFound means the World tracks this kind and the object is absent.
	NotFound
)

// Object is what a World knows about a ConfigMap or Secret.
type Object struct {
	Presence Presence
	// Keys are the key names a volume of the object projects as files,
	// sorted: a ConfigMap's data and binaryData, a Secret's data. They are
	// meaningful only when KeysKnown is true: a metadata-only cache knows that
	// a Secret exists but not its keys.
	Keys []string
	// EnvKeys are the key names envFrom turns into environment variables,
	// sorted: a ConfigMap's data only (the kubelet never exports binaryData,
	// pkg/kubelet/kubelet_pods.go), a Secret's data. Meaningful only when
	// KeysKnown is true.
	EnvKeys   []string
	KeysKnown bool
	// Where says where a NotFound object was looked for, for messages
	// ("in the given manifests"); empty means the cluster.
	Where string
}

// Cluster holds the versions that decide what kubelets do with a pod.
type Cluster struct {
	// KubeletVersion is the oldest kubelet among the Nodes, or the version
	// pinned in config or on the command line. Nil means unknown.
	KubeletVersion *version.Version
	// ServerVersion is the API server's version. Nil means unknown.
	ServerVersion *version.Version
	// NodeArches are the CPU architectures of the Nodes, one entry per
	// Node ("amd64", "arm64"), sorted (as NodeArches returns them): what
	// ImagePlatform picks from when a pod does not pin one. Empty means
	// unknown.
	NodeArches []string
}

// strictEnvKubeletCutoff is the first kubelet release that passes every
// envFrom key through instead of skipping invalid environment variable names.
var strictEnvKubeletCutoff = version.MajorMinor(1, 30)

// nativeSidecarCutoff is the first release where init containers with
// restartPolicy: Always (native sidecars) are on by default.
var nativeSidecarCutoff = version.MajorMinor(1, 29)

// KubeletSkipsInvalidEnvNames reports whether the target kubelets skip envFrom
// keys that fail validation.IsEnvVarName. Kubelets up to 1.29 do; 1.30 and
// later pass every key through. When the version is unknown, the strict
// (skipping) behaviour is assumed, because a false denial is visible and
// fixable while a silently dropped variable is not.
func (c Cluster) KubeletSkipsInvalidEnvNames() bool {
	return c.KubeletVersion == nil || c.KubeletVersion.LessThan(strictEnvKubeletCutoff)
}

// NativeSidecars reports whether both the API server and every kubelet are
// known to support native sidecars (1.29 or later). A kubelet whose version
// is unknown is assumed to match the API server.
func (c Cluster) NativeSidecars() bool {
	if c.ServerVersion == nil || c.ServerVersion.LessThan(nativeSidecarCutoff) {
		return false
	}
	return c.KubeletVersion == nil || c.KubeletVersion.AtLeast(nativeSidecarCutoff)
}

// ParseKubeVersion parses versions as Kubernetes reports them ("v1.29.3",
// "v1.30.1-eks-1234", "1.29").
func ParseKubeVersion(s string) (*version.Version, error) {
	return version.ParseGeneric(s)
}
