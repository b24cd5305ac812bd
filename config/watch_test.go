package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type reload struct {
	cfg *Config
	err error
}

func startWatcher(t *testing.T, path string) chan reload {
	t.Helper()
	initial, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan reload, 10)
	w := NewWatcher(path, initial, func(c *Config, err error) { got <- reload{c, err} })
	w.interval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return got
}

func next(t *testing.T, got chan reload) reload {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no reload within 5s")
		return reload{}
	}
}

func TestWatcherReloadsAnEditAndReportsABadOneOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(header)
	got := startWatcher(t, path)

	write(header + "policies:\n  envFromKeys: {posix: deny}\n")
	if r := next(t, got); r.err != nil || r.cfg.Policies.EnvFromKeys.POSIX != "deny" {
		t.Fatalf("reload = %+v", r)
	}

	write(header + "policies:\n  envFromKeys: {posix: sometimes}\n")
	if r := next(t, got); r.err == nil || !strings.Contains(r.err.Error(), "policies.envFromKeys.posix") {
		t.Fatalf("bad edit: reload = %+v, want an error naming the field", r)
	}
	// The same bad content is not reported again on later polls.
	select {
	case r := <-got:
		t.Fatalf("bad content reported twice: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}

	write(header + "cluster: {kubeletVersion: \"1.30\"}\n")
	if r := next(t, got); r.err != nil || r.cfg.Cluster.KubeletVersion != "1.30" {
		t.Fatalf("recovery: reload = %+v", r)
	}
}

// A mounted ConfigMap is updated by the kubelet swapping the ..data symlink.
func TestWatcherFollowsAConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "config.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkVersion("..v1", header)
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/config.yaml", filepath.Join(dir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	got := startWatcher(t, filepath.Join(dir, "config.yaml"))

	mkVersion("..v2", header+"policies:\n  envFromKeys: {posix: deny}\n")
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if r := next(t, got); r.err != nil || r.cfg.Policies.EnvFromKeys.POSIX != "deny" {
		t.Fatalf("reload = %+v", r)
	}
}
