package policies

import (
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	sigsjson "sigs.k8s.io/json"
)

// ResourcesName is the name of the resources policy.
const ResourcesName = "resources"

// DefaultResourcesAnnotation on a Namespace overrides the configured default
// resources for the pods in it. Its value is a JSON object with the shape of
// ResourceDefaults:
//
//	podguard.io/default-resources: '{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}}'
//
// It is decoded strictly: an unknown or duplicate field, a resource other
// than cpu, memory and ephemeral-storage, a quantity that is not positive, or
// a request above the limit it gives for the same resource makes the whole
// annotation invalid. An invalid annotation is reported as a warning on every
// pod of the namespace, and the configured defaults apply.
const DefaultResourcesAnnotation = "podguard.io/default-resources"

// defaultableResources are the resources the policy fills in, in the order it
// fills them.
var defaultableResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}

// ResourcesConfig configures the resources policy.
//
//	resources:
//	  defaults:
//	    requests: {cpu: 100m, memory: 128Mi}
//	    limits: {memory: 256Mi}
//	  namespaces:
//	  - selector: {matchLabels: {tier: batch}}
//	    defaults:
//	      requests: {cpu: 500m, memory: 100Mi}
//	      limits: {cpu: "1", memory: 200Mi}
type ResourcesConfig struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Defaults apply to every namespace unless a rule or the namespace's
	// podguard.io/default-resources annotation overrides them.
	Defaults ResourceDefaults `json:"defaults,omitempty"`
	// Namespaces are rules that select namespaces by label. The first rule
	// that matches a namespace overrides the global defaults, resource by
	// resource and separately for requests and limits.
	Namespaces []NamespaceResourceRule `json:"namespaces,omitempty"`
}

// ResourceDefaults are default requests and limits for cpu, memory and
// ephemeral-storage. Any legal quantity works: 500m, 0.5, 128974848, 129e6,
// 129M, 123Mi.
type ResourceDefaults struct {
	// Requests and Limits may name cpu, memory and ephemeral-storage only.
	Requests corev1.ResourceList `json:"requests,omitempty"`
	Limits   corev1.ResourceList `json:"limits,omitempty"`
}

// NamespaceResourceRule gives the namespaces its selector matches their own
// defaults.
type NamespaceResourceRule struct {
	Selector metav1.LabelSelector `json:"selector"`
	Defaults ResourceDefaults     `json:"defaults"`
}

func (c *ResourcesConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
}

func (c *ResourcesConfig) validate(path *field.Path) field.ErrorList {
	errs := c.Defaults.validate(path.Child("defaults"))
	for i, r := range c.Namespaces {
		p := path.Child("namespaces").Index(i)
		selErrs := metav1validation.ValidateLabelSelector(&r.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))
		if len(selErrs) == 0 {
			if _, err := metav1.LabelSelectorAsSelector(&r.Selector); err != nil {
				selErrs = append(selErrs, field.Invalid(p.Child("selector"), r.Selector.String(), err.Error()))
			}
		}
		errs = append(errs, selErrs...)
		if r.Defaults.empty() {
			errs = append(errs, field.Required(p.Child("defaults"), "a rule needs at least one default request or limit"))
		}
		errs = append(errs, r.Defaults.validate(p.Child("defaults"))...)
	}
	return errs
}

// validate checks resource names, that quantities are positive, and that no
// request is above the limit given for the same resource. Errors are in
// resource-name order.
func (d *ResourceDefaults) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	supported := make([]string, len(defaultableResources))
	for i, name := range defaultableResources {
		supported[i] = string(name)
	}
	for _, kind := range []struct {
		name string
		list corev1.ResourceList
	}{{"requests", d.Requests}, {"limits", d.Limits}} {
		for _, name := range sortedResourceNames(kind.list) {
			p := path.Child(kind.name).Key(string(name))
			q := kind.list[name]
			switch {
			case !slices.Contains(defaultableResources, name):
				errs = append(errs, field.NotSupported(p, string(name), supported))
			case q.Sign() <= 0:
				errs = append(errs, field.Invalid(p, q.String(), "must be greater than zero"))
			}
		}
	}
	for _, name := range sortedResourceNames(d.Requests) {
		req := d.Requests[name]
		if lim, ok := d.Limits[name]; ok && slices.Contains(defaultableResources, name) && req.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(path.Child("requests").Key(string(name)), req.String(),
				fmt.Sprintf("must not be greater than the %s limit %s: the API server rejects a request above its limit", name, lim.String())))
		}
	}
	return errs
}

func (d *ResourceDefaults) empty() bool { return len(d.Requests) == 0 && len(d.Limits) == 0 }

// overlay returns base with every request and limit that over sets replaced,
// resource by resource.
func overlay(base, over ResourceDefaults) ResourceDefaults {
	merge := func(a, b corev1.ResourceList) corev1.ResourceList {
		if len(b) == 0 {
			return a
		}
		out := make(corev1.ResourceList, len(a)+len(b))
		for name, q := range a {
			out[name] = q
		}
		for name, q := range b {
			out[name] = q
		}
		return out
	}
	return ResourceDefaults{Requests: merge(base.Requests, over.Requests), Limits: merge(base.Limits, over.Limits)}
}

func sortedResourceNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for name := range l {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// resources gives every container and init container (native sidecars
// included) default cpu, memory and ephemeral-storage requests and limits,
// like a LimitRange's defaults, but configured once for the cluster and per
// namespace.
//
// The defaults for a pod are, resource by resource and separately for
// requests and limits: the namespace's podguard.io/default-resources
// annotation, else the first namespace rule whose selector matches the
// namespace's labels, else the global defaults. A namespace the World does
// not know gets the global defaults.
//
// For each container and resource, it never changes a value the user set,
// and:
//
//   - a missing request takes the default request, unless the container sets
//     a limit for that resource: the API server then sets the request to the
//     limit (as it does before any admission webhook sees a Pod), so the
//     container keeps the QoS it asked for, and a Pod and a Deployment
//     template with the same spec end up with the same request;
//   - a missing limit takes the default limit, raised to the container's
//     request (its own or the default just given) when that is higher.
//
// So no container ever ends up with a request above its limit, which the API
// server would reject, even when a namespace annotation's request is above a
// limit inherited from the config. The defaults are copied as configured
// (129e6 stays 129e6).
//
// A resource that the pod-level resources (spec.resources, the
// PodLevelResources feature) set as a request or limit is not defaulted on
// containers: the pod-level budget governs it, and container defaults could
// add up to more than that budget, which the API server rejects. Other
// resources are defaulted as usual. Ephemeral containers cannot have
// resources.
type resources struct {
	defaults ResourceDefaults
	rules    []resourceRule
}

type resourceRule struct {
	selector labels.Selector
	defaults ResourceDefaults
}

func newResources(c ResourcesConfig) *resources {
	p := &resources{defaults: c.Defaults}
	for _, r := range c.Namespaces {
		sel, err := metav1.LabelSelectorAsSelector(&r.Selector)
		if err != nil {
			continue // validated config never gets here
		}
		p.rules = append(p.rules, resourceRule{selector: sel, defaults: r.Defaults})
	}
	return p
}

func (p *resources) Name() string { return ResourcesName }

func (p *resources) Mutate(in Input) (*Pod, Report) {
	rep := in.report()
	d := p.defaultsFor(in, &rep)
	if d.empty() {
		return in.Pod, rep
	}
	governed := map[corev1.ResourceName]bool{}
	if r := in.Pod.Spec.Resources; r != nil {
		for name := range r.Requests {
			governed[name] = true
		}
		for name := range r.Limits {
			governed[name] = true
		}
	}
	out := in.Pod.DeepCopy()
	changed := false
	for _, c := range out.Containers() {
		if isPodguardSidecar(c.Container) {
			continue // it has the resources its own policy configured
		}
		if fillResources(&c.Container.Resources, d, governed) {
			changed = true
		}
	}
	if !changed {
		return in.Pod, rep
	}
	return out, rep
}

// defaultsFor merges the defaults that apply to the pod's namespace. A
// malformed namespace annotation is a warning, and is ignored.
func (p *resources) defaultsFor(in Input, rep *Report) ResourceDefaults {
	d := p.defaults
	if in.World == nil {
		return d
	}
	ns, ok := in.World.Namespace(in.Pod.Namespace)
	if !ok {
		return d
	}
	for _, r := range p.rules {
		if r.selector.Matches(labels.Set(ns.Labels)) {
			d = overlay(d, r.defaults)
			break
		}
	}
	raw, ok := ns.Annotations[DefaultResourcesAnnotation]
	if !ok {
		return d
	}
	ann, err := parseDefaultResources(raw)
	if err != nil {
		rep.Warn(nil, "namespace %q annotation %s is not valid, so the configured default resources apply instead: %v. Fix: write a JSON object such as %s, with only cpu, memory and ephemeral-storage",
			ns.Name, DefaultResourcesAnnotation, err, `{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}}`)
		return d
	}
	return overlay(d, ann)
}

// parseDefaultResources decodes a DefaultResourcesAnnotation value strictly.
func parseDefaultResources(raw string) (ResourceDefaults, error) {
	var d ResourceDefaults
	strict, err := sigsjson.UnmarshalStrict([]byte(raw), &d)
	if err != nil {
		return ResourceDefaults{}, fmt.Errorf("decoding JSON: %w", err)
	}
	if len(strict) > 0 {
		return ResourceDefaults{}, errors.Join(strict...)
	}
	if errs := d.validate(nil); len(errs) > 0 {
		return ResourceDefaults{}, errs.ToAggregate()
	}
	return d, nil
}

// fillResources fills in r's missing requests and limits from d, skipping the
// resources in governed, and reports whether it changed anything.
func fillResources(r *corev1.ResourceRequirements, d ResourceDefaults, governed map[corev1.ResourceName]bool) bool {
	changed := false
	for _, name := range defaultableResources {
		if governed[name] {
			continue
		}
		req, hasReq := r.Requests[name]
		_, hasLim := r.Limits[name]
		if def, ok := d.Requests[name]; ok && !hasReq && !hasLim {
			req, hasReq = def.DeepCopy(), true
			r.Requests = setQuantity(r.Requests, name, req)
			changed = true
		}
		if def, ok := d.Limits[name]; ok && !hasLim {
			lim := def.DeepCopy()
			if hasReq && req.Cmp(lim) > 0 {
				lim = req.DeepCopy()
			}
			r.Limits = setQuantity(r.Limits, name, lim)
			changed = true
		}
	}
	return changed
}

func setQuantity(l corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) corev1.ResourceList {
	if l == nil {
		l = corev1.ResourceList{}
	}
	l[name] = q
	return l
}
