package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestModulePath(t *testing.T) {
	for _, tc := range []struct{ gomod, want string }{
		{"module github.com/podguard/podguard\n\ngo 1.26.0\n", ModulePath},
		{"// comment\nmodule \"github.com/podguard/podguard\" // trailing\n", ModulePath},
		{"module podguard.io/podguard/hack/tools\n", "podguard.io/podguard/hack/tools"},
		{"go 1.26.0\n", ""},
		{"modules x\n", ""},
	} {
		if got := modulePath([]byte(tc.gomod)); got != tc.want {
			t.Errorf("modulePath(%q) = %q, want %q", tc.gomod, got, tc.want)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "e2e", "framework", "doc.go")); err != nil {
		t.Errorf("RepoRoot() = %s, which lacks this package: %v", root, err)
	}
	// A nested module is skipped on the way up.
	dir := t.TempDir()
	nested := filepath.Join(dir, "hack", "tools")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "go.mod"), "module "+ModulePath+"\n")
	writeFile(t, filepath.Join(nested, "go.mod"), "module podguard.io/podguard/hack/tools\n")
	if got, err := findModuleRoot(nested); err != nil || got != dir {
		t.Errorf("findModuleRoot(%s) = %q, %v; want %q", nested, got, err, dir)
	}
	if _, err := findModuleRoot(nested + "/../../.."); err == nil {
		t.Errorf("findModuleRoot above the module: want an error")
	}
}

func TestEventually(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := Eventually(ctx, time.Second, time.Millisecond, func() (bool, error) { n++; return n == 3, nil }); err != nil || n != 3 {
		t.Errorf("Eventually = %v after %d calls, want nil after 3", err, n)
	}
	boom := errors.New("boom")
	if err := Eventually(ctx, time.Second, time.Millisecond, func() (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("Eventually = %v, want %v", err, boom)
	}
	err := Eventually(ctx, 20*time.Millisecond, time.Millisecond, func() (bool, error) { return false, nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Eventually = %v, want a deadline error", err)
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil || port <= 0 {
		t.Fatalf("FreePort() = %d, %v", port, err)
	}
}

func startShell(t *testing.T, script string) *proc {
	t.Helper()
	p, err := startProc("sh", filepath.Join(t.TempDir(), "sh.log"), "/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

func TestProcStop(t *testing.T) {
	t.Run("exits on SIGTERM", func(t *testing.T) {
		p := startShell(t, `trap 'exit 0' TERM; echo started; while :; do sleep 0.05; done`)
		waitForLog(t, p, "started")
		if err := p.stop(10 * time.Second); err != nil {
			t.Errorf("stop = %v, want nil", err)
		}
		if err := p.stop(10 * time.Second); err != nil {
			t.Errorf("second stop = %v, want nil", err)
		}
	})
	t.Run("ignores SIGTERM", func(t *testing.T) {
		p := startShell(t, `trap '' TERM; echo started; while :; do sleep 0.05; done`)
		waitForLog(t, p, "started")
		if err := p.stop(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("stop = %v, want a killed error", err)
		}
		if !p.exited() {
			t.Error("process still running after stop")
		}
	})
	t.Run("dies of SIGTERM", func(t *testing.T) {
		for _, dies := range []bool{false, true} {
			p := startShell(t, `echo started; exec sleep 30`)
			p.diesOnSIGTERM = dies
			waitForLog(t, p, "started")
			err := p.stop(10 * time.Second)
			var exitErr *exec.ExitError
			if dies && err != nil || !dies && !errors.As(err, &exitErr) {
				t.Errorf("diesOnSIGTERM=%v: stop = %v", dies, err)
			}
		}
	})
	t.Run("exited before stop", func(t *testing.T) {
		p := startShell(t, `exit 3`)
		<-p.done
		var exitErr *exec.ExitError
		if err := p.stop(time.Second); !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
			t.Errorf("stop = %v, want exit status 3", err)
		}
	})
	t.Run("kill then stop", func(t *testing.T) {
		p := startShell(t, `exec sleep 30`)
		p.kill()
		if err := p.stop(time.Second); err != nil {
			t.Errorf("stop after kill = %v, want nil", err)
		}
	})
}

// waitForLog waits until the process has written the line want to its log,
// so that a shell has installed its traps before it is signalled. (The log's
// header line quotes the script, so a substring would match too early.)
func waitForLog(t *testing.T, p *proc, want string) {
	t.Helper()
	err := Eventually(context.Background(), 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		data, err := os.ReadFile(p.logPath)
		return slices.Contains(strings.Split(string(data), "\n"), want), err
	})
	if err != nil {
		t.Fatalf("waiting for %q in the log: %v", want, err)
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	writeFile(t, path, b.String())
	got := logTail(path, 3)
	if got != "line 97\nline 98\nline 99" {
		t.Errorf("logTail = %q", got)
	}
	if got := logTail(filepath.Join(t.TempDir(), "missing"), 3); !strings.Contains(got, "cannot read") {
		t.Errorf("logTail of a missing file = %q", got)
	}
}

func TestStartClusterMissingBinaries(t *testing.T) {
	_, err := StartCluster(context.Background(), ClusterOptions{BinDir: t.TempDir(), WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make tools") || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Errorf("StartCluster = %v, want an error naming kube-apiserver and make tools", err)
	}
}

func TestStartPodguardFailures(t *testing.T) {
	dir := t.TempDir()
	opts := func(script string) PodguardOptions {
		bin := filepath.Join(dir, "podguard")
		writeFile(t, bin, "#!/bin/sh\n"+script+"\n")
		if err := os.Chmod(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		return PodguardOptions{
			Binary: bin, Kubeconfig: "kubeconfig", CertDir: dir,
			LogPath:      filepath.Join(dir, "podguard.log"),
			ReadyTimeout: 300 * time.Millisecond,
		}
	}

	_, err := StartPodguard(context.Background(), opts(`echo "flags: $*"; echo boom >&2; exit 2`))
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exit status 2") ||
		!strings.Contains(err.Error(), "flags: serve --kubeconfig kubeconfig --host 127.0.0.1 --port ") ||
		!strings.Contains(err.Error(), "--cert-dir "+dir) {
		t.Errorf("podguard that exits: StartPodguard = %v", err)
	}

	_, err = StartPodguard(context.Background(), opts(`echo waiting; exec sleep 30`))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting") {
		t.Errorf("podguard never ready: StartPodguard = %v", err)
	}

	if _, err := StartPodguard(context.Background(), PodguardOptions{Kubeconfig: "k"}); err == nil {
		t.Error("StartPodguard without a cert dir: want an error")
	}
}

func TestRenderWebhooksErrors(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(root, "deploy", "overlays", "opt-in")
	ca := []byte("ca")
	for _, base := range []string{"http://127.0.0.1:1", "https://127.0.0.1:1/?q=1", "127.0.0.1:1"} {
		if _, _, err := RenderWebhooks(overlay, base, ca); err == nil {
			t.Errorf("RenderWebhooks with base URL %q: want an error", base)
		}
	}
	if _, _, err := RenderWebhooks(overlay, "https://127.0.0.1:1", nil); err == nil {
		t.Error("RenderWebhooks without caBundle: want an error")
	}
	if _, _, err := RenderWebhooks(t.TempDir(), "https://127.0.0.1:1", ca); err == nil {
		t.Error("RenderWebhooks of a directory without kustomization: want an error")
	}
}

func TestNewServingCerts(t *testing.T) {
	dir := t.TempDir()
	caPEM, err := NewServingCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA PEM does not parse")
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
