package policies

import (
	"path"
	"slices"
	"strings"
	"testing"
)

// testFS is an ImageFS built from a list of paths, for tests:
//
//	"/usr/local/tomcat/conf/server.xml"    a regular file (and its parents)
//	"/app/config/"                         an empty directory
//	"/etc/ssl/certs -> ../pki/tls/certs"   a symlink, relative or absolute
//	"/dev/null!"                           a device, fifo or socket
type testFS struct {
	kinds   map[string]FileKind
	targets map[string]string
}

func newTestFS(entries ...string) testFS {
	fs := testFS{kinds: map[string]FileKind{"/": FileDir}, targets: map[string]string{}}
	for _, e := range entries {
		kind := FileRegular
		p, target, link := strings.Cut(e, " -> ")
		switch {
		case link:
			kind = FileSymlink
			fs.targets[path.Clean(p)] = target
		case strings.HasSuffix(p, "/"):
			kind = FileDir
		case strings.HasSuffix(p, "!"):
			kind, p = FileOther, strings.TrimSuffix(p, "!")
		}
		p = path.Clean(p)
		fs.kinds[p] = kind
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			fs.kinds[d] = FileDir
		}
	}
	return fs
}

// Stat follows symlinks in every element, the way the runtime resolves a
// mount target, giving up after 40 of them (a loop) like the kernel.
func (fs testFS) Stat(p string) (FileKind, string) {
	rest := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	cur, hops, followed := "/", 0, false
	for len(rest) > 0 {
		elem := rest[0]
		rest = rest[1:]
		if elem == "" || elem == "." {
			continue
		}
		next := path.Join(cur, elem)
		switch fs.kinds[next] {
		case FileSymlink:
			if hops++; hops > 40 {
				return FileLoop, next
			}
			followed = true
			target := fs.targets[next]
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest = append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), rest...)
			cur = "/"
		case FileDir:
			cur = next
		case FileAbsent:
			if followed {
				return FileSymlink, path.Join(append([]string{next}, rest...)...)
			}
			return FileAbsent, path.Join(append([]string{next}, rest...)...)
		default:
			if len(rest) > 0 { // a file in the middle of the path
				return FileNotDir, next
			}
			return fs.kinds[next], next
		}
	}
	return FileDir, cur
}

func (fs testFS) Files(dir string, max int) (int, []string) {
	var all []string
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for p, k := range fs.kinds {
		if k != FileDir && (p == dir || strings.HasPrefix(p, prefix)) {
			all = append(all, p)
		}
	}
	slices.Sort(all)
	return min(len(all), FilesCountLimit+1), all[:min(len(all), max)]
}

// Images the tests use: their facts as an inspector would give them.
var (
	// tomcatImage ships its conf directory and runs as root.
	tomcatImage = ImageFacts{Ref: "tomcat:10", Status: ImageKnown, FS: newTestFS(
		"/usr/local/tomcat/conf/server.xml", "/usr/local/tomcat/conf/web.xml", "/usr/local/tomcat/conf/context.xml",
		"/usr/local/tomcat/conf/logging.properties", "/usr/local/tomcat/conf/tomcat-users.xml",
		"/usr/local/tomcat/conf/catalina.properties", "/usr/local/tomcat/conf/catalina.policy",
		"/usr/local/tomcat/logs/", "/usr/local/tomcat/bin/catalina.sh", "/etc/passwd", "/etc/ssl/certs/ca-certificates.crt")}
	// ubuntuImage has no /etc/pki, like ubuntu, debian-slim and alpine.
	ubuntuImage = ImageFacts{Ref: "ubuntu-app:1", Status: ImageKnown, User: "1000", FS: newTestFS(
		"/etc/passwd", "/etc/ssl/certs/ca-certificates.crt", "/usr/bin/python3", "/tmp/", "/srv/")}
	// ubiImage ships its CA bundle in /etc/pki/tls/certs, reached through
	// the /etc/ssl/certs link.
	ubiImage = ImageFacts{Ref: "ubi-app:1", Status: ImageKnown, User: "1001:0", FS: newTestFS(
		"/etc/pki/tls/certs/ca-bundle.crt", "/etc/pki/tls/certs/ca-bundle.trust.crt", "/etc/ssl/certs -> ../pki/tls/certs",
		"/etc/app/settings", "/etc/broken -> /nowhere", "/etc/loop -> /etc/loop", "/dev/null!")}
	// customImage ships its own config where no list would look.
	customImage = ImageFacts{Ref: "registry.local/team/api:2", Status: ImageKnown, User: "app", FS: newTestFS(
		"/app/config/application.yaml", "/app/bin/api", "/app/data/")}
)

// withImages returns base with facts about the given images.
func withImages(base World, images ...ImageFacts) World {
	m := map[string]ImageFacts{}
	for _, f := range images {
		m[f.Ref] = f
	}
	return WithImages(base, m)
}

func pendingImage(ref string) ImageFacts {
	return ImageFacts{Ref: ref, Status: ImagePending, Why: "the fetch was still running after 1.5s"}
}

func failedImage(ref string) ImageFacts {
	return ImageFacts{Ref: ref, Status: ImageFailed, Why: "registry.local answered 500 Internal Server Error"}
}

func TestTestFS(t *testing.T) {
	fs := ubiImage.FS
	tests := []struct {
		path     string
		kind     FileKind
		resolved string
	}{
		{"/etc/ssl/certs", FileDir, "/etc/pki/tls/certs"},
		{"/etc/ssl/certs/ca-bundle.crt", FileRegular, "/etc/pki/tls/certs/ca-bundle.crt"},
		{"/etc/app/settings", FileRegular, "/etc/app/settings"},
		{"/etc/app/settings/x", FileNotDir, "/etc/app/settings"},
		{"/etc/broken", FileSymlink, "/nowhere"},
		{"/etc/loop", FileLoop, "/etc/loop"},
		{"/dev/null", FileOther, "/dev/null"},
		{"/opt", FileAbsent, "/opt"},
		{"/", FileDir, "/"},
	}
	for _, tt := range tests {
		if kind, resolved := fs.Stat(tt.path); kind != tt.kind || resolved != tt.resolved {
			t.Errorf("Stat(%s) = %v, %s; want %v, %s", tt.path, kind, resolved, tt.kind, tt.resolved)
		}
	}
	if n, sample := fs.Files("/etc/pki/tls/certs", 1); n != 2 || !slices.Equal(sample, []string{"/etc/pki/tls/certs/ca-bundle.crt"}) {
		t.Errorf("Files = %d, %v", n, sample)
	}
}

// imagesRunningAs returns base with each of refs known to run as user (an
// image config's USER) and to ship nothing.
func imagesRunningAs(base World, user string, refs ...string) World {
	var facts []ImageFacts
	for _, ref := range refs {
		facts = append(facts, ImageFacts{Ref: ref, Status: ImageKnown, User: user, FS: newTestFS()})
	}
	return withImages(base, facts...)
}
