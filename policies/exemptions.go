package policies

import (
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// AllPolicies stands for every policy, in podguard.io/skip, in
// exemptions.podSkippable and in an exemption rule's policies.
const AllPolicies = "all"

// Exemptions is who may be exempted from which policies, as it appears under
// `exemptions:` in the podguard config file. The cluster admin owns it; a pod
// author can only use what it allows.
//
//	exemptions:
//	  podSkippable: [log-sidecar, image-pull-secrets]
//	  rules:
//	  - policies: [all]
//	    namespaceSelector: {matchLabels: {podguard.io/exempt: "true"}}
//	  - policies: [security-context]
//	    images: [registry.example.com/debug/*]
type Exemptions struct {
	// PodSkippable lists the policies a pod may skip with the
	// podguard.io/skip annotation ("all": every policy). Unset, it is
	// DefaultPodSkippable; [] lets pods skip nothing.
	PodSkippable []string `json:"podSkippable"`
	// Rules exempt the pods they match from the policies they name.
	Rules []ExemptionRule `json:"rules,omitempty"`
}

// ExemptionRule exempts the pods it matches from the policies it names. Every
// criterion it sets must match (a rule with namespaces and images exempts
// those images in those namespaces); within a criterion, any entry matches.
// A rule must set at least one criterion.
type ExemptionRule struct {
	// Policies are the policies the rule exempts from, or [all].
	Policies []string `json:"policies"`
	// Namespaces are namespace names.
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector selects namespaces by their labels.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ServiceAccounts are "namespace/name" of the pods' service account.
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	// Images are repository patterns, matched per container on the parsed
	// reference: "registry/repository" exactly (docker.io/library/busybox,
	// or busybox, normalized the same way), or "registry/path/*" for every
	// repository below that path. Tags and digests are not allowed: they
	// are not who an image is.
	Images []string `json:"images,omitempty"`
}

// DefaultPodSkippable are the policies a pod may skip when the config does
// not say: the mutations that are conveniences for the pod's own author.
// A log sidecar is something the pod asks for itself, and a pull secret only
// saves its own pull. The security context hardening and the resource
// defaults protect the pod's neighbours, and the validations catch the
// silent breakage podguard exists for; only an admin exempts from those.
var DefaultPodSkippable = []string{LogSidecarName, ImagePullSecretsName}

// containerScoped are the policies an image exemption can lift for one
// container: what they do or check belongs to a container. The others act on
// the pod as a whole (the log sidecar the pod asks for, its pull secrets).
var containerScoped = sets.New(SecurityContextName, ResourcesName, EnvFromKeysName, MountShadowingName)

// Default fills the unset fields with their documented defaults.
func (e *Exemptions) Default() {
	if e.PodSkippable == nil {
		e.PodSkippable = append([]string{}, DefaultPodSkippable...)
	}
}

// Validate checks the exemptions; path is where they sit in the config file.
func (e *Exemptions) Validate(path *field.Path) field.ErrorList {
	errs := validatePolicyNames(e.PodSkippable, path.Child("podSkippable"))
	for i, r := range e.Rules {
		errs = append(errs, r.validate(path.Child("rules").Index(i))...)
	}
	return errs
}

func validatePolicyNames(names []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	known := append([]string{AllPolicies}, Names()...)
	seen := sets.New[string]()
	for i, n := range names {
		switch {
		case !slices.Contains(known, n):
			errs = append(errs, field.NotSupported(path.Index(i), n, known))
		case seen.Has(n):
			errs = append(errs, field.Duplicate(path.Index(i), n))
		}
		seen.Insert(n)
	}
	return errs
}

func (r *ExemptionRule) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(r.Policies) == 0 {
		errs = append(errs, field.Required(path.Child("policies"), `name the policies this rule exempts from, or [all]`))
	}
	errs = append(errs, validatePolicyNames(r.Policies, path.Child("policies"))...)
	if len(r.Namespaces) == 0 && r.NamespaceSelector == nil && len(r.ServiceAccounts) == 0 && len(r.Images) == 0 {
		errs = append(errs, field.Required(path, "set at least one of namespaces, namespaceSelector, serviceAccounts or images: a rule without one would exempt every pod"))
	}
	for i, ns := range r.Namespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(path.Child("namespaces").Index(i), ns, msg))
		}
	}
	if r.NamespaceSelector != nil {
		sp := path.Child("namespaceSelector")
		errs = append(errs, metav1validation.ValidateLabelSelector(r.NamespaceSelector, metav1validation.LabelSelectorValidationOptions{}, sp)...)
		if len(r.NamespaceSelector.MatchLabels) == 0 && len(r.NamespaceSelector.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(sp, "{}", "an empty selector matches every namespace: name the labels, or list namespaces"))
		}
	}
	for i, sa := range r.ServiceAccounts {
		if _, err := parseServiceAccount(sa); err != nil {
			errs = append(errs, field.Invalid(path.Child("serviceAccounts").Index(i), sa, err.Error()))
		}
	}
	for i, img := range r.Images {
		if _, err := parseImagePattern(img); err != nil {
			errs = append(errs, field.Invalid(path.Child("images").Index(i), img, err.Error()))
		}
	}
	if len(r.Images) > 0 {
		for i, p := range r.Policies {
			if p != AllPolicies && !containerScoped.Has(p) {
				errs = append(errs, field.Invalid(path.Child("policies").Index(i), p,
					fmt.Sprintf("acts on the pod as a whole, so an image exemption cannot lift it; images exempt only from %s: use namespaces, namespaceSelector or serviceAccounts for %q",
						quoteList(sets.List(containerScoped)), p)))
			}
		}
	}
	return errs
}

// parseServiceAccount checks "namespace/name".
func parseServiceAccount(s string) (string, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" {
		return "", fmt.Errorf("must be namespace/name, e.g. ci/builder")
	}
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return "", fmt.Errorf("namespace %q: %s", ns, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return "", fmt.Errorf("name %q: %s", name, strings.Join(msgs, "; "))
	}
	return s, nil
}

// imagePattern is a parsed exemption image: a repository, or every
// repository below a path.
type imagePattern struct {
	repo  string // docker.io/library/busybox or registry.example.com/debug
	below bool   // the pattern ended in /*
}

func parseImagePattern(s string) (imagePattern, error) {
	name, below := strings.CutSuffix(s, "/*")
	if strings.Contains(name, "*") {
		return imagePattern{}, fmt.Errorf(`"*" is allowed only as the whole last path element, as in registry.example.com/debug/*`)
	}
	if !below {
		named, err := reference.ParseNormalizedNamed(name)
		if err != nil {
			return imagePattern{}, fmt.Errorf("not an image repository: %w", err)
		}
		if !reference.IsNameOnly(named) {
			return imagePattern{}, fmt.Errorf("must name a repository without a tag or digest: tags move, and a digest is not a repository")
		}
		return imagePattern{repo: named.Name()}, nil
	}
	// A pattern for everything below a path starts with its registry, so
	// that "ghcr.io/*" is not read as Docker Hub's library/ghcr.io.
	host, _, _ := strings.Cut(name, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return imagePattern{}, fmt.Errorf("a pattern ending in /* must start with a registry host (a host has a dot or a port, or is localhost), e.g. docker.io/%s/*", name)
	}
	named, err := reference.ParseNormalizedNamed(name + "/x")
	if err != nil {
		return imagePattern{}, fmt.Errorf("not a registry with an optional path: %w", err)
	}
	repo := reference.Domain(named)
	if path := strings.TrimSuffix(reference.Path(named), "x"); strings.Contains(name, "/") {
		repo += "/" + strings.TrimSuffix(path, "/")
	}
	return imagePattern{repo: repo, below: true}, nil
}

func (p imagePattern) matches(repo string) bool {
	if p.below {
		return strings.HasPrefix(repo, p.repo+"/")
	}
	return repo == p.repo
}

// exemptions is the compiled form the engine applies.
type exemptions struct {
	// skippable is nil when every policy may be skipped.
	skippable sets.Set[string]
	rules     []exemptionRule
}

type exemptionRule struct {
	index      int
	all        bool
	policies   sets.Set[string]
	namespaces sets.Set[string]
	selector   labels.Selector
	accounts   sets.Set[string]
	images     []imagePattern
}

// compileExemptions turns validated exemptions into the engine's form.
// Entries that do not parse are left out; Validate reports them.
func compileExemptions(e *Exemptions) *exemptions {
	out := &exemptions{}
	skippable := e.PodSkippable
	if skippable == nil {
		skippable = DefaultPodSkippable
	}
	if !slices.Contains(skippable, AllPolicies) {
		out.skippable = sets.New(skippable...)
	}
	for i, r := range e.Rules {
		c := exemptionRule{index: i, all: slices.Contains(r.Policies, AllPolicies), policies: sets.New(r.Policies...)}
		if len(r.Namespaces) > 0 {
			c.namespaces = sets.New(r.Namespaces...)
		}
		if r.NamespaceSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(r.NamespaceSelector)
			if err != nil {
				continue
			}
			c.selector = sel
		}
		if len(r.ServiceAccounts) > 0 {
			c.accounts = sets.New(r.ServiceAccounts...)
		}
		for _, img := range r.Images {
			if p, err := parseImagePattern(img); err == nil {
				c.images = append(c.images, p)
			}
		}
		out.rules = append(out.rules, c)
	}
	return out
}

// podMaySkip reports whether podguard.io/skip may name policy. A nil
// *exemptions (an Engine built by hand, in tests) lets pods skip anything.
func (e *exemptions) podMaySkip(policy string) bool {
	return e == nil || e.skippable == nil || e.skippable.Has(policy)
}

func (r *exemptionRule) exempts(policy string) bool { return r.all || r.policies.Has(policy) }

// matchesPod reports whether the rule's pod-wide criteria (namespace,
// namespace labels, service account) match the pod.
func (r *exemptionRule) matchesPod(pod *Pod, world World) bool {
	if r.namespaces != nil && !r.namespaces.Has(pod.Namespace) {
		return false
	}
	if r.selector != nil {
		ns, ok := Namespace{}, false
		if world != nil {
			ns, ok = world.Namespace(pod.Namespace)
		}
		// A namespace podguard does not know yet matches no selector:
		// unknown is never a reason to exempt.
		if !ok || !r.selector.Matches(labels.Set(ns.Labels)) {
			return false
		}
	}
	if r.accounts != nil {
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default" // what the ServiceAccount admission plugin sets
		}
		if !r.accounts.Has(pod.Namespace + "/" + sa) {
			return false
		}
	}
	return true
}

// matchesImage reports whether the rule's images match ref.
func (r *exemptionRule) matchesImage(ref string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(r.images, func(p imagePattern) bool { return p.matches(named.Name()) })
}

// podExemptions is what the admin's rules exempt one pod from.
type podExemptions struct {
	// whole are the policies the pod is exempt from.
	whole sets.Set[string]
	// containers maps a container-scoped policy to the names of the
	// containers exempt from it, by image.
	containers map[string]sets.Set[string]
}

// exemptionsFor applies the rules to a pod.
func (e *exemptions) exemptionsFor(pod *Pod, world World, policies []string) podExemptions {
	if e == nil || len(e.rules) == 0 {
		return podExemptions{} // nil sets answer Has with false, at no cost per pod
	}
	out := podExemptions{whole: sets.New[string](), containers: map[string]sets.Set[string]{}}
	for i := range e.rules {
		r := &e.rules[i]
		if !r.matchesPod(pod, world) {
			continue
		}
		if len(r.images) == 0 {
			for _, p := range policies {
				if r.exempts(p) {
					out.whole.Insert(p)
				}
			}
			continue
		}
		for _, c := range pod.allContainers() {
			if !r.matchesImage(c.image) {
				continue
			}
			for _, p := range policies {
				if r.exempts(p) && containerScoped.Has(p) {
					if out.containers[p] == nil {
						out.containers[p] = sets.New[string]()
					}
					out.containers[p].Insert(c.name)
				}
			}
		}
	}
	return out
}

// namedContainer is a container of any kind, by name, image and path.
type namedContainer struct {
	name, image string
	path        string
}

// allContainers lists init, regular and ephemeral containers.
func (p *Pod) allContainers() []namedContainer {
	var out []namedContainer
	for _, c := range p.Containers() {
		out = append(out, namedContainer{c.Container.Name, c.Container.Image, c.Path.String()})
	}
	for i, c := range p.Spec.EphemeralContainers {
		out = append(out, namedContainer{c.Name, c.Image, p.SpecPath.Child("ephemeralContainers").Index(i).String()})
	}
	return out
}

// underAny reports whether a finding's field path lies in one of the
// container paths.
func underAny(fieldPath string, containerPaths []string) bool {
	for _, cp := range containerPaths {
		if rest, ok := strings.CutPrefix(fieldPath, cp); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return true
		}
	}
	return false
}

// containerPaths are the field paths of the named containers in pod.
func containerPaths(pod *Pod, names sets.Set[string]) []string {
	var out []string
	for _, c := range pod.allContainers() {
		if names.Has(c.name) {
			out = append(out, c.path)
		}
	}
	return out
}

// dropFindingsUnder removes the findings in the exempt containers.
func dropFindingsUnder(rep Report, paths []string) Report {
	keep := func(fs []Finding) []Finding {
		var out []Finding
		for _, f := range fs {
			if !underAny(f.Field, paths) {
				out = append(out, f)
			}
		}
		return out
	}
	return Report{Violations: keep(rep.Violations), Warnings: keep(rep.Warnings)}
}

// restoreContainers undoes what a mutator did to the exempt containers of
// its input: each keeps its spec as it came in. Pod-level changes stay.
func restoreContainers(in, out *Pod, names sets.Set[string]) {
	orig := map[string]int{}
	for i, c := range in.Spec.InitContainers {
		orig["i/"+c.Name] = i
	}
	for i, c := range in.Spec.Containers {
		orig["c/"+c.Name] = i
	}
	for i, c := range out.Spec.InitContainers {
		if j, ok := orig["i/"+c.Name]; ok && names.Has(c.Name) {
			in.Spec.InitContainers[j].DeepCopyInto(&out.Spec.InitContainers[i])
		}
	}
	for i, c := range out.Spec.Containers {
		if j, ok := orig["c/"+c.Name]; ok && names.Has(c.Name) {
			in.Spec.Containers[j].DeepCopyInto(&out.Spec.Containers[i])
		}
	}
}

// skippableList renders the policies pods may skip, for messages.
func (e *exemptions) skippableList() string {
	if e.skippable.Len() == 0 {
		return "none"
	}
	return quoteList(sets.List(e.skippable))
}

// exceptContainers takes back what a mutator did to the containers exempt
// from it by image, and the findings it made about them.
func exceptContainers(in, out *Pod, rep Report, names sets.Set[string]) (*Pod, Report) {
	rep = dropFindingsUnder(rep, containerPaths(in, names))
	if out == nil || out == in {
		return out, rep
	}
	restoreContainers(in, out, names)
	if apiequality.Semantic.DeepEqual(in.Spec, out.Spec) && apiequality.Semantic.DeepEqual(in.Meta, out.Meta) {
		return in, rep
	}
	return out, rep
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
