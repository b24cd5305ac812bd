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

func TestMountShadowingWithImages(t *testing.T) {
	tomcat := msConfigMapVolume("server-config", "tomcat-server-config")
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
			containers: []msImageContainer{on(tomcatImage.Ref, msMount("server-config", "/usr/local"), msMount("server-config", "/"))},
			wantViolations: []string{
				`at /usr/local without subPath hides 8 files the image ships at /usr/local, e.g. /usr/local/tomcat/bin/catalina.sh, tomcat/conf/catalina.policy and tomcat/conf/catalina.properties`,
				`at / without subPath hides 10 files the image ships at /, e.g. /etc/passwd, etc/ssl/certs/ca-certificates.crt and usr/local/tomcat/bin/catalina.sh`,
			},
		},
		{name: "admits mounts at an empty directory, an absent one, a dangling link and a link loop, and says nothing of file-like names",
			cfg:     MountShadowingConfig{FileLikeMountPaths: FileLikeDeny},
			images:  []ImageFacts{ubiImage, tomcatImage},
			volumes: []corev1.Volume{app},
			containers: []msImageContainer{
				on(tomcatImage.Ref, msMount("cfg", "/usr/local/tomcat/logs"), msMount("cfg", "/config/app.yaml")),
				on(ubiImage.Ref, msMount("cfg", "/etc/broken"), msMount("cfg", "/etc/loop"), msMount("cfg", "/etc/pki/tls/private")),
			},
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
