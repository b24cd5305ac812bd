package policies

import (
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// EnvFromKeysName is the name of the envfrom-keys policy.
const EnvFromKeysName = "envfrom-keys"

// POSIX modes for keys that reach the process but are not POSIX names.
const (
	POSIXWarn = "warn"
	POSIXDeny = "deny"
)

// EnvFromKeysConfig configures the envfrom-keys policy.
//
//	envFromKeys:
//	  posix: warn      # or deny
//	  secrets: false   # also check envFrom.secretRef (caches Secret key names, never values)
type EnvFromKeysConfig struct {
	Enabled *bool `json:"enabled,omitempty"`
	// POSIX says what to do with a key the kubelet passes through that is not
	// a POSIX name ([A-Za-z_][A-Za-z0-9_]*): "warn" (the default) or "deny".
	POSIX string `json:"posix,omitempty"`
	// Secrets turns on the same checks for envFrom.secretRef. The webhook
	// then caches the key names of Secrets, never their values. Off by
	// default, because it needs list/watch on Secrets.
	Secrets *bool `json:"secrets,omitempty"`
}

func (c *EnvFromKeysConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
	if c.POSIX == "" {
		c.POSIX = POSIXWarn
	}
	if c.Secrets == nil {
		c.Secrets = ptr.To(false)
	}
}

func (c *EnvFromKeysConfig) validate(path *field.Path) field.ErrorList {
	if c.POSIX != POSIXWarn && c.POSIX != POSIXDeny {
		return field.ErrorList{field.NotSupported(path.Child("posix"), c.POSIX, []string{POSIXWarn, POSIXDeny})}
	}
	return nil
}

// posixName is the portable shell variable name: what sh, ${VAR} expansion
// and most tools can read.
var posixName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envFromKeys rejects pods whose envFrom ConfigMaps (or Secrets) have keys
// that the target kubelet would silently drop.
//
// Kubelets 1.8 to 1.29 skip every key whose prefixed name fails
// validation.IsEnvVarName ([-._a-zA-Z][-._a-zA-Z0-9]*): in practice keys that
// start with a digit. The container starts without them and only a Warning
// event, InvalidEnvironmentVariableNames, says so. That is a denial.
//
// Kubelets 1.30 and later pass every key through. A key that is not a POSIX
// name still reaches the process, but most tools cannot read it: a warning,
// or a denial with posix: deny. The same applies on older kubelets to keys
// they keep.
//
// A reference that does not resolve is a warning unless it is optional: the
// pod would sit in CreateContainerConfigError until the object exists.
type envFromKeys struct {
	posixDeny bool
	secrets   bool
}

func newEnvFromKeys(c EnvFromKeysConfig) *envFromKeys {
	return &envFromKeys{posixDeny: c.POSIX == POSIXDeny, secrets: ptr.Deref(c.Secrets, false)}
}

func (p *envFromKeys) Name() string { return EnvFromKeysName }

func (p *envFromKeys) Validate(in Input) Report {
	var rep Report
	cluster := in.World.Cluster()
	for _, c := range in.Pod.Containers() {
		for i, src := range c.Container.EnvFrom {
			p.check(&rep, in, cluster, c.Path.Child("envFrom").Index(i), src)
		}
	}
	for i := range in.Pod.Spec.EphemeralContainers {
		path := in.Pod.SpecPath.Child("ephemeralContainers").Index(i)
		for j, src := range in.Pod.Spec.EphemeralContainers[i].EnvFrom {
			p.check(&rep, in, cluster, path.Child("envFrom").Index(j), src)
		}
	}
	return rep
}

func (p *envFromKeys) check(rep *Report, in Input, cluster Cluster, path *field.Path, src corev1.EnvFromSource) {
	var kind, name string
	var optional bool
	var obj Object
	switch {
	case src.ConfigMapRef != nil:
		kind, name, optional = "ConfigMap", src.ConfigMapRef.Name, ptr.Deref(src.ConfigMapRef.Optional, false)
		obj = in.World.ConfigMap(in.Pod.Namespace, name)
	case src.SecretRef != nil && p.secrets:
		kind, name, optional = "Secret", src.SecretRef.Name, ptr.Deref(src.SecretRef.Optional, false)
		obj = in.World.Secret(in.Pod.Namespace, name)
	default:
		return
	}
	switch obj.Presence {
	case NotFound:
		if !optional {
			where := fmt.Sprintf("in namespace %q", in.Pod.Namespace)
			if obj.Where != "" {
				where = fmt.Sprintf("%s (namespace %q)", obj.Where, in.Pod.Namespace)
			}
			rep.Warn(path, "%s %q was not found %s: the pod will stay in CreateContainerConfigError until it exists (set optional: true if it may be absent)", kind, name, where)
		}
		return
	case Unknown:
		return
	}
	if !obj.KeysKnown {
		return
	}

	var dropped, nonPOSIX []string
	skips := cluster.KubeletSkipsInvalidEnvNames()
	for _, key := range obj.EnvKeys {
		env := src.Prefix + key
		switch {
		case skips && len(validation.IsEnvVarName(env)) > 0:
			dropped = append(dropped, key)
		case !posixName.MatchString(env):
			nonPOSIX = append(nonPOSIX, key)
		}
	}
	if len(dropped) > 0 {
		rep.Deny(path, "%s %q %s%s %s: %s, so the container starts without them and only an InvalidEnvironmentVariableNames event says so. Fix: %s",
			kind, name, keyList(dropped), prefixNote(src.Prefix), kubeletDescription(cluster), droppedWhy(cluster), droppedFix(src.Prefix))
	}
	if len(nonPOSIX) > 0 {
		what, them := "are not POSIX environment variable names", "them"
		if len(nonPOSIX) == 1 {
			what, them = "is not a POSIX environment variable name", "it"
		}
		msg := fmt.Sprintf("%s %q %s%s %s: the process receives %s, but sh, ${VAR} expansion and most tools cannot read %s. Fix: rename to letters, digits and \"_\", or mount the %s as a volume and read the files",
			kind, name, keyList(nonPOSIX), prefixNote(src.Prefix), what, them, them, kind)
		if p.posixDeny {
			rep.Deny(path, "%s", msg)
		} else {
			rep.Warn(path, "%s", msg)
		}
	}
}

// kubeletDescription names the kubelet behaviour the verdict assumes.
func kubeletDescription(c Cluster) string {
	if c.KubeletVersion == nil {
		return "would be skipped by the kubelet (target version unknown, so the behaviour of v1.29 and older is assumed)"
	}
	return fmt.Sprintf("would be skipped by the target kubelet v%s", c.KubeletVersion)
}

func droppedWhy(Cluster) string {
	return "kubelets up to v1.29 skip envFrom keys that are not valid environment variable names ([-._a-zA-Z][-._a-zA-Z0-9]*)"
}

func droppedFix(prefix string) string {
	if prefix == "" {
		return "rename the keys so that they start with a letter or \"_\", or give this envFrom a prefix that starts with a letter (e.g. prefix: CFG_)"
	}
	return fmt.Sprintf("change the prefix %q so that it starts with a letter or \"_\", or rename the keys", prefix)
}

// keyList renders `key "a"` or `keys "a", "b"`.
func keyList(keys []string) string {
	if len(keys) == 1 {
		return fmt.Sprintf("key %q", keys[0])
	}
	return "keys " + quoteList(keys)
}

func prefixNote(prefix string) string {
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf(" (with prefix %q)", prefix)
}
