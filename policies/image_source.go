package policies

import (
	"context"
	"slices"
	"time"

	"github.com/distribution/reference"
)

// ImageSource answers what is known of a pod's images: the image inspector,
// in the webhook and in `podguard check --images`. It never fails: an image
// it could not inspect comes back with ImagePending, ImageFailed or
// ImageNotInspected and a reason.
type ImageSource interface {
	// InspectPod returns facts for every image reference of pod, for the
	// platform the pod would run on, trying pullSecrets (names in the pod's
	// namespace, in order) when a registry refuses anonymous access. It
	// waits at most wait; what is not known by then keeps being fetched in
	// the background.
	InspectPod(ctx context.Context, pod *Pod, platform string, pullSecrets []string, wait time.Duration) map[string]ImageFacts
}

// InspectImages asks src what it knows of pod's images, for the platform
// the pod would run on and with the pull secrets the kubelet would try,
// waiting at most wait. A nil src knows nothing. The webhook and `podguard
// check --images` both ask through it, and wrap their World with the answer
// (WithImages).
func (e *Engine) InspectImages(ctx context.Context, src ImageSource, w World, pod *Pod, wait time.Duration) map[string]ImageFacts {
	if src == nil {
		return nil
	}
	return src.InspectPod(ctx, pod, ImagePlatform(pod, w.Cluster()), e.PullSecretNames(pod), wait)
}

// PullSecretNames returns the pull secrets the kubelet would try for pod's
// images, in order: the pod's own, then those the image-pull-secrets policy
// adds for the pod's registries (when the engine runs it), so that an image
// is inspected with the credentials it will be pulled with. The policy's
// registry rules are compiled once, with the engine.
func (e *Engine) PullSecretNames(pod *Pod) []string {
	var out []string
	for _, r := range pod.Spec.ImagePullSecrets {
		if r.Name != "" && !slices.Contains(out, r.Name) {
			out = append(out, r.Name)
		}
	}
	if e.pullSecrets == nil || len(e.pullSecrets.rules) == 0 {
		return out
	}
	for _, img := range pod.Images() {
		named, err := reference.ParseNormalizedNamed(img.Ref)
		if err != nil {
			continue
		}
		host, path := reference.Domain(named), reference.Path(named)
		for _, rule := range e.pullSecrets.rules {
			if !rule.matches(host, path) {
				continue
			}
			for _, name := range rule.secrets {
				if !slices.Contains(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	return out
}
