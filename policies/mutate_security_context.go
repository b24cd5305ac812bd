package policies

import (
	"fmt"
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

// What restricted does for an inspected image that runs as root or as a
// user name.
const (
	RootImagesWarn      = "warn"
	RootImagesRunAsUser = "runAsUser"
)

// SecurityContextConfig configures the security-context policy.
//
//	securityContext:
//	  profile: baseline   # or restricted
//	  rootImages: warn    # or runAsUser (restricted only)
//	  runAsUser: 10001    # required with rootImages: runAsUser
type SecurityContextConfig struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Profile is what gets filled in: "baseline" (the default) or
	// "restricted". See securityContext for what each one sets.
	//
	// The default is baseline because it does not break images that run as
	// root, and podguard runs cluster-wide: most official images (tomcat,
	// nginx, postgres, redis) start as root, and restricted's runAsNonRoot
	// would make every one of them fail at start with
	// CreateContainerConfigError at its next rollout. Restricted sets
	// runAsNonRoot only where the user is known to be a non-zero uid (an
	// explicit runAsUser, or an inspected image's numeric USER), so it needs
	// image inspection, or explicit runAsUsers, to harden most pods.
	Profile string `json:"profile,omitempty"`
	// RootImages says what restricted does for a container whose inspected
	// image runs as root or as a user name, which the kubelet refuses to
	// start with runAsNonRoot: "warn" (the default) leaves runAsNonRoot
	// unset for it and says so; "runAsUser" sets the container's runAsUser
	// to RunAsUser, and then runAsNonRoot. The image must then work as that
	// uid (a writable home or data directory owned by root breaks).
	RootImages string `json:"rootImages,omitempty"`
	// RunAsUser is the uid rootImages: runAsUser gives such containers:
	// required then, and > 0.
	RunAsUser *int64 `json:"runAsUser,omitempty"`
}

func (c *SecurityContextConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
	if c.Profile == "" {
		c.Profile = ProfileBaseline
	}
	if c.RootImages == "" {
		c.RootImages = RootImagesWarn
	}
}

func (c *SecurityContextConfig) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Profile != ProfileBaseline && c.Profile != ProfileRestricted {
		errs = append(errs, field.NotSupported(path.Child("profile"), c.Profile, []string{ProfileBaseline, ProfileRestricted}))
	}
	switch c.RootImages {
	case RootImagesWarn:
		if c.RunAsUser != nil {
			errs = append(errs, field.Invalid(path.Child("runAsUser"), *c.RunAsUser, "is used only with rootImages: runAsUser"))
		}
	case RootImagesRunAsUser:
		if c.RunAsUser == nil {
			errs = append(errs, field.Required(path.Child("runAsUser"), "the uid to run root and named-user images as, with rootImages: runAsUser"))
		} else if *c.RunAsUser <= 0 {
			errs = append(errs, field.Invalid(path.Child("runAsUser"), *c.RunAsUser, "must be a non-root user ID (> 0)"))
		}
	default:
		errs = append(errs, field.NotSupported(path.Child("rootImages"), c.RootImages, []string{RootImagesWarn, RootImagesRunAsUser}))
	}
	return errs
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
//   - runAsNonRoot: true, for the containers that inherit it (set none of
//     their own) and whose user is known to be a non-zero uid: the runAsUser
//     in effect (the container's, else the pod's), else the USER of the
//     container's inspected image (World.Image says ImageKnown) when it is a
//     number. It is set at pod level when every inheriting container (and
//     every ephemeral container already in the spec) qualifies, else on
//     each one that does. It is not set for pods in a user namespace
//     (hostUsers: false), whose root is not the node's root and which Pod
//     Security exempts from this rule since v1.35.
//
// Restricted never sets runAsNonRoot on a container the kubelet's
// verifyRunAsNonRoot would then refuse to start (CreateContainerConfigError).
// The containers it leaves out:
//
//   - one that is explicitly root (runAsUser: 0, or the Windows user
//     ContainerAdministrator): runAsNonRoot would only turn that choice into
//     a start failure; nothing is said;
//   - one whose inspected image runs as root (no USER, or uid 0: "image will
//     run as root") or as a name ("non-numeric user ... cannot verify user
//     is non-root"): with rootImages: warn (the default) it is left unset
//     with a warning, once per image, naming the containers, the image, its
//     USER, what the kubelet would say and the fix; with rootImages:
//     runAsUser the container gets the configured runAsUser, and then
//     runAsNonRoot (not on Windows, whose kubelet checks the image's user
//     against ContainerAdministrator, and where any other user qualifies);
//   - one whose image was not inspected: podguard cannot know, and setting
//     it blindly is what let root images be admitted and then refused. It is
//     left unset with a warning, once per image, saying why the user is
//     unknown (image inspection is off, the registry is not one podguard
//     may contact, or the image was not inspected yet). Set runAsUser, or
//     runAsNonRoot yourself, to harden such a container.
//
// So restricted passes Pod Security restricted only for containers whose
// user is known to be non-root; the others keep what the user wrote, and
// the warnings say which. With rootImages: runAsUser, a container that
// already has runAsNonRoot: true in effect, no runAsUser and an inspected
// root or named-user image gets the configured runAsUser as well.
//
// Both profiles, and every pod: a container with runAsNonRoot: true in
// effect is denied when the kubelet would refuse to start it: with
// runAsUser: 0 in effect ("container's runAsUser breaks non-root policy";
// the API server does not check this), or, with no runAsUser, when its
// inspected image runs as root or as a name. The denial gives the fix: a
// non-zero runAsUser, or an image whose USER is a non-root uid. Ephemeral
// containers are checked too; Windows pods are not.
//
// A container an admin's image exemption lifts from this policy keeps the
// security context it would have had without podguard: when it would inherit
// a pod-level field podguard adds, that field is set on each other
// inheriting container instead of the pod.
//
// Init containers and native sidecars are treated like containers.
// Ephemeral containers are left alone: they are added through a subresource
// that podguard does not mutate. Windows pods (spec.os.name: windows) get
// runAsNonRoot only (under the rules above): the API server rejects seccompProfile, capabilities and
// allowPrivilegeEscalation on them, and Pod Security exempts them from those
// rules.
type securityContext struct {
	restricted bool
	// rootImageUser is the uid restricted gives a container whose inspected
	// image runs as root or as a name (rootImages: runAsUser); nil warns.
	rootImageUser *int64
}

func newSecurityContext(c SecurityContextConfig) *securityContext {
	p := &securityContext{restricted: c.Profile == ProfileRestricted}
	if c.RootImages == RootImagesRunAsUser && c.RunAsUser != nil {
		p.rootImageUser = ptr.To(*c.RunAsUser)
	}
	return p
}

func (p *securityContext) Name() string { return SecurityContextName }

// profile is the configured profile.
func (p *securityContext) profile() string {
	if p.restricted {
		return ProfileRestricted
	}
	return ProfileBaseline
}

func (p *securityContext) Mutate(in Input) (*Pod, Report) {
	rep := in.report()
	out := in.Pod.DeepCopy()
	exempt := func(Container) bool { return false }
	if len(in.exempt) > 0 {
		paths := sets.New(in.exempt...)
		exempt = func(c Container) bool { return paths.Has(c.Path.String()) }
	}
	images := newPodImages(in)
	// The namespace's profile label, when valid, chooses the profile.
	q := *p
	profile, invalid := profileFor(p.profile(), in.World, in.Pod.Namespace)
	if invalid != "" {
		rep.Warn(nil, "%s", invalid)
	}
	q.restricted = profile == ProfileRestricted
	changed := q.harden(out, exempt, images, &rep)
	// The pod as it leaves podguard, so that its own output passes.
	verifyRunAsNonRoot(out, images, &rep)
	if !changed {
		return in.Pod, rep
	}
	return out, rep
}

// harden fills in pod's unset fields in place and reports whether it changed
// anything. The containers an admin's image exemption lifts from the policy
// (exempt) keep their effective security context: a pod-level field that
// one of them would inherit is not set, and each other container that would
// inherit it gets it at container level instead.
func (p *securityContext) harden(pod *Pod, exempt func(Container) bool, images *podImages, rep *Report) bool {
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
	if p.restricted && p.setRunAsNonRoot(pod, containers, exempt, images, rep) {
		changed = true
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

// setRunAsNonRoot sets runAsNonRoot for the containers that inherit it
// (set none of their own) and are known to run as a non-root user: at pod
// level when every inheriting container is, else on each of them. With
// rootImages: runAsUser, a container whose inspected image runs as root or
// as a name first gets the configured runAsUser. The others are left as they
// are, with a warning, once per image, when their image is why.
func (p *securityContext) setRunAsNonRoot(pod *Pod, containers []Container, exempt func(Container) bool, images *podImages, rep *Report) bool {
	spec := &pod.Spec
	changed := p.fillRootImageUser(pod, containers, exempt, images)
	if psc := spec.SecurityContext; psc != nil && psc.RunAsNonRoot != nil {
		return changed
	}
	if spec.HostUsers != nil && !*spec.HostUsers {
		return changed
	}
	all := true
	var qualify []Container
	var unset userWarnings
	for _, c := range containers {
		if sc := c.Container.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
			continue
		}
		if exempt(c) {
			all = false
			continue
		}
		u := effectiveUser(pod, c.Container.SecurityContext, c.Container.Image, images)
		switch u.kind {
		case userNonRoot:
			qualify = append(qualify, c)
		case userImageRoot, userImageName:
			if p.rootImageUser != nil && !isWindows(pod) {
				containerSecurityContext(c.Container).RunAsUser = ptr.To(*p.rootImageUser)
				changed = true
				qualify = append(qualify, c)
				continue
			}
			all = false
			unset.add(c, u)
		case userUnknown:
			all = false
			unset.add(c, u)
		default: // explicitly root: the user's choice, which runAsNonRoot would only turn into a start failure
			all = false
		}
	}
	// An ephemeral container already in the spec (podguard check of a
	// pod's manifest) would inherit a pod-level runAsNonRoot too.
	for i := range spec.EphemeralContainers {
		ec := &spec.EphemeralContainers[i]
		if ec.SecurityContext == nil || ec.SecurityContext.RunAsNonRoot == nil {
			if effectiveUser(pod, ec.SecurityContext, ec.Image, images).kind != userNonRoot {
				all = false
			}
		}
	}
	if len(qualify) > 0 {
		changed = true
		if all {
			podSecurityContext(spec).RunAsNonRoot = ptr.To(true)
		} else {
			for _, c := range qualify {
				containerSecurityContext(c.Container).RunAsNonRoot = ptr.To(true)
			}
		}
	}
	unset.report(rep, isWindows(pod))
	return changed
}

// fillRootImageUser gives the configured runAsUser (rootImages: runAsUser)
// to the containers that already have runAsNonRoot: true in effect, no
// runAsUser, and an inspected image that runs as root or as a name: the pod
// as written would be refused by the kubelet, and runAsUser is a field it
// left unset.
func (p *securityContext) fillRootImageUser(pod *Pod, containers []Container, exempt func(Container) bool, images *podImages) bool {
	if p.rootImageUser == nil || isWindows(pod) {
		return false
	}
	podNonRoot := pod.Spec.SecurityContext != nil && ptr.Deref(pod.Spec.SecurityContext.RunAsNonRoot, false)
	changed := false
	for _, c := range containers {
		sc := c.Container.SecurityContext
		nonRoot := podNonRoot
		if sc != nil && sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if !nonRoot || exempt(c) {
			continue
		}
		if k := effectiveUser(pod, sc, c.Container.Image, images).kind; k == userImageRoot || k == userImageName {
			containerSecurityContext(c.Container).RunAsUser = ptr.To(*p.rootImageUser)
			changed = true
		}
	}
	return changed
}

// userKind is what podguard knows of the user a container runs as.
type userKind int

const (
	// userNonRoot is a known non-zero uid: the pod spec's runAsUser, or an
	// inspected image's numeric USER (on Windows: any user other than
	// ContainerAdministrator).
	userNonRoot userKind = iota
	// userExplicitRoot is root written in the pod spec.
	userExplicitRoot
	// userImageRoot is an inspected image that runs as root.
	userImageRoot
	// userImageName is an inspected image whose USER is a name, which the
	// kubelet cannot verify.
	userImageName
	// userUnknown is an image that was not inspected, and no runAsUser.
	userUnknown
)

type containerUser struct {
	kind  userKind
	image ImageFacts
	// name is the image's user name (userImageName).
	name string
}

// effectiveUser is the user a container runs as, as the kubelet's
// verifyRunAsNonRoot sees it: the container's runAsUser, else the pod's,
// else the image's USER (empty is root). On Windows the kubelet checks the
// runAsUserName, else the image's user, against ContainerAdministrator.
func effectiveUser(pod *Pod, sc *corev1.SecurityContext, image string, images *podImages) containerUser {
	psc := pod.Spec.SecurityContext
	if isWindows(pod) {
		var name *string
		if psc != nil && psc.WindowsOptions != nil {
			name = psc.WindowsOptions.RunAsUserName
		}
		if sc != nil && sc.WindowsOptions != nil && sc.WindowsOptions.RunAsUserName != nil {
			name = sc.WindowsOptions.RunAsUserName
		}
		if name != nil {
			if isWindowsAdministrator(*name) {
				return containerUser{kind: userExplicitRoot}
			}
			return containerUser{kind: userNonRoot}
		}
		f := images.get(image)
		switch {
		case !f.Known():
			return containerUser{kind: userUnknown, image: f}
		case isWindowsAdministrator(f.User):
			return containerUser{kind: userImageRoot, image: f}
		}
		return containerUser{kind: userNonRoot, image: f}
	}
	var uid *int64
	if psc != nil {
		uid = psc.RunAsUser
	}
	if sc != nil && sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if uid != nil {
		if *uid == 0 {
			return containerUser{kind: userExplicitRoot}
		}
		return containerUser{kind: userNonRoot}
	}
	f := images.get(image)
	if !f.Known() {
		return containerUser{kind: userUnknown, image: f}
	}
	u := ParseImageUser(f.User)
	switch {
	case u.UID == nil:
		return containerUser{kind: userImageName, image: f, name: u.Name}
	case *u.UID == 0:
		return containerUser{kind: userImageRoot, image: f}
	}
	return containerUser{kind: userNonRoot, image: f}
}

func isWindowsAdministrator(name string) bool {
	return strings.EqualFold(name, "ContainerAdministrator")
}

// userWarnings gathers, per image, the containers runAsNonRoot was left
// unset for, so that each image is warned about once.
type userWarnings struct {
	order []string
	byRef map[string]*userWarning
}

type userWarning struct {
	path  *field.Path
	names []string
	user  containerUser
}

func (w *userWarnings) add(c Container, u containerUser) {
	if w.byRef == nil {
		w.byRef = map[string]*userWarning{}
	}
	ref := c.Container.Image
	if x, ok := w.byRef[ref]; ok {
		x.names = append(x.names, c.Container.Name)
		return
	}
	w.order = append(w.order, ref)
	w.byRef[ref] = &userWarning{path: c.Path.Child("image"), names: []string{c.Container.Name}, user: u}
}

func (w *userWarnings) report(rep *Report, windows bool) {
	for _, ref := range w.order {
		x := w.byRef[ref]
		rep.WarnFunc(x.path, func() string {
			return fmt.Sprintf("runAsNonRoot was left unset for %s %s: %s", plural(len(x.names), "container", "containers"), quoteList(x.names), x.user.why(windows))
		})
	}
}

// why says why runAsNonRoot cannot be set for a container, what the kubelet
// would say, and the fix.
func (u containerUser) why(windows bool) string {
	img := quote(u.image.Ref)
	const rootFix = "use an image whose USER is a non-root uid, or set runAsUser to a non-zero uid the image can run as (securityContext.rootImages: runAsUser in podguard's config does so)"
	switch {
	case windows && u.kind == userImageRoot:
		return fmt.Sprintf("its image %s runs as ContainerAdministrator, and with runAsNonRoot: true the kubelet would refuse to start it. Fix: set securityContext.windowsOptions.runAsUserName to a non-administrator user (ContainerUser), or use an image that runs as one", img)
	case windows:
		return fmt.Sprintf("the user its image runs as is unknown (%s), and with runAsNonRoot: true the kubelet refuses to start an image that runs as ContainerAdministrator. Fix: set securityContext.windowsOptions.runAsUserName, or runAsNonRoot: true yourself if the image runs as another user", u.image.userUnknown())
	case u.kind == userImageRoot:
		return fmt.Sprintf("its image %s runs as root (%s), and with runAsNonRoot: true the kubelet would refuse to start it (\"container has runAsNonRoot and image will run as root\"). Fix: %s", img, describeImageUser(u.image.User), rootFix)
	case u.kind == userImageName && u.name == "root":
		// Named, so unverifiable, and root besides: its uid is no fix.
		return fmt.Sprintf("its image %s runs as the user name %s (%s), which the kubelet cannot verify: with runAsNonRoot: true it would refuse to start it (%s). Fix: %s",
			img, quote(u.name), describeImageUser(u.image.User), quote(nonNumericUserError(u.name)), rootFix)
	case u.kind == userImageName:
		return fmt.Sprintf("its image %s runs as the user name %s (%s), which the kubelet cannot verify: with runAsNonRoot: true it would refuse to start it (%s). Fix: set runAsUser to that user's uid, or %s",
			img, quote(u.name), describeImageUser(u.image.User), quote(nonNumericUserError(u.name)), rootFix)
	}
	return fmt.Sprintf("the user its image %s runs as is unknown (%s), and with runAsNonRoot: true the kubelet refuses to start an image that runs as root or as a user name. Fix: set runAsUser to a non-zero uid, or runAsNonRoot: true yourself if the image's USER is a non-root uid",
		img, u.image.userUnknown())
}

// nonNumericUserError is what the kubelet says of an image whose user is a
// name. The name comes from the image's config, so it is cut to MaxQuoted
// like anything else a message quotes.
func nonNumericUserError(name string) string {
	if q := quote(name); len(q) > MaxQuoted {
		name = q
	}
	return fmt.Sprintf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", name)
}

// describeImageUser quotes an image config's USER for messages.
func describeImageUser(user string) string {
	if user == "" {
		return "it sets no USER"
	}
	return "USER " + quote(user)
}

// verifyRunAsNonRoot denies the containers the kubelet would refuse to start
// because of runAsNonRoot (pkg/kubelet/kuberuntime, verifyRunAsNonRoot):
// with runAsNonRoot: true in effect, a runAsUser of 0, or, with no
// runAsUser, an inspected image whose USER is root or a name. Such a pod is
// admitted by the API server and then sits in CreateContainerConfigError.
// Ephemeral containers are checked too: the kubelet checks them the same
// way. Windows pods are left alone: the kubelet checks them against
// ContainerAdministrator, and only warns about runAsUser.
func verifyRunAsNonRoot(pod *Pod, images *podImages, rep *Report) {
	if isWindows(pod) {
		return
	}
	psc := pod.Spec.SecurityContext
	check := func(ctrPath *field.Path, name, image string, sc *corev1.SecurityContext) {
		nonRoot, nonRootFrom := (*bool)(nil), "the pod's securityContext"
		if psc != nil {
			nonRoot = psc.RunAsNonRoot
		}
		if sc != nil && sc.RunAsNonRoot != nil {
			nonRoot, nonRootFrom = sc.RunAsNonRoot, "its own securityContext"
		}
		if !ptr.Deref(nonRoot, false) {
			return
		}
		var uid *int64
		uidPath, uidFrom := ctrPath, "the pod's securityContext"
		if psc != nil {
			uid = psc.RunAsUser
		}
		if sc != nil && sc.RunAsUser != nil {
			uid, uidPath, uidFrom = sc.RunAsUser, ctrPath.Child("securityContext", "runAsUser"), "its own securityContext"
		}
		if uid != nil {
			if *uid == 0 {
				rep.Deny(uidPath, "container %s has runAsNonRoot: true (from %s) and runAsUser: 0 (from %s): the kubelet refuses to start it (\"container's runAsUser breaks non-root policy\") and the pod sits in CreateContainerConfigError. Fix: set runAsUser to a non-zero uid, or runAsNonRoot: false if the container must run as root",
					quote(name), nonRootFrom, uidFrom)
			}
			return
		}
		u := effectiveUser(pod, sc, image, images)
		if u.kind != userImageRoot && u.kind != userImageName {
			return
		}
		rep.DenyFunc(ctrPath.Child("image"), func() string {
			kubelet := "container has runAsNonRoot and image will run as root"
			what := fmt.Sprintf("runs as root (%s)", describeImageUser(u.image.User))
			if u.kind == userImageName {
				kubelet = nonNumericUserError(u.name)
				what = fmt.Sprintf("runs as the user name %s (%s), which the kubelet cannot verify", quote(u.name), describeImageUser(u.image.User))
			}
			return fmt.Sprintf("container %s has runAsNonRoot: true (from %s) and no runAsUser, and its image %s %s: the kubelet refuses to start it (%s) and the pod sits in CreateContainerConfigError. Fix: set runAsUser to a non-zero uid the image can run as, or use an image whose USER is a non-root uid",
				quote(name), nonRootFrom, quote(image), what, quote(kubelet))
		})
	}
	for _, c := range pod.Containers() {
		check(c.Path, c.Container.Name, c.Container.Image, c.Container.SecurityContext)
	}
	for i := range pod.Spec.EphemeralContainers {
		ec := &pod.Spec.EphemeralContainers[i]
		check(pod.SpecPath.Child("ephemeralContainers").Index(i), ec.Name, ec.Image, ec.SecurityContext)
	}
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
