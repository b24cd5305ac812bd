package policies

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func msConfigMapVolume(name, configMap string, items ...corev1.KeyToPath) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: configMap}, Items: items}}}
}

func msSecretVolume(name, secret string, items ...corev1.KeyToPath) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret, Items: items}}}
}

func msVolume(name string, src corev1.VolumeSource) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: src}
}

func msItem(key, path string) corev1.KeyToPath { return corev1.KeyToPath{Key: key, Path: path} }

func msMount(volume, mountPath string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: volume, MountPath: mountPath}
}

// msContainer is one container of a test pod and the mounts it has.
type msContainer struct {
	init, ephemeral bool
	mounts          []corev1.VolumeMount
}

func msMain(mounts ...corev1.VolumeMount) msContainer { return msContainer{mounts: mounts} }

// msWorld knows the ConfigMaps and Secrets of the seed scenarios, in
// namespace "team-a".
func msWorld() *Snapshot {
	world := NewSnapshot()
	for name, keys := range map[string][]string{
		"tomcat-server-config": {"server.xml"},
		"nginx-conf":           {"nginx.conf"},
		"app-config":           {"settings"},
		"two-files":            {"a.conf", "b.conf"},
		"site":                 {"app.conf"},
		"nginx-default":        {"default.conf"},
		"tomcat-all-conf": {"server.xml", "web.xml", "context.xml", "logging.properties", "tomcat-users.xml",
			"catalina.properties", "catalina.policy", "jaspic-providers.xml"},
		"kube-root-ca.crt": {"ca.crt"},
	} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name}, Data: map[string]string{}}
		for _, k := range keys {
			cm.Data[k] = "x"
		}
		world.AddConfigMap(cm)
	}
	world.AddSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tls"},
		Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}})
	return world
}

func msValidate(cfg MountShadowingConfig, world World, volumes []corev1.Volume, containers []msContainer) Report {
	pod := testPod()
	pod.Spec.Volumes = volumes
	for _, c := range containers {
		ctr := corev1.Container{Name: "c", Image: "app", VolumeMounts: c.mounts}
		switch {
		case c.ephemeral:
			pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox", VolumeMounts: c.mounts}})
		case c.init:
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, ctr)
		default:
			pod.Spec.Containers = append(pod.Spec.Containers, ctr)
		}
	}
	cfg.defaults()
	return newMountShadowing(cfg).Validate(Input{Pod: pod, World: world})
}

// msAssertFindings checks that got has exactly one finding per want, in
// order, each containing the parts of its want (Field + ": " + Message) in
// order. Parts are separated by " … ".
func msAssertFindings(t *testing.T, kind string, got []Finding, want []string) {
	t.Helper()
	joined := make([]string, len(got))
	for i, f := range got {
		joined[i] = f.Field + ": " + f.Message
	}
	if len(got) != len(want) {
		t.Errorf("%d %ss, want %d:\n%s", len(got), kind, len(want), strings.Join(joined, "\n"))
		return
	}
	for i, w := range want {
		rest := joined[i]
		for _, part := range strings.Split(w, " … ") {
			at := strings.Index(rest, part)
			if at < 0 {
				t.Errorf("%s %d does not contain %q after what came before:\n%s", kind, i, part, joined[i])
				break
			}
			rest = rest[at+len(part):]
		}
	}
}

func TestMountShadowing(t *testing.T) {
	tomcat := msConfigMapVolume("server-config", "tomcat-server-config")
	tests := []struct {
		name           string
		cfg            MountShadowingConfig
		untrackSecrets bool
		volumes        []corev1.Volume
		containers     []msContainer
		wantViolations []string
		wantWarnings   []string
	}{
		{name: "denies a server.xml ConfigMap mounted at server.xml without subPath",
			volumes:    []corev1.Volume{tomcat},
			containers: []msContainer{msMain(msMount("server-config", "/usr/local/tomcat/conf/server.xml"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /usr/local/tomcat/conf/server.xml without subPath creates a directory named server.xml instead of a file: ` +
				`key "server.xml" ends up at /usr/local/tomcat/conf/server.xml/server.xml`},
			// server.xml also looks like a file; the denial already says so.
		},
		{name: "allows the same mount with subPath: server.xml",
			volumes: []corev1.Volume{tomcat},
			containers: []msContainer{msMain(corev1.VolumeMount{Name: "server-config", MountPath: "/usr/local/tomcat/conf/server.xml", SubPath: "server.xml"},
				corev1.VolumeMount{Name: "server-config", MountPath: "/tmp/server.xml", SubPath: "server.xml"})},
		},
		{name: "allows a mount with subPathExpr",
			volumes:    []corev1.Volume{tomcat},
			containers: []msContainer{msMain(corev1.VolumeMount{Name: "server-config", MountPath: "/usr/local/tomcat/conf", SubPathExpr: "$(POD_NAME)"})},
		},
		{name: "denies a ConfigMap mounted over the protected directory /usr/local/tomcat/conf",
			volumes:        []corev1.Volume{tomcat},
			containers:     []msContainer{msMain(msMount("server-config", "/usr/local/tomcat/conf"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /usr/local/tomcat/conf without subPath replaces the whole directory /usr/local/tomcat/conf: every file the image ships there becomes invisible`},
		},
		{name: "reads a protected directory written with a trailing slash",
			volumes:        []corev1.Volume{tomcat},
			containers:     []msContainer{msMain(msMount("server-config", "/etc/nginx/"))},
			wantViolations: []string{`at /etc/nginx/ without subPath replaces the whole directory /etc/nginx: every file`},
		},
		{name: "denies a mount at /usr/local, a parent of protected directories",
			volumes:        []corev1.Volume{tomcat},
			containers:     []msContainer{msMain(msMount("server-config", "/usr/local"))},
			wantViolations: []string{`replaces the whole directory /usr/local, which contains /usr/local/apache2/conf, /usr/local/bin, /usr/local/etc/php-fpm.d and 2 more: every file the image ships there becomes invisible`},
		},
		{name: "denies a mount at /",
			volumes:        []corev1.Volume{tomcat},
			containers:     []msContainer{msMain(msMount("server-config", "/"))},
			wantViolations: []string{`at / without subPath replaces the whole directory /: every file the image ships there becomes invisible`},
		},
		{name: "allows a mount below a protected directory",
			volumes:    []corev1.Volume{tomcat},
			containers: []msContainer{msMain(msMount("server-config", "/usr/local/tomcat/conf/extra"))},
		},
		{name: "allows a mount at a directory of its own",
			volumes:    []corev1.Volume{tomcat},
			containers: []msContainer{msMain(msMount("server-config", "/etc/myapp"))},
		},
		{name: "denies nginx.conf mounted at /etc/nginx/nginx.conf",
			volumes:        []corev1.Volume{msConfigMapVolume("nginx", "nginx-conf")},
			containers:     []msContainer{msMain(msMount("nginx", "/etc/nginx/nginx.conf"))},
			wantViolations: []string{`volume "nginx" (ConfigMap "nginx-conf") at /etc/nginx/nginx.conf without subPath creates a directory named nginx.conf instead of a file: key "nginx.conf" ends up at /etc/nginx/nginx.conf/nginx.conf`},
		},
		{name: "matches items[].path without asking the World",
			volumes:        []corev1.Volume{msConfigMapVolume("cfg", "not-in-the-world", msItem("server-xml", "server.xml"))},
			containers:     []msContainer{msMain(msMount("cfg", "/opt/app/server.xml"))},
			wantViolations: []string{`creates a directory named server.xml instead of a file: key "server-xml" (items path "server.xml") ends up at /opt/app/server.xml/server.xml … Fix: add subPath: server.xml to mount just that file`},
		},
		{name: "matches the last element of a nested items[].path",
			volumes:        []corev1.Volume{msConfigMapVolume("cfg", "tomcat-server-config", msItem("server.xml", "conf/server.xml"))},
			containers:     []msContainer{msMain(msMount("cfg", "/opt/app/server.xml"))},
			wantViolations: []string{`ends up at /opt/app/server.xml/conf/server.xml … Fix: add subPath: conf/server.xml`},
		},
		{name: "uses items[].path, not the key, to name the file",
			volumes:    []corev1.Volume{msConfigMapVolume("cfg", "tomcat-server-config", msItem("server.xml", "tomcat.xml"))},
			containers: []msContainer{msMain(msMount("cfg", "/srv/server.xml"))},
			// The directory holds tomcat.xml; server.xml merely looks like a file.
			wantWarnings: []string{`creates a directory named server.xml, but the path looks like a file (.xml) … key "server.xml" (items path "tomcat.xml") ends up at /srv/server.xml/tomcat.xml … Fix: add subPath: tomcat.xml`},
		},
		{name: "denies a Secret key the World knows",
			volumes:        []corev1.Volume{msSecretVolume("certs", "tls")},
			containers:     []msContainer{msMain(msMount("certs", "/certs/tls.crt"))},
			wantViolations: []string{`volume "certs" (Secret "tls") at /certs/tls.crt without subPath creates a directory named tls.crt instead of a file … when the Secret changes`},
		},
		{name: "cannot match Secret keys the World does not know, but still checks directories and file-like paths",
			untrackSecrets: true,
			volumes:        []corev1.Volume{msSecretVolume("certs", "tls")},
			containers:     []msContainer{msMain(msMount("certs", "/certs/tls.crt"), msMount("certs", "/etc/ssl/certs"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[1].mountPath: mounting volume "certs" (Secret "tls") at /etc/ssl/certs without subPath replaces the whole directory /etc/ssl/certs`},
			wantWarnings:   []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "certs" (Secret "tls") at /certs/tls.crt without subPath creates a directory named tls.crt, but the path looks like a file (.crt): the application finds a directory where it expects a file, and the volume's files end up inside it. Fix: add subPath: <key>`},
		},
		{name: "cannot match keys of a ConfigMap that does not exist yet",
			volumes:      []corev1.Volume{msConfigMapVolume("cfg", "created-later")},
			containers:   []msContainer{msMain(msMount("cfg", "/config/app.yaml"))},
			wantWarnings: []string{`volume "cfg" (ConfigMap "created-later") at /config/app.yaml without subPath creates a directory named app.yaml, but the path looks like a file (.yaml)`},
		},
		{name: "denies a projected volume whose ConfigMap source has the key",
			volumes: []corev1.Volume{msVolume("combined", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}}},
			}}})},
			containers:     []msContainer{msMain(msMount("combined", "/srv/settings"))},
			wantViolations: []string{`mounting volume "combined" (projected: ConfigMap "app-config", Secret "tls") at /srv/settings without subPath creates a directory named settings instead of a file: key "settings" ends up at /srv/settings/settings … when its sources change`},
		},
		{name: "denies a projected volume over a protected directory and warns that a subPath token is never refreshed",
			volumes: []corev1.Volume{msVolume("token", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "vault-token", Audience: "vault"}},
			}}})},
			containers:     []msContainer{msMain(msMount("token", "/etc"))},
			wantViolations: []string{`volume "token" (projected: serviceAccountToken) at /etc without subPath replaces the whole directory /etc … subPath: vault-token … a service account token mounted this way is never refreshed and eventually expires`},
		},
		{name: "denies a downwardAPI item path",
			volumes: []corev1.Volume{msVolume("podinfo", corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			}}})},
			containers:     []msContainer{msMain(msMount("podinfo", "/etc/podinfo/labels"))},
			wantViolations: []string{`volume "podinfo" (downwardAPI) at /etc/podinfo/labels without subPath creates a directory named labels instead of a file: downwardAPI item "labels" ends up at /etc/podinfo/labels/labels … when the pod's labels or annotations change`},
		},
		{name: "ignores emptyDir, PVC, hostPath and image volumes over protected directories and file-like paths",
			volumes: []corev1.Volume{
				msVolume("logs", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}),
				msVolume("data", corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}),
				msVolume("host", corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}),
				msVolume("img", corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "quay.io/acme/conf:1"}}),
			},
			containers: []msContainer{msMain(msMount("logs", "/usr/local/tomcat/logs"), msMount("logs", "/etc"), msMount("data", "/var/lib"),
				msMount("host", "/etc/app.yaml"), msMount("img", "/usr/local/tomcat/conf"))},
		},
		{name: "warns about a file-like mountPath that is not one of the keys",
			volumes:      []corev1.Volume{msConfigMapVolume("cfg", "app-config")},
			containers:   []msContainer{msMain(msMount("cfg", "/config/app.yaml"))},
			wantWarnings: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "cfg" (ConfigMap "app-config") at /config/app.yaml without subPath creates a directory named app.yaml, but the path looks like a file (.yaml): the application finds a directory where it expects a file, and key "settings" ends up at /config/app.yaml/settings. Fix: add subPath: settings to mount that file`},
		},
		{name: "denies a file-like mountPath with fileLikeMountPaths: deny",
			cfg:            MountShadowingConfig{FileLikeMountPaths: FileLikeDeny},
			volumes:        []corev1.Volume{msConfigMapVolume("cfg", "app-config")},
			containers:     []msContainer{msMain(msMount("cfg", "/config/app.yaml"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "cfg" (ConfigMap "app-config") at /config/app.yaml without subPath creates a directory named app.yaml, but the path looks like a file (.yaml)`},
		},
		{name: "matches file extensions case-insensitively and lists every file of the volume",
			volumes:      []corev1.Volume{msConfigMapVolume("cfg", "two-files")},
			containers:   []msContainer{msMain(msMount("cfg", "/config/App.YAML"))},
			wantWarnings: []string{`looks like a file (.YAML) … its files "a.conf", "b.conf" end up inside it. Fix: add subPath: <key> to mount one of its files`},
		},
		{name: "allows a directory-like mountPath",
			volumes:    []corev1.Volume{msConfigMapVolume("cfg", "app-config")},
			containers: []msContainer{msMain(msMount("cfg", "/etc/app/conf.d"))},
		},
		{name: "reports every container, init container and ephemeral container with its own path",
			volumes: []corev1.Volume{tomcat, msConfigMapVolume("nginx", "nginx-conf")},
			containers: []msContainer{
				{init: true, mounts: []corev1.VolumeMount{msMount("nginx", "/etc")}},
				msMain(msMount("server-config", "/etc/tomcat")),
				msMain(msMount("nginx", "/srv/nginx/site.conf"), msMount("server-config", "/usr/local/tomcat/conf/server.xml")),
				{ephemeral: true, mounts: []corev1.VolumeMount{msMount("nginx", "/etc/nginx")}},
			},
			wantViolations: []string{
				`spec.initContainers[0].volumeMounts[0].mountPath: mounting volume "nginx" (ConfigMap "nginx-conf") at /etc without subPath replaces the whole directory /etc`,
				`spec.containers[1].volumeMounts[1].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /usr/local/tomcat/conf/server.xml without subPath creates a directory named server.xml`,
				`spec.ephemeralContainers[0].volumeMounts[0].mountPath: mounting volume "nginx" (ConfigMap "nginx-conf") at /etc/nginx without subPath replaces the whole directory /etc/nginx`,
			},
			wantWarnings: []string{`spec.containers[1].volumeMounts[0].mountPath: mounting volume "nginx" (ConfigMap "nginx-conf") at /srv/nginx/site.conf without subPath creates a directory named site.conf`},
		},
		{name: "reports both a key named like the mountPath and the protected directory it hides",
			volumes:    []corev1.Volume{msConfigMapVolume("cfg", "tomcat-server-config", msItem("server.xml", "conf"))},
			containers: []msContainer{msMain(msMount("cfg", "/usr/local/tomcat/conf"))},
			wantViolations: []string{
				`creates a directory named conf instead of a file: key "server.xml" (items path "conf") ends up at /usr/local/tomcat/conf/conf`,
				`replaces the whole directory /usr/local/tomcat/conf: every file`,
			},
		},
		{name: "offers ephemeral containers only a directory of their own, since they cannot use subPath",
			volumes:        []corev1.Volume{tomcat},
			containers:     []msContainer{{ephemeral: true, mounts: []corev1.VolumeMount{msMount("server-config", "/usr/local/tomcat/conf/server.xml")}}},
			wantViolations: []string{`Fix: mount the volume at a directory of its own (e.g. /etc/tomcat-server-config) and point the application there (ephemeral containers cannot use subPath)`},
		},
		{name: "skips a mount of a volume that is not in spec.volumes",
			containers: []msContainer{msMain(msMount("nowhere", "/etc"))},
		},
		{name: "never flags the service account token directory, even when configured as protected",
			cfg: MountShadowingConfig{ProtectedDirs: []string{serviceAccountTokenDir}},
			volumes: []corev1.Volume{msVolume("kube-api-access-x7k2p", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			}}})},
			containers: []msContainer{msMain(msMount("kube-api-access-x7k2p", serviceAccountTokenDir))},
		},
		{name: "replaces the default protected directories with custom ones",
			cfg:        MountShadowingConfig{ProtectedDirs: []string{"/srv/app"}},
			volumes:    []corev1.Volume{tomcat},
			containers: []msContainer{msMain(msMount("server-config", "/etc"), msMount("server-config", "/srv/app"), msMount("server-config", "/usr/local/tomcat/conf")), msMain(msMount("server-config", "/srv"))},
			wantViolations: []string{
				`spec.containers[0].volumeMounts[1].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /srv/app without subPath replaces the whole directory /srv/app: every file`,
				`spec.containers[1].volumeMounts[0].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /srv without subPath replaces the whole directory /srv, which contains /srv/app: every file`,
			},
		},
		{name: "turns the directory and file-like checks off with empty lists, but keeps the key check",
			cfg:            MountShadowingConfig{ProtectedDirs: []string{}, FileExtensions: []string{}},
			volumes:        []corev1.Volume{tomcat},
			containers:     []msContainer{msMain(msMount("server-config", "/etc"), msMount("server-config", "/config/app.yaml"), msMount("server-config", "/srv/server.xml"))},
			wantViolations: []string{`spec.containers[0].volumeMounts[2].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /srv/server.xml without subPath creates a directory named server.xml instead of a file`},
		},
		{name: "uses custom file extensions",
			cfg:          MountShadowingConfig{FileExtensions: []string{".tar.gz"}},
			volumes:      []corev1.Volume{tomcat},
			containers:   []msContainer{msMain(msMount("server-config", "/data/seed.tar.gz"), msMount("server-config", "/config/app.yaml"))},
			wantWarnings: []string{`spec.containers[0].volumeMounts[0].mountPath: mounting volume "server-config" (ConfigMap "tomcat-server-config") at /data/seed.tar.gz without subPath creates a directory named seed.tar.gz, but the path looks like a file (.tar.gz)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			world := msWorld()
			world.TrackSecrets = !tt.untrackSecrets
			rep := msValidate(tt.cfg, world, tt.volumes, tt.containers)
			msAssertFindings(t, "violation", rep.Violations, tt.wantViolations)
			msAssertFindings(t, "warning", rep.Warnings, tt.wantWarnings)
		})
	}
}

// The two seed scenarios, word for word: what a user reads in kubectl's
// error, so every part of it is deliberate.
func TestMountShadowingDenialMessages(t *testing.T) {
	tests := []struct {
		name      string
		mountPath string
		want      string
	}{
		{name: "says that server.xml becomes a directory and offers both fixes",
			mountPath: "/usr/local/tomcat/conf/server.xml",
			want: `mounting volume "server-config" (ConfigMap "tomcat-server-config") at /usr/local/tomcat/conf/server.xml without subPath creates a directory named server.xml instead of a file: ` +
				`key "server.xml" ends up at /usr/local/tomcat/conf/server.xml/server.xml, and if the image already has a file there the container does not start at all ("not a directory"). ` +
				`Fix: add subPath: server.xml to mount just that file (a subPath mount does not receive updates when the ConfigMap changes: restart the pod to apply them), ` +
				`or mount the volume at a directory of its own (e.g. /etc/tomcat-server-config) and point the application there`},
		{name: "says that the conf directory is hidden and offers both fixes",
			mountPath: "/usr/local/tomcat/conf",
			want: `mounting volume "server-config" (ConfigMap "tomcat-server-config") at /usr/local/tomcat/conf without subPath replaces the whole directory /usr/local/tomcat/conf: ` +
				`every file the image ships there becomes invisible and only the volume's files remain. ` +
				`Fix: mount single files with subPath, e.g. mountPath: /usr/local/tomcat/conf/server.xml with subPath: server.xml (a subPath mount does not receive updates when the ConfigMap changes: restart the pod to apply them), ` +
				`or mount the volume at a directory of its own (e.g. /etc/tomcat-server-config) and point the application there`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := msValidate(MountShadowingConfig{}, msWorld(),
				[]corev1.Volume{msConfigMapVolume("server-config", "tomcat-server-config")},
				[]msContainer{msMain(msMount("server-config", tt.mountPath))})
			if len(rep.Violations) != 1 || len(rep.Warnings) != 0 {
				t.Fatalf("violations = %v, warnings = %v; want one violation", rep.Violations, rep.Warnings)
			}
			if got := rep.Violations[0]; got.Field != "spec.containers[0].volumeMounts[0].mountPath" || got.Message != tt.want {
				t.Errorf("got %s: %s\nwant spec.containers[0].volumeMounts[0].mountPath: %s", got.Field, got.Message, tt.want)
			}
		})
	}
}

func TestMountShadowingSuggestsADirectoryThatHidesNothing(t *testing.T) {
	tests := []struct {
		name      string
		configMap string
		mountPath string
		want      string
	}{
		{name: "suggests /etc/<ConfigMap name>", configMap: "app-config", mountPath: "/config/app.yaml", want: "(e.g. /etc/app-config)"},
		{name: "does not suggest a protected directory", configMap: "nginx", mountPath: "/etc/nginx/nginx.conf", want: "(e.g. /etc/nginx-config)"},
		{name: "does not suggest the parent of the mountPath", configMap: "myapp", mountPath: "/etc/myapp/app.yaml", want: "(e.g. /etc/myapp-config)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := msValidate(MountShadowingConfig{FileLikeMountPaths: FileLikeDeny}, NewSnapshot(),
				[]corev1.Volume{msConfigMapVolume("cfg", tt.configMap)},
				[]msContainer{msMain(msMount("cfg", tt.mountPath))})
			msAssertFindings(t, "violation", rep.Violations, []string{tt.want})
		})
	}
}

// A pod as it reaches podguard after the ServiceAccount admission plugin
// added the kube-api-access volume, with a correct subPath mount and a
// shared log emptyDir: nothing to say.
const msServiceAccountPod = `
apiVersion: v1
kind: Pod
metadata:
  name: tomcat
  namespace: team-a
spec:
  serviceAccountName: default
  containers:
  - name: tomcat
    image: tomcat:10
    volumeMounts:
    - name: server-config
      mountPath: /usr/local/tomcat/conf/server.xml
      subPath: server.xml
    - name: app-logs
      mountPath: /usr/local/tomcat/logs
    - name: kube-api-access-x7k2p
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
  - name: logs
    image: alpine:3
    command: [sh, -c, "tail -F /logs/catalina.out"]
    volumeMounts:
    - name: app-logs
      mountPath: /logs
    - name: kube-api-access-x7k2p
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
  volumes:
  - name: server-config
    configMap:
      name: tomcat-server-config
  - name: app-logs
    emptyDir: {}
  - name: kube-api-access-x7k2p
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken:
          expirationSeconds: 3607
          path: token
      - configMap:
          name: kube-root-ca.crt
          items:
          - key: ca.crt
            path: ca.crt
      - downwardAPI:
          items:
          - path: namespace
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.namespace
`

func TestMountShadowingPassesAServiceAccountAdmittedPod(t *testing.T) {
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(msServiceAccountPod), &pod); err != nil {
		t.Fatal(err)
	}
	cfg := MountShadowingConfig{FileLikeMountPaths: FileLikeDeny}
	cfg.defaults()
	rep := newMountShadowing(cfg).Validate(Input{Pod: NewPod(&pod), World: msWorld()})
	if len(rep.Violations)+len(rep.Warnings) > 0 {
		t.Errorf("violations = %v, warnings = %v; want none", rep.Violations, rep.Warnings)
	}
}

func TestMountShadowingDoesNotModifyThePod(t *testing.T) {
	pod := testPod("tomcat")
	pod.Spec.Volumes = []corev1.Volume{msConfigMapVolume("server-config", "tomcat-server-config")}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{msMount("server-config", "/usr/local/tomcat/conf/")}
	before := pod.DeepCopy()
	cfg := MountShadowingConfig{}
	cfg.defaults()
	newMountShadowing(cfg).Validate(Input{Pod: pod, World: msWorld()})
	if pod.Spec.Containers[0].VolumeMounts[0].MountPath != before.Spec.Containers[0].VolumeMounts[0].MountPath || len(pod.Spec.Volumes) != 1 {
		t.Error("Validate modified the pod")
	}
}

func TestMountShadowingConfigDefaults(t *testing.T) {
	var c MountShadowingConfig
	c.defaults()
	if !ptr.Deref(c.Enabled, false) || c.FileLikeMountPaths != FileLikeWarn ||
		!slices.Equal(c.ProtectedDirs, DefaultProtectedDirs) || !slices.Equal(c.ReplaceableDirs, DefaultReplaceableDirs) ||
		!slices.Equal(c.FileExtensions, DefaultFileExtensions) {
		t.Errorf("defaults = %+v", c)
	}
	if errs := c.validate(field.NewPath("policies", "mountShadowing")); len(errs) > 0 {
		t.Errorf("defaults do not validate: %v", errs)
	}
	c.ProtectedDirs[0], c.ReplaceableDirs[0] = "/changed", "/changed"
	if DefaultProtectedDirs[0] == "/changed" || DefaultReplaceableDirs[0] == "/changed" {
		t.Error("defaulted config shares its list with DefaultProtectedDirs or DefaultReplaceableDirs")
	}
	empty := MountShadowingConfig{ReplaceableDirs: []string{}}
	if empty.defaults(); empty.ReplaceableDirs == nil || len(empty.ReplaceableDirs) != 0 {
		t.Errorf("replaceableDirs: [] defaulted to %v, want none", empty.ReplaceableDirs)
	}
}

func TestMountShadowingConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  MountShadowingConfig
		want []string
	}{
		{name: "accepts absolute, clean directories and dotted extensions",
			cfg: MountShadowingConfig{ProtectedDirs: []string{"/", "/srv/app"}, FileLikeMountPaths: FileLikeDeny, FileExtensions: []string{".conf", ".tar.gz"}}},
		{name: "rejects a relative directory",
			cfg:  MountShadowingConfig{ProtectedDirs: []string{"etc"}},
			want: []string{`policies.mountShadowing.protectedDirs[0]: Invalid value: "etc": must be an absolute path`}},
		{name: "rejects an empty directory",
			cfg:  MountShadowingConfig{ProtectedDirs: []string{""}},
			want: []string{`policies.mountShadowing.protectedDirs[0]: Invalid value: "": must be an absolute path`}},
		{name: "rejects directories that are not clean",
			cfg: MountShadowingConfig{ProtectedDirs: []string{"/etc/", "/usr//lib", "/opt/app/../x"}},
			want: []string{
				`policies.mountShadowing.protectedDirs[0]: Invalid value: "/etc/": must be a clean path (/etc)`,
				`policies.mountShadowing.protectedDirs[1]: Invalid value: "/usr//lib": must be a clean path (/usr/lib)`,
				`policies.mountShadowing.protectedDirs[2]: Invalid value: "/opt/app/../x": must be a clean path (/opt/x)`,
			}},
		{name: "rejects a duplicate directory",
			cfg:  MountShadowingConfig{ProtectedDirs: []string{"/etc", "/srv", "/etc"}},
			want: []string{`policies.mountShadowing.protectedDirs[2]: Duplicate value: "/etc"`}},
		{name: "rejects replaceable directories that are relative, not clean or listed twice",
			cfg: MountShadowingConfig{ReplaceableDirs: []string{"var/www/html", "/etc/nginx/conf.d/", "/srv/www", "/srv/www"}},
			want: []string{
				`policies.mountShadowing.replaceableDirs[0]: Invalid value: "var/www/html": must be an absolute path`,
				`policies.mountShadowing.replaceableDirs[1]: Invalid value: "/etc/nginx/conf.d/": must be a clean path (/etc/nginx/conf.d)`,
				`policies.mountShadowing.replaceableDirs[3]: Duplicate value: "/srv/www"`,
			}},
		{name: "rejects an unknown fileLikeMountPaths mode",
			cfg:  MountShadowingConfig{FileLikeMountPaths: "error"},
			want: []string{`policies.mountShadowing.fileLikeMountPaths: Unsupported value: "error": supported values: "warn", "deny"`}},
		{name: "rejects extensions without a leading dot, with a slash, or only a dot",
			cfg: MountShadowingConfig{FileExtensions: []string{"yaml", ".d/x", "."}},
			want: []string{
				`policies.mountShadowing.fileExtensions[0]: Invalid value: "yaml": must start with "." and contain no "/"`,
				`policies.mountShadowing.fileExtensions[1]: Invalid value: ".d/x": must start with "."`,
				`policies.mountShadowing.fileExtensions[2]: Invalid value: ".": must start with "."`,
			}},
		{name: "rejects an extension listed twice in different cases",
			cfg:  MountShadowingConfig{FileExtensions: []string{".yaml", ".YAML"}},
			want: []string{`policies.mountShadowing.fileExtensions[1]: Duplicate value: ".YAML"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.defaults()
			errs := c.validate(field.NewPath("policies", "mountShadowing"))
			if len(errs) != len(tt.want) {
				t.Fatalf("errors = %v, want %d", errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}
