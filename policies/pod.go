package policies

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Annotations podguard reads on pods.
const (
	// SkipAnnotation lists the policies to skip for one pod: "all" or a
	// comma-separated list of policy names.
	SkipAnnotation = "podguard.io/skip"
	// MirrorPodAnnotation marks the API server's mirror of a static pod. The
	// kubelet owns those pods; podguard never touches them. Anyone can write
	// the annotation, so it counts only on a pod a kubelet creates
	// (Pod.CreatedByNode).
	MirrorPodAnnotation = corev1.MirrorPodAnnotationKey
)

// Pod is a pod or a pod template as policies see it: its metadata, its spec,
// and where both sit in the admitted object, so that every finding carries the
// field path the user wrote (spec.containers[0] for a Pod,
// spec.template.spec.containers[0] for a Deployment).
type Pod struct {
	// Namespace is the namespace the pod runs in. A template's own metadata
	// rarely sets it, so it is carried separately.
	Namespace string
	Meta      metav1.ObjectMeta
	Spec      corev1.PodSpec
	MetaPath  *field.Path
	SpecPath  *field.Path
	// CreatedByNode is true when a kubelet creates the pod: the requester
	// is system:node:<name> in the group system:nodes. Only then is a pod
	// with the mirror annotation a mirror pod. Offline, nothing is a kubelet.
	CreatedByNode bool
}

// NewPod returns the Pod view of a Pod object.
func NewPod(p *corev1.Pod) *Pod {
	return &Pod{
		Namespace: p.Namespace,
		Meta:      p.ObjectMeta,
		Spec:      p.Spec,
		MetaPath:  field.NewPath("metadata"),
		SpecPath:  field.NewPath("spec"),
	}
}

// DeepCopy returns a copy that shares nothing with p, for mutators.
func (p *Pod) DeepCopy() *Pod {
	out := *p
	p.Meta.DeepCopyInto(&out.Meta)
	p.Spec.DeepCopyInto(&out.Spec)
	return &out
}

// Container is one container of a pod with its field path.
type Container struct {
	Container *corev1.Container
	Path      *field.Path
	// Init is true for init containers, including native sidecars.
	Init bool
}

// Containers lists the init containers and containers of a pod, in that
// order, with their field paths. The pointers refer into p.Spec, so a mutator
// working on its own copy may change them in place.
func (p *Pod) Containers() []Container {
	out := make([]Container, 0, len(p.Spec.InitContainers)+len(p.Spec.Containers))
	for i := range p.Spec.InitContainers {
		out = append(out, Container{&p.Spec.InitContainers[i], p.SpecPath.Child("initContainers").Index(i), true})
	}
	for i := range p.Spec.Containers {
		out = append(out, Container{&p.Spec.Containers[i], p.SpecPath.Child("containers").Index(i), false})
	}
	return out
}

// Images lists every image the pod pulls, including ephemeral containers,
// with the field path of each.
func (p *Pod) Images() []Image {
	var out []Image
	for _, c := range p.Containers() {
		out = append(out, Image{c.Container.Image, c.Path.Child("image")})
	}
	for i, c := range p.Spec.EphemeralContainers {
		out = append(out, Image{c.Image, p.SpecPath.Child("ephemeralContainers").Index(i).Child("image")})
	}
	return out
}

// Image is an image reference with its field path.
type Image struct {
	Ref  string
	Path *field.Path
}
