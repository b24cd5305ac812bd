package policies

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// MountShadowingName is the name of the mount-shadowing policy.
const MountShadowingName = "mount-shadowing"

// Modes for a mountPath that looks like a file.
const (
	FileLikeWarn = "warn"
	FileLikeDeny = "deny"
)

// DefaultProtectedDirs are the directories a configMap, secret, projected or
// downwardAPI volume must not be mounted at, or above, without subPath:
// directories whose content images really ship, so that hiding them breaks
// the container. They are the system directories (/, /etc, /bin, /sbin,
// /lib, /lib64, /usr, /usr/bin, /usr/sbin, /usr/lib, /usr/local/bin,
// /var/lib), the CA stores (/etc/ssl, /etc/ssl/certs, /etc/pki/tls/certs),
// and the configuration directories of widely used images: Tomcat
// (/usr/local/tomcat/conf), nginx (/etc/nginx), Apache httpd (/etc/apache2,
// /usr/local/apache2/conf, /etc/httpd/conf), MySQL and MariaDB (/etc/mysql),
// PHP (/usr/local/etc/php/conf.d, whose ini files load the extensions, and
// /usr/local/etc/php-fpm.d) and Bitnami (/opt/bitnami).
//
// Directories where mounting a whole volume is the documented pattern are
// left out on purpose: /etc/nginx/conf.d and /usr/share/nginx/html (replacing
// the default site is the point), and /etc/postgresql and /etc/redis, where
// the official images ship nothing.
var DefaultProtectedDirs = []string{
	"/",
	"/etc",
	"/bin",
	"/sbin",
	"/lib",
	"/lib64",
	"/usr",
	"/usr/bin",
	"/usr/sbin",
	"/usr/lib",
	"/usr/local/bin",
	"/var/lib",
	"/etc/ssl",
	"/etc/ssl/certs",
	"/etc/pki/tls/certs",
	"/usr/local/tomcat/conf",
	"/etc/nginx",
	"/etc/apache2",
	"/usr/local/apache2/conf",
	"/etc/httpd/conf",
	"/etc/mysql",
	"/usr/local/etc/php/conf.d",
	"/usr/local/etc/php-fpm.d",
	"/opt/bitnami",
}

// DefaultReplaceableDirs are the directories whose content an image ships
// only as a default that a whole volume is meant to replace, so that, with
// the image inspected, a mount at or below one of them that hides files is
// a warning naming them rather than a denial:
//
//   - /etc/nginx/conf.d: nginx's default.conf, the default server that a
//     site's own configuration replaces;
//   - /usr/share/nginx/html: nginx's index.html and 50x.html, the
//     placeholder site that the image's documentation mounts content over;
//   - /usr/local/apache2/htdocs: httpd's index.html, likewise;
//   - /var/www/html: the document root of the php:*-apache images (and of
//     Debian's apache2), documented as the place to mount the site;
//   - /docker-entrypoint-initdb.d: the init scripts of the postgres, mysql,
//     mariadb and mongo images (and of images built on them), documented as
//     the place to mount one's own;
//   - /etc/grafana/provisioning: grafana's sample provisioning files, which
//     the datasources and dashboards of a deployment replace;
//   - /etc/prometheus: prometheus's default prometheus.yml, documented to be
//     replaced by mounting a directory with one's own.
var DefaultReplaceableDirs = []string{
	"/etc/nginx/conf.d",
	"/usr/share/nginx/html",
	"/usr/local/apache2/htdocs",
	"/var/www/html",
	"/docker-entrypoint-initdb.d",
	"/etc/grafana/provisioning",
	"/etc/prometheus",
}

// DefaultFileExtensions are the name endings that make a mountPath look like
// a file rather than a directory.
var DefaultFileExtensions = []string{
	".xml", ".conf", ".cfg", ".cnf", ".yaml", ".yml", ".json", ".properties", ".ini", ".toml",
	".env", ".sh", ".py", ".js", ".txt", ".pem", ".crt", ".key", ".lua",
}

// MountShadowingConfig configures the mount-shadowing policy.
//
//	mountShadowing:
//	  protectedDirs: [/etc, /usr/local/tomcat/conf]  # replaces DefaultProtectedDirs; [] turns the check off
//	  replaceableDirs: [/etc/nginx/conf.d]           # replaces DefaultReplaceableDirs; [] means none
//	  fileLikeMountPaths: warn                      # or deny
//	  fileExtensions: [.xml, .conf, .yaml]          # replaces DefaultFileExtensions; [] turns the check off
type MountShadowingConfig struct {
	Enabled *bool `json:"enabled,omitempty"`
	// ProtectedDirs are the directories that must not be mounted at, or
	// above, without subPath: absolute, clean paths. Unset means
	// DefaultProtectedDirs; a list replaces them (copy the defaults to extend
	// them), and an empty list turns the check off.
	ProtectedDirs []string `json:"protectedDirs,omitempty"`
	// ReplaceableDirs are the directories whose content is meant to be
	// replaced by a whole volume: absolute, clean paths. With the image
	// inspected, a mount at or below one of them that hides files the image
	// ships is a warning naming them instead of a denial. Unset means
	// DefaultReplaceableDirs; a list replaces them, and an empty list means
	// none. They play no part when the image is not known: the protected
	// directories decide then.
	ReplaceableDirs []string `json:"replaceableDirs,omitempty"`
	// FileLikeMountPaths says what to do with a mountPath whose last element
	// looks like a file (it ends with one of FileExtensions): "warn" (the
	// default) or "deny".
	FileLikeMountPaths string `json:"fileLikeMountPaths,omitempty"`
	// FileExtensions are the endings, matched case-insensitively, that make
	// a mountPath look like a file. Unset means DefaultFileExtensions; an
	// empty list turns the check off.
	FileExtensions []string `json:"fileExtensions,omitempty"`
	// Mode is what the policy's violations do: "enforce" (deny, the
	// default), "warn" or "audit". A namespace label overrides it (see Mode).
	Mode Mode `json:"mode,omitempty"`
}

func (c *MountShadowingConfig) defaults() {
	if c.Enabled == nil {
		c.Enabled = ptr.To(true)
	}
	if c.ProtectedDirs == nil {
		c.ProtectedDirs = slices.Clone(DefaultProtectedDirs)
	}
	if c.ReplaceableDirs == nil {
		c.ReplaceableDirs = slices.Clone(DefaultReplaceableDirs)
	}
	if c.FileLikeMountPaths == "" {
		c.FileLikeMountPaths = FileLikeWarn
	}
	if c.FileExtensions == nil {
		c.FileExtensions = slices.Clone(DefaultFileExtensions)
	}
	defaultMode(&c.Mode)
}

func (c *MountShadowingConfig) validate(fldPath *field.Path) field.ErrorList {
	errs := validateDirList(fldPath.Child("protectedDirs"), c.ProtectedDirs)
	errs = append(errs, validateDirList(fldPath.Child("replaceableDirs"), c.ReplaceableDirs)...)
	errs = append(errs, validateMode(c.Mode, fldPath)...)
	if c.FileLikeMountPaths != FileLikeWarn && c.FileLikeMountPaths != FileLikeDeny {
		errs = append(errs, field.NotSupported(fldPath.Child("fileLikeMountPaths"), c.FileLikeMountPaths, []string{FileLikeWarn, FileLikeDeny}))
	}
	seen := map[string]bool{}
	for i, ext := range c.FileExtensions {
		p := fldPath.Child("fileExtensions").Index(i)
		switch {
		case len(ext) < 2 || ext[0] != '.' || strings.Contains(ext, "/"):
			errs = append(errs, field.Invalid(p, ext, `must start with "." and contain no "/", e.g. ".conf"`))
		case seen[strings.ToLower(ext)]:
			errs = append(errs, field.Duplicate(p, ext))
		}
		seen[strings.ToLower(ext)] = true
	}
	return errs
}

// validateDirList checks a list of directories: absolute, clean, each once.
func validateDirList(fldPath *field.Path, dirs []string) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, dir := range dirs {
		p := fldPath.Index(i)
		switch {
		case !strings.HasPrefix(dir, "/"):
			errs = append(errs, field.Invalid(p, dir, "must be an absolute path"))
		case path.Clean(dir) != dir:
			errs = append(errs, field.Invalid(p, dir, fmt.Sprintf("must be a clean path (%s)", path.Clean(dir))))
		case seen[dir]:
			errs = append(errs, field.Duplicate(p, dir))
		}
		seen[dir] = true
	}
	return errs
}

// serviceAccountTokenDir is where the API server mounts the projected
// kube-api-access-* volume (and, before 1.22, the token Secret). Images ship
// nothing there, so a mount at it never hides anything.
const serviceAccountTokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// mountShadowing rejects volume mounts that silently hide what the image
// ships, or that turn an intended file into a directory.
//
// A configMap, secret, projected or downwardAPI volume mounted without
// subPath (and without subPathExpr) replaces the whole directory at
// mountPath with the volume's files. Such a mount is denied when the
// mountPath's last element is the name of one of the volume's files (a key,
// or an items[].path): the user wanted a file and gets a directory of that
// name, or, when the image has a file there, a container that does not
// start. This rule is about the volume and holds whatever the World knows of
// the image.
//
// When the container's image was inspected (World.Image says ImageKnown),
// the image decides the rest, after following its symlinks the way the
// runtime resolves a mount target (/etc/ssl/certs -> /etc/pki/tls/certs):
//
//   - a mountPath that is a regular file (or a device, fifo or socket) in
//     the image is denied: the runtime cannot mount a directory over a file,
//     and the container fails to start with "not a directory";
//   - a mountPath below such a file (/app/config.yaml/x) is denied: the
//     runtime cannot create it ("not a directory"), and the message names
//     the file;
//   - a mountPath whose resolution meets a symlink loop is denied: the
//     runtime cannot resolve it ("too many levels of symbolic links");
//   - a mountPath that is a directory with files at or below it is denied,
//     naming how many files it hides (counting stops past
//     FilesCountLimit: "more than 10,000 files") and the first few of them,
//     unless:
//   - the volume's known files (keys or items paths) include the base name
//     of every file it hides, all of them directly in the directory: the
//     mount replaces those files on purpose and loses nothing, so it is
//     admitted silently;
//   - else the directory is at or below one of replaceableDirs
//     (/etc/nginx/conf.d, /usr/share/nginx/html, ...): replacing the
//     image's defaults there is the documented pattern, so it is a warning
//     naming the hidden files instead of a denial;
//   - a mountPath the image leaves empty or absent (or a dangling link as
//     its last element, whose target the runtime creates) is admitted,
//     whatever the protected directories and file-like names say: a TLS
//     Secret at /etc/pki/tls/certs on an ubuntu image hides nothing.
//
// A mount below another mount of the same container (a Secret at
// /etc/pki/tls/certs with an emptyDir at /etc/pki, whatever its kind or
// subPath) is not checked against the image, nor against the protected
// directories and file-like names: the runtime mounts the parent first (it
// sorts mounts by depth), and the image's files there are already hidden by
// it. Paths are compared as written, cleaned, without following the image's
// symlinks. Only the key rule applies to such a mount. Mounts of other
// containers do not count: each container has its own mount namespace.
//
// Otherwise the heuristic decides, as it did before images were inspected:
// a mountPath that is a protected directory, or a parent of one, is denied,
// and one whose last element looks like a file (/config/app.yaml) is a
// warning, or a denial with fileLikeMountPaths: deny, unless a denial above
// already covers it. When inspection was wanted but the image was not ready
// or failed (ImagePending, ImageFailed), a container with at least one such
// mount also gets a warning, once per image, that the verdict came from the
// heuristic; with inspection off (ImageNotInspected) the heuristic is what
// the admin configured, and nothing is said.
//
// Key names come from the World, or from the volume's items when it lists
// them; when neither says, the key check cannot fire. emptyDir, PVC,
// hostPath and other volumes are meant to be mounted over directories (shared
// logs, data) and are never checked, nor is the service account token
// directory, nor a mountPath that is not an absolute Linux path. Ephemeral
// containers are checked like the others, against their own image.
type mountShadowing struct {
	protected    []string
	replaceable  []string
	extensions   []string
	fileLikeDeny bool
}

func newMountShadowing(c MountShadowingConfig) *mountShadowing {
	p := &mountShadowing{fileLikeDeny: c.FileLikeMountPaths == FileLikeDeny}
	p.protected = slices.Sorted(slices.Values(c.ProtectedDirs))
	p.replaceable = slices.Sorted(slices.Values(c.ReplaceableDirs))
	for _, ext := range c.FileExtensions {
		p.extensions = append(p.extensions, strings.ToLower(ext))
	}
	return p
}

func (p *mountShadowing) Name() string { return MountShadowingName }

func (p *mountShadowing) Validate(in Input) Report {
	rep := in.report()
	volumes := map[string]*shadowVolume{}
	objects := map[string]*shadowFiles{}
	for i := range in.Pod.Spec.Volumes {
		if in.cancelled() {
			return rep
		}
		if v := describeShadowVolume(in, objects, &in.Pod.Spec.Volumes[i]); v != nil {
			volumes[v.volume] = v
		}
	}
	if len(volumes) == 0 {
		return rep
	}
	images := newPodImages(in)
	for _, c := range in.Pod.Containers() {
		if in.cancelled() {
			return rep
		}
		p.checkContainer(&rep, images, volumes, c.Path, c.Container.Image, c.Container.VolumeMounts, false)
	}
	for i := range in.Pod.Spec.EphemeralContainers {
		if in.cancelled() {
			return rep
		}
		ec := &in.Pod.Spec.EphemeralContainers[i]
		p.checkContainer(&rep, images, volumes, in.Pod.SpecPath.Child("ephemeralContainers").Index(i), ec.Image, ec.VolumeMounts, true)
	}
	return rep
}

// checkContainer checks one container's mounts against its image, and warns
// once per image when inspection was wanted but the verdict had to come
// from the heuristic.
func (p *mountShadowing) checkContainer(rep *Report, images *podImages, volumes map[string]*shadowVolume, ctrPath *field.Path, image string, mounts []corev1.VolumeMount, ephemeral bool) {
	var img *ImageFacts
	checked := false
	var mounted map[string]bool // the container's mountPaths, cleaned, when one may be below another
	for i, m := range mounts {
		if !p.checked(volumes, m) {
			continue
		}
		if img == nil {
			f := images.get(image)
			img = &f
		}
		if mounted == nil && len(mounts) > 1 {
			mounted = make(map[string]bool, len(mounts))
			for _, o := range mounts {
				mounted[path.Clean(o.MountPath)] = true
			}
		}
		if p.check(rep, volumes, img, ctrPath.Child("volumeMounts").Index(i).Child("mountPath"), m, ephemeral, mountedAbove(mounted, path.Clean(m.MountPath))) {
			checked = true
		}
	}
	if checked && img.Fallback() && images.once(image) {
		rep.WarnFunc(ctrPath.Child("image"), func() string {
			return fmt.Sprintf("%s, so its mounts without subPath were checked against podguard's list of protected directories and file-like names instead of the files the image ships",
				img.notInspectedYet())
		})
	}
}

// mountedAbove returns the closest strict parent of dir that is one of
// mounted, or "".
func mountedAbove(mounted map[string]bool, dir string) string {
	if len(mounted) == 0 {
		return ""
	}
	for d := dir; d != "/"; {
		d = path.Dir(d)
		if mounted[d] {
			return d
		}
	}
	return ""
}

// checked reports whether check looks at m beyond the volume's key names:
// a mount without subPath, at an absolute path, of a volume that replaces a
// directory.
func (p *mountShadowing) checked(volumes map[string]*shadowVolume, m corev1.VolumeMount) bool {
	if m.SubPath != "" || m.SubPathExpr != "" {
		return false
	}
	if _, ok := volumes[m.Name]; !ok {
		return false
	}
	dir := path.Clean(m.MountPath)
	return strings.HasPrefix(dir, "/") && dir != serviceAccountTokenDir
}

// check checks one mount against the volume's key names and, for a
// container whose image was inspected, against the image's files, else
// against the protected directories and file-like names; below another
// mount of the container (parent, the closest one), only against the key
// names. It reports whether the verdict on the mount may have come from the
// protected directories and file-like names, when the image is not known.
func (p *mountShadowing) check(rep *Report, volumes map[string]*shadowVolume, img *ImageFacts, fieldPath *field.Path, m corev1.VolumeMount, ephemeral bool, parent string) bool {
	if !p.checked(volumes, m) {
		return false
	}
	v := volumes[m.Name]
	dir := path.Clean(m.MountPath)
	base := path.Base(dir)
	// Messages are built only for the findings that will be listed.
	lead := func() string { return fmt.Sprintf("mounting %s at %s without subPath", v.desc, m.MountPath) }

	// What the image has at the mountPath, when it was inspected. Below
	// another mount, the image's files are hidden by that mount, so the
	// mountPath is as good as absent, and the lists do not apply either.
	known := img.Known()
	kind, resolved := FileAbsent, dir
	if known && parent == "" {
		kind, resolved = img.FS.Stat(dir)
		if kind == FileSymlink { // dangling: the runtime creates its target
			kind = FileAbsent
		}
	}
	at := func() string {
		if resolved != dir {
			return fmt.Sprintf("%s (a link to %s)", dir, imagePath(resolved))
		}
		return dir
	}

	// The key rule is about the volume, not the image: it holds whatever
	// the image ships.
	keyName := false
	if f, ok := v.files.find(base); ok {
		keyName = true
		rep.DenyKeysFunc(fieldPath, f.keys(), func() string {
			consequence := "and if the image already has a file there the container does not start at all (\"not a directory\")"
			switch {
			case known && (kind == FileRegular || kind == FileOther):
				consequence = fmt.Sprintf("and the image ships a file at %s, so the container does not start at all (\"not a directory\")", at())
			case known && kind == FileNotDir:
				consequence = fmt.Sprintf("and %s is a file in the image, so the runtime cannot create %s and the container does not start at all (\"not a directory\")", imagePath(resolved), dir)
			case known && kind == FileLoop:
				consequence = fmt.Sprintf("and the image has a symlink loop at %s, so the runtime cannot create %s and the container does not start at all (\"too many levels of symbolic links\")", imagePath(resolved), dir)
			case known || parent != "":
				consequence = "and the application finds a directory where it expects a file"
			}
			return fmt.Sprintf("%s creates a directory named %s instead of a file: %s ends up at %s, %s. Fix: %s",
				lead(), base, f.describe(), path.Join(dir, f.path), consequence, p.fix(v, ephemeral, fmt.Sprintf("add subPath: %s to mount just that file", f.path), dir))
		})
	}

	if parent != "" {
		// The runtime mounts parent first: what the image has here is
		// already hidden, and the lists' premise does not hold either.
		return false
	}

	if known {
		switch kind {
		case FileRegular, FileOther:
			if keyName { // its denial already says that the container does not start
				break
			}
			rep.DenyFunc(fieldPath, func() string {
				return fmt.Sprintf("%s mounts a directory over %s, which is a file in the image: the container runtime cannot mount a directory over a file, so the container does not start (\"not a directory\"). Fix: %s",
					lead(), at(), p.fix(v, ephemeral, v.subPathFor(), dir))
			})
		case FileNotDir:
			if keyName {
				break
			}
			rep.DenyFunc(fieldPath, func() string {
				return fmt.Sprintf("%s: %s is a file in the image, so the runtime cannot create %s (not a directory) and the container does not start. Fix: %s",
					lead(), imagePath(resolved), dir, p.ownFix(v, dir))
			})
		case FileLoop:
			if keyName {
				break
			}
			rep.DenyFunc(fieldPath, func() string {
				return fmt.Sprintf("%s: resolving it in the image meets a symlink loop at %s, so the runtime cannot create the mount point (too many levels of symbolic links) and the container does not start. Fix: %s",
					lead(), imagePath(resolved), p.ownFix(v, dir))
			})
		case FileDir:
			n, sample := img.FS.Files(resolved, 3)
			if n == 0 || v.replacesAll(img.FS, resolved, n, sample) {
				break
			}
			hides := func() string {
				return fmt.Sprintf("%s hides %s the image ships at %s%s: %s invisible and only the volume's files remain.",
					lead(), imageFileCount(n), at(), imageFileList(resolved, sample), plural(n, "it becomes", "they become"))
			}
			if r := p.replaceableDir(dir, resolved); r != "" {
				rep.WarnFunc(fieldPath, func() string {
					which := "it is one of mountShadowing.replaceableDirs"
					if r != dir {
						which = fmt.Sprintf("it is in %s, one of mountShadowing.replaceableDirs", r)
					}
					return fmt.Sprintf("%s %s is meant to be replaced (%s), so this is not denied: if the application still needs %s, add %s to the volume (a volume that provides every file it hides is admitted silently)",
						hides(), dir, which, plural(n, "that file", "those files"), plural(n, "it", "them"))
				})
				break
			}
			rep.DenyFunc(fieldPath, func() string {
				return fmt.Sprintf("%s Fix: %s", hides(), p.fix(v, ephemeral, v.subPathExample(dir), dir))
			})
		}
		// An empty or absent directory hides nothing, whatever the lists
		// say, and a path the image does not have cannot be a file it
		// expects.
		return true
	}

	// A denial from the list says when it stands in for an inspection that
	// did not finish: warnings never travel with a denial, and the next
	// attempt may be judged from the image.
	byList := ""
	if img != nil && img.Fallback() {
		byList = fmt.Sprintf(" (judged by podguard's list of protected directories: %s)", img.notInspectedYet())
	}
	definite := keyName
	if slices.Contains(p.protected, dir) {
		definite = true
		rep.DenyFunc(fieldPath, func() string {
			return fmt.Sprintf("%s replaces the whole directory %s: every file the image ships there becomes invisible and only the volume's files remain%s. Fix: %s",
				lead(), dir, byList, p.fix(v, ephemeral, v.subPathExample(dir), dir))
		})
	} else if below := p.protectedBelow(dir); len(below) > 0 {
		definite = true
		rep.DenyFunc(fieldPath, func() string {
			return fmt.Sprintf("%s replaces the whole directory %s, which contains %s: every file the image ships there becomes invisible and only the volume's files remain%s. Fix: %s",
				lead(), dir, shadowDirList(below, 3), byList, p.fix(v, ephemeral, v.subPathExample(dir), dir))
		})
	}

	if definite {
		return true
	}
	ext, fileLike := p.fileExtension(base)
	if !fileLike {
		return true
	}
	msg := func() string {
		return fmt.Sprintf("%s creates a directory named %s, but the path looks like a file (%s): the application finds a directory where it expects a file, and %s. Fix: %s",
			lead(), base, ext, v.filesInside(dir), p.fix(v, ephemeral, v.subPathFor(), dir))
	}
	if p.fileLikeDeny {
		rep.DenyFunc(fieldPath, msg)
	} else {
		rep.WarnFunc(fieldPath, msg)
	}
	return true
}

// imageFileCount renders how many files a mount hides: "1 file", "7 files",
// "more than 10,000 files" once Files stopped counting.
func imageFileCount(n int) string {
	switch {
	case n > FilesCountLimit:
		return "more than " + thousands(FilesCountLimit) + " files"
	case n == 1:
		return "1 file"
	}
	return thousands(n) + " files"
}

// replaceableDir returns the replaceable directory that dir, or the path
// it resolves to in the image, is at or below, or "".
func (p *mountShadowing) replaceableDir(dir, resolved string) string {
	for _, r := range p.replaceable {
		for _, d := range []string{dir, resolved} {
			if d == r || strings.HasPrefix(d, r+"/") || r == "/" {
				return r
			}
		}
	}
	return ""
}

// replacesAll reports whether the volume's known files include every one
// of the n files the image has below dir, each directly in dir, by name:
// the mount replaces them on purpose and hides nothing else. sample is the
// first of them Files returned.
func (v *shadowVolume) replacesAll(fs ImageFS, dir string, n int, sample []string) bool {
	if n > len(v.files.list) || n > FilesCountLimit {
		return false
	}
	if len(sample) < n {
		_, sample = fs.Files(dir, n)
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, f := range sample {
		name, ok := strings.CutPrefix(f, prefix)
		if !ok || name == "" || strings.Contains(name, "/") || !v.files.has(name) {
			return false
		}
	}
	return len(sample) == n
}

// imageFileList renders files below dir as the first one's full path, then
// the others relative to dir: ", e.g. /usr/local/tomcat/conf/context.xml,
// logging.properties and server.xml".
func imageFileList(dir string, files []string) string {
	if len(files) == 0 {
		return ""
	}
	items := make([]string, len(files))
	for i, f := range files {
		items[i] = f
		if rel, ok := strings.CutPrefix(f, strings.TrimSuffix(dir, "/")+"/"); ok && i > 0 {
			items[i] = rel
		}
		items[i] = imagePath(items[i])
	}
	return ", e.g. " + shadowDirList(items, len(items))
}

// imagePath renders a path read from an image's layers, which its author
// chose: as is when it is printable and short, else quoted and cut like
// any other input a message repeats.
func imagePath(p string) string {
	if len(p) <= MaxQuoted && strconv.Quote(p) == `"`+p+`"` && !strings.ContainsAny(p, ", ") {
		return p
	}
	return quote(p)
}

// protectedBelow returns the protected directories strictly below dir.
func (p *mountShadowing) protectedBelow(dir string) []string {
	var out []string
	for _, d := range p.protected {
		if d != dir && (dir == "/" || strings.HasPrefix(d, dir+"/")) {
			out = append(out, d)
		}
	}
	return out
}

// fileExtension returns the configured extension that name ends with.
func (p *mountShadowing) fileExtension(name string) (string, bool) {
	lower := strings.ToLower(name)
	for _, ext := range p.extensions {
		if strings.HasSuffix(lower, ext) {
			return name[len(name)-len(ext):], true
		}
	}
	return "", false
}

// shadowDirList renders at most n items: "a, b and c", "a, b, c and 4 more".
func shadowDirList(items []string, n int) string {
	switch {
	case len(items) == 1:
		return items[0]
	case len(items) <= n:
		return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
	default:
		return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
	}
}

// shadowVolume is what the policy knows of a volume that replaces the
// directory it is mounted at.
type shadowVolume struct {
	volume string
	// desc names the volume and its source: `volume "cfg" (ConfigMap "app")`.
	desc string
	// name is the source's name when there is one, else the volume's: the
	// basis of the suggested directory.
	name string
	kind string
	// files are the files the volume creates, relative to its root, sorted.
	// They may be incomplete: keys the World does not know are missing. A
	// volume of a single ConfigMap or Secret shares its list with every
	// other volume of that object.
	files *shadowFiles
	// updates says what a subPath mount of this volume stops following.
	updates string
	// token is set when the volume projects a service account token, which
	// a subPath mount never refreshes.
	token bool
}

// shadowFile is one file a volume creates.
type shadowFile struct {
	path string
	// what names it the way the user wrote it: `key "server.xml"`. Empty
	// means a key of that name, formatted only when a message needs it.
	what string
}

// keys is the ConfigMap or Secret key that creates f when the volume lists
// no items, for Finding.Keys: a file named by an item is there whatever
// keys the object gains.
func (f shadowFile) keys() []string {
	if f.what == "" {
		return []string{f.path}
	}
	return nil
}

func (f shadowFile) describe() string {
	if f.what == "" {
		return "key " + quote(f.path)
	}
	return f.what
}

// shadowFiles is a sorted list of files without duplicate paths, with an
// index by base name built the first time one is looked up: a pod with
// thousands of mounts of a volume with thousands of keys costs one pass over
// them, not one per mount.
type shadowFiles struct {
	list   []shadowFile
	byBase map[string]int
}

// find returns the first file whose base name is base.
func (s *shadowFiles) find(base string) (shadowFile, bool) {
	if s.byBase == nil {
		s.byBase = make(map[string]int, len(s.list))
		for i, f := range s.list {
			b := path.Base(f.path)
			if _, ok := s.byBase[b]; !ok {
				s.byBase[b] = i
			}
		}
	}
	i, ok := s.byBase[base]
	if !ok {
		return shadowFile{}, false
	}
	return s.list[i], true
}

// has reports whether one of the files is at path p.
func (s *shadowFiles) has(p string) bool {
	_, ok := slices.BinarySearchFunc(s.list, p, func(f shadowFile, p string) int { return cmp.Compare(f.path, p) })
	return ok
}

// describeShadowVolume returns what the policy needs of a configMap, secret,
// projected or downwardAPI volume, and nil for every other kind.
func describeShadowVolume(in Input, objects map[string]*shadowFiles, vol *corev1.Volume) *shadowVolume {
	v := &shadowVolume{volume: vol.Name, name: vol.Name}
	var files []shadowFile
	switch {
	case vol.ConfigMap != nil:
		v.kind, v.name = "ConfigMap", vol.ConfigMap.Name
		v.desc = fmt.Sprintf("volume %s (ConfigMap %s)", quote(vol.Name), quote(vol.ConfigMap.Name))
		v.updates = "the ConfigMap changes"
		if len(vol.ConfigMap.Items) == 0 {
			v.files = shadowObjectFiles(in, objects, "ConfigMap", vol.ConfigMap.Name)
			return v
		}
		files = shadowKeyFiles(in, "ConfigMap", vol.ConfigMap.Name, vol.ConfigMap.Items)
	case vol.Secret != nil:
		v.kind, v.name = "Secret", vol.Secret.SecretName
		v.desc = fmt.Sprintf("volume %s (Secret %s)", quote(vol.Name), quote(vol.Secret.SecretName))
		v.updates = "the Secret changes"
		if len(vol.Secret.Items) == 0 {
			v.files = shadowObjectFiles(in, objects, "Secret", vol.Secret.SecretName)
			return v
		}
		files = shadowKeyFiles(in, "Secret", vol.Secret.SecretName, vol.Secret.Items)
	case vol.DownwardAPI != nil:
		v.kind = "downwardAPI"
		v.desc = fmt.Sprintf("volume %s (downwardAPI)", quote(vol.Name))
		files = shadowDownwardAPIFiles(vol.DownwardAPI.Items)
		v.updates = "the pod's labels or annotations change"
	case vol.Projected != nil:
		v.kind = "projected"
		var sources []string
		for _, src := range vol.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				sources = append(sources, "ConfigMap "+quote(src.ConfigMap.Name))
				files = append(files, shadowKeyFiles(in, "ConfigMap", src.ConfigMap.Name, src.ConfigMap.Items)...)
			case src.Secret != nil:
				sources = append(sources, "Secret "+quote(src.Secret.Name))
				files = append(files, shadowKeyFiles(in, "Secret", src.Secret.Name, src.Secret.Items)...)
			case src.DownwardAPI != nil:
				sources = append(sources, "downwardAPI")
				files = append(files, shadowDownwardAPIFiles(src.DownwardAPI.Items)...)
			case src.ServiceAccountToken != nil:
				v.token = true
				sources = append(sources, "serviceAccountToken")
				files = append(files, shadowFile{src.ServiceAccountToken.Path, "serviceAccountToken path " + quote(src.ServiceAccountToken.Path)})
			case src.ClusterTrustBundle != nil:
				sources = append(sources, "clusterTrustBundle")
				files = append(files, shadowFile{src.ClusterTrustBundle.Path, "clusterTrustBundle path " + quote(src.ClusterTrustBundle.Path)})
			case src.PodCertificate != nil:
				sources = append(sources, "podCertificate")
				pc := src.PodCertificate
				for _, f := range []struct{ field, path string }{
					{"credentialBundlePath", pc.CredentialBundlePath}, {"keyPath", pc.KeyPath}, {"certificateChainPath", pc.CertificateChainPath},
				} {
					if f.path != "" {
						files = append(files, shadowFile{f.path, fmt.Sprintf("podCertificate %s %s", f.field, quote(f.path))})
					}
				}
			}
		}
		if len(vol.Projected.Sources) == 1 {
			if s := vol.Projected.Sources[0]; s.ConfigMap != nil {
				v.name = s.ConfigMap.Name
			} else if s.Secret != nil {
				v.name = s.Secret.Name
			}
		}
		v.desc = fmt.Sprintf("volume %s (projected: %s)", quote(vol.Name), strings.Join(sources, ", "))
		v.updates = "its sources change"
	default:
		return nil
	}
	v.files = sortedShadowFiles(files)
	return v
}

func sortedShadowFiles(files []shadowFile) *shadowFiles {
	slices.SortStableFunc(files, func(a, b shadowFile) int { return cmp.Compare(a.path, b.path) })
	return &shadowFiles{list: slices.CompactFunc(files, func(a, b shadowFile) bool { return a.path == b.path })}
}

// shadowObjectFiles is shadowKeyFiles for a volume of a whole ConfigMap or
// Secret (no items), shared by every such volume of the object.
func shadowObjectFiles(in Input, objects map[string]*shadowFiles, kind, name string) *shadowFiles {
	id := kind + "\x00" + name
	if s, ok := objects[id]; ok {
		return s
	}
	s := sortedShadowFiles(shadowKeyFiles(in, kind, name, nil))
	objects[id] = s
	return s
}

// shadowKeyFiles lists the files of a ConfigMap or Secret in a volume: its items
// when the volume lists them, else the keys the World knows.
func shadowKeyFiles(in Input, kind, name string, items []corev1.KeyToPath) []shadowFile {
	var out []shadowFile
	if len(items) > 0 {
		for _, it := range items {
			what := "key " + quote(it.Key)
			if it.Path != it.Key {
				what = fmt.Sprintf("key %s (items path %s)", quote(it.Key), quote(it.Path))
			}
			out = append(out, shadowFile{it.Path, what})
		}
		return out
	}
	if in.World == nil {
		return nil
	}
	var obj Object
	if kind == "Secret" {
		obj = in.World.Secret(in.Pod.Namespace, name)
	} else {
		obj = in.World.ConfigMap(in.Pod.Namespace, name)
	}
	if obj.Presence != Found || !obj.KeysKnown {
		return nil
	}
	out = make([]shadowFile, len(obj.Keys))
	for i, k := range obj.Keys {
		out[i] = shadowFile{path: k}
	}
	return out
}

func shadowDownwardAPIFiles(items []corev1.DownwardAPIVolumeFile) []shadowFile {
	out := make([]shadowFile, 0, len(items))
	for _, it := range items {
		out = append(out, shadowFile{it.Path, "downwardAPI item " + quote(it.Path)})
	}
	return out
}

// fix renders both ways out: mounting single files with subPath, with its
// trade-off, and mounting the volume at a directory of its own. Ephemeral
// containers cannot use subPath, so they get only the second.
func (p *mountShadowing) fix(v *shadowVolume, ephemeral bool, subPath, mountPath string) string {
	own := fmt.Sprintf("mount the volume at a directory of its own (e.g. %s) and point the application there", p.ownDir(v, mountPath))
	if ephemeral {
		return own + " (ephemeral containers cannot use subPath)"
	}
	tradeOff := fmt.Sprintf("a subPath mount does not receive updates when %s: restart the pod to apply them", v.updates)
	if v.token {
		tradeOff += "; a service account token mounted this way is never refreshed and eventually expires"
	}
	return fmt.Sprintf("%s (%s), or %s", subPath, tradeOff, own)
}

// ownFix is the fix for a mount that subPath cannot fix either: a mount
// point the runtime cannot create.
func (p *mountShadowing) ownFix(v *shadowVolume, mountPath string) string {
	return fmt.Sprintf("mount the volume at a directory of its own (e.g. %s) and point the application there", p.ownDir(v, mountPath))
}

// subPathExample shows how to mount one file into the directory dir.
func (v *shadowVolume) subPathExample(dir string) string {
	file := "<key>"
	if len(v.files.list) > 0 {
		file = v.files.list[0].path
	}
	return fmt.Sprintf("mount single files with subPath, e.g. mountPath: %s with subPath: %s", path.Join(dir, path.Base(file)), file)
}

// subPathFor suggests the subPath for a mountPath that names one file.
func (v *shadowVolume) subPathFor() string {
	if len(v.files.list) == 1 {
		return fmt.Sprintf("add subPath: %s to mount that file", v.files.list[0].path)
	}
	return "add subPath: <key> to mount one of its files"
}

// filesInside says what ends up inside the directory a mount creates at dir.
func (v *shadowVolume) filesInside(dir string) string {
	files := v.files.list
	switch len(files) {
	case 0:
		return "the volume's files end up inside it"
	case 1:
		return fmt.Sprintf("%s ends up at %s", files[0].describe(), path.Join(dir, files[0].path))
	}
	paths := make([]string, 0, MaxListed)
	for _, f := range files[:min(len(files), MaxListed)] {
		paths = append(paths, f.path)
	}
	list := quoteList(paths)
	if more := len(files) - len(paths); more > 0 {
		list += ", and " + thousands(more) + " more"
	}
	return fmt.Sprintf("its files %s end up inside it", list)
}

// ownDir suggests a directory of the volume's own: /etc/<name>, unless that
// is a protected directory or a parent of one, or where the volume is
// mounted now or its parent (a directory the image may well ship).
func (p *mountShadowing) ownDir(v *shadowVolume, mountPath string) string {
	dir := "/etc/" + v.name
	if dir == mountPath || strings.HasPrefix(mountPath, dir+"/") || slices.Contains(p.protected, dir) || len(p.protectedBelow(dir)) > 0 {
		suffix := map[string]string{"ConfigMap": "-config", "Secret": "-secret"}[v.kind]
		if suffix == "" {
			suffix = "-volume"
		}
		dir += suffix
	}
	return dir
}
