package policies

import (
	"strings"
)

// podImages is what one policy run knows of a pod's images: each reference
// is asked of the World once, and each fallback warning is given once per
// image, however many containers run it.
type podImages struct {
	world  World
	facts  map[string]ImageFacts
	warned map[string]bool
}

func newPodImages(in Input) *podImages {
	return &podImages{world: in.World, facts: map[string]ImageFacts{}, warned: map[string]bool{}}
}

// get returns what the World knows of ref; a policy run without a World
// (a test, a caller that has none) knows nothing.
func (p *podImages) get(ref string) ImageFacts {
	if f, ok := p.facts[ref]; ok {
		return f
	}
	f := notInspected(ref)
	if p.world != nil {
		f = p.world.Image(ref)
	}
	if f.Ref == "" {
		f.Ref = ref
	}
	p.facts[ref] = f
	return f
}

// once reports whether ref has not been warned about yet, and records that
// it now is.
func (p *podImages) once(ref string) bool {
	if p.warned[ref] {
		return false
	}
	p.warned[ref] = true
	return true
}

// notInspectedYet says why a policy fell back to its heuristic for an image
// whose inspection was wanted: `image "tomcat:10" was not inspected yet: the
// fetch was still running after 1.5s`. Why may or may not repeat the "not
// inspected yet" itself.
func (f ImageFacts) notInspectedYet() string {
	why := strings.TrimSpace(f.Why)
	why = strings.TrimPrefix(why, "not inspected yet:")
	why = strings.TrimSpace(why)
	msg := "image " + quote(f.Ref) + " was not inspected yet"
	if why != "" {
		msg += ": " + why
	}
	return msg
}

// userUnknown says why a World does not know an image's user, for the
// warnings of a policy that needs it.
func (f ImageFacts) userUnknown() string {
	if f.Fallback() {
		return f.notInspectedYet()
	}
	if why := strings.TrimSpace(f.Why); why != "" {
		return why
	}
	return "image inspection is off"
}
