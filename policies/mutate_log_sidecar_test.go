package policies

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/pod-security-admission/api"
	"k8s.io/utils/ptr"
)

func logSidecarPolicy(mut func(*LogSidecarConfig)) *logSidecar {
	c := LogSidecarConfig{}
	if mut != nil {
		mut(&c)
	}
	c.defaults()
	return newLogSidecar(c)
}

// tomcatPod is the seed scenario: tomcat writing /usr/local/tomcat/logs.
func tomcatPod(annotation string, containers ...string) *Pod {
	if len(containers) == 0 {
		containers = []string{"tomcat"}
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tomcat", Namespace: "team-a", Annotations: map[string]string{LogsAnnotation: annotation}}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "tomcat:10"})
	}
	return NewPod(p)
}

func nativeWorld(server, kubeletVersion string) *Snapshot {
	w := NewSnapshot()
	w.Versions = Cluster{ServerVersion: kubelet(server), KubeletVersion: kubelet(kubeletVersion)}
	return w
}

func TestLogSidecarInjectsANativeSidecarSharingAnEmptyDir(t *testing.T) {
	pod := tomcatPod("/usr/local/tomcat/logs")
	out, rep := logSidecarPolicy(nil).Mutate(Input{Pod: pod, World: nativeWorld("v1.33.0", "v1.33.1")})
	if len(rep.Violations)+len(rep.Warnings) > 0 {
		t.Fatalf("findings: %+v", rep)
	}
	if len(out.Spec.InitContainers) != 1 || len(out.Spec.Containers) != 1 {
		t.Fatalf("want one native sidecar and the app, got init=%d containers=%d", len(out.Spec.InitContainers), len(out.Spec.Containers))
	}
	sc := out.Spec.InitContainers[0]
	if sc.Name != "tomcat-logs" || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar = %s restartPolicy %v, want tomcat-logs with restartPolicy Always", sc.Name, sc.RestartPolicy)
	}
	if len(out.Spec.Volumes) != 1 || out.Spec.Volumes[0].EmptyDir == nil {
		t.Fatalf("volumes = %+v, want one emptyDir", out.Spec.Volumes)
	}
	vol := out.Spec.Volumes[0].Name
	app := out.Spec.Containers[0]
	if len(app.VolumeMounts) != 1 || app.VolumeMounts[0].Name != vol || app.VolumeMounts[0].MountPath != "/usr/local/tomcat/logs" {
		t.Errorf("app mounts = %+v", app.VolumeMounts)
	}
	if len(sc.VolumeMounts) != 1 || sc.VolumeMounts[0].Name != vol || !sc.VolumeMounts[0].ReadOnly {
		t.Errorf("sidecar mounts = %+v", sc.VolumeMounts)
	}
	if sc.Image != DefaultSidecarImage || !slices.Equal(sc.Command, []string{"/podguard", "stream-logs"}) || sc.Resources.Requests.Memory().String() != "16Mi" || sc.Resources.Limits.Memory().String() != "64Mi" {
		t.Errorf("sidecar image/resources = %s %+v", sc.Image, sc.Resources)
	}
	sec := sc.SecurityContext
	if !*sec.RunAsNonRoot || *sec.AllowPrivilegeEscalation || sec.Capabilities.Drop[0] != "ALL" || sec.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("sidecar security context is not restricted: %+v", sec)
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Volumes) != 0 {
		t.Error("the input pod was modified")
	}
	again, _ := logSidecarPolicy(nil).Mutate(Input{Pod: out, World: nativeWorld("v1.33.0", "v1.33.1")})
	if again != out {
		t.Error("a second pass changed the pod")
	}
}

func TestLogSidecarPlacement(t *testing.T) {
	tests := []struct {
		name        string
		native      string
		world       *Snapshot
		restart     corev1.RestartPolicy
		wantNative  bool
		wantWarning string
	}{
		{name: "uses a native sidecar on 1.29", world: nativeWorld("v1.29.0", "v1.29.4"), wantNative: true},
		{name: "uses a regular container when a kubelet is older than 1.29", world: nativeWorld("v1.30.0", "v1.28.9")},
		{name: "uses a regular container when the API server is older than 1.29", world: nativeWorld("v1.28.2", "")},
		{name: "uses a regular container when the API server version is unknown", world: NewSnapshot()},
		{name: "uses a native sidecar when config says always", native: NativeAlways, world: NewSnapshot(), wantNative: true},
		{name: "uses a regular container when config says never", native: NativeNever, world: nativeWorld("v1.33.0", "")},
		{name: "warns that a regular sidecar keeps a Job's pod running", world: nativeWorld("v1.28.0", ""), restart: corev1.RestartPolicyNever,
			wantWarning: "keeps running after the app exits, so a Job's pod will not complete on its own"},
		{name: "does not warn for a Job's pod with a native sidecar", world: nativeWorld("v1.31.0", ""), restart: corev1.RestartPolicyOnFailure, wantNative: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := tomcatPod("/usr/local/tomcat/logs")
			pod.Spec.RestartPolicy = tt.restart
			out, rep := logSidecarPolicy(func(c *LogSidecarConfig) { c.Native = tt.native }).Mutate(Input{Pod: pod, World: tt.world})
			native := len(out.Spec.InitContainers) == 1 && len(out.Spec.Containers) == 1
			regular := len(out.Spec.InitContainers) == 0 && len(out.Spec.Containers) == 2 && out.Spec.Containers[1].RestartPolicy == nil
			if native != tt.wantNative || native == regular {
				t.Errorf("native=%v regular=%v, want native=%v", native, regular, tt.wantNative)
			}
			assertFindings(t, "warning", rep.Warnings, nonEmpty(tt.wantWarning))
		})
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func TestLogSidecarAnnotation(t *testing.T) {
	tests := []struct {
		name       string
		annotation string
		containers []string
		mounts     map[string]string // container -> existing mount at /var/log/app (volume name)
		wantSide   []string          // sidecar names
		wantDeny   []string
	}{
		{name: "names the container when the pod has several", annotation: "web=/var/log/app", containers: []string{"web", "worker"}, wantSide: []string{"web-logs"}},
		{name: "injects one sidecar per entry", annotation: "web=/var/log/app, worker=/var/log/worker,web=/var/log/access",
			containers: []string{"web", "worker"}, wantSide: []string{"web-logs", "worker-logs", "web-logs-2"}},
		{name: "reads a trailing slash as the same dir", annotation: "/var/log/app/,/var/log/app", wantSide: []string{"tomcat-logs"}},
		{name: "reuses the volume already mounted at the dir", annotation: "/var/log/app", mounts: map[string]string{"tomcat": "existing-logs"}, wantSide: []string{"tomcat-logs"}},
		{name: "denies an entry without a container when the pod has several", annotation: "/var/log/app", containers: []string{"web", "worker"},
			wantDeny: []string{`metadata.annotations[podguard.io/logs]: "/var/log/app" names no container, and the pod has 2 containers ("web", "worker"); expected a comma-separated list of [container=]/absolute/dir`}},
		{name: "denies a container that does not exist", annotation: "api=/var/log/app", wantDeny: []string{`container "api" does not exist; the pod's containers are "tomcat"`}},
		{name: "denies a relative path", annotation: "logs", wantDeny: []string{`"logs" is not an absolute path`, "No log sidecar was added"}},
		{name: "denies the root dir", annotation: "/", wantDeny: []string{`"/" would mount the log volume over the container's root`}},
		{name: "denies an empty entry", annotation: "/var/log/app,,", wantDeny: []string{`entry 2 of "/var/log/app,," is empty`, `entry 3 of "/var/log/app,," is empty`}},
		{name: "denies every bad entry at once and injects nothing", annotation: "x=/a,rel", wantDeny: []string{`container "x" does not exist`, `"rel" is not an absolute path`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := tomcatPod(tt.annotation, tt.containers...)
			for i := range pod.Spec.Containers {
				if vol, ok := tt.mounts[pod.Spec.Containers[i].Name]; ok {
					pod.Spec.Containers[i].VolumeMounts = []corev1.VolumeMount{{Name: vol, MountPath: "/var/log/app"}}
					pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "logs"}}})
				}
			}
			world := nativeWorld("v1.31.0", "")
			out, rep := logSidecarPolicy(nil).Mutate(Input{Pod: pod, World: world})
			assertFindings(t, "violation", rep.Violations, tt.wantDeny)
			if len(tt.wantDeny) > 0 {
				if out != pod {
					t.Error("a denied pod was mutated")
				}
				return
			}
			var names []string
			for _, c := range out.Spec.InitContainers {
				names = append(names, c.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantSide, ",") {
				t.Errorf("sidecars = %v, want %v", names, tt.wantSide)
			}
			for name, vol := range tt.mounts {
				if got := out.Spec.InitContainers[0].VolumeMounts[0].Name; got != vol {
					t.Errorf("sidecar of %s mounts %q, want the existing volume %q", name, got, vol)
				}
				if len(out.Spec.Volumes) != 1 {
					t.Errorf("a volume was added although one was mounted: %+v", out.Spec.Volumes)
				}
			}
			again, _ := logSidecarPolicy(nil).Mutate(Input{Pod: out, World: world})
			if again != out {
				t.Error("a second pass changed the pod")
			}
		})
	}
}

func TestLogSidecarAvoidsAUserContainerOfTheSameName(t *testing.T) {
	pod := tomcatPod("tomcat=/usr/local/tomcat/logs", "tomcat", "tomcat-logs")
	out, _ := logSidecarPolicy(nil).Mutate(Input{Pod: pod, World: nativeWorld("v1.31.0", "")})
	if got := out.Spec.InitContainers[0].Name; got != "tomcat-logs-2" {
		t.Errorf("sidecar name = %q, want tomcat-logs-2", got)
	}
}

func TestLogSidecarIgnoresPodsWithoutTheAnnotation(t *testing.T) {
	pod := testPod("nginx")
	if out, rep := logSidecarPolicy(nil).Mutate(Input{Pod: pod, World: NewSnapshot()}); out != pod || len(rep.Violations)+len(rep.Warnings) > 0 {
		t.Errorf("changed a pod that asked for nothing: %+v", rep)
	}
}

func TestLogSidecarCustomStreamer(t *testing.T) {
	p := logSidecarPolicy(func(c *LogSidecarConfig) {
		c.Image = "cr.fluentbit.io/fluent/fluent-bit:3.2"
		c.Command = []string{"/fluent-bit/bin/fluent-bit"}
		c.Args = []string{"-i", "tail", "-p", "path=$(PODGUARD_LOG_DIR)/*", "-o", "stdout"}
	})
	out, _ := p.Mutate(Input{Pod: tomcatPod("/usr/local/tomcat/logs"), World: nativeWorld("v1.31.0", "")})
	sc := out.Spec.InitContainers[0]
	if sc.Image != "cr.fluentbit.io/fluent/fluent-bit:3.2" || sc.Command[0] != "/fluent-bit/bin/fluent-bit" || sc.Args[3] != "path=$(PODGUARD_LOG_DIR)/*" {
		t.Errorf("sidecar = %+v", sc)
	}
	if sc.Env[0].Name != "PODGUARD_LOG_DIR" || sc.Env[0].Value != "/podguard/logs" {
		t.Errorf("env = %+v", sc.Env)
	}
}

func TestLogSidecarConfigValidation(t *testing.T) {
	c := LogSidecarConfig{Image: " busybox", Native: "sometimes", RunAsUser: ptr.To[int64](0), FSGroup: ptr.To[int64](0)}
	c.defaults()
	c.Resources.Requests[corev1.ResourceMemory] = c.Resources.Limits[corev1.ResourceMemory]
	c.Resources.Limits[corev1.ResourceMemory] = c.Resources.Requests[corev1.ResourceCPU]
	errs := c.validate(field.NewPath("policies", "logSidecar"))
	want := []string{"policies.logSidecar.image", "policies.logSidecar.native: Unsupported value", "policies.logSidecar.runAsUser", "policies.logSidecar.fsGroup", "policies.logSidecar.resources.requests[memory]"}
	got := errs.ToAggregate().Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("errors do not mention %q: %s", w, got)
		}
	}
}

// The sidecar must read what the app writes. Stock tomcat runs as root with
// umask 0027 (0640 root:root files): the pod's fsGroup makes the kubelet
// give the log volume to that group, setgid, so the files are group-readable
// by the sidecar, which runs in that group. With the app's uid known, the
// sidecar runs as it and also reads 0600 files.
func TestLogSidecarIdentityReadsWhatTheAppWrites(t *testing.T) {
	tests := []struct {
		name                 string
		podSC                *corev1.PodSecurityContext
		appSC                *corev1.SecurityContext
		cfg                  func(*LogSidecarConfig)
		image                ImageFacts // what the World knows of tomcat:10
		wantWarning          string
		wantUID, wantGID     int64
		wantFSGroup          int64
		wantFSGroupPolicySet bool
	}{
		{name: "gives a root app's pod an fsGroup and runs the sidecar as nobody in it",
			wantUID: 65534, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "keeps the pod's own fsGroup and runs the sidecar in it",
			podSC:   &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000)},
			wantUID: 1000, wantGID: 2000, wantFSGroup: 2000},
		{name: "runs as the app container's own uid, which overrides the pod's",
			podSC: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}, appSC: &corev1.SecurityContext{RunAsUser: ptr.To[int64](1001)},
			wantUID: 1001, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "never runs as root, even when the app does",
			podSC:   &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0), FSGroup: ptr.To[int64](3000)},
			wantUID: 65534, wantGID: 3000, wantFSGroup: 3000},
		{name: "uses the configured user and fsGroup",
			cfg:     func(c *LogSidecarConfig) { c.RunAsUser, c.FSGroup = ptr.To[int64](4242), ptr.To[int64](4343) },
			podSC:   &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)},
			wantUID: 4242, wantGID: 4343, wantFSGroup: 4343, wantFSGroupPolicySet: true},
		{name: "runs as the uid of the app's inspected image when the pod gives none, in the fsGroup rather than the image's group",
			image:   ImageFacts{Status: ImageKnown, User: "1000:1000", FS: newTestFS()},
			wantUID: 1000, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "prefers the pod's uid to the image's",
			image:   ImageFacts{Status: ImageKnown, User: "1000", FS: newTestFS()},
			podSC:   &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](2000)},
			wantUID: 2000, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "runs as nobody when the pod says the app runs as root, whatever the image's USER",
			image:   ImageFacts{Status: ImageKnown, User: "1000", FS: newTestFS()},
			podSC:   &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0)},
			wantUID: 65534, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "prefers the configured user to the image's",
			image:   ImageFacts{Status: ImageKnown, User: "1000", FS: newTestFS()},
			cfg:     func(c *LogSidecarConfig) { c.RunAsUser = ptr.To[int64](4242) },
			wantUID: 4242, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "runs as nobody when the image's USER is a name, whose uid podguard does not know",
			image:   ImageFacts{Status: ImageKnown, User: "tomcat:tomcat", FS: newTestFS()},
			wantUID: 65534, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "runs as nobody when the image runs as root",
			image:   ImageFacts{Status: ImageKnown, User: "0", FS: newTestFS()},
			wantUID: 65534, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "runs as nobody while the image is pending, and says so",
			image: ImageFacts{Status: ImagePending, User: "1000", Why: "the fetch was still running after 1.5s"},
			wantWarning: `spec.containers[0].image: image "tomcat:10" was not inspected yet: the fetch was still running after 1.5s, so the log sidecar of container "tomcat" runs as 65534 rather than as the app's uid: ` +
				`it reads the log files that are group-readable, not those the app keeps to its owner`,
			wantUID: 65534, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "runs as nobody when inspecting the image failed, and says so",
			image:       ImageFacts{Status: ImageFailed, Why: "401 Unauthorized"},
			wantWarning: `spec.containers[0].image: image "tomcat:10" was not inspected yet: 401 Unauthorized, so the log sidecar`,
			wantUID:     65534, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
		{name: "does not warn about a pending image when the pod gives the uid",
			image:   ImageFacts{Status: ImagePending},
			podSC:   &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)},
			wantUID: 1000, wantGID: 65534, wantFSGroup: 65534, wantFSGroupPolicySet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := tomcatPod("/usr/local/tomcat/logs")
			pod.Spec.SecurityContext = tt.podSC
			pod.Spec.Containers[0].SecurityContext = tt.appSC
			image := tt.image
			image.Ref = "tomcat:10"
			world := withImages(nativeWorld("v1.33.0", ""), image)
			out, rep := logSidecarPolicy(tt.cfg).Mutate(Input{Pod: pod, World: world})
			if len(rep.Violations) > 0 {
				t.Fatalf("denied: %v", rep.Violations)
			}
			var want []string
			if tt.wantWarning != "" {
				want = []string{tt.wantWarning}
			}
			msAssertFindings(t, "warning", rep.Warnings, want)
			sc := out.Spec.InitContainers[0].SecurityContext
			if *sc.RunAsUser != tt.wantUID || sc.RunAsGroup == nil || *sc.RunAsGroup != tt.wantGID {
				t.Errorf("sidecar runs as %d:%v, want %d:%d", *sc.RunAsUser, ptr.Deref(sc.RunAsGroup, -1), tt.wantUID, tt.wantGID)
			}
			psc := out.Spec.SecurityContext
			if psc.FSGroup == nil || *psc.FSGroup != tt.wantFSGroup {
				t.Errorf("fsGroup = %v, want %d", psc.FSGroup, tt.wantFSGroup)
			}
			if (psc.FSGroupChangePolicy != nil) != tt.wantFSGroupPolicySet {
				t.Errorf("fsGroupChangePolicy = %v, want set: %v", psc.FSGroupChangePolicy, tt.wantFSGroupPolicySet)
			}
			if pod.Spec.SecurityContext != tt.podSC || (tt.podSC != nil && tt.podSC.FSGroupChangePolicy != nil) {
				t.Error("the input pod was modified")
			}
		})
	}
}

// On clusters without native sidecars the sidecar is a regular container.
// The API server calls the mutating webhook again when a later webhook
// changed the pod (reinvocationPolicy: IfNeeded), and podguard's own
// sidecar must not then count as a second app container: that denied every
// pod with "/dir names no container" on old-kubelet clusters.
func TestLogSidecarReadsItsOwnOutputAgain(t *testing.T) {
	for _, native := range []string{NativeNever, NativeAlways} {
		for _, ann := range []string{"/usr/local/tomcat/logs", "tomcat=/usr/local/tomcat/logs", "/usr/local/tomcat/logs,/usr/local/tomcat/temp"} {
			t.Run(native+"/"+ann, func(t *testing.T) {
				p := logSidecarPolicy(func(c *LogSidecarConfig) { c.Native = native })
				in := Input{Pod: tomcatPod(ann), World: NewSnapshot()}
				once, rep := p.Mutate(in)
				if len(rep.Violations) > 0 || once == in.Pod {
					t.Fatalf("first pass: changed=%v violations=%v", once != in.Pod, rep.Violations)
				}
				twice, rep := p.Mutate(Input{Pod: once, World: in.World})
				if len(rep.Violations) > 0 {
					t.Fatalf("podguard denied its own output: %v", rep.Violations)
				}
				if twice != once {
					t.Errorf("the second pass changed the pod")
				}
			})
		}
	}
}

// Injecting the sidecar never makes a pod fail Pod Security restricted: a
// pod that passes it before passes it after, in both sidecar modes, with
// the fsGroup podguard adds or the pod's own, and with the app's uid given
// or not.
func TestLogSidecarKeepsARestrictedPodRestricted(t *testing.T) {
	for _, native := range []string{NativeAlways, NativeNever} {
		for _, podSC := range []*corev1.PodSecurityContext{
			{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		} {
			pod := tomcatPod("/usr/local/tomcat/logs")
			pod.Spec.SecurityContext = podSC
			pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
			passesPodSecurity(t, api.LevelRestricted, pod)
			out, rep := logSidecarPolicy(func(c *LogSidecarConfig) { c.Native = native }).Mutate(Input{Pod: pod, World: NewSnapshot()})
			if out == pod || len(rep.Violations) > 0 {
				t.Fatalf("%s: no sidecar injected: %v", native, rep.Violations)
			}
			passesPodSecurity(t, api.LevelRestricted, out)
		}
	}
}

// A Windows pod gets no sidecar (its image is Linux-only, and the API
// server rejects its Linux security settings on a Windows pod): the
// annotation denies it, at the annotation, saying why.
func TestLogSidecarDeniesAWindowsPod(t *testing.T) {
	pod := tomcatPod("/usr/local/tomcat/logs")
	pod.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	out, rep := logSidecarPolicy(nil).Mutate(Input{Pod: pod, World: nativeWorld("v1.31.0", "")})
	if out != pod {
		t.Error("a Windows pod was mutated")
	}
	assertFindings(t, "violation", rep.Violations, []string{`metadata.annotations[podguard.io/logs]: the log sidecar is Linux-only, and this is a Windows pod`})
	// Through the engine too: the pod is denied, not admitted without logs.
	res, err := NewEngine(defaultSettings()).Check(pod, nativeWorld("v1.31.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Denied() || res.Outcomes[LogSidecarName] != OutcomeDenied {
		t.Errorf("not denied: %+v", res)
	}
}
