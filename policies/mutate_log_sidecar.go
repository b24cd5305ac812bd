package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard"
	"github.com/podguard/podguard/logstream"
)

// LogSidecarName is the name of the log-sidecar policy.
const LogSidecarName = "log-sidecar"

// LogsAnnotation asks for log sidecars: "[container=]/dir[,...]".
const LogsAnnotation = "podguard.io/logs"

// Where the sidecar sees the shared log directory, and the environment
// variables it gets. A custom command or args can use $(PODGUARD_LOG_DIR),
// which the kubelet expands.
const (
	sidecarLogDir    = "/podguard/logs"
	envLogDir        = logstream.DirEnv // what podguard stream-logs reads
	envSidecarMarker = "PODGUARD_LOG_SIDECAR"
)

// Native sidecar modes.
const (
	NativeAuto   = "auto"
	NativeAlways = "always"
	NativeNever  = "never"
)

// DefaultSidecarImage is podguard's own image, whose binary streams the logs
// (podguard stream-logs): one image to mirror, and streaming code that is
// tested with podguard. It is the release this tree installs
// (ghcr.io/podguard/podguard:VERSION, as in deploy/base); a release binary
// sets it to its own release's image at start-up. Clusters that pull from a
// mirror set logSidecar.image in the config.
var DefaultSidecarImage = podguard.Image(podguard.Version)

// DefaultStreamerCommand runs podguard's log streamer in its own image. It
// reads the directory from $PODGUARD_LOG_DIR.
var DefaultStreamerCommand = []string{"/podguard", "stream-logs"}

// DefaultSidecarUser and DefaultLogsFSGroup are the sidecar's identity when
// neither the config nor the pod gives one: nobody and nogroup.
const (
	DefaultSidecarUser int64 = 65534
	DefaultLogsFSGroup int64 = 65534
)

// LogSidecarConfig configures the log-sidecar policy.
//
//	logSidecar:
//	  image: ghcr.io/podguard/podguard:VERSION   # podguard's own image, of its release
//	  command: [/podguard, stream-logs]          # or e.g. fluent-bit:
//	  # image: cr.fluentbit.io/fluent/fluent-bit:3.2
//	  # command: [/fluent-bit/bin/fluent-bit]
//	  # args: [-i, tail, -p, "path=$(PODGUARD_LOG_DIR)/*", -o, stdout]
//	  native: auto                               # always, never
//	  # runAsUser: unset: the app's uid when the pod or its inspected image gives a non-root one, else 65534
//	  fsGroup: 65534                             # only for pods that set none
//	  resources:
//	    requests: {cpu: 5m, memory: 16Mi}
//	    limits: {memory: 64Mi}
type LogSidecarConfig struct {
	Enabled *bool    `json:"enabled,omitempty"`
	Image   string   `json:"image,omitempty"`
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// Native says whether the sidecar is a native sidecar (an init
	// container with restartPolicy: Always): "auto" when the API server and
	// every kubelet are 1.29 or later, "always", or "never".
	Native string `json:"native,omitempty"`
	// RunAsUser, when set, is the sidecar's user for every pod. Unset, the
	// sidecar runs as the app container's user when the pod spec gives a
	// non-root one, or gives none and the app's inspected image has a
	// numeric non-root USER (so it reads files the app writes with mode
	// 0600), else as 65534.
	RunAsUser *int64 `json:"runAsUser,omitempty"`
	// FSGroup is set as the pod's fsGroup when the pod sets none. The kubelet
	// then makes the log volume group-owned by it and setgid, so every file
	// the app creates there belongs to that group, and the sidecar, which
	// runs with the pod's fsGroup, reads whatever is group-readable (umask
	// 0022 or 0027, whatever the app's uid).
	FSGroup   *int64                      `json:"fsGroup,omitempty"`
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

func (c *LogSidecarConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
	if c.Image == "" {
		c.Image = DefaultSidecarImage
	}
	if len(c.Command) == 0 && len(c.Args) == 0 {
		c.Command = slices.Clone(DefaultStreamerCommand)
	}
	if c.Native == "" {
		c.Native = NativeAuto
	}
	if c.FSGroup == nil {
		c.FSGroup = ptr.To(DefaultLogsFSGroup)
	}
	if c.Resources.Requests == nil && c.Resources.Limits == nil {
		c.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("5m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		}
	}
}

func (c *LogSidecarConfig) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(c.Image) == "" || strings.TrimSpace(c.Image) != c.Image {
		errs = append(errs, field.Invalid(p.Child("image"), c.Image, "must be an image reference without surrounding spaces"))
	}
	if c.Native != NativeAuto && c.Native != NativeAlways && c.Native != NativeNever {
		errs = append(errs, field.NotSupported(p.Child("native"), c.Native, []string{NativeAuto, NativeAlways, NativeNever}))
	}
	if c.RunAsUser != nil && *c.RunAsUser <= 0 {
		errs = append(errs, field.Invalid(p.Child("runAsUser"), *c.RunAsUser, "must be a non-root user ID (> 0), so that the sidecar passes Pod Security restricted"))
	}
	if c.FSGroup != nil && *c.FSGroup <= 0 {
		errs = append(errs, field.Invalid(p.Child("fsGroup"), *c.FSGroup, "must be a group ID > 0: group 0 would make the log files readable as root's group"))
	}
	for name, q := range c.Resources.Requests {
		if lim, ok := c.Resources.Limits[name]; ok && q.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(p.Child("resources", "requests").Key(string(name)), q.String(), "must not be greater than the limit "+lim.String()))
		}
	}
	return errs
}

// logSidecar streams an app container's log files to a sidecar's stdout, so
// that `kubectl logs POD -c <container>-logs` shows them: the tomcat +
// `tail -f` pattern, done for the user.
//
// For each entry of the podguard.io/logs annotation ("[container=]/dir"), the
// app container gets a volume at dir (its existing mount there is reused;
// otherwise an emptyDir is added), and a sidecar mounts the same volume
// read-only and streams it with podguard stream-logs.
//
// The sidecar must be able to read what the app writes, whatever the app's
// uid and umask. Stock tomcat runs as root with umask 0027: its logs are
// 0640 root:root, which a sidecar running as another user in another group
// cannot read. So the pod gets an fsGroup when it sets none: the kubelet
// then makes the volume group-owned by it and setgid, every file created in
// it belongs to that group, and the sidecar, a member of the pod's fsGroup,
// reads every group-readable file (umask 0022 and 0027). A file only its
// owner may read (umask 0077) is readable when the sidecar runs as the app's
// uid, which it does when the pod spec gives a non-root one or, when the
// pod spec gives none, when the app's inspected image has a numeric non-root
// USER (see sidecarUser; when that image was wanted but not inspected in
// time, a warning says the sidecar runs as nobody). When the streamer still
// cannot read a file, it
// says so on its own output. The sidecar is a native sidecar when the
// cluster supports them (it then starts before the app and does not keep a Job's pod
// running), else a regular container. It gets its own resources and a
// restricted security context, so injecting it never makes a pod fail Pod
// Security admission.
//
// A malformed annotation, an unknown container or a relative path denies the
// pod: the user asked for logs and must not silently get none. So does the
// annotation on a Windows pod: the sidecar is Linux-only.
type logSidecar struct {
	cfg LogSidecarConfig
}

func newLogSidecar(c LogSidecarConfig) *logSidecar { return &logSidecar{cfg: c} }

func (p *logSidecar) Name() string { return LogSidecarName }

// logEntry is one container/dir pair of the annotation.
type logEntry struct {
	container string
	dir       string
}

// MaxLogEntries is how many log directories one pod may ask for: each gets
// a sidecar, and a pod with more is far more likely a mistake (or an attack
// on podguard's and the API server's memory) than a design.
const MaxLogEntries = 64

const logsFormat = `a comma-separated list of [container=]/absolute/dir, e.g. "/usr/local/tomcat/logs" or "web=/var/log/app,worker=/var/log/worker" (the container may be omitted when the pod has one container)`

func (p *logSidecar) Mutate(in Input) (*Pod, Report) {
	rep := in.report()
	raw, ok := in.Pod.Meta.Annotations[LogsAnnotation]
	if !ok {
		return in.Pod, rep
	}
	annPath := in.Pod.MetaPath.Child("annotations").Key(LogsAnnotation)
	if isWindows(in.Pod) {
		// The sidecar's image is Linux-only, and the API server rejects the
		// Linux security settings it runs with on a Windows pod.
		rep.Deny(annPath, "the log sidecar is Linux-only, and this is a Windows pod (spec.os.name: windows): no log sidecar was added. Remove the annotation and collect the logs another way (a node-level log agent, or a Windows sidecar of your own)")
		return in.Pod, rep
	}
	problems := 0
	entries := parseLogsAnnotation(in, raw, func(format string, args ...any) {
		problems++
		rep.Deny(annPath, format+"; expected %s. No log sidecar was added", append(args, logsFormat)...)
	})
	if problems > 0 || len(entries) == 0 || in.cancelled() {
		return in.Pod, rep
	}

	native := p.cfg.Native == NativeAlways || (p.cfg.Native == NativeAuto && in.World != nil && in.World.Cluster().NativeSidecars())
	out := in.Pod.DeepCopy()
	if out.Spec.SecurityContext == nil {
		out.Spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if out.Spec.SecurityContext.FSGroup == nil && !isWindows(out) {
		out.Spec.SecurityContext.FSGroup = ptr.To(*p.cfg.FSGroup)
		// Only the volume's top directory decides whether the kubelet walks
		// it: the pod's other volumes (a large PVC) are not re-chowned on
		// every start.
		if out.Spec.SecurityContext.FSGroupChangePolicy == nil {
			out.Spec.SecurityContext.FSGroupChangePolicy = ptr.To(corev1.FSGroupChangeOnRootMismatch)
		}
	}
	perContainer := map[string]int{}
	ix := newPodIndex(out)
	images := newPodImages(in)
	// A sidecar whose uid the app's image would have given, had it been
	// inspected in time, says so, once per image.
	guessed := func(app *corev1.Container, f ImageFacts) {
		if !images.once(app.Image) {
			return
		}
		for i := range out.Spec.Containers {
			if out.Spec.Containers[i].Name == app.Name {
				rep.Warn(out.SpecPath.Child("containers").Index(i).Child("image"),
					"%s, so the log sidecar of container %s runs as %d rather than as the app's uid: it reads the log files that are group-readable, not those the app keeps to its owner",
					f.notInspectedYet(), quote(app.Name), DefaultSidecarUser)
				return
			}
		}
	}
	for _, e := range entries {
		perContainer[e.container]++
		p.inject(out, ix, images, guessed, e, perContainer[e.container], native)
	}
	if !native && (in.Pod.Spec.RestartPolicy == corev1.RestartPolicyNever || in.Pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure) {
		rep.Warn(annPath, "the log sidecar runs as a regular container because native sidecars (Kubernetes 1.29+) are not available: it keeps running after the app exits, so a Job's pod will not complete on its own")
	}
	if apiequality.Semantic.DeepEqual(out.Spec, in.Pod.Spec) {
		return in.Pod, rep
	}
	return out, rep
}

// parseLogsAnnotation reads "[container=]/dir[,...]" against the pod's app
// containers: its containers less the log sidecars podguard injected as
// regular containers (on clusters without native sidecars), so that a pod
// podguard already mutated reads the same on reinvocation. Each problem is
// reported through deny. Its cost is linear in the annotation and the
// containers: messages quote at most MaxQuoted bytes of the annotation and
// MaxListed container names, and once the report is full deny formats
// nothing.
func parseLogsAnnotation(in Input, raw string, deny func(format string, args ...any)) []logEntry {
	var entries []logEntry
	seen := map[logEntry]bool{}
	apps := appContainers(in.Pod.Spec.Containers)
	names := make(map[string]bool, len(apps))
	for i := range apps {
		names[apps[i].Name] = true
	}
	containerList := ""
	listContainers := func() string {
		if containerList == "" {
			containerList = quoteList(containerNames(apps))
			if containerList == "" {
				containerList = "none"
			}
		}
		return containerList
	}
	quotedRaw := ""
	rest := raw
	for i := 0; ; i++ {
		if i%256 == 255 && in.cancelled() {
			return nil
		}
		part, tail, more := strings.Cut(rest, ",")
		rest = tail
		part = strings.TrimSpace(part)
		switch {
		case part == "":
			if quotedRaw == "" {
				quotedRaw = quote(raw)
			}
			deny("entry %d of %s is empty", i+1, quotedRaw)
		default:
			if e, ok := parseLogEntry(part, apps, names, listContainers, deny); ok && !seen[e] {
				seen[e] = true
				entries = append(entries, e)
				if len(entries) > MaxLogEntries {
					deny("%s asks for more than %d log directories, podguard's limit", quote(raw), MaxLogEntries)
					return nil
				}
			}
		}
		if !more {
			break
		}
	}
	return entries
}

// parseLogEntry reads one "[container=]/dir" entry.
func parseLogEntry(part string, apps []corev1.Container, names map[string]bool, listContainers func() string, deny func(string, ...any)) (logEntry, bool) {
	container, dir, named := strings.Cut(part, "=")
	if !named {
		dir = part
		if len(apps) != 1 {
			deny("%s names no container, and the pod has %d containers (%s)", quote(part), len(apps), listContainers())
			return logEntry{}, false
		}
		container = apps[0].Name
	}
	container, dir = strings.TrimSpace(container), strings.TrimSpace(dir)
	if !names[container] {
		deny("container %s does not exist; the pod's containers are %s", quote(container), listContainers())
		return logEntry{}, false
	}
	switch {
	case !path.IsAbs(dir):
		deny("%s is not an absolute path", quote(dir))
		return logEntry{}, false
	case strings.Contains(dir, ":"):
		deny("%s contains ':', which a mount path may not", quote(dir))
		return logEntry{}, false
	case path.Clean(dir) == "/":
		deny("%s would mount the log volume over the container's root", quote(dir))
		return logEntry{}, false
	}
	return logEntry{container: container, dir: path.Clean(dir)}, true
}

// podIndex finds, in constant time, what inject looks for in a pod that
// grows with every entry: which volumes exist, where each container mounts
// what, which names are taken, and which sidecars exist for which entry.
// Scanning the pod for each entry made 50,000 entries take minutes.
type podIndex struct {
	volumes map[string]bool
	// mounts maps a container's name and a clean mount path to the volume
	// mounted there (the first mount wins, as in a scan).
	mounts map[[2]string]string
	// names are the names of init containers and containers.
	names map[string]bool
	// sidecars maps an entry's marker to its sidecar's name.
	sidecars map[string]string
}

func newPodIndex(pod *Pod) *podIndex {
	ix := &podIndex{volumes: map[string]bool{}, mounts: map[[2]string]string{}, names: map[string]bool{}, sidecars: map[string]string{}}
	for _, v := range pod.Spec.Volumes {
		ix.volumes[v.Name] = true
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			ix.names[c.Name] = true
			for _, env := range c.Env {
				if env.Name == envSidecarMarker {
					if _, dup := ix.sidecars[env.Value]; !dup {
						ix.sidecars[env.Value] = c.Name
					}
				}
			}
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		for _, m := range c.VolumeMounts {
			ix.addMount(c.Name, m)
		}
	}
	return ix
}

func (ix *podIndex) addMount(container string, m corev1.VolumeMount) {
	k := [2]string{container, path.Clean(m.MountPath)}
	if _, ok := ix.mounts[k]; !ok {
		ix.mounts[k] = m.Name
	}
}

// inject adds one entry's volume, app mount and sidecar, unless they are
// there already.
func (p *logSidecar) inject(pod *Pod, ix *podIndex, images *podImages, guessed func(*corev1.Container, ImageFacts), e logEntry, nth int, native bool) {
	app := findContainer(pod.Spec.Containers, e.container)
	volume := ix.mounts[[2]string{e.container, e.dir}]
	if volume == "" {
		volume = logVolumeName(e)
		if !ix.volumes[volume] {
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			ix.volumes[volume] = true
		}
		m := corev1.VolumeMount{Name: volume, MountPath: e.dir}
		app.VolumeMounts = append(app.VolumeMounts, m)
		ix.addMount(e.container, m)
	}

	marker := e.container + "=" + e.dir
	name, exists := sidecarName(ix, e.container, nth, marker)
	if exists {
		return
	}
	ix.names[name] = true
	ix.sidecars[marker] = name
	sidecar := corev1.Container{
		Name:    name,
		Image:   p.cfg.Image,
		Command: p.cfg.Command,
		Args:    p.cfg.Args,
		Env: []corev1.EnvVar{
			{Name: envLogDir, Value: sidecarLogDir},
			{Name: envSidecarMarker, Value: marker},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: volume, MountPath: sidecarLogDir, ReadOnly: true}},
		Resources:    *p.cfg.Resources.DeepCopy(),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(p.sidecarUser(pod, app, images, guessed)),
			RunAsGroup:               p.sidecarGroup(pod),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if native {
		sidecar.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, sidecar)
		return
	}
	pod.Spec.Containers = append(pod.Spec.Containers, sidecar)
}

// sidecarUser is the sidecar's uid: the configured one; else the app
// container's, so that files the app keeps to its owner (umask 0077) are
// readable: the runAsUser the pod spec gives it when that is non-root, else
// the USER of its inspected image when that is a non-zero number; else
// nobody.
//
// An image whose USER is a name gets nobody: the name means a uid only in
// the image's /etc/passwd, which podguard does not read, and the sidecar's
// runAsNonRoot needs a number. The image's group is not used either: the
// sidecar's group is the pod's fsGroup (sidecarGroup), which owns every
// file created in the log volume (the kubelet makes it setgid), so the
// app's own gid never owns a log file there; adding it would only widen
// what the sidecar may read elsewhere.
//
// When the image was wanted but not inspected in time (ImagePending,
// ImageFailed), the sidecar runs as nobody and guessed is told.
func (p *logSidecar) sidecarUser(pod *Pod, app *corev1.Container, images *podImages, guessed func(*corev1.Container, ImageFacts)) int64 {
	if p.cfg.RunAsUser != nil {
		return *p.cfg.RunAsUser
	}
	uid := pod.Spec.SecurityContext.RunAsUser // the pod's, set by Mutate
	if app.SecurityContext != nil && app.SecurityContext.RunAsUser != nil {
		uid = app.SecurityContext.RunAsUser
	}
	if uid != nil {
		if *uid > 0 {
			return *uid
		}
		return DefaultSidecarUser // the app runs as root, as the pod says
	}
	f := images.get(app.Image)
	if f.Known() {
		if u := ParseImageUser(f.User); u.UID != nil && *u.UID > 0 {
			return *u.UID
		}
	} else if f.Fallback() {
		guessed(app, f)
	}
	return DefaultSidecarUser
}

// sidecarGroup is the sidecar's primary group: the pod's fsGroup, which owns
// the log volume. Without it (a Windows pod), the image decides, and a uid
// that the image does not know would otherwise run in group 0.
func (p *logSidecar) sidecarGroup(pod *Pod) *int64 {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		return ptr.To(*sc.FSGroup)
	}
	return nil
}

// appContainers are a pod's containers less the log sidecars podguard
// injected as regular containers.
func appContainers(cs []corev1.Container) []corev1.Container {
	apps := make([]corev1.Container, 0, len(cs))
	for i := range cs {
		if !isPodguardSidecar(&cs[i]) {
			apps = append(apps, cs[i])
		}
	}
	return apps
}

func isWindows(p *Pod) bool { return p.Spec.OS != nil && p.Spec.OS.Name == corev1.Windows }

// sidecarName picks the sidecar's name, <container>-logs (-2, -3 for more
// dirs of one container), and reports whether a sidecar for this entry
// exists already. A container of that name that is not podguard's sidecar
// for this entry pushes the name on to the next free one.
func sidecarName(ix *podIndex, container string, nth int, marker string) (string, bool) {
	if name, ok := ix.sidecars[marker]; ok {
		return name, true
	}
	base := truncateName(container, validation.DNS1123LabelMaxLength-len("-logs-99")) + "-logs"
	for i := nth; ; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if !ix.names[name] {
			return name, false
		}
	}
}

// logVolumeName is a stable, valid volume name for an entry.
func logVolumeName(e logEntry) string {
	sum := sha256.Sum256([]byte(e.container + "=" + e.dir))
	return "podguard-logs-" + hex.EncodeToString(sum[:])[:10]
}

// isPodguardSidecar reports whether c is a log sidecar podguard injected.
func isPodguardSidecar(c *corev1.Container) bool {
	for _, env := range c.Env {
		if env.Name == envSidecarMarker {
			return true
		}
	}
	return false
}

func truncateName(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.TrimRight(s[:n], "-.")
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func hasContainer(cs []corev1.Container, name string) bool { return findContainer(cs, name) != nil }

func hasVolume(vs []corev1.Volume, name string) bool {
	for _, v := range vs {
		if v.Name == name {
			return true
		}
	}
	return false
}

func containerNames(cs []corev1.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}
