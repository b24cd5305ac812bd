package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
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
	envLogDir        = "PODGUARD_LOG_DIR"
	envSidecarMarker = "PODGUARD_LOG_SIDECAR"
)

// Native sidecar modes.
const (
	NativeAuto   = "auto"
	NativeAlways = "always"
	NativeNever  = "never"
)

// DefaultLogStreamer is the default sidecar script: it streams every file in
// the log directory to stdout, each line prefixed with the file's name. It
// picks up files created after it starts (a new catalina.DATE.log each day)
// and follows rotation: tail -F reopens a file that was renamed or
// truncated, and a file is tailed once per inode, so a rotated copy
// (app.log.1) is not printed again. Lines are prefixed by a shell read loop,
// not awk, because some awks buffer their input from a pipe. For
// high-volume logs, configure a dedicated shipper (see LogSidecarConfig).
const DefaultLogStreamer = `dir="${PODGUARD_LOG_DIR}"
seen=" "
while true; do
  for f in "$dir"/* "$dir"/.[!.]*; do
    [ -f "$f" ] || continue
    ino=$(stat -c %i "$f" 2>/dev/null) || continue
    case "$seen" in *" $ino "*) continue ;; esac
    seen="$seen$ino "
    name=${f##*/}
    (tail -n +1 -F "$f" 2>/dev/null | while IFS= read -r line; do printf '[%s] %s\n' "$name" "$line"; done) &
  done
  sleep 2
done`

// LogSidecarConfig configures the log-sidecar policy.
//
//	logSidecar:
//	  image: busybox:1.37
//	  command: [sh, -c, <DefaultLogStreamer>]   # or e.g. fluent-bit:
//	  # image: cr.fluentbit.io/fluent/fluent-bit:3.2
//	  # command: [/fluent-bit/bin/fluent-bit]
//	  # args: [-i, tail, -p, "path=$(PODGUARD_LOG_DIR)/*", -o, stdout]
//	  native: auto                               # always, never
//	  runAsUser: 65534
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
	// RunAsUser is the sidecar's user. It must be able to read the log files;
	// files the app writes with mode 0600 as another user are not readable.
	RunAsUser *int64                      `json:"runAsUser,omitempty"`
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

func (c *LogSidecarConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
	if c.Image == "" {
		c.Image = "busybox:1.37"
	}
	if len(c.Command) == 0 && len(c.Args) == 0 {
		c.Command = []string{"sh", "-c", DefaultLogStreamer}
	}
	if c.Native == "" {
		c.Native = NativeAuto
	}
	if c.RunAsUser == nil {
		c.RunAsUser = ptr.To[int64](65534)
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
// read-only and streams it. The sidecar is a native sidecar when the cluster
// supports them (it then starts before the app and does not keep a Job's pod
// running), else a regular container. It gets its own resources and a
// restricted security context, so injecting it never makes a pod fail Pod
// Security admission.
//
// A malformed annotation, an unknown container or a relative path denies the
// pod: the user asked for logs and must not silently get none.
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

const logsFormat = `a comma-separated list of [container=]/absolute/dir, e.g. "/usr/local/tomcat/logs" or "web=/var/log/app,worker=/var/log/worker" (the container may be omitted when the pod has one container)`

func (p *logSidecar) Mutate(in Input) (*Pod, Report) {
	var rep Report
	raw, ok := in.Pod.Meta.Annotations[LogsAnnotation]
	if !ok {
		return in.Pod, rep
	}
	annPath := in.Pod.MetaPath.Child("annotations").Key(LogsAnnotation)
	entries, problems := parseLogsAnnotation(raw, in.Pod)
	for _, msg := range problems {
		rep.Deny(annPath, "%s; expected %s. No log sidecar was added", msg, logsFormat)
	}
	if len(problems) > 0 || len(entries) == 0 {
		return in.Pod, rep
	}

	native := p.cfg.Native == NativeAlways || (p.cfg.Native == NativeAuto && in.World != nil && in.World.Cluster().NativeSidecars())
	out := in.Pod.DeepCopy()
	perContainer := map[string]int{}
	for _, e := range entries {
		perContainer[e.container]++
		p.inject(out, e, perContainer[e.container], native)
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
// containers.
func parseLogsAnnotation(raw string, pod *Pod) ([]logEntry, []string) {
	var entries []logEntry
	var problems []string
	seen := map[logEntry]bool{}
	for i, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			problems = append(problems, fmt.Sprintf("entry %d of %q is empty", i+1, raw))
			continue
		}
		container, dir, named := strings.Cut(part, "=")
		if !named {
			dir = part
			if len(pod.Spec.Containers) != 1 {
				problems = append(problems, fmt.Sprintf("%q names no container, and the pod has %d containers (%s)", part, len(pod.Spec.Containers), quoteList(containerNames(pod.Spec.Containers))))
				continue
			}
			container = pod.Spec.Containers[0].Name
		}
		container, dir = strings.TrimSpace(container), strings.TrimSpace(dir)
		if !hasContainer(pod.Spec.Containers, container) {
			problems = append(problems, fmt.Sprintf("container %q does not exist; the pod's containers are %s", container, quoteList(containerNames(pod.Spec.Containers))))
			continue
		}
		switch {
		case !path.IsAbs(dir):
			problems = append(problems, fmt.Sprintf("%q is not an absolute path", dir))
			continue
		case strings.Contains(dir, ":"):
			problems = append(problems, fmt.Sprintf("%q contains ':', which a mount path may not", dir))
			continue
		case path.Clean(dir) == "/":
			problems = append(problems, fmt.Sprintf("%q would mount the log volume over the container's root", dir))
			continue
		}
		e := logEntry{container: container, dir: path.Clean(dir)}
		if !seen[e] {
			seen[e] = true
			entries = append(entries, e)
		}
	}
	return entries, problems
}

// inject adds one entry's volume, app mount and sidecar, unless they are
// there already.
func (p *logSidecar) inject(pod *Pod, e logEntry, nth int, native bool) {
	app := findContainer(pod.Spec.Containers, e.container)
	volume := ""
	for _, m := range app.VolumeMounts {
		if path.Clean(m.MountPath) == e.dir {
			volume = m.Name
			break
		}
	}
	if volume == "" {
		volume = logVolumeName(e)
		if !hasVolume(pod.Spec.Volumes, volume) {
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}
		app.VolumeMounts = append(app.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: e.dir})
	}

	marker := e.container + "=" + e.dir
	name, exists := sidecarName(pod, e.container, nth, marker)
	if exists {
		return
	}
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
			RunAsUser:                ptr.To(*p.cfg.RunAsUser),
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

// sidecarName picks the sidecar's name, <container>-logs (-2, -3 for more
// dirs of one container), and reports whether a sidecar for this entry
// exists already. A container of that name that is not podguard's sidecar
// for this entry pushes the name on to the next free one.
func sidecarName(pod *Pod, container string, nth int, marker string) (string, bool) {
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, env := range c.Env {
			if env.Name == envSidecarMarker && env.Value == marker {
				return c.Name, true
			}
		}
	}
	base := truncateName(container, validation.DNS1123LabelMaxLength-len("-logs-99")) + "-logs"
	for i := nth; ; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if !hasContainer(all, name) {
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
