package registrytest

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageConfig is the part of an image config the builders set.
type ImageConfig struct {
	OS, Architecture, Variant string // default linux/amd64
	User                      string
	WorkingDir                string
	Env                       []string
	Entrypoint, Cmd           []string
}

// NewImage builds a Docker v2 schema 2 image of layers (bottom first) with
// config c. Its config's rootfs and history are filled in by mutate.
func NewImage(c ImageConfig, layers ...v1.Layer) (v1.Image, error) {
	if c.OS == "" {
		c.OS = "linux"
	}
	if c.Architecture == "" {
		c.Architecture = "amd64"
	}
	cfg := &v1.ConfigFile{
		Architecture: c.Architecture,
		OS:           c.OS,
		Variant:      c.Variant,
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       c.User,
			WorkingDir: c.WorkingDir,
			Env:        c.Env,
			Entrypoint: c.Entrypoint,
			Cmd:        c.Cmd,
		},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: fmt.Sprintf("registrytest layer %d", i)}}
	}
	return mutate.Append(img, adds...)
}

func mustImage(c ImageConfig, layers ...v1.Layer) v1.Image {
	img, err := NewImage(c, layers...)
	if err != nil {
		panic(err)
	}
	return img
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// debianBase is the tree of a debian/ubuntu-like base layer (no /etc/pki).
func debianBase(arch string) []Entry {
	return []Entry{
		Dir("etc/"),
		File("etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
		File("etc/group", "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"),
		File("etc/os-release", "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n"),
		File("etc/hostname", ""),
		Dir("etc/ssl/"),
		Dir("etc/ssl/certs/"),
		File("etc/ssl/certs/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\nUkVHSVNUUllURVNUIENBIChkZWJpYW4p\n-----END CERTIFICATE-----\n"),
		Dir("root/"),
		Dir("tmp/"),
		Dir("usr/"),
		Dir("usr/bin/"),
		Exec("usr/bin/bash", "#!registrytest bash\n"),
		Exec("usr/bin/sh", "#!registrytest sh\n"),
		Exec("usr/bin/ls", "#!registrytest ls\n"),
		Exec("usr/bin/cat", "#!registrytest cat\n"),
		Exec("usr/bin/env", "#!registrytest env\n"),
		Dir("usr/lib/"),
		Dir("usr/lib/" + arch + "-linux-gnu/"),
		File("usr/lib/"+arch+"-linux-gnu/libc.so.6", "registrytest libc\n"),
		Dir("usr/sbin/"),
		Dir("var/"),
		Dir("var/lib/"),
		Dir("var/lib/dpkg/"),
		File("var/lib/dpkg/status", "Package: base-files\nStatus: install ok installed\n"),
	}
}

func debianLayer() v1.Layer {
	es := debianBase("x86_64")
	es = append(es,
		Symlink("bin", "usr/bin"),
		Symlink("lib", "usr/lib"),
		Symlink("sbin", "usr/sbin"),
	)
	return mustLayer(es...)
}

// Ubuntu is a one-layer debian-like image: /etc/passwd, /etc/group,
// /etc/os-release, /etc/ssl/certs/ca-certificates.crt, /usr/bin/{bash,sh,
// ls,cat,env}, /usr/lib/x86_64-linux-gnu/libc.so.6, /var/lib/dpkg/status,
// /root, /tmp and the usrmerge symlinks /bin -> usr/bin, /lib -> usr/lib,
// /sbin -> usr/sbin. No /etc/pki. USER "" (root), no WorkingDir,
// Cmd ["/bin/bash"].
func Ubuntu() v1.Image {
	return mustImage(ImageConfig{Env: []string{defaultPath}, Cmd: []string{"/bin/bash"}}, debianLayer())
}

// TomcatConfFiles are the files of /usr/local/tomcat/conf in Tomcat().
var TomcatConfFiles = []string{
	"server.xml", "web.xml", "context.xml", "logging.properties",
	"catalina.properties", "catalina.policy", "tomcat-users.xml",
}

// Tomcat is two layers: the Ubuntu() base layer, and an app layer with
// /usr/local/tomcat/bin/catalina.sh, /usr/local/tomcat/conf/<TomcatConfFiles>,
// /usr/local/tomcat/lib/catalina.jar and the empty directories
// /usr/local/tomcat/webapps/ and /usr/local/tomcat/logs/.
// USER "" (root), WorkingDir /usr/local/tomcat, Cmd ["catalina.sh", "run"].
func Tomcat() v1.Image {
	es := []Entry{
		Dir("usr/local/"),
		Dir("usr/local/tomcat/"),
		Dir("usr/local/tomcat/bin/"),
		Exec("usr/local/tomcat/bin/catalina.sh", "#!/bin/sh\nexec java org.apache.catalina.startup.Bootstrap \"$@\"\n"),
		Dir("usr/local/tomcat/conf/"),
	}
	for _, f := range TomcatConfFiles {
		es = append(es, File("usr/local/tomcat/conf/"+f, "<!-- registrytest "+f+" -->\n"))
	}
	es = append(es,
		Dir("usr/local/tomcat/lib/"),
		File("usr/local/tomcat/lib/catalina.jar", "PK registrytest\n"),
		Dir("usr/local/tomcat/logs/"),
		Dir("usr/local/tomcat/webapps/"),
	)
	return mustImage(ImageConfig{
		WorkingDir: "/usr/local/tomcat",
		Env:        []string{"PATH=/usr/local/tomcat/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CATALINA_HOME=/usr/local/tomcat"},
		Cmd:        []string{"catalina.sh", "run"},
	}, debianLayer(), mustLayer(es...))
}

// UBI is a one-layer RHEL-like image: /etc/pki/tls/certs/ca-bundle.crt,
// /etc/pki/tls/certs/ca-bundle.trust.crt, the symlink /etc/ssl/certs ->
// ../pki/tls/certs, /etc/passwd (with user "default" 1001), /etc/group,
// /etc/os-release, /usr/bin/{bash,sh}, /bin -> usr/bin, /lib64 -> usr/lib64,
// /opt/app-root/src. USER "1001", WorkingDir /opt/app-root/src.
func UBI() v1.Image {
	l := mustLayer(
		Symlink("bin", "usr/bin"),
		Dir("etc/"),
		File("etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndefault:x:1001:0:Default Application User:/opt/app-root/src:/sbin/nologin\n"),
		File("etc/group", "root:x:0:\n"),
		File("etc/os-release", "NAME=\"Red Hat Enterprise Linux\"\nVERSION_ID=\"9.4\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\n"),
		Dir("etc/pki/"),
		Dir("etc/pki/tls/"),
		Dir("etc/pki/tls/certs/"),
		File("etc/pki/tls/certs/ca-bundle.crt", "-----BEGIN CERTIFICATE-----\nUkVHSVNUUllURVNUIENBIChyaGVsKQ==\n-----END CERTIFICATE-----\n"),
		File("etc/pki/tls/certs/ca-bundle.trust.crt", "-----BEGIN TRUSTED CERTIFICATE-----\nUkVHSVNUUllURVNUIENBIChyaGVsKQ==\n-----END TRUSTED CERTIFICATE-----\n"),
		Dir("etc/ssl/"),
		Symlink("etc/ssl/certs", "../pki/tls/certs"),
		Symlink("lib64", "usr/lib64"),
		Dir("opt/"),
		Dir("opt/app-root/"),
		Dir("opt/app-root/src/"),
		Dir("tmp/"),
		Dir("usr/"),
		Dir("usr/bin/"),
		Exec("usr/bin/bash", "#!registrytest bash\n"),
		Exec("usr/bin/sh", "#!registrytest sh\n"),
		Dir("usr/lib64/"),
	)
	return mustImage(ImageConfig{
		User:       "1001",
		WorkingDir: "/opt/app-root/src",
		Env:        []string{defaultPath},
		Cmd:        []string{"/bin/bash"},
	}, l)
}

// Whiteout is two layers. Layer 1 creates /app/config/a.yaml,
// /app/config/b.yaml, /app/keep.txt and /opt/data/x. Layer 2 has
// /app/.wh.config (deletes the directory), /opt/data/.wh..wh..opq (opaque:
// hides everything below /opt/data from lower layers) and then /opt/data/y.
// The merged tree: /app/keep.txt and /opt/data/y; no /app/config, no
// /opt/data/x. USER "", no WorkingDir.
func Whiteout() v1.Image {
	l1 := mustLayer(
		Dir("app/"),
		Dir("app/config/"),
		File("app/config/a.yaml", "a: 1\n"),
		File("app/config/b.yaml", "b: 2\n"),
		File("app/keep.txt", "keep\n"),
		Dir("opt/"),
		Dir("opt/data/"),
		File("opt/data/x", "x\n"),
	)
	l2 := mustLayer(
		File("app/.wh.config", ""),
		Dir("opt/data/"),
		File("opt/data/.wh..wh..opq", ""),
		File("opt/data/y", "y\n"),
	)
	return mustImage(ImageConfig{Env: []string{defaultPath}}, l1, l2)
}

// AppConfig is the Ubuntu() base layer plus an app layer with
// /app/app.jar, /app/config/application.yaml and /app/config/logback.xml.
// USER "10001:10001", WorkingDir /app, Entrypoint ["java","-jar","/app/app.jar"].
func AppConfig() v1.Image {
	l := mustLayer(
		Dir("app/"),
		File("app/app.jar", "PK registrytest app\n"),
		Dir("app/config/"),
		File("app/config/application.yaml", "server:\n  port: 8080\n"),
		File("app/config/logback.xml", "<configuration/>\n"),
	)
	return mustImage(ImageConfig{
		User:       "10001:10001",
		WorkingDir: "/app",
		Env:        []string{defaultPath},
		Entrypoint: []string{"java", "-jar", "/app/app.jar"},
	}, debianLayer(), l)
}

// UserImages are the images of Users.
type UserImages struct {
	Root    v1.Image // USER "root"
	Numeric v1.Image // USER "1000"
	Named   v1.Image // USER "app" (app is uid 1000 in its /etc/passwd)
}

// Users returns three one-layer images that differ in USER only (and in
// an /etc/passwd that names "app" as uid 1000).
func Users() UserImages {
	l := mustLayer(
		Dir("etc/"),
		File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"),
		File("etc/group", "root:x:0:\napp:x:1000:\n"),
		Dir("home/"),
		Dir("home/app/"),
		Dir("usr/"),
		Dir("usr/bin/"),
		Exec("usr/bin/sh", "#!registrytest sh\n"),
	)
	img := func(u string) v1.Image {
		return mustImage(ImageConfig{User: u, Env: []string{defaultPath}, Cmd: []string{"/usr/bin/sh"}}, l)
	}
	return UserImages{Root: img("root"), Numeric: img("1000"), Named: img("app")}
}

// MultiArch is a Docker manifest list of two images, linux/amd64 (tree:
// /etc/os-release, /opt/amd64-only) and linux/arm64/v8 (/etc/os-release,
// /opt/arm64-only), with matching config platforms. USER "" for both.
func MultiArch() v1.ImageIndex {
	mk := func(arch, variant string) (v1.Image, *v1.Platform) {
		img := mustImage(ImageConfig{Architecture: arch, Variant: variant, Env: []string{defaultPath}},
			mustLayer(
				Dir("etc/"),
				File("etc/os-release", "ID=registrytest\nARCH="+arch+"\n"),
				Dir("opt/"),
				File("opt/"+arch+"-only", arch+"\n"),
			))
		return img, &v1.Platform{OS: "linux", Architecture: arch, Variant: variant}
	}
	amd, pa := mk("amd64", "")
	arm, pr := mk("arm64", "v8")
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	return mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: pa}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: pr}},
	)
}

// MaliciousPAX is one layer: MaliciousPAXLayer.
func MaliciousPAX() v1.Image { return mustImage(ImageConfig{}, MaliciousPAXLayer()) }

// MaliciousTraversal is one layer: MaliciousTraversalLayer.
func MaliciousTraversal() v1.Image { return mustImage(ImageConfig{}, MaliciousTraversalLayer()) }

// MaliciousMany is one layer of n zero-size files (ManyEntriesLayer), which
// is never held in memory: Push registers it and the registry regenerates it
// for every GET (about 0.25 s of CPU per million entries; the blob is about
// 13 bytes per entry, the tar 512). See ManyEntriesLayer for the cost of the
// first use of a given n.
func MaliciousMany(n int) v1.Image { return mustImage(ImageConfig{}, ManyEntriesLayer(n)) }

// Endless is one layer: EndlessLayer, declared 1 TiB, whose bytes never end.
func Endless() v1.Image { return mustImage(ImageConfig{}, EndlessLayer()) }
