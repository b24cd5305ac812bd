package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

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
	// Mode is what the policy's violations do: "enforce" (deny, the
	// default), "warn" or "audit". A namespace label overrides it (see Mode).
	Mode Mode `json:"mode,omitempty"`
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
	defaultMode(&c.Mode)
}

func (c *EnvFromKeysConfig) validate(path *field.Path) field.ErrorList {
	errs := validateMode(c.Mode, path)
	if c.POSIX != POSIXWarn && c.POSIX != POSIXDeny {
		errs = append(errs, field.NotSupported(path.Child("posix"), c.POSIX, []string{POSIXWarn, POSIXDeny}))
	}
	return errs
}

// posixName is the portable shell variable name: what sh, ${VAR} expansion
// and most tools can read.
var posixName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envVarName reports whether validation.IsEnvVarName accepts prefix+key:
// [-._a-zA-Z][-._a-zA-Z0-9]*, and neither ".", ".." nor a name that starts
// with "..". It builds neither the name nor the error messages, which
// IsEnvVarName formats for every name it refuses (about 1 KB each): a
// ConfigMap of 100,000 keys the kubelet drops is judged without 100 MB of
// garbage. FuzzEnvNamesAgreeWithTheKubelet holds the two together.
func envVarName(prefix, key string) bool {
	n := len(prefix) + len(key)
	if n == 0 {
		return false
	}
	at := func(i int) byte {
		if i < len(prefix) {
			return prefix[i]
		}
		return key[i-len(prefix)]
	}
	for i := range n {
		switch c := at(i); {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-', c == '.', c == '_':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return !(at(0) == '.' && (n == 1 || at(1) == '.'))
}

// posixEnvName is posixName.MatchString(prefix+key), without building the
// name.
func posixEnvName(prefix, key string) bool {
	n := len(prefix) + len(key)
	if n == 0 {
		return false
	}
	for i := range n {
		c := byte(0)
		if i < len(prefix) {
			c = prefix[i]
		} else {
			c = key[i-len(prefix)]
		}
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

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
	rep := in.report()
	cluster := in.World.Cluster()
	verdicts := map[string]*keyVerdict{}
	// A World lookup may copy the object's keys (the webhook's cache does):
	// once per object, not once per reference.
	objects := map[string]Object{}
	lookup := func(kind, name string, get func(namespace, name string) Object) Object {
		id := kind + "\x00" + name
		obj, ok := objects[id]
		if !ok {
			obj = get(in.Pod.Namespace, name)
			objects[id] = obj
		}
		return obj
	}
	for _, c := range in.Pod.Containers() {
		for i, src := range c.Container.EnvFrom {
			if in.cancelled() {
				return rep
			}
			p.check(&rep, in, cluster, verdicts, lookup, c.Path.Child("envFrom").Index(i), src)
		}
	}
	for i := range in.Pod.Spec.EphemeralContainers {
		path := in.Pod.SpecPath.Child("ephemeralContainers").Index(i)
		for j, src := range in.Pod.Spec.EphemeralContainers[i].EnvFrom {
			if in.cancelled() {
				return rep
			}
			p.check(&rep, in, cluster, verdicts, lookup, path.Child("envFrom").Index(j), src)
		}
	}
	return rep
}

// keyVerdict is what the kubelet does with one object's keys under one
// class of prefix: every key it drops (a denial carries them all, its
// message lists the first MaxListed), and the keys that are not POSIX
// names: all of them when they are denied (envFromKeys.posixDeny), else the
// first MaxListed, with how many there are in all.
type keyVerdict struct {
	dropped, nonPOSIX []string
	nNonPOSIX         int
}

// envPrefixClass sorts envFrom prefixes into classes that give every
// (non-empty) key the same verdict, so that a pod with thousands of envFrom
// references to one large ConfigMap costs one pass over its keys per class,
// not one per reference. The classes follow validation.IsEnvVarName
// ([-._a-zA-Z][-._a-zA-Z0-9]*, and not ".", ".." or "..*") and posixName:
//   - "": the key alone decides;
//   - a prefix that starts with ".." or is not itself a valid name start:
//     every key is dropped, and none is a POSIX name;
//   - "." : "." + a key that starts with "." is dropped;
//   - a POSIX prefix: the key's characters decide both;
//   - any other valid prefix: the key's characters decide the drop, and no
//     name is POSIX.
//
// TestEnvPrefixClassesAgreeWithTheKubelet checks this against the
// functions themselves.
func envPrefixClass(prefix string) string {
	switch {
	case prefix == "" || prefix == ".":
		return prefix
	case strings.HasPrefix(prefix, "..") || len(validation.IsEnvVarName(prefix)) > 0:
		return "invalid"
	case posixName.MatchString(prefix):
		return "posix"
	default:
		return "valid"
	}
}

// verdict returns the keyVerdict for obj's keys under prefix, computing it
// once per object and prefix class.
func (p *envFromKeys) verdict(in Input, verdicts map[string]*keyVerdict, skips bool, kind, name, prefix string, keys []string) *keyVerdict {
	id := kind + "\x00" + name + "\x00" + envPrefixClass(prefix)
	if v, ok := verdicts[id]; ok {
		return v
	}
	v := &keyVerdict{}
	for i, key := range keys {
		if i%1024 == 1023 && in.cancelled() {
			break
		}
		switch {
		case skips && !envVarName(prefix, key):
			v.dropped = append(v.dropped, key)
		case !posixEnvName(prefix, key):
			if p.posixDeny || v.nNonPOSIX < MaxListed {
				v.nonPOSIX = append(v.nonPOSIX, key)
			}
			v.nNonPOSIX++
		}
	}
	// Clipped: a finding's keys are shared and never appended to.
	v.dropped, v.nonPOSIX = slices.Clip(v.dropped), slices.Clip(v.nonPOSIX)
	verdicts[id] = v
	return v
}

func (p *envFromKeys) check(rep *Report, in Input, cluster Cluster, verdicts map[string]*keyVerdict, lookup func(kind, name string, get func(string, string) Object) Object, path *field.Path, src corev1.EnvFromSource) {
	var kind, name string
	var optional bool
	var obj Object
	switch {
	case src.ConfigMapRef != nil:
		kind, name, optional = "ConfigMap", src.ConfigMapRef.Name, ptr.Deref(src.ConfigMapRef.Optional, false)
		obj = lookup(kind, name, in.World.ConfigMap)
	case src.SecretRef != nil && p.secrets:
		kind, name, optional = "Secret", src.SecretRef.Name, ptr.Deref(src.SecretRef.Optional, false)
		obj = lookup(kind, name, in.World.Secret)
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
			rep.Warn(path, "%s %s was not found %s: the pod will stay in CreateContainerConfigError until it exists (set optional: true if it may be absent)", kind, quote(name), where)
		}
		return
	case Unknown:
		return
	}
	if !obj.KeysKnown {
		return
	}

	v := p.verdict(in, verdicts, cluster.KubeletSkipsInvalidEnvNames(), kind, name, src.Prefix, obj.EnvKeys)
	if len(v.dropped) > 0 {
		rep.DenyKeysFunc(path, v.dropped, func() string {
			return fmt.Sprintf("%s %s %s%s %s: %s, so the container starts without them and only an InvalidEnvironmentVariableNames event says so. Fix: %s",
				kind, quote(name), keyList(v.dropped, len(v.dropped)), prefixNote(src.Prefix), kubeletDescription(cluster), droppedWhy(cluster), droppedFix(src.Prefix))
		})
	}
	if v.nNonPOSIX > 0 {
		what, them := "are not POSIX environment variable names", "them"
		if v.nNonPOSIX == 1 {
			what, them = "is not a POSIX environment variable name", "it"
		}
		msg := func() string {
			return fmt.Sprintf("%s %s %s%s %s: the process receives %s, but sh, ${VAR} expansion and most tools cannot read %s. Fix: rename to letters, digits and \"_\", or mount the %s as a volume and read the files",
				kind, quote(name), keyList(v.nonPOSIX, v.nNonPOSIX), prefixNote(src.Prefix), what, them, them, kind)
		}
		if p.posixDeny {
			rep.DenyKeysFunc(path, v.nonPOSIX, msg)
		} else {
			rep.WarnFunc(path, msg)
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
	return fmt.Sprintf("change the prefix %s so that it starts with a letter or \"_\", or rename the keys", quote(prefix))
}

// keyList renders `key "a"` or `keys "a", "b"`: the first MaxListed of n
// keys, of which keys holds at least those, then "and 9,990 more".
func keyList(keys []string, n int) string {
	if n == 1 {
		return "key " + quote(keys[0])
	}
	list := quoteList(keys[:min(len(keys), MaxListed)])
	if more := n - min(len(keys), MaxListed); more > 0 {
		list += ", and " + thousands(more) + " more"
	}
	return "keys " + list
}

func prefixNote(prefix string) string {
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf(" (with prefix %s)", quote(prefix))
}
