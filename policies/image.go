package policies

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ImageStatus says how much a World knows about an image.
type ImageStatus int

const (
	// ImageNotInspected means nobody looked: inspection is off, or the
	// image's registry is not one podguard may contact. Policies use their
	// heuristics, silently: this is what the admin configured.
	ImageNotInspected ImageStatus = iota
	// ImagePending means the image is being fetched and was not ready within
	// the request's budget. Policies fall back to their heuristics and say so
	// in a warning.
	ImagePending
	// ImageFailed means the registry failed, refused the credentials or
	// served something that could not be indexed (Why says what). Policies
	// fall back and say so.
	ImageFailed
	// ImageKnown means the image was inspected: User and FS are its own.
	ImageKnown
)

// ImageFacts is what a World knows about one image reference of a pod, for the
// platform the pod runs on.
type ImageFacts struct {
	// Ref is the reference as the pod wrote it.
	Ref    string
	Status ImageStatus
	// Why explains a status other than ImageKnown, for warnings: "not
	// inspected yet: the fetch was still running after 1.5s".
	Why string
	// Digest is the manifest digest of the platform's image, when known.
	Digest string
	// Platform is the platform whose image was inspected ("linux/arm64").
	Platform string
	// User is the image config's USER as written ("", "0", "1000:1000",
	// "tomcat"), and WorkingDir its WORKDIR.
	User       string
	WorkingDir string
	// Env are the names of the variables the image config sets ("PATH",
	// "JAVA_HOME"), without their values: images bake secrets into ENV, and
	// podguard keeps no secret in memory.
	Env []string
	// FS is the image's file tree after every layer and whiteout is applied.
	FS ImageFS
}

// Known reports whether the image was inspected.
func (f ImageFacts) Known() bool { return f.Status == ImageKnown && f.FS != nil }

// Fallback reports whether inspection was wanted but did not finish or
// failed, so a verdict from a heuristic deserves a warning.
func (f ImageFacts) Fallback() bool { return f.Status == ImagePending || f.Status == ImageFailed }

// FileKind is what an image has at a path.
type FileKind uint8

const (
	FileAbsent FileKind = iota
	FileDir
	FileRegular
	// FileSymlink is a symlink, as the last element, whose target does not
	// exist in the image (dangling); resolvable ones are followed. The
	// runtime creates the target of a dangling link when it mounts there.
	FileSymlink
	// FileOther is a device, fifo or socket.
	FileOther
	// FileNotDir means an element before the last is not a directory (a
	// regular file, device, fifo or socket), so nothing can exist below it
	// and the runtime cannot create the path ("not a directory", ENOTDIR).
	// Stat returns the resolved path of that element, e.g. /app/config.yaml
	// for /app/config.yaml/x.
	FileNotDir
	// FileLoop means resolving the path followed more than 40 symlinks (a
	// loop), so the runtime cannot resolve it ("too many levels of symbolic
	// links", ELOOP). Stat returns the link where resolution gave up.
	FileLoop
)

// FilesCountLimit is where ImageFS.Files stops counting: a count above it
// means "more than FilesCountLimit files", whatever the exact number, so
// that a mount at / of a huge image costs the same as one of 10,000 files.
const FilesCountLimit = 10_000

// ImageFS is an inspected image's file tree: the paths its layers create,
// with whiteouts applied, without any file content. Paths are absolute and
// clean. Implementations are immutable and safe for concurrent use.
type ImageFS interface {
	// Stat says what is at p, following symlinks in every element the way
	// the container runtime resolves a mount target inside the rootfs, and
	// returns the resolved path. A directory that only exists because
	// entries below it do counts as a directory.
	Stat(p string) (kind FileKind, resolved string)
	// Files counts the entries other than directories at or below dir
	// (already resolved, as Stat returns it), and returns up to max of their
	// paths in sorted order. Counting stops past FilesCountLimit: a count of
	// FilesCountLimit+1 means "more than FilesCountLimit", and then the
	// sample is some of the files in sorted order, not necessarily the
	// first ones.
	Files(dir string, max int) (count int, sample []string)
}

// ImageUser is the user an image's config names, as the kubelet reads it:
// "uid", "uid:gid", "name" or "name:group"; empty means root.
type ImageUser struct {
	// UID is set when the user part is a number.
	UID *int64
	// GID is set when a group part is present and a number.
	GID *int64
	// Name is the user part when it is not a number.
	Name string
}

// ParseImageUser reads a config's USER the way the container runtimes report
// it to the kubelet: the part before ":" is a uid when it is a number, else
// a user name; an empty USER is root.
//
// A number is whatever strconv.ParseInt reads, negative ones included, as
// containerd's and CRI-O's getUserFromImage do: USER -1 reaches the kubelet
// as uid -1, which its runAsNonRoot check admits (only 0 is root), so it is
// a non-root uid here too, not a name.
func ParseImageUser(user string) ImageUser {
	u, g, _ := strings.Cut(user, ":")
	var out ImageUser
	if u == "" {
		out.UID = new(int64)
	} else if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		out.UID = &n
	} else {
		out.Name = u
	}
	if n, err := strconv.ParseInt(g, 10, 64); g != "" && err == nil && n >= 0 {
		out.GID = &n
	}
	return out
}

// DefaultImagePlatform is the platform inspected when neither the pod nor
// the cluster's Nodes say which.
const DefaultImagePlatform = "linux/amd64"

// archLabel is the well-known Node label of the CPU architecture.
const archLabel = corev1.LabelArchStable

// ImagePlatform is the platform whose image a pod would run: the
// architecture its nodeSelector or required node affinity pins with
// kubernetes.io/arch, else the architecture most of the cluster's Nodes run
// (the first in sorted order on a tie), else linux/amd64. A Windows pod
// (spec.os.name) runs windows images.
func ImagePlatform(pod *Pod, cluster Cluster) string {
	osName := "linux"
	if pod.Spec.OS != nil && pod.Spec.OS.Name == corev1.Windows {
		osName = "windows"
	}
	if arch := pinnedArch(&pod.Spec); arch != "" {
		return osName + "/" + arch
	}
	if len(cluster.NodeArches) > 0 {
		// NodeArches comes sorted from NodeArches (once per Node change):
		// a request only counts runs. Sort a copy of any other.
		arches := cluster.NodeArches
		if !slices.IsSorted(arches) {
			arches = slices.Sorted(slices.Values(arches))
		}
		best, bestN := "", 0
		for i := 0; i < len(arches); {
			j := i
			for j < len(arches) && arches[j] == arches[i] {
				j++
			}
			if j-i > bestN {
				best, bestN = arches[i], j-i
			}
			i = j
		}
		return osName + "/" + best
	}
	if osName == "windows" {
		return "windows/amd64"
	}
	return DefaultImagePlatform
}

// pinnedArch returns the one architecture a pod's nodeSelector or required
// node affinity allows, or "" when it allows any or several.
func pinnedArch(spec *corev1.PodSpec) string {
	if a := spec.NodeSelector[archLabel]; a != "" {
		return a
	}
	aff := spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	// The terms are ORed: the pod is pinned only when every term pins the
	// same single architecture.
	arch := ""
	for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		termArch := ""
		for _, e := range term.MatchExpressions {
			if e.Key == archLabel && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				termArch = e.Values[0]
			}
		}
		if termArch == "" || (arch != "" && arch != termArch) {
			return ""
		}
		arch = termArch
	}
	return arch
}

// imageWorld answers Image from a per-request map and everything else from
// the World it wraps.
type imageWorld struct {
	World
	images map[string]ImageFacts
}

// WithImages returns w with the given facts about a pod's images (keyed by
// the reference as the pod writes it). The webhook builds one per request
// once the inspector answered or the budget ran out, and `podguard check
// --images` one per pod.
func WithImages(w World, images map[string]ImageFacts) World {
	if len(images) == 0 {
		return w
	}
	return imageWorld{World: w, images: images}
}

func (w imageWorld) Image(ref string) ImageFacts {
	if f, ok := w.images[ref]; ok {
		return f
	}
	return w.World.Image(ref)
}

// notInspected is what a World without an inspector knows of every image.
func notInspected(ref string) ImageFacts {
	return ImageFacts{Ref: ref, Status: ImageNotInspected}
}
