package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine describes where the figures come from.
type machine struct {
	CPU         string `json:"cpu"`
	CPUs        int    `json:"cpus"`
	GoVersion   string `json:"goVersion"`
	APIServer   string `json:"kubeApiserver"`
	Commit      string `json:"commit"` // of the working tree bin/podguard was built from by make perf
	Pinning     string `json:"pinning"`
	EtcdDataDir string `json:"etcdDataDir"`
	LoadStart   string `json:"loadavgStart"`
	LoadEnd     string `json:"loadavgEnd"`
}

type results struct {
	Started       time.Time       `json:"started"`
	WallSeconds   float64         `json:"wallSeconds"`
	PhaseASeconds float64         `json:"phaseASeconds"`
	PhaseBSeconds float64         `json:"phaseBSeconds"`
	PhaseCSeconds float64         `json:"phaseCSeconds"`
	Machine       machine         `json:"machine"`
	Options       map[string]any  `json:"options"`
	PodguardConf  string          `json:"podguardConfig"`
	Overlay       string          `json:"overlay"`
	ReviewRuns    []reviewRun     `json:"reviewRuns"`
	Reviews       []reviewSummary `json:"reviews"`
	CreateRuns    []createRun     `json:"createRuns"`
	Creates       []createSummary `json:"creates"`
	Goals         []goal          `json:"goals"`
	Profiles      []profile       `json:"profiles,omitempty"`
	Allocs        []allocResult   `json:"allocations,omitempty"`
	AuditScale    *auditScale     `json:"auditScale,omitempty"`
	AuditRuns     []auditRun      `json:"auditRuns,omitempty"`
	BodiesCapture string          `json:"bodies"`
}

// measure runs the capture and the phases, then prints and writes the
// results.
func measure(ctx context.Context, e *env, o options, started time.Time) error {
	res := &results{
		Started:      started,
		PodguardConf: podguardConfig(o.config),
		Overlay:      "deploy/overlays/opt-in, pointed at loopback URLs; namespace perf has podguard.io/enabled=true",
		Options: map[string]any{
			"rounds": o.rounds, "duration": o.duration.String(), "warmup": o.warmup.String(), "concurrency": o.concurrency,
			"createRounds": o.createRounds, "createDuration": o.createDuration.String(), "creators": o.creators, "pace": o.pace,
			"auditPods": o.auditPods, "auditDeployments": o.auditWorkloads, "auditConfigMaps": o.auditConfigMaps, "auditSettle": o.auditSettle.String(), "auditBigConfigMaps": o.auditBigConfigMaps,
		},
	}
	res.Machine = describeMachine(e)
	res.Machine.Pinning = e.pinNote
	res.Machine.EtcdDataDir = e.etcdDir

	bodyDir := filepath.Join(e.workDir, "reviews")
	res.BodiesCapture = bodyDir
	logf("capturing AdmissionReview bodies into %s", bodyDir)
	if err := e.capture(ctx, bodyDir); err != nil {
		return err
	}
	logf("starting podguard and the null webhook")
	if err := e.startPodguard(ctx); err != nil {
		return err
	}
	if err := e.startNull(ctx, ""); err != nil {
		return err
	}

	// Whatever happens next, write what was measured.
	defer func() {
		res.Machine.LoadEnd = loadavg()
		res.WallSeconds = time.Since(started).Seconds()
		res.Reviews = summarizeReviews(res.ReviewRuns)
		res.Creates = summarizeCreates(res.CreateRuns)
		res.Goals = evaluateGoals(res.Reviews, res.Creates, res.Allocs)
		res.Profiles = e.profiles
		printReport(os.Stdout, res)
		if err := writeJSON(o.out, res); err != nil {
			logf("writing %s: %v", o.out, err)
		} else {
			logf("results written to %s", o.out)
		}
	}()

	var err error
	if !o.skipA {
		logf("phase A: loopback reviews, %d rounds of %s (after %s warm-up), %d in flight", o.rounds, o.duration, o.warmup, o.concurrency)
		t0 := time.Now()
		res.ReviewRuns, err = e.phaseA(ctx, o, bodyDir)
		res.PhaseASeconds = time.Since(t0).Seconds()
		if err != nil {
			return err
		}
		logf("phase A took %s", time.Since(t0).Round(time.Second))
		logf("allocations per review: go test -bench BenchmarkReview -benchmem ./webhook")
		if res.Allocs, err = allocBench(ctx, e.root); err != nil {
			return err
		}
	}
	if !o.skipB {
		logf("phase B: pod creates through kube-apiserver, %d rounds of %s per configuration and mode", o.createRounds, o.createDuration)
		t0 := time.Now()
		res.CreateRuns, err = e.phaseB(ctx, o)
		res.PhaseBSeconds = time.Since(t0).Seconds()
		if err != nil {
			return err
		}
		logf("phase B took %s", time.Since(t0).Round(time.Second))
	}
	if !o.skipC {
		logf("phase C: the background audit's start on %d Pods, %d Deployments and %d ConfigMaps written first", o.auditPods, o.auditWorkloads, o.auditConfigMaps)
		t0 := time.Now()
		scale, runs, err := e.phaseC(ctx, o)
		res.PhaseCSeconds = time.Since(t0).Seconds()
		res.AuditScale, res.AuditRuns = &scale, runs
		if err != nil {
			return err
		}
		logf("phase C took %s", time.Since(t0).Round(time.Second))
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func describeMachine(e *env) machine {
	m := machine{CPU: cpuModel(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadavg()}
	if out, err := exec.Command(filepath.Join(e.root, "bin", "kube-apiserver"), "--version").Output(); err == nil {
		m.APIServer = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "-C", e.root, "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// printReport prints the one table, the goals and the machine, in markdown.
func printReport(w io.Writer, res *results) {
	fmt.Fprintf(w, "\n## podguard serving cost (make perf)\n\n")
	fmt.Fprintln(w, "| phase | case | server | rate /s | p50 ms | p90 ms | p99 ms | CPU ms/review | errors | compared |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range res.Reviews {
		cmp := ""
		if r.Server == serverPodguard {
			if n, ok := findReview(res.Reviews, r.Body, serverNull); ok && n.CPUPerReview > 0 && n.ReviewsPerSec > 0 {
				cmp = fmt.Sprintf("CPU %.2f× null, rate %.2f× null", r.CPUPerReview/n.CPUPerReview, r.ReviewsPerSec/n.ReviewsPerSec)
			}
		}
		fmt.Fprintf(w, "| A reviews | %s | %s | %s | %.2f | – | %.2f | %.3f | %d | %s |\n",
			bodyLabel(r.Body, r.Path), r.Server, thousands(r.ReviewsPerSec), r.P50Ms, r.P99Ms, r.CPUPerReview, r.Errors, cmp)
	}
	for _, c := range res.Creates {
		mode := fmt.Sprintf("pod creates, %d creators", res.Options["creators"])
		if c.Mode == modePaced {
			mode = fmt.Sprintf("pod creates, paced %d/s", res.Options["pace"])
		}
		fmt.Fprintf(w, "| B creates | %s | %s | %.1f | %.1f | %.1f | %.1f | – | %d | %s |\n",
			mode, c.Config, c.PerSec, c.P50Ms, c.P90Ms, c.P99Ms, c.Errors, compareCreates(res.Creates, c))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Phase A: medians over %v rounds of %v (after %v warm-up), %v requests in flight over HTTP/2, podguard and null alternated. "+
		"CPU per review is the server's CPU time (/proc/PID/task/*/schedstat) over the window divided by the reviews answered. "+
		"Phase B: medians over %v rounds of %v per configuration and mode, order rotated; latencies of successful creates; "+
		"none = no podguard webhook configurations, null / podguard = the opt-in overlay's configurations pointed at that server.\n",
		res.Options["rounds"], res.Options["duration"], res.Options["warmup"], res.Options["concurrency"],
		res.Options["createRounds"], res.Options["createDuration"])
	for _, r := range res.Reviews {
		if r.Errors > 0 {
			fmt.Fprintf(w, "\nErrors, %s %s: %s\n", bodyLabel(r.Body, r.Path), r.Server, r.FirstErr)
		}
	}
	for _, c := range res.Creates {
		if c.Errors > 0 {
			fmt.Fprintf(w, "\nErrors, %s %s: %s\n", c.Mode, c.Config, c.FirstErr)
		}
	}

	printAudit(w, res)

	fmt.Fprintf(w, "\n### Goals (issue 12)\n\n| goal | status | measured |\n|---|---|---|\n")
	for _, g := range res.Goals {
		fmt.Fprintf(w, "| %s | %s | %s |\n", g.Goal, g.Status, g.Measured)
	}

	if len(res.Profiles) > 0 {
		fmt.Fprintf(w, "\n### Where podguard's CPU goes\n\nCPU profiles of podguard's request path (`go tool pprof -top -cum -focus=reviewServer`), each from an extra, unmeasured run after the measured rounds of its body.\n")
		for _, p := range res.Profiles {
			fmt.Fprintf(w, "\n%s (%s):\n\n```\n%s```\n", p.Body, p.Path, p.Top)
		}
	}

	m := res.Machine
	fmt.Fprintf(w, "\n### Machine\n\n")
	fmt.Fprintf(w, "- CPU: %s, %d CPUs (nproc); load average %s at the start, %s at the end\n", m.CPU, m.CPUs, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "- %s; Go %s; podguard built from %s; config: %s\n", m.APIServer, m.GoVersion, m.Commit, res.PodguardConf)
	fmt.Fprintf(w, "- %s; etcd data on %s\n", m.Pinning, orDefault(m.EtcdDataDir, "a temporary directory (no /dev/shm)"))
	fmt.Fprintf(w, "- wall time %s (phase A %s, phase B %s, phase C %s); the load averages of every run are in the JSON\n\n",
		secs(res.WallSeconds), secs(res.PhaseASeconds), secs(res.PhaseBSeconds), secs(res.PhaseCSeconds))
}

// compareCreates states the differences of a configuration from the ones
// before it: null − none, and podguard − null, podguard − none and the
// throughput ratio podguard / null.
func compareCreates(all []createSummary, c createSummary) string {
	diff := func(other string) string {
		o, ok := findCreate(all, other, c.Mode)
		if !ok {
			return ""
		}
		return fmt.Sprintf("%+.1f / %+.1f ms p50/p99 over %s", c.P50Ms-o.P50Ms, c.P99Ms-o.P99Ms, other)
	}
	switch c.Config {
	case configNull:
		return diff(configNone)
	case configPodguard:
		parts := []string{diff(configNull), diff(configNone)}
		if n, ok := findCreate(all, configNull, c.Mode); ok && n.PerSec > 0 {
			parts = append(parts, fmt.Sprintf("throughput %.2f× null", c.PerSec/n.PerSec))
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

func secs(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Second)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// podguardConfig describes the config podguard runs with.
func podguardConfig(path string) string {
	if path == "" {
		return "podguard's defaults (serve with no --config)"
	}
	return "--config " + path
}
