package policies

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Settings holds the configuration of every policy, as it appears under
// `policies:` in the podguard config file. The zero value, once defaulted,
// is podguard's documented default behaviour.
type Settings struct {
	LogSidecar       LogSidecarConfig       `json:"logSidecar"`
	SecurityContext  SecurityContextConfig  `json:"securityContext"`
	Resources        ResourcesConfig        `json:"resources"`
	ImagePullSecrets ImagePullSecretsConfig `json:"imagePullSecrets"`
	EnvFromKeys      EnvFromKeysConfig      `json:"envFromKeys"`
	MountShadowing   MountShadowingConfig   `json:"mountShadowing"`
}

// Registration ties a policy's stable name to how it is configured and built.
type Registration struct {
	Name string
	// Enabled reports whether the settings turn the policy on.
	Enabled func(s *Settings) bool
	// Build returns the policy for defaulted, validated settings.
	Build func(s *Settings) Policy
	// Default fills the policy's unset settings.
	Default func(s *Settings)
	// Validate checks the policy's settings; path is `policies.<key>`.
	Validate func(s *Settings, path *field.Path) field.ErrorList
	// Mode returns a validating policy's configured mode (see Mode); nil
	// for a mutating policy, whose denials are always enforced.
	Mode func(s *Settings) Mode
}

// Registry lists every policy in the order the engine runs them: mutators
// first, each seeing the output of the one before, then validators, which see
// the fully mutated pod. The order is explicit; nothing registers itself.
var Registry = []Registration{
	{
		// First, so that the policies after it also see the sidecar: its
		// image may need a pull secret.
		Name:     LogSidecarName,
		Enabled:  func(s *Settings) bool { return enabled(s.LogSidecar.Enabled) },
		Build:    func(s *Settings) Policy { return newLogSidecar(s.LogSidecar) },
		Default:  func(s *Settings) { s.LogSidecar.defaults() },
		Validate: func(s *Settings, p *field.Path) field.ErrorList { return s.LogSidecar.validate(p.Child("logSidecar")) },
	},
	{
		Name:    SecurityContextName,
		Enabled: func(s *Settings) bool { return enabled(s.SecurityContext.Enabled) },
		Build:   func(s *Settings) Policy { return newSecurityContext(s.SecurityContext) },
		Default: func(s *Settings) { s.SecurityContext.defaults() },
		Validate: func(s *Settings, p *field.Path) field.ErrorList {
			return s.SecurityContext.validate(p.Child("securityContext"))
		},
	},
	{
		Name:    ResourcesName,
		Enabled: func(s *Settings) bool { return enabled(s.Resources.Enabled) },
		Build:   func(s *Settings) Policy { return newResources(s.Resources) },
		Default: func(s *Settings) { s.Resources.defaults() },
		Validate: func(s *Settings, p *field.Path) field.ErrorList {
			return s.Resources.validate(p.Child("resources"))
		},
	},
	{
		Name:    ImagePullSecretsName,
		Enabled: func(s *Settings) bool { return enabled(s.ImagePullSecrets.Enabled) },
		Build:   func(s *Settings) Policy { return newImagePullSecrets(s.ImagePullSecrets) },
		Default: func(s *Settings) { s.ImagePullSecrets.defaults() },
		Validate: func(s *Settings, p *field.Path) field.ErrorList {
			return s.ImagePullSecrets.validate(p.Child("imagePullSecrets"))
		},
	},
	{
		Name:    EnvFromKeysName,
		Enabled: func(s *Settings) bool { return enabled(s.EnvFromKeys.Enabled) },
		Build:   func(s *Settings) Policy { return newEnvFromKeys(s.EnvFromKeys) },
		Default: func(s *Settings) { s.EnvFromKeys.defaults() },
		Validate: func(s *Settings, p *field.Path) field.ErrorList {
			return s.EnvFromKeys.validate(p.Child("envFromKeys"))
		},
		Mode: func(s *Settings) Mode { return s.EnvFromKeys.Mode },
	},
	{
		Name:    MountShadowingName,
		Enabled: func(s *Settings) bool { return enabled(s.MountShadowing.Enabled) },
		Build:   func(s *Settings) Policy { return newMountShadowing(s.MountShadowing) },
		Default: func(s *Settings) { s.MountShadowing.defaults() },
		Validate: func(s *Settings, p *field.Path) field.ErrorList {
			return s.MountShadowing.validate(p.Child("mountShadowing"))
		},
		Mode: func(s *Settings) Mode { return s.MountShadowing.Mode },
	},
}

// Names returns the names of all registered policies, in order.
func Names() []string {
	out := make([]string, len(Registry))
	for i, r := range Registry {
		out[i] = r.Name
	}
	return out
}

// ValidatingNames returns the names of the validating policies, those with
// modes, in order.
func ValidatingNames() []string {
	var out []string
	for _, r := range Registry {
		if r.Mode != nil {
			out = append(out, r.Name)
		}
	}
	return out
}

// Default fills every unset setting with its documented default.
func (s *Settings) Default() {
	for _, r := range Registry {
		r.Default(s)
	}
}

// Validate checks every policy's settings. path is where Settings sits in the
// config file.
func (s *Settings) Validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, r := range Registry {
		errs = append(errs, r.Validate(s, path)...)
	}
	return errs
}

// enabled treats an unset switch as on: every policy is on by default. Most
// do nothing until their settings or the pod ask for something; the
// security-context policy's default baseline profile hardens every pod in
// the namespaces podguard admits, without breaking images that run as root.
func enabled(b *bool) bool { return b == nil || *b }
