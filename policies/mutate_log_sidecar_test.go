package policies

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
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
	if sc.Image != "busybox:1.37" || sc.Resources.Requests.Memory().String() != "16Mi" || sc.Resources.Limits.Memory().String() != "64Mi" {
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
	c := LogSidecarConfig{Image: " busybox", Native: "sometimes", RunAsUser: ptr.To[int64](0)}
	c.defaults()
	c.Resources.Requests[corev1.ResourceMemory] = c.Resources.Limits[corev1.ResourceMemory]
	c.Resources.Limits[corev1.ResourceMemory] = c.Resources.Requests[corev1.ResourceCPU]
	errs := c.validate(field.NewPath("policies", "logSidecar"))
	want := []string{"policies.logSidecar.image", "policies.logSidecar.native: Unsupported value", "policies.logSidecar.runAsUser", "policies.logSidecar.resources.requests[memory]"}
	got := errs.ToAggregate().Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("errors do not mention %q: %s", w, got)
		}
	}
}

// TestDefaultLogStreamer runs the default sidecar script against a real
// directory: files present at start, files created later, appended lines,
// and rotation by rename all show up once, prefixed with the file name.
func TestDefaultLogStreamer(t *testing.T) {
	shell := []string{"sh", "-c"}
	if bb, err := exec.LookPath("busybox"); err == nil {
		shell = []string{bb, "sh", "-c"} // what the default image runs
	}
	for _, tool := range []string{"tail", "awk", "stat"} {
		if _, err := exec.LookPath(tool); err != nil && len(shell) == 2 {
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	write := func(name, text string) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write("catalina.log", "started\n")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell[0], append(shell[1:], DefaultLogStreamer)...)
	cmd.Env = append(os.Environ(), envLogDir+"="+dir)
	cmd.SysProcAttr = streamerProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer killStreamer(cmd)

	lines := make(chan string, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the streamer stopped before printing %q", want)
				}
				if l == want {
					return
				}
				if strings.Contains(l, "started") && want != "[catalina.log] started" {
					t.Fatalf("a line was printed twice: %q", l)
				}
			case <-deadline:
				t.Fatalf("no line %q within 10s", want)
			}
		}
	}
	expect("[catalina.log] started")
	write("catalina.log", "request 1\n")
	expect("[catalina.log] request 1")
	write("localhost.2026-11-27.log", "new file\n")
	expect("[localhost.2026-11-27.log] new file")
	// Rotation by rename: the old content must not be printed again.
	if err := os.Rename(filepath.Join(dir, "catalina.log"), filepath.Join(dir, "catalina.log.1")); err != nil {
		t.Fatal(err)
	}
	write("catalina.log", "after rotation\n")
	expect("[catalina.log] after rotation")
	killStreamer(cmd)
	_, _ = io.Copy(io.Discard, stdout)
	wg.Wait()
}
