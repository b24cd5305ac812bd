package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/policies"
)

func TestStreamLogsUsage(t *testing.T) {
	t.Setenv("PODGUARD_LOG_DIR", "")
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "needs a directory", args: []string{"stream-logs"}, wantStderr: "stream-logs needs a directory: --dir or $PODGUARD_LOG_DIR"},
		{name: "takes no arguments", args: []string{"stream-logs", "--dir", "/tmp", "extra"}, wantStderr: `stream-logs takes no arguments, got ["extra"]`},
		{name: "rejects a tiny poll interval", args: []string{"stream-logs", "--dir", "/tmp", "--poll", "1ms"}, wantStderr: "--poll must be at least 10ms, got 1ms"},
		{name: "rejects no files", args: []string{"stream-logs", "--dir", "/tmp", "--max-files", "0"}, wantStderr: "--max-files must be positive, got 0"},
		{name: "rejects an unknown flag", args: []string{"stream-logs", "--follow"}, wantStderr: "flag provided but not defined: -follow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, strings.NewReader(""), &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2\nstderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

// The identity and command of TestStreamLogsBinary's streamer are what the
// log-sidecar policy injects into a tomcat pod with fsGroup 2000 (see
// injectedSidecar): runAsUser, runAsGroup, and the pod's fsGroup, which the
// kubelet adds to every container's supplementary groups.
var (
	sidecarSetpriv []string
	sidecarCommand []string
	testFSGroup    = 2000
)

// injectedSidecar runs the log-sidecar mutation, as the webhook does, on a
// tomcat pod with fsGroup 2000, whose app runs as root (stock tomcat) or as
// a uid the spec gives, and sets the streamer's setpriv identity and command
// from the sidecar it injects. Both pods must give the sidecar the same
// identity, since the test runs one streamer for files written by root and
// by the app's own uid.
func injectedSidecar(t *testing.T, bin string) {
	t.Helper()
	var ids []string
	for _, appUID := range []*int64{nil, ptr.To[int64](65534)} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tomcat", Namespace: "default", Annotations: map[string]string{policies.LogsAnnotation: "/usr/local/tomcat/logs"}},
			Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To(int64(testFSGroup)), RunAsUser: appUID},
				Containers: []corev1.Container{{Name: "tomcat", Image: "tomcat:10"}}}}
		s := &policies.Settings{}
		s.Default()
		world := policies.NewSnapshot()
		world.Versions.ServerVersion, _ = policies.ParseKubeVersion("v1.33.0")
		res, err := policies.NewEngine(s).Mutate(policies.NewPod(p), world)
		if err != nil || res.Denied() || len(res.Pod.Spec.InitContainers) != 1 {
			t.Fatalf("the log-sidecar mutation did not inject one native sidecar: err %v, result %+v", err, res)
		}
		sc := res.Pod.Spec.InitContainers[0]
		if len(sc.Command) == 0 || sc.Command[0] != "/podguard" {
			t.Fatalf("the sidecar runs %q, not podguard's own binary", sc.Command)
		}
		fsGroup := ptr.Deref(res.Pod.Spec.SecurityContext.FSGroup, -1)
		ids = append(ids, fmt.Sprintf("%d:%d:%d", ptr.Deref(sc.SecurityContext.RunAsUser, -1), ptr.Deref(sc.SecurityContext.RunAsGroup, -1), fsGroup))
		sidecarSetpriv = []string{"--reuid", fmt.Sprint(*sc.SecurityContext.RunAsUser), "--regid", fmt.Sprint(*sc.SecurityContext.RunAsGroup), "--groups", fmt.Sprint(fsGroup)}
		sidecarCommand = append([]string{bin}, sc.Command[1:]...)
	}
	if ids[0] != ids[1] || ids[0] != fmt.Sprintf("65534:%d:%d", testFSGroup, testFSGroup) {
		t.Fatalf("the sidecar's uid:gid:fsGroup are %v, want 65534:%d:%d for both pods", ids, testFSGroup, testFSGroup)
	}
}

// TestStreamLogsBinary runs the built podguard binary the way the log
// sidecar runs it (`/podguard stream-logs`, the directory in
// $PODGUARD_LOG_DIR, as another user than the app), against files written by
// a separate process that behaves like tomcat: it keeps its log open, writes
// after a rename until it reopens, and its logs are rotated by rename and by
// copytruncate. The streamer is stopped with SIGTERM right after the writer
// exits: the last lines, and a last line without a newline, must still be
// printed. Only --poll differs from the sidecar, to keep the test short.
func TestStreamLogsBinary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to run the streamer and the writer as other users with setpriv")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipped: setpriv (util-linux) is not installed; it runs the streamer as another user")
	}
	base := worldReadableTempDir(t)
	bin := buildPodguard(t, base)
	injectedSidecar(t, bin)

	t.Run("tomcat's umask 0027, as root, in the fsGroup-owned setgid directory", func(t *testing.T) {
		t.Parallel()
		testStreamsEveryLineOnce(t, bin, fsGroupLogDir(t, base, "umask-0027"), "0027", nil, 0o640)
	})
	t.Run("umask 0022, as root", func(t *testing.T) {
		t.Parallel()
		testStreamsEveryLineOnce(t, bin, fsGroupLogDir(t, base, "umask-0022"), "0022", nil, 0o644)
	})
	t.Run("umask 0077, as the streamer's user", func(t *testing.T) {
		t.Parallel()
		testStreamsEveryLineOnce(t, bin, fsGroupLogDir(t, base, "umask-0077"), "0077", sidecarSetpriv, 0o600)
	})
	t.Run("a file it may not read is reported with the fix, then streamed when it may", func(t *testing.T) {
		t.Parallel()
		testReportsUnreadable(t, bin, filepath.Join(base, "not-setgid"))
	})
}

func testStreamsEveryLineOnce(t *testing.T, bin, logs, umask string, writerAs []string, wantMode os.FileMode) {
	streamer := startStreamer(t, bin, logs)
	script := tomcatLikeWriter(umask)
	runLogWriter(t, logs, writerAs, script.String())
	streamer.stop(t)

	fi, err := os.Stat(filepath.Join(logs, "catalina.log"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != wantMode || st.Gid != uint32(testFSGroup) {
		t.Fatalf("the writer made catalina.log %04o with group %d, want %04o with the fsGroup %d: the test does not test what it says", fi.Mode().Perm(), st.Gid, wantMode, testFSGroup)
	}

	printed := splitLines(streamer.stdout.String())
	count := map[string]int{}
	for _, p := range printed {
		label, content, ok := strings.Cut(strings.TrimPrefix(p, "["), "] ")
		if !ok || !strings.HasPrefix(p, "[") {
			t.Errorf("printed %q, which is not a prefixed line", p)
			continue
		}
		if stream, _, _ := strings.Cut(content, " "); !strings.HasPrefix(label, script.files[stream]) {
			t.Errorf("printed %q under the label %q, want %s*", content, label, script.files[stream])
		}
		count[content]++
	}
	for _, w := range script.want {
		if count[w] != 1 {
			t.Errorf("printed %q %d times, want once", w, count[w])
		}
		delete(count, w)
	}
	for content := range count {
		t.Errorf("printed %q, which was not written", content)
	}
	wantNotes := []string{"podguard stream-logs: following the files in " + logs, "podguard stream-logs: skipping catalina.log.2.gz: compressed"}
	if got := splitLines(streamer.stderr.String()); len(got) != len(wantNotes) || !strings.HasPrefix(got[0], wantNotes[0]) || got[1] != wantNotes[1] {
		t.Errorf("stderr:\n%s\nwant the notes:\n%s", streamer.stderr.String(), strings.Join(wantNotes, "\n"))
	}
	if t.Failed() {
		t.Logf("writer script:\n%s\nstdout:\n%s", script.String(), streamer.stdout.String())
	}
}

// testReportsUnreadable writes tomcat's 0640 root:root files in a directory
// that is not group-owned and setgid, as a volume without fsGroup is: the
// streamer, not in group 0, may not read them. It must say so once, with the
// fix, keep running, and stream the file once it may read it.
func testReportsUnreadable(t *testing.T, bin, logs string) {
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	streamer := startStreamer(t, bin, logs)
	runLogWriter(t, logs, nil, "umask 0027\necho 'catalina line 1' >> catalina.log\nmkdir sub\necho 'app line 1' >> sub/app.log\n")
	wantNotes := []string{
		"podguard stream-logs: cannot read catalina.log (mode 0640, owner uid 0 gid 0; this streamer runs as uid 65534 gid 2000 with groups [2000]): permission denied. " +
			"It is group-readable, but its group 0 is not one of this streamer's: its directory (mode 0755, group 0) is not owned by the pod's fsGroup with the setgid bit, so new files keep the app's group (the kubelet does that for an emptyDir, not for a hostPath). " +
			"Fix: have the app write group-readable files (umask 0027 is fine): podguard gives the pod an fsGroup, so the log directory is group-owned and setgid, new files get that group, and this sidecar runs in it. " +
			"(Running the sidecar as the file's owner is not an option: the app runs as root.) Retrying every 50ms.",
		"podguard stream-logs: cannot list directory sub (mode 0750, owner uid 0 gid 0; this streamer runs as uid 65534 gid 2000 with groups [2000]): permission denied. Fix: ",
	}
	waitForStreamer(t, func() bool {
		return strings.Contains(streamer.stderr.String(), wantNotes[0]) && strings.Contains(streamer.stderr.String(), wantNotes[1])
	})
	time.Sleep(300 * time.Millisecond) // several polls: the notes must not repeat
	for p, mode := range map[string]os.FileMode{"catalina.log": 0o644, "sub": 0o755, "sub/app.log": 0o644} {
		if err := os.Chmod(filepath.Join(logs, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	waitForStreamer(t, func() bool { return strings.Count(streamer.stdout.String(), "\n") == 2 })
	streamer.stop(t)

	if got, want := streamer.stdout.String(), "[catalina.log] catalina line 1\n[sub/app.log] app line 1\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	notes := streamer.stderr.String()
	for _, w := range append(wantNotes, "podguard stream-logs: can read catalina.log now", "podguard stream-logs: can list directory sub now") {
		if n := strings.Count(notes, w); n != 1 {
			t.Errorf("stderr has %d times %q, want once:\n%s", n, w, notes)
		}
	}
	if n := strings.Count(notes, "\n"); n != 5 {
		t.Errorf("stderr has %d lines, want 5 (start, two problems, two recoveries):\n%s", n, notes)
	}
}

// writerScript is a shell script that writes logs like tomcat, and the lines
// it writes.
type writerScript struct {
	b     strings.Builder
	want  []string
	files map[string]string // first word of a line -> the file (prefix) it is printed under
}

func (s *writerScript) sh(format string, args ...any) { fmt.Fprintf(&s.b, format+"\n", args...) }

func (s *writerScript) echo(fd int, line string) {
	s.sh("echo '%s' >&%d", line, fd)
	s.want = append(s.want, line)
}

func (s *writerScript) String() string { return s.b.String() }

// tomcatLikeWriter writes catalina.log through a descriptor it keeps open
// (3), rotates it by rename three times, writing once more to the renamed
// file before reopening, then by copytruncate twice; writes an access log
// and a log in a subdirectory created later, a compressed copy of a rotated
// log, and a last line without a newline. Some steps leave the streamer time
// to look, some do not.
func tomcatLikeWriter(umask string) *writerScript {
	s := &writerScript{files: map[string]string{"catalina": "catalina.log", "access": "localhost_access_log.2024-01-01.txt", "app": "app/app.log"}}
	s.sh("set -e\numask %s", umask)
	s.sh("exec 3>>catalina.log 4>>localhost_access_log.2024-01-01.txt")
	rotated := 0
	shift := func() {
		for k := rotated; k >= 1; k-- {
			s.sh("mv catalina.log.%d catalina.log.%d", k, k+1)
		}
		rotated++
	}
	for gen := range 5 {
		for i := range 4 {
			s.echo(3, fmt.Sprintf("catalina gen%d line%d", gen, i))
			s.echo(4, fmt.Sprintf("access gen%d line%d", gen, i))
		}
		if gen%2 == 0 {
			s.sh("sleep 0.15")
		}
		shift()
		if gen < 3 {
			s.sh("mv catalina.log catalina.log.1")
			s.echo(3, fmt.Sprintf("catalina gen%d after the rename", gen))
			s.sh("exec 3>>catalina.log")
		} else {
			s.sh("cp catalina.log catalina.log.1\n: > catalina.log")
		}
		if gen == 2 {
			s.sh("mkdir app\nexec 5>>app/app.log")
		}
		if gen >= 2 {
			s.echo(5, fmt.Sprintf("app gen%d", gen))
		}
	}
	s.sh("gzip -c catalina.log.2 > catalina.log.2.gz")
	s.echo(3, "catalina last line")
	s.sh("printf '%%s' 'catalina line without a newline' >&3")
	s.want = append(s.want, "catalina line without a newline")
	return s
}

// fsGroupLogDir makes a log directory as the kubelet makes an emptyDir of a pod
// with fsGroup: group-owned by the fsGroup, group-writable, setgid.
func fsGroupLogDir(t *testing.T, base, name string) string {
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, testFSGroup); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runLogWriter runs a shell script in dir, as root or as another user.
func runLogWriter(t *testing.T, dir string, as []string, script string) {
	t.Helper()
	args := []string{"/bin/sh", "-c", script}
	if as != nil {
		args = append(append([]string{"setpriv"}, as...), args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the writer failed: %v\n%s\nscript:\n%s", err, out, script)
	}
}

type streamerProcess struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
}

// startStreamer starts `podguard stream-logs` as the sidecar's user, with the
// directory in $PODGUARD_LOG_DIR, and waits for its start-up note.
func startStreamer(t *testing.T, bin, logs string) *streamerProcess {
	t.Helper()
	args := append(append(append([]string{}, sidecarSetpriv...), "--"), sidecarCommand...)
	args = append(args, "--poll", "50ms")
	p := &streamerProcess{cmd: exec.Command("setpriv", args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	p.cmd.Env = append(os.Environ(), "PODGUARD_LOG_DIR="+logs)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	waitForStreamer(t, func() bool { return strings.Contains(p.stderr.String(), "following the files in") })
	return p
}

// stop sends SIGTERM, as the kubelet does, and wants exit code 0.
func (p *streamerProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stream-logs exited with %v after SIGTERM, want 0\nstderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("stream-logs did not exit within 10s of SIGTERM")
	}
}

// buildPodguard builds the podguard binary (with the image's linker flags)
// into dir. It inherits the test's environment, so it reuses the build
// cache; `make unit` sets CGO_ENABLED=0, as the image's build does.
func buildPodguard(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "podguard")
	cmd := exec.Command("go", "build", "-ldflags", "-s -w", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// worldReadableTempDir is a temporary directory other users can enter, for
// the binary and the log directories. (t.TempDir's parent is 0700.)
func worldReadableTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "podguard-stream-logs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func waitForStreamer(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// lockedBuffer is a bytes.Buffer a process writes to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
