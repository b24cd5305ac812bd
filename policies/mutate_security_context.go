package policies

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// SecurityContextName is the name of the security-context policy.
const SecurityContextName = "security-context"

// Security context profiles.
const (
	ProfileBaseline   = "baseline"
	ProfileRestricted = "restricted"
)

// SecurityContextConfig configures the security-context policy.
//
//	securityContext:
//	  profile: baseline   # or restricted
type SecurityContextConfig struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Profile is what gets filled in: "baseline" (the default) or
	// "restricted". See securityContext for what each one sets.
	//
	// The default is baseline because it does not break images that run as
	// root, and podguard runs cluster-wide: most official images (tomcat,
	// nginx, postgres, redis) start as root, and restricted's runAsNonRoot
	// would make every one of them fail at start with
	// CreateContainerConfigError at its next rollout. Restricted is for
	// clusters or namespaces whose images are known to run as non-root.
	Profile string `json:"profile,omitempty"`
}

func (c *SecurityContextConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
	if c.Profile == "" {
		c.Profile = ProfileBaseline
	}
}

func (c *SecurityContextConfig) validate(path *field.Path) field.ErrorList {
	if c.Profile != ProfileBaseline && c.Profile != ProfileRestricted {
		return field.ErrorList{field.NotSupported(path.Child("profile"), c.Profile, []string{ProfileBaseline, ProfileRestricted})}
	}
	return nil
}

// legacySeccompPodAnnotation is the pre-1.19 way to set a pod's seccomp
// profile. The kubelet ignores it since 1.27, but the API server still
// rejects a pod whose annotation and seccompProfile field disagree.
const legacySeccompPodAnnotation = "seccomp.security.alpha.kubernetes.io/pod"

// securityContext fills in hardened security context fields that a pod left
// unset. It never overrides a value the user wrote, at pod or container
// level, and it never sets a field that would make the API server reject the
// pod or that has no effect.
//
// Both profiles, on Linux pods:
//
//   - spec.securityContext.seccompProfile: {type: RuntimeDefault}, when the
//     pod sets none and at least one container inherits it (sets none of its
//     own). A container's own profile wins over the pod's at run time, so a
//     container that chose Unconfined stays Unconfined. Docker applies its
//     default profile to every container, so images tested with `docker run`
//     already work under RuntimeDefault; without it, Kubernetes runs them
//     unconfined (unless the kubelet runs with --seccomp-default). The legacy
//     annotation seccomp.security.alpha.kubernetes.io/pod counts as the
//     user's choice: the field is set only when the annotation says
//     runtime/default or docker/default, because the API server rejects a
//     field that disagrees with the annotation.
//   - containers[*].securityContext.allowPrivilegeEscalation: false, unless
//     the container is privileged or adds CAP_SYS_ADMIN (or ALL): the API
//     server rejects allowPrivilegeEscalation: false with privileged: true or
//     with CAP_SYS_ADMIN added, and such a container can escalate anyway. It
//     sets no_new_privs, which does not affect a process that already runs
//     as root; it stops setuid binaries and file capabilities, so a
//     non-root image that uses sudo or su, or a binary with
//     cap_net_bind_service, needs allowPrivilegeEscalation: true written
//     out.
//
// Baseline does not drop capabilities. Dropping NET_RAW is the usual
// candidate, but it is not required by Pod Security baseline, and it breaks
// at run time, silently, what root images legitimately do with the default
// capability set: ping and traceroute in monitoring tools (blackbox
// exporter, uptime checks), tcpdump, arping, keepalived. Restricted drops
// ALL instead, on purpose.
//
// Restricted adds what Pod Security "restricted" (latest) requires beyond
// baseline:
//
//   - containers[*].securityContext.capabilities.drop: ["ALL"], when drop is
//     empty and the container is not privileged (runtimes ignore capabilities
//     of privileged containers). Capabilities the user adds are kept: the
//     runtime drops ALL first and then adds them back, which is how a
//     container keeps NET_BIND_SERVICE.
//   - spec.securityContext.runAsNonRoot: true, when the pod sets none and at
//     least one container inherits it. It is not set when an inheriting
//     container is explicitly root (runAsUser: 0, or the Windows user
//     ContainerAdministrator), since it would only turn that explicit choice
//     into a start failure, nor for pods in a user namespace (hostUsers:
//     false), whose root is not the node's root and which Pod Security
//     exempts from this rule since v1.35.
//
// Restricted does not set runAsUser: an image with a numeric non-root USER
// runs as is. The trade-off is that an image whose USER is root (or a user
// name the kubelet cannot verify) fails at start with "container has
// runAsNonRoot and image will run as root": the fix is a non-root image or an
// explicit runAsUser. The same applies to ephemeral debug containers added
// later, which inherit the pod-level runAsNonRoot and seccompProfile.
//
// A container an admin's image exemption lifts from this policy keeps the
// security context it would have had without podguard: when it would inherit
// a pod-level field podguard adds, that field is set on each other
// inheriting container instead of the pod.
//
// Init containers and native sidecars are treated like containers.
// Ephemeral containers are left alone: they are added through a subresource
// that podguard does not mutate. Windows pods (spec.os.name: windows) get
// runAsNonRoot only: the API server rejects seccompProfile, capabilities and
// allowPrivilegeEscalation on them, and Pod Security exempts them from those
// rules.
type securityContext struct {
	restricted bool
}

func newSecurityContext(c SecurityContextConfig) *securityContext {
	return &securityContext{restricted: c.Profile == ProfileRestricted}
}

func (p *securityContext) Name() string { return SecurityContextName }

func (p *securityContext) Mutate(in Input) (*Pod, Report) {
	out := in.Pod.DeepCopy()
	exempt := func(Container) bool { return false }
	if len(in.exempt) > 0 {
		paths := sets.New(in.exempt...)
		exempt = func(c Container) bool { return paths.Has(c.Path.String()) }
	}
	if !p.harden(out, exempt) {
		return in.Pod, Report{}
	}
	return out, Report{}
}

// harden fills in pod's unset fields in place and reports whether it changed
// anything. The containers an admin's image exemption lifts from the policy
// (exempt) keep their effective security context: a pod-level field that
// one of them would inherit is not set, and each other container that would
// inherit it gets it at container level instead.
func (p *securityContext) harden(pod *Pod, exempt func(Container) bool) bool {
	spec := &pod.Spec
	linux := spec.OS == nil || spec.OS.Name != corev1.Windows
	containers := pod.Containers()
	changed := false

	if inheritors := podSeccompInheritors(pod, containers); linux && len(inheritors) > 0 {
		if others, ok := withoutExempt(inheritors, exempt); ok {
			podSecurityContext(spec).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
			changed = true
		} else {
			for _, c := range others {
				containerSecurityContext(c.Container).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
				changed = true
			}
		}
	}
	if inheritors := runAsNonRootInheritors(spec, containers, exempt); p.restricted && len(inheritors) > 0 {
		if others, ok := withoutExempt(inheritors, exempt); ok {
			podSecurityContext(spec).RunAsNonRoot = ptr.To(true)
			changed = true
		} else {
			for _, c := range others {
				containerSecurityContext(c.Container).RunAsNonRoot = ptr.To(true)
				changed = true
			}
		}
	}
	if !linux {
		return changed
	}
	for _, c := range containers {
		if exempt(c) {
			continue
		}
		sc := c.Container.SecurityContext
		privileged := sc != nil && ptr.Deref(sc.Privileged, false)
		if !privileged && !addsSysAdmin(sc) && (sc == nil || sc.AllowPrivilegeEscalation == nil) {
			containerSecurityContext(c.Container).AllowPrivilegeEscalation = ptr.To(false)
			changed = true
		}
		if p.restricted && !privileged && (sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) == 0) {
			sc := containerSecurityContext(c.Container)
			if sc.Capabilities == nil {
				sc.Capabilities = &corev1.Capabilities{}
			}
			sc.Capabilities.Drop = []corev1.Capability{"ALL"}
			changed = true
		}
	}
	return changed
}

// withoutExempt returns the containers that are not exempt, and whether
// none was.
func withoutExempt(cs []Container, exempt func(Container) bool) ([]Container, bool) {
	var out []Container
	for _, c := range cs {
		if !exempt(c) {
			out = append(out, c)
		}
	}
	return out, len(out) == len(cs)
}

// podSeccompInheritors returns the containers a pod-level seccomp profile
// would reach, when it is unset and may be set without contradicting the
// legacy annotation; else none.
func podSeccompInheritors(pod *Pod, containers []Container) []Container {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		return nil
	}
	if legacy, ok := pod.Meta.Annotations[legacySeccompPodAnnotation]; ok && legacy != "runtime/default" && legacy != "docker/default" {
		return nil
	}
	var out []Container
	for _, c := range containers {
		if sc := c.Container.SecurityContext; sc == nil || sc.SeccompProfile == nil {
			out = append(out, c)
		}
	}
	return out
}

// runAsNonRootInheritors returns the containers a pod-level runAsNonRoot
// would reach, when it is unset and would not contradict an explicit root
// user of a container that is not exempt (an exempt one does not get it);
// else none.
func runAsNonRootInheritors(spec *corev1.PodSpec, containers []Container, exempt func(Container) bool) []Container {
	psc := spec.SecurityContext
	if psc != nil && psc.RunAsNonRoot != nil {
		return nil
	}
	if spec.HostUsers != nil && !*spec.HostUsers {
		return nil
	}
	var podUser *int64
	var podUserName *string
	if psc != nil {
		podUser = psc.RunAsUser
		if psc.WindowsOptions != nil {
			podUserName = psc.WindowsOptions.RunAsUserName
		}
	}
	var inherits []Container
	for _, c := range containers {
		user, userName := podUser, podUserName
		if sc := c.Container.SecurityContext; sc != nil {
			if sc.RunAsNonRoot != nil {
				continue
			}
			if sc.RunAsUser != nil {
				user = sc.RunAsUser
			}
			if sc.WindowsOptions != nil && sc.WindowsOptions.RunAsUserName != nil {
				userName = sc.WindowsOptions.RunAsUserName
			}
		}
		if !exempt(c) && (ptr.Deref(user, -1) == 0 || strings.EqualFold(ptr.Deref(userName, ""), "ContainerAdministrator")) {
			return nil
		}
		inherits = append(inherits, c)
	}
	return inherits
}

// addsSysAdmin reports whether a container adds CAP_SYS_ADMIN, however it is
// spelled: runtimes upper-case the name and add the CAP_ prefix.
func addsSysAdmin(sc *corev1.SecurityContext) bool {
	if sc == nil || sc.Capabilities == nil {
		return false
	}
	for _, c := range sc.Capabilities.Add {
		switch strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_") {
		case "SYS_ADMIN", "ALL":
			return true
		}
	}
	return false
}

func podSecurityContext(spec *corev1.PodSpec) *corev1.PodSecurityContext {
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	return spec.SecurityContext
}

func containerSecurityContext(c *corev1.Container) *corev1.SecurityContext {
	if c.SecurityContext == nil {
		c.SecurityContext = &corev1.SecurityContext{}
	}
	return c.SecurityContext
}
