package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func writeCgroup(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestContainerLimit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		files   map[string]string
		want    int64
		wantOK  bool
		wantErr bool
	}{
		{"cgroup v2, 512Mi", map[string]string{"memory.max": "536870912\n"}, 536870912, true, false},
		{"cgroup v2, no limit", map[string]string{"memory.max": "max\n"}, 0, false, false},
		{"cgroup v1, 512Mi", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, 536870912, true, false},
		{"cgroup v1, no limit", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false, false},
		{"v2 wins over v1", map[string]string{"memory.max": "1073741824", "memory/memory.limit_in_bytes": "536870912"}, 1073741824, true, false},
		{"no cgroup files", nil, 0, false, false},
		{"garbage", map[string]string{"memory.max": "lots"}, 0, false, true},
		{"zero", map[string]string{"memory.max": "0"}, 0, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ContainerLimit(writeCgroup(t, tt.files))
			if (err != nil) != tt.wantErr || got != tt.want || ok != tt.wantOK {
				t.Errorf("ContainerLimit = %d, %v, %v; want %d, %v, error %v", got, ok, err, tt.want, tt.wantOK, tt.wantErr)
			}
		})
	}
}

func TestApply(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	noEnv := func(string) string { return "" }
	root := writeCgroup(t, map[string]string{"memory.max": "536870912"})

	got, why, err := Apply(root, DefaultRatio, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(536870912 * 9 / 10)
	if got != want || debug.SetMemoryLimit(-1) != want || !strings.Contains(why, "536870912") {
		t.Errorf("Apply = %d (%s), runtime limit %d; want %d, from the container's limit", got, why, debug.SetMemoryLimit(-1), want)
	}

	debug.SetMemoryLimit(before)
	for _, tt := range []struct {
		name   string
		root   string
		ratio  float64
		getenv func(string) string
		why    string
	}{
		{"GOMEMLIMIT wins", root, DefaultRatio, func(k string) string {
			if k == "GOMEMLIMIT" {
				return "300MiB"
			}
			return ""
		}, "GOMEMLIMIT=300MiB"},
		{"ratio 0 turns it off", root, 0, noEnv, "--memory-limit-ratio=0"},
		{"no limit, nothing set", writeCgroup(t, map[string]string{"memory.max": "max"}), DefaultRatio, noEnv, "no container memory limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, why, err := Apply(tt.root, tt.ratio, tt.getenv)
			if err != nil || got != before || why != tt.why || debug.SetMemoryLimit(-1) != before {
				t.Errorf("Apply = %d (%q, %v), runtime limit %d; want the limit left at %d (%q)", got, why, err, debug.SetMemoryLimit(-1), before, tt.why)
			}
		})
	}
	for _, ratio := range []float64{1.5, math.NaN()} {
		if _, _, err := Apply(root, ratio, noEnv); err == nil {
			t.Errorf("ratio %v was accepted", ratio)
		}
	}
}
