package policies

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// ImagePullSecretsName is the name of the image-pull-secrets policy.
const ImagePullSecretsName = "image-pull-secrets"

// ImagePullSecretsConfig maps private registries to the pull secrets their
// images need.
//
//	imagePullSecrets:
//	  registries:
//	  - registry: 10.0.0.130:5000
//	    secrets: [myregistrykey]
//	  - registry: ghcr.io/acme      # a path prefix narrows the rule
//	    secrets: [acme-ghcr]
type ImagePullSecretsConfig struct {
	Enabled    *bool          `json:"enabled,omitempty"`
	Registries []RegistryRule `json:"registries,omitempty"`
}

// RegistryRule names the pull secrets for images from one registry.
type RegistryRule struct {
	// Registry is host[:port], optionally followed by a path prefix that
	// matches whole path segments: "ghcr.io/acme" matches ghcr.io/acme/app
	// but not ghcr.io/acme-corp/app. "docker.io" matches "nginx".
	Registry string `json:"registry"`
	// Secrets are the names of kubernetes.io/dockerconfigjson Secrets in the
	// pod's namespace.
	Secrets []string `json:"secrets"`
}

func (c *ImagePullSecretsConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
}

func (c *ImagePullSecretsConfig) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, r := range c.Registries {
		p := path.Child("registries").Index(i)
		if _, _, err := parseRegistry(r.Registry); err != nil {
			errs = append(errs, field.Invalid(p.Child("registry"), r.Registry, err.Error()))
		}
		if len(r.Secrets) == 0 {
			errs = append(errs, field.Required(p.Child("secrets"), "a rule needs at least one secret name"))
		}
		seen := map[string]bool{}
		for j, s := range r.Secrets {
			sp := p.Child("secrets").Index(j)
			for _, msg := range validation.IsDNS1123Subdomain(s) {
				errs = append(errs, field.Invalid(sp, s, msg))
			}
			if seen[s] {
				errs = append(errs, field.Duplicate(sp, s))
			}
			seen[s] = true
		}
	}
	return errs
}

// parseRegistry splits a rule's registry into the host and path prefix that
// image references are compared with, normalized the way the container
// runtime normalizes them.
func parseRegistry(s string) (host, prefix string, err error) {
	if s == "" {
		return "", "", fmt.Errorf("must be host[:port] with an optional path prefix, e.g. 10.0.0.130:5000 or ghcr.io/acme")
	}
	first, _, _ := strings.Cut(s, "/")
	if !strings.ContainsAny(first, ".:") && first != "localhost" {
		return "", "", fmt.Errorf("%q does not start with a registry host: a host has a dot or a port, or is localhost (write docker.io/%s for Docker Hub)", s, s)
	}
	named, err := reference.ParseNormalizedNamed(s + "/x")
	if err != nil {
		return "", "", fmt.Errorf("not a registry with an optional path prefix: %w", err)
	}
	host = reference.Domain(named)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		// The reference grammar takes any digits as a port.
		if port, err := strconv.Atoi(host[i+1:]); err != nil || port < 1 || port > 65535 {
			return "", "", fmt.Errorf("port %q is not a TCP port: it must be between 1 and 65535", host[i+1:])
		}
	}
	prefix = strings.TrimSuffix(reference.Path(named), "x")
	return host, strings.TrimSuffix(prefix, "/"), nil
}

type registryMatcher struct {
	host, prefix string
	secrets      []string
	registry     string
}

func (m registryMatcher) matches(host, path string) bool {
	if host != m.host {
		return false
	}
	return m.prefix == "" || path == m.prefix || strings.HasPrefix(path, m.prefix+"/")
}

// imagePullSecrets adds the configured pull secrets to pods whose images come
// from a private registry, so that pulls do not fail with "no basic auth
// credentials". It adds only missing names, after the user's own entries,
// and warns when a needed Secret does not exist in the pod's namespace.
type imagePullSecrets struct {
	rules []registryMatcher
}

func newImagePullSecrets(c ImagePullSecretsConfig) *imagePullSecrets {
	p := &imagePullSecrets{}
	for _, r := range c.Registries {
		host, prefix, err := parseRegistry(r.Registry)
		if err != nil {
			continue // validated config never gets here
		}
		p.rules = append(p.rules, registryMatcher{host: host, prefix: prefix, secrets: r.Secrets, registry: r.Registry})
	}
	return p
}

func (p *imagePullSecrets) Name() string { return ImagePullSecretsName }

func (p *imagePullSecrets) Mutate(in Input) (*Pod, Report) {
	rep := in.report()
	if len(p.rules) == 0 {
		return in.Pod, rep
	}
	have := map[string]bool{}
	for _, s := range in.Pod.Spec.ImagePullSecrets {
		have[s.Name] = true
	}
	var add []string
	checked := map[string]bool{}
	for _, img := range in.Pod.Images() {
		if img.Ref == "" {
			continue
		}
		named, err := reference.ParseNormalizedNamed(img.Ref)
		if err != nil {
			rep.Warn(img.Path, "image %s is not a valid image reference (%v): podguard cannot tell which registry it comes from, and the kubelet will fail with InvalidImageName", quote(img.Ref), err)
			continue
		}
		host, path := reference.Domain(named), reference.Path(named)
		for _, rule := range p.rules {
			if !rule.matches(host, path) {
				continue
			}
			for _, s := range rule.secrets {
				if !have[s] {
					have[s] = true
					add = append(add, s)
				}
				if checked[s] || in.World == nil {
					continue
				}
				// Each secret is looked up once, however many images need it.
				checked[s] = true
				if obj := in.World.Secret(in.Pod.Namespace, s); obj.Presence == NotFound {
					where := fmt.Sprintf("does not exist in namespace %q", in.Pod.Namespace)
					if obj.Where != "" {
						where = fmt.Sprintf("is not %s (namespace %q)", obj.Where, in.Pod.Namespace)
					}
					rep.Warn(img.Path, "image %s needs pull secret %q (rule for %s), which %s: the pull will fail with \"no basic auth credentials\" until it is created",
						quote(img.Ref), s, rule.registry, where)
				}
			}
		}
	}
	if len(add) == 0 {
		return in.Pod, rep
	}
	out := in.Pod.DeepCopy()
	for _, s := range add {
		out.Spec.ImagePullSecrets = append(out.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return out, rep
}
