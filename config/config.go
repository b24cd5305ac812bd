// Package config loads podguard's configuration: strictly decoded YAML,
// defaulted, and validated with field paths, so a typo is an error that names
// the field instead of a setting that silently does nothing.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/podguard/podguard/policies"
)

// The config file's apiVersion and kind.
const (
	APIVersion = "podguard.io/v1alpha1"
	Kind       = "Config"
)

// Config is podguard's configuration file.
//
//	apiVersion: podguard.io/v1alpha1
//	kind: Config
//	cluster:
//	  kubeletVersion: "1.29"   # pin; default: the oldest kubelet among the Nodes
//	namespaces:
//	  exclude: [kube-system, kube-node-lease, podguard-system, cert-manager]
//	policies:
//	  imagePullSecrets: {...}
//	  envFromKeys: {...}
//	exemptions:
//	  podSkippable: [log-sidecar, image-pull-secrets]
//	  rules: [...]
//	images:
//	  inspect: true
//	  registries: ["*"]
//	admission:
//	  mutationWarnings: summary
type Config struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Cluster    ClusterConfig     `json:"cluster,omitempty"`
	Namespaces NamespacesConfig  `json:"namespaces,omitempty"`
	Policies   policies.Settings `json:"policies,omitempty"`
	// Exemptions says which policies a pod may skip with podguard.io/skip,
	// and which pods the admin exempts from which policies.
	Exemptions policies.Exemptions `json:"exemptions,omitempty"`
	// Images configures the image inspector (off by default).
	Images ImagesConfig `json:"images,omitempty"`
	// Audit configures the background audit and the ConfigMap/Secret guard.
	Audit AuditConfig `json:"audit,omitempty"`
	// Admission configures what admission responses carry besides the
	// decision (the mutation warning).
	Admission AdmissionConfig `json:"admission,omitempty"`
}

// ClusterConfig overrides what podguard learns about the cluster.
type ClusterConfig struct {
	// KubeletVersion pins the kubelet version the policies target ("1.29",
	// "v1.30.2"). Unset, the webhook uses the oldest kubeletVersion among the
	// Nodes, and assumes v1.29 behaviour when there are none.
	KubeletVersion string `json:"kubeletVersion,omitempty"`
}

// NamespacesConfig lists namespaces podguard never acts in.
type NamespacesConfig struct {
	// Exclude lists namespaces whose pods podguard allows unchanged, even if
	// a webhook configuration sends them. The shipped webhook configurations
	// exclude the same namespaces, so the API server does not call podguard
	// for them at all; this list is the second line of defence.
	Exclude []string `json:"exclude,omitempty"`
}

// DefaultExcludedNamespaces are the namespaces podguard must never block,
// those of what it depends on: the control plane's, its own, so that it can
// always start and be recovered, and cert-manager's, which issues its
// serving certificate. The shipped webhook configurations exclude the same
// list (deploy/base/excluded-namespaces.yaml; deploy's tests keep the two
// equal).
var DefaultExcludedNamespaces = []string{"kube-system", "kube-node-lease", "podguard-system", "cert-manager"}

// Default returns the configuration podguard runs with when no file is given.
func Default() *Config {
	c := &Config{APIVersion: APIVersion, Kind: Kind}
	c.Default()
	return c
}

// Default fills every unset field with its documented default.
func (c *Config) Default() {
	if c.Namespaces.Exclude == nil {
		c.Namespaces.Exclude = append([]string(nil), DefaultExcludedNamespaces...)
	}
	c.Policies.Default()
	c.Exemptions.Default()
	c.Images.Default()
	c.Audit.Default()
	c.Admission.Default()
}

// Validate checks the whole configuration and returns every problem with its
// field path.
func (c *Config) Validate() field.ErrorList {
	var errs field.ErrorList
	if c.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{APIVersion}))
	}
	if c.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{Kind}))
	}
	if v := c.Cluster.KubeletVersion; v != "" {
		if _, err := policies.ParseKubeVersion(v); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("cluster", "kubeletVersion"), v, "must be a Kubernetes version such as 1.29 or v1.30.2"))
		}
	}
	for i, ns := range c.Namespaces.Exclude {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(field.NewPath("namespaces", "exclude").Index(i), ns, msg))
		}
	}
	errs = append(errs, c.Policies.Validate(field.NewPath("policies"))...)
	errs = append(errs, c.Images.Validate(field.NewPath("images"))...)
	errs = append(errs, c.Audit.Validate(field.NewPath("audit"))...)
	errs = append(errs, c.Admission.Validate(field.NewPath("admission"))...)
	return append(errs, c.Exemptions.Validate(field.NewPath("exemptions"))...)
}

// PinnedKubeletVersion returns the pinned kubelet version, if any.
func (c *Config) PinnedKubeletVersion() string { return c.Cluster.KubeletVersion }

// SecretKeysEnabled reports whether policies need Secret key names, which
// means the webhook must cache them.
func (c *Config) SecretKeysEnabled() bool {
	return ptr.Deref(c.Policies.EnvFromKeys.Enabled, true) && ptr.Deref(c.Policies.EnvFromKeys.Secrets, false)
}

// SecretMetadataEnabled reports whether policies need to know which Secrets
// exist: image-pull-secrets warns of a pull secret that does not, once it has
// registries to add pull secrets for. Only Secret metadata is cached for it.
func (c *Config) SecretMetadataEnabled() bool {
	return ptr.Deref(c.Policies.ImagePullSecrets.Enabled, true) && len(c.Policies.ImagePullSecrets.Registries) > 0
}

// Error is a configuration that could not be used. It lists every problem,
// one per line, each with its field path.
type Error struct {
	Source string
	// Problem is set when the file as a whole cannot be read as YAML.
	Problem string
	Errs    field.ErrorList
}

func (e *Error) Error() string {
	if e.Problem != "" {
		return fmt.Sprintf("invalid config %s: %s", e.Source, e.Problem)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid config %s:", e.Source)
	for _, err := range e.Errs {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

// Parse decodes, defaults and validates a config document. source names it in
// errors (a file path). An unknown or duplicate field, a wrongly typed value,
// or an invalid setting is an *Error listing every problem.
func Parse(source string, data []byte) (*Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{Source: source, Errs: field.ErrorList{field.Required(field.NewPath("apiVersion"), "the config file is empty; write apiVersion: "+APIVersion+" and kind: "+Kind)}}
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, &Error{Source: source, Problem: "not valid YAML: " + strings.TrimPrefix(strings.Join(strings.Fields(err.Error()), " "), "yaml: ")}
	}
	var c Config
	strictErrs, err := sigsjson.UnmarshalStrict(js, &c)
	if err != nil {
		if fe := decodeError(err); fe != nil {
			return nil, &Error{Source: source, Errs: field.ErrorList{fe}}
		}
		return nil, &Error{Source: source, Problem: strings.TrimPrefix(err.Error(), "json: ")}
	}
	var errs field.ErrorList
	for _, se := range strictErrs {
		if fe := decodeError(se); fe != nil {
			errs = append(errs, fe)
		} else {
			errs = append(errs, field.Invalid(field.NewPath("config"), "", se.Error()))
		}
	}
	c.Default()
	if errs = append(errs, c.Validate()...); len(errs) > 0 {
		return nil, &Error{Source: source, Errs: errs}
	}
	return &c, nil
}

// Load reads and parses a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// typeError matches encoding/json's "cannot unmarshal X into Go struct field
// T.path.to.field of type Y", whose path is the field's JSON path.
var typeError = regexp.MustCompile(`cannot unmarshal (.+) into Go struct field [^.]+\.(\S+) of type (\S+)`)

// decodeError turns a JSON decoding error into a field error with the path
// of the offending field, or returns nil when the error names no field.
func decodeError(err error) *field.Error {
	msg := err.Error()
	if m := typeError.FindStringSubmatch(msg); m != nil {
		if strings.TrimPrefix(m[3], "*") == "config.Duration" {
			return field.TypeInvalid(fieldPath(m[2]), m[1], "must be a duration such as 1.5s or 2m")
		}
		return field.TypeInvalid(fieldPath(m[2]), m[1], "must be of type "+strings.TrimPrefix(m[3], "*"))
	}
	var fe sigsjson.FieldError
	if errors.As(err, &fe) {
		path := fieldPath(fe.FieldPath())
		if strings.Contains(msg, "duplicate field") {
			return field.Duplicate(path, "")
		}
		return field.Forbidden(path, "unknown field")
	}
	return nil
}

func fieldPath(dotted string) *field.Path {
	parts := strings.Split(dotted, ".")
	p := field.NewPath(parts[0])
	for _, part := range parts[1:] {
		p = p.Child(part)
	}
	return p
}
