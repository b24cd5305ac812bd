package policies

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// msImageContainer is one container of a test pod: its image and mounts.
type msImageContainer struct {
	image     string
	ephemeral bool
	mounts    []corev1.VolumeMount
}

func msValidateImages(cfg MountShadowingConfig, world World, volumes []corev1.Volume, containers []msImageContainer) Report {
	pod := testPod()
	pod.Spec.Volumes = volumes
	for i, c := range containers {
		if c.ephemeral {
			pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: c.image, VolumeMounts: c.mounts}})
			continue
		}
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: c.image, VolumeMounts: c.mounts})
	}
	cfg.defaults()
	return newMountShadowing(cfg).Validate(Input{Pod: pod, World: world})
}

// nginxImage ships the official nginx image's defaults.
var nginxImage = ImageFacts{Ref: "nginx:1.27", Status: ImageKnown, FS: newTestFS(
	"/etc/nginx/nginx.conf", "/etc/nginx/mime.types", "/etc/nginx/conf.d/default.conf",
	"/usr/share/nginx/html/index.html", "/usr/share/nginx/html/50x.html")}

// siteImage is built on nginx and ships its own site.
var siteImage = ImageFacts{Ref: "registry.local/site:3", Status: ImageKnown, FS: newTestFS(
	"/usr/share/nginx/html/index.html", "/usr/share/nginx/html/static/logo.png")}

// hugeFS has more files below /usr than Files counts.
type hugeFS struct{}

func (hugeFS) Stat(p string) (FileKind, string) { return FileDir, p }
func (hugeFS) Files(dir string, max int) (int, []string) {
	return FilesCountLimit + 1, []string{"/usr/lib/a", "/usr/lib/b", "/usr/lib/c"}[:min(max, 3)]
}

func TestMountShadowingWithImages(t *testing.T) {
	tomcat := msConfigMapVolume("server-config", "tomcat-server-config")
	site := msConfigMapVolume("site", "site")
	tls := msSecretVolume("certs", "tls")
	app := msConfigMapVolume("cfg", "app-config")
	on := func(image string, mounts ...corev1.VolumeMount) msImageContainer {
		return msImageContainer{image: image, mounts: mounts}
	}
	tests := []struct {
		name           string
		cfg            MountShadowingConfig
		images         []ImageFacts
		volumes        []corev1.Volume
		containers     []msImageContainer
		wantViolations []string
		wantWarnings   []string
	}{
		// The Done-when cases.
		{name: "admits a TLS Secret at /etc/pki/tls/certs on an image without /etc/pki, although the directory is protected",
			images:     []ImageFacts{ubuntuImage},
			volumes:    []corev1.Volume{tls},
			containers: []msImageContainer{on(ubuntuImage.Ref, msMount("certs", "/etc/pki/tls/certs"))},
		},
		{name: "denies a ConfigMap over tomcat's conf directory, naming the files it hides",
			images:     []ImageFacts{tomcatImage},
			volumes:    []corev1.Volume{tomcat},
			containers: []msImageContainer{on(tomcatImage.Ref, msMount("server-config", "/usr/local/tomcat/conf"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /usr/local/tomcat/conf without subPath ` +
				`hides 7 files the image ships at /usr/local/tomcat/conf, e.g. /usr/local/tomcat/conf/catalina.policy, catalina.properties and context.xml: they become invisible and only the volume's files remain. ` +
				`Fix: mount single files with subPath, e.g. mountPath: /usr/local/tomcat/conf/server.xml with subPath: server.xml`},
		},
		{name: "denies server.xml mounted at tomcat's server.xml, saying the image ships a file there",
			images:     []ImageFacts{tomcatImage},
			volumes:    []corev1.Volume{tomcat},
			containers: []msImageContainer{on(tomcatImage.Ref, msMount("server-config", "/usr/local/tomcat/conf/server.xml"))},
			wantViolations: []string{`creates a directory named server.xml instead of a file: key "server.xml" ends up at /usr/local/tomcat/conf/server.xml/server.xml, ` +
				`and the image ships a file at /usr/local/tomcat/conf/server.xml, so the container does not start at all ("not a directory"). Fix: add subPath: server.xml`},
		},
		{name: "denies a ConfigMap over a directory of a custom image that no list names",
			images:         []ImageFacts{customImage},
			volumes:        []corev1.Volume{app},
			containers:     []msImageContainer{on(customImage.Ref, msMount("cfg", "/app/config"))},
			wantViolations: []string{`mounting volume "cfg" (ConfigMap "app-config") at /app/config without subPath hides 1 file the image ships at /app/config, e.g. /app/config/application.yaml: it becomes invisible`},
		},
		// The rest of what the image decides.
		{name: "keeps the key rule for a key named like a path the image does not have",
			images:     []ImageFacts{ubuntuImage},
			volumes:    []corev1.Volume{tomcat},
			containers: []msImageContainer{on(ubuntuImage.Ref, msMount("server-config", "/srv/server.xml"))},
			wantViolations: []string{`creates a directory named server.xml instead of a file: key "server.xml" ends up at /srv/server.xml/server.xml, ` +
				`and the application finds a directory where it expects a file. Fix: add subPath: server.xml`},
		},
		{name: "denies a mount over a regular file of the image that is not one of the volume's keys",
			images:     []ImageFacts{customImage},
			volumes:    []corev1.Volume{app},
			containers: []msImageContainer{on(customImage.Ref, msMount("cfg", "/app/config/application.yaml"))},
			wantViolations: []string{`at /app/config/application.yaml without subPath mounts a directory over /app/config/application.yaml, which is a file in the image: ` +
				`the container runtime cannot mount a directory over a file, so the container does not start ("not a directory"). Fix: add subPath: settings to mount that file`},
		},
		{name: "denies a mount over a device of the image",
			images:         []ImageFacts{ubiImage},
			volumes:        []corev1.Volume{app},
			containers:     []msImageContainer{on(ubiImage.Ref, msMount("cfg", "/dev/null"))},
			wantViolations: []string{`mounts a directory over /dev/null, which is a file in the image`},
		},
		{name: "follows the image's symlinks: /etc/ssl/certs on a UBI image hides its CA bundle in /etc/pki/tls/certs",
			images:     []ImageFacts{ubiImage},
			volumes:    []corev1.Volume{tls},
			containers: []msImageContainer{on(ubiImage.Ref, msMount("certs", "/etc/ssl/certs"), msMount("certs", "/etc/pki/tls/certs"))},
			wantViolations: []string{
				`spec.containers[0].volumeMounts[0].mountPath: mounting volume "certs" (Secret "tls") at /etc/ssl/certs without subPath hides 2 files the image ships at /etc/ssl/certs (a link to /etc/pki/tls/certs), e.g. /etc/pki/tls/certs/ca-bundle.crt and ca-bundle.trust.crt`,
				`spec.containers[0].volumeMounts[1].mountPath: mounting volume "certs" (Secret "tls") at /etc/pki/tls/certs without subPath hides 2 files the image ships at /etc/pki/tls/certs, e.g.`,
			},
		},
		{name: "denies a mount at a parent of what the image ships, like / or /usr/local",
			images:     []ImageFacts{tomcatImage},
			volumes:    []corev1.Volume{tomcat},
			containers: []msImageContainer{on(tomcatImage.Ref, msMount("server-config", "/usr/local")), on(tomcatImage.Ref, msMount("server-config", "/"))},
			wantViolations: []string{
				`at /usr/local without subPath hides 8 files the image ships at /usr/local, e.g. /usr/local/tomcat/bin/catalina.sh, tomcat/conf/catalina.policy and tomcat/conf/catalina.properties`,
				`spec.containers[1].volumeMounts[0].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at / without subPath hides 10 files the image ships at /, e.g. /etc/passwd, etc/ssl/certs/ca-certificates.crt and usr/local/tomcat/bin/catalina.sh`,
			},
		},
		{name: "admits mounts at an empty directory, an absent one and a dangling link, and says nothing of file-like names",
			cfg:     MountShadowingConfig{FileLikeMountPaths: FileLikeDeny},
			images:  []ImageFacts{ubiImage, tomcatImage},
			volumes: []corev1.Volume{app},
			containers: []msImageContainer{
				on(tomcatImage.Ref, msMount("cfg", "/usr/local/tomcat/logs"), msMount("cfg", "/config/app.yaml")),
				on(ubiImage.Ref, msMount("cfg", "/etc/broken"), msMount("cfg", "/etc/pki/tls/private")),
			},
		},
		{name: "denies a mount at a symlink loop of the image, which the runtime cannot resolve",
			images:     []ImageFacts{ubiImage},
			volumes:    []corev1.Volume{app},
			containers: []msImageContainer{on(ubiImage.Ref, msMount("cfg", "/etc/loop"), msMount("cfg", "/etc/loop/sub"))},
			wantViolations: []string{
				`spec.containers[0].volumeMounts[0].mountPath: mounting volume "cfg" (ConfigMap "app-config") at /etc/loop without subPath: resolving it in the image meets a symlink loop at /etc/loop, ` +
					`so the runtime cannot create the mount point (too many levels of symbolic links) and the container does not start. Fix: mount the volume at a directory of its own (e.g. /etc/app-config) and point the application there`,
			},
		},
		{name: "denies a mount below a regular file of the image, naming the file",
			images:     []ImageFacts{customImage, ubiImage},
			volumes:    []corev1.Volume{app, tomcat},
			containers: []msImageContainer{on(customImage.Ref, msMount("cfg", "/app/config/application.yaml/x")), on(ubiImage.Ref, msMount("server-config", "/dev/null/server.xml"))},
			wantViolations: []string{
				`spec.containers[0].volumeMounts[0].mountPath: mounting volume "cfg" (ConfigMap "app-config") at /app/config/application.yaml/x without subPath: /app/config/application.yaml is a file in the image, ` +
					`so the runtime cannot create /app/config/application.yaml/x (not a directory) and the container does not start. Fix: mount the volume at a directory of its own (e.g. /etc/app-config) and point the application there`,
				`spec.containers[1].volumeMounts[0].mountPath: … creates a directory named server.xml instead of a file: … and /dev/null is a file in the image, so the runtime cannot create /dev/null/server.xml and the container does not start at all ("not a directory")`,
			},
		},
		{name: "admits a mount below another mount of the same container, whatever the image or the lists say there",
			images: []ImageFacts{ubiImage, customImage},
			volumes: []corev1.Volume{tls, app, msVolume("pki", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}),
				msVolume("data", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})},
			containers: []msImageContainer{
				on(ubiImage.Ref, msMount("pki", "/etc/pki"), msMount("certs", "/etc/pki/tls/certs")),
				on(customImage.Ref, corev1.VolumeMount{Name: "data", MountPath: "/app/", SubPath: "app"}, msMount("cfg", "/app/config"), msMount("cfg", "/app/config/application.yaml/x")),
			},
		},
		{name: "checks a mount below another container's mount against its own image",
			images:         []ImageFacts{ubiImage},
			volumes:        []corev1.Volume{tls, msVolume("pki", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})},
			containers:     []msImageContainer{on(ubiImage.Ref, msMount("pki", "/etc/pki")), on(ubiImage.Ref, msMount("certs", "/etc/pki/tls/certs"))},
			wantViolations: []string{`spec.containers[1].volumeMounts[0].mountPath: mounting volume "certs" (Secret "tls") at /etc/pki/tls/certs without subPath hides 2 files`},
		},
		{name: "keeps the key rule for a mount below another mount",
			images:     []ImageFacts{tomcatImage},
			volumes:    []corev1.Volume{tomcat, msVolume("conf", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})},
			containers: []msImageContainer{on(tomcatImage.Ref, msMount("conf", "/usr/local/tomcat/conf"), msMount("server-config", "/usr/local/tomcat/conf/server.xml"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[1].mountPath: … creates a directory named server.xml instead of a file: key "server.xml" ends up at /usr/local/tomcat/conf/server.xml/server.xml, ` +
				`and the application finds a directory where it expects a file. Fix: add subPath: server.xml`},
		},
		{name: "neither checks against the protected directories nor warns of a pending image for a mount below another mount",
			images:     []ImageFacts{pendingImage(ubuntuImage.Ref)},
			volumes:    []corev1.Volume{tls, msVolume("pki", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})},
			containers: []msImageContainer{on(ubuntuImage.Ref, msMount("pki", "/etc/pki"), msMount("certs", "/etc/pki/tls/certs"))},
		},
		{name: "warns, naming the hidden files, of a ConfigMap over nginx's conf.d, a replaceable directory",
			images:     []ImageFacts{nginxImage},
			volumes:    []corev1.Volume{site},
			containers: []msImageContainer{on(nginxImage.Ref, msMount("site", "/etc/nginx/conf.d"))},
			wantWarnings: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "site" (ConfigMap "site") at /etc/nginx/conf.d without subPath hides 1 file the image ships at /etc/nginx/conf.d, e.g. /etc/nginx/conf.d/default.conf: ` +
				`it becomes invisible and only the volume's files remain. /etc/nginx/conf.d is meant to be replaced (it is one of mountShadowing.replaceableDirs), so this is not denied: ` +
				`if the application still needs that file, add it to the volume (a volume that provides every file it hides is admitted silently)`},
		},
		{name: "warns of a ConfigMap over nginx's html directory and below it, and still denies one over /etc/nginx",
			images:         []ImageFacts{nginxImage, siteImage},
			volumes:        []corev1.Volume{site},
			containers:     []msImageContainer{on(nginxImage.Ref, msMount("site", "/usr/share/nginx/html")), on(siteImage.Ref, msMount("site", "/usr/share/nginx/html/static")), on(nginxImage.Ref, msMount("site", "/etc/nginx"))},
			wantViolations: []string{`spec.containers[2].volumeMounts[0].mountPath: mounting volume "site" (ConfigMap "site") at /etc/nginx without subPath hides 3 files`},
			wantWarnings: []string{
				`spec.containers[0].volumeMounts[0].mountPath: mounting volume "site" (ConfigMap "site") at /usr/share/nginx/html without subPath hides 2 files the image ships at /usr/share/nginx/html, e.g. /usr/share/nginx/html/50x.html and index.html: they become invisible … if the application still needs those files, add them to the volume`,
				`spec.containers[1].volumeMounts[0].mountPath: mounting volume "site" (ConfigMap "site") at /usr/share/nginx/html/static without subPath hides 1 file … (it is in /usr/share/nginx/html, one of mountShadowing.replaceableDirs)`,
			},
		},
		{name: "denies a ConfigMap over nginx's conf.d when replaceableDirs is empty",
			cfg:            MountShadowingConfig{ReplaceableDirs: []string{}},
			images:         []ImageFacts{nginxImage},
			volumes:        []corev1.Volume{site},
			containers:     []msImageContainer{on(nginxImage.Ref, msMount("site", "/etc/nginx/conf.d"))},
			wantViolations: []string{`at /etc/nginx/conf.d without subPath hides 1 file the image ships at /etc/nginx/conf.d, e.g. /etc/nginx/conf.d/default.conf: it becomes invisible and only the volume's files remain. Fix:`},
		},
		{name: "admits silently a volume whose keys replace every file the image ships in the directory, replaceable or not",
			images:  []ImageFacts{nginxImage, tomcatImage},
			volumes: []corev1.Volume{msConfigMapVolume("default", "nginx-default"), msConfigMapVolume("pages", "x", msItem("index", "index.html"), msItem("error", "50x.html")), msConfigMapVolume("conf", "tomcat-all-conf")},
			containers: []msImageContainer{on(nginxImage.Ref, msMount("default", "/etc/nginx/conf.d"), msMount("pages", "/usr/share/nginx/html")),
				on(tomcatImage.Ref, msMount("conf", "/usr/local/tomcat/conf"))},
		},
		{name: "does not count a key as replacing a file in a subdirectory of the same name",
			images:         []ImageFacts{{Ref: "nested:1", Status: ImageKnown, FS: newTestFS("/srv/conf/app.conf", "/srv/conf/extra/app.conf")}},
			volumes:        []corev1.Volume{msConfigMapVolume("cfg", "x", msItem("a", "app.conf"), msItem("b", "extra.conf"))},
			containers:     []msImageContainer{on("nested:1", msMount("cfg", "/srv/conf"))},
			wantViolations: []string{`at /srv/conf without subPath hides 2 files the image ships at /srv/conf, e.g. /srv/conf/app.conf and extra/app.conf`},
		},
		{name: "says more than 10,000 files when the image has more below the mount than Files counts",
			images:         []ImageFacts{{Ref: "huge:1", Status: ImageKnown, FS: hugeFS{}}},
			volumes:        []corev1.Volume{app},
			containers:     []msImageContainer{on("huge:1", msMount("cfg", "/usr"))},
			wantViolations: []string{`at /usr without subPath hides more than 10,000 files the image ships at /usr, e.g. /usr/lib/a, lib/b and lib/c: they become invisible`},
		},
		{name: "checks an ephemeral container against its own image",
			images:  []ImageFacts{ubuntuImage, tomcatImage},
			volumes: []corev1.Volume{tomcat},
			containers: []msImageContainer{on(ubuntuImage.Ref, msMount("server-config", "/usr/local/tomcat/conf")),
				{image: tomcatImage.Ref, ephemeral: true, mounts: []corev1.VolumeMount{msMount("server-config", "/usr/local/tomcat/conf")}}},
			wantViolations: []string{`spec.ephemeralContainers[0].volumeMounts[0].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /usr/local/tomcat/conf without subPath hides 7 files … (ephemeral containers cannot use subPath)`},
		},
		{name: "quotes file names from the image that are not plain",
			images:         []ImageFacts{{Ref: "odd:1", Status: ImageKnown, FS: newTestFS("/srv/conf/a b.xml", "/srv/conf/x\ny.xml")}},
			volumes:        []corev1.Volume{app},
			containers:     []msImageContainer{on("odd:1", msMount("cfg", "/srv/conf"))},
			wantViolations: []string{`hides 2 files the image ships at /srv/conf, e.g. "/srv/conf/a b.xml" and "x\ny.xml": they become invisible`},
		},
		// The heuristic, when the image is not known.
		{name: "falls back to the protected directories silently when the image is not inspected",
			volumes:        []corev1.Volume{tls},
			containers:     []msImageContainer{on(ubuntuImage.Ref, msMount("certs", "/etc/pki/tls/certs"))},
			wantViolations: []string{`at /etc/pki/tls/certs without subPath replaces the whole directory /etc/pki/tls/certs`},
		},
		{name: "falls back to the protected directories and says so, once per image, while the image is pending",
			images:         []ImageFacts{pendingImage(ubuntuImage.Ref)},
			volumes:        []corev1.Volume{tls, app},
			containers:     []msImageContainer{on(ubuntuImage.Ref, msMount("certs", "/etc/pki/tls/certs"), msMount("cfg", "/srv/app")), on(ubuntuImage.Ref, msMount("cfg", "/srv/other"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "certs" (Secret "tls") at /etc/pki/tls/certs without subPath replaces the whole directory /etc/pki/tls/certs`},
			wantWarnings: []string{`spec.containers[0].image: image "ubuntu-app:1" was not inspected yet: the fetch was still running after 1.5s, ` +
				`so its mounts without subPath were checked against podguard's list of protected directories and file-like names instead of the files the image ships`},
		},
		{name: "falls back to the file-like rule and says so when inspecting the image failed",
			images:  []ImageFacts{failedImage(customImage.Ref)},
			volumes: []corev1.Volume{app},
			containers: []msImageContainer{on(tomcatImage.Ref, msMount("cfg", "/srv/a")),
				on(customImage.Ref, msMount("cfg", "/config/app.yaml"))},
			wantWarnings: []string{
				`spec.containers[1].volumeMounts[0].mountPath: mounting volume "cfg" (ConfigMap "app-config") at /config/app.yaml without subPath creates a directory named app.yaml, but the path looks like a file (.yaml)`,
				`spec.containers[1].image: image "registry.local/team/api:2" was not inspected yet: registry.local answered 500 Internal Server Error, so its mounts`,
			},
		},
		{name: "does not warn about a pending image whose container mounts nothing it checks",
			images:  []ImageFacts{pendingImage(tomcatImage.Ref)},
			volumes: []corev1.Volume{tomcat, msVolume("logs", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})},
			containers: []msImageContainer{on(tomcatImage.Ref, corev1.VolumeMount{Name: "server-config", MountPath: "/usr/local/tomcat/conf/server.xml", SubPath: "server.xml"},
				msMount("logs", "/usr/local/tomcat/logs"), msMount("server-config", "relative/conf"))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := msValidateImages(tt.cfg, withImages(msWorld(), tt.images...), tt.volumes, tt.containers)
			msAssertFindings(t, "violation", rep.Violations, tt.wantViolations)
			msAssertFindings(t, "warning", rep.Warnings, tt.wantWarnings)
		})
	}
}
