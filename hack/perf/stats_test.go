package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 1..100", hundred, 100, 100 * time.Millisecond},
		{"p50 of four is the second", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p99 of four is the last", []time.Duration{1, 2, 3, 4}, 99, 4},
		{"p1 of four is the first", []time.Duration{1, 2, 3, 4}, 1, 1},
	}
	for _, c := range cases {
		if got := percentile(c.sorted, c.p); got != c.want {
			t.Errorf("%s: percentile(p%g) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("median of 5 1 3 = %v, want 3", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4 1 3 2 = %v, want 2.5", got)
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median of nothing = %v, want NaN", got)
	}
	xs := []float64{3, 1, 2}
	median(xs)
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Errorf("median reordered its argument: %v", xs)
	}
}

func TestProcCPU(t *testing.T) {
	root := t.TempDir()
	threads := map[string]string{
		"100": "1500000 200 30\n",
		"101": "250 0 1\n",
		"102": "0 0 0\n",
	}
	for tid, stat := range threads {
		dir := filepath.Join(root, "100", "task", tid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "schedstat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := procCPUIn(root, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got != 1500250 {
		t.Errorf("procCPUIn = %d, want 1500250 (the sum of the threads' first fields)", got)
	}
	if _, err := procCPUIn(root, 200); err == nil {
		t.Error("procCPUIn of a missing process: no error")
	}
	for _, bad := range []string{"", "12 34", "x 1 2", "1 2 3 4"} {
		if _, err := parseSchedstat(bad); err == nil {
			t.Errorf("parseSchedstat(%q): no error", bad)
		}
	}
}

// TestProcCPUSelf reads this process's own schedstat: it must grow while
// the test burns CPU.
func TestProcCPUSelf(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Skipf("no schedstat here: %v", err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
		x++
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time went from %d to %d ns over 20 ms of work (%d loops)", before, after, x)
	}
}

func TestUIDTemplate(t *testing.T) {
	data := []byte(`{"request":{"uid":"abc","object":{"metadata":{"uid":"other"}},"x":"abc"}}`)
	tmpl, err := newUIDTemplate(data)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"request":{"uid":"new","object":{"metadata":{"uid":"other"}},"x":"new"}}`
	if got := string(tmpl.body("new")); got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if _, err := newUIDTemplate([]byte(`{"request":{}}`)); err == nil {
		t.Error("a body without a uid: no error")
	}
	if a, b := uid(1, 2), uid(2, 1); a == b || len(a) != 36 {
		t.Errorf("uid(1,2) = %q, uid(2,1) = %q: want distinct 36-character uids", a, b)
	}
}

func TestThousands(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 9858.4: "9,858", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := thousands(x); got != want {
			t.Errorf("thousands(%v) = %q, want %q", x, got, want)
		}
	}
}
