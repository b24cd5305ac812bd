package policies

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
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
	if !p.harden(out) {
		return in.Pod, Report{}
	}
	return out, Report{}
}

// harden fills in pod's unset fields in place and reports whether it changed
// anything.
func (p *securityContext) harden(pod *Pod) bool {
	spec := &pod.Spec
	linux := spec.OS == nil || spec.OS.Name != corev1.Windows
	containers := pod.Containers()
	changed := false

	if linux && podSeccompWanted(pod, containers) {
		podSecurityContext(spec).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
		changed = true
	}
	if p.restricted && runAsNonRootWanted(spec, containers) {
		podSecurityContext(spec).RunAsNonRoot = ptr.To(true)
		changed = true
	}
	if !linux {
		return changed
	}
	for _, c := range containers {
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

// podSeccompWanted reports whether the pod-level seccomp profile is unset,
// would reach at least one container, and may be set without contradicting
// the legacy annotation.
func podSeccompWanted(pod *Pod, containers []Container) bool {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		return false
	}
	if legacy, ok := pod.Meta.Annotations[legacySeccompPodAnnotation]; ok && legacy != "runtime/default" && legacy != "docker/default" {
		return false
	}
	for _, c := range containers {
		if sc := c.Container.SecurityContext; sc == nil || sc.SeccompProfile == nil {
			return true
		}
	}
	return false
}

// runAsNonRootWanted reports whether the pod-level runAsNonRoot is unset,
// would reach at least one container, and would not contradict an explicit
// root user.
func runAsNonRootWanted(spec *corev1.PodSpec, containers []Container) bool {
	psc := spec.SecurityContext
	if psc != nil && psc.RunAsNonRoot != nil {
		return false
	}
	if spec.HostUsers != nil && !*spec.HostUsers {
		return false
	}
	var podUser *int64
	var podUserName *string
	if psc != nil {
		podUser = psc.RunAsUser
		if psc.WindowsOptions != nil {
			podUserName = psc.WindowsOptions.RunAsUserName
		}
	}
	inherits := false
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
		if ptr.Deref(user, -1) == 0 || strings.EqualFold(ptr.Deref(userName, ""), "ContainerAdministrator") {
			return false
		}
		inherits = true
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
