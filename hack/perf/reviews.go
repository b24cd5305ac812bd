package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// The servers of phase A.
const (
	serverPodguard = "podguard"
	serverNull     = "null"
)

// reviewRun is one measured loadgen run of phase A.
type reviewRun struct {
	Body   string `json:"body"`
	Path   string `json:"path"`
	Server string `json:"server"`
	Round  int    `json:"round"`
	// Loadavg is /proc/loadavg when the run started: the machine may be
	// busy with more than this harness.
	Loadavg string `json:"loadavgAtStart"`
	loadResult
}

// reviewSummary is the median over rounds of one server on one body.
type reviewSummary struct {
	Body          string  `json:"body"`
	Path          string  `json:"path"`
	Server        string  `json:"server"`
	ReviewsPerSec float64 `json:"reviewsPerSec"`
	P50Ms         float64 `json:"p50Ms"`
	P99Ms         float64 `json:"p99Ms"`
	CPUPerReview  float64 `json:"cpuMsPerReview"`
	Errors        int64   `json:"errors"` // over all rounds
	FirstErr      string  `json:"firstError,omitempty"`
	Protocol      string  `json:"protocol"`
	Rounds        int     `json:"rounds"`
}

// phaseA posts every body to podguard and to the null webhook, round by
// round, alternating which goes first.
func (e *env) phaseA(ctx context.Context, o options, bodyDir string) ([]reviewRun, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(e.workDir, "ca.crt")
	if err := os.WriteFile(caFile, e.caPEM, 0o644); err != nil {
		return nil, err
	}
	servers := map[string]struct {
		url string
		pid int
	}{
		serverPodguard: {e.podguard.URL, e.podguard.Pid()},
		serverNull:     {e.null.URL, e.null.Pid()},
	}
	var runs []reviewRun
	for _, b := range bodyFiles {
		loadgen := func(url string, pid int) []string {
			return append(append([]string(nil), e.loadgenPin...), self, "loadgen",
				"-url", url+b.path,
				"-body", filepath.Join(bodyDir, b.name+".json"),
				"-ca", caFile,
				"-pid", strconv.Itoa(pid),
				"-concurrency", strconv.Itoa(o.concurrency),
				"-warmup", o.warmup.String(),
				"-duration", o.duration.String())
		}
		for round := range o.rounds {
			order := []string{serverPodguard, serverNull}
			if round%2 == 1 {
				order = []string{serverNull, serverPodguard}
			}
			for _, s := range order {
				if err := ctx.Err(); err != nil {
					return runs, err
				}
				srv := servers[s]
				args := loadgen(srv.url, srv.pid)
				load := loadavg()
				var stdout, stderr bytes.Buffer
				cmd := exec.CommandContext(ctx, args[0], args[1:]...)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					return runs, fmt.Errorf("loadgen %s %s: %w: %s", s, b.name, err, stderr.String())
				}
				var res loadResult
				if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
					return runs, fmt.Errorf("loadgen %s %s: decoding %q: %w", s, b.name, stdout.String(), err)
				}
				run := reviewRun{Body: b.name, Path: b.path, Server: s, Round: round, Loadavg: load, loadResult: res}
				runs = append(runs, run)
				logf("A %-19s %-8s round %d: %6.0f reviews/s, p50 %.2f ms, p99 %.2f ms, CPU %.3f ms/review, %d errors (load %s)",
					b.name, s, round+1, float64(res.Reviews)/res.Seconds, res.P50Ms, res.P99Ms, cpuPerReview(res), res.Errors, load)
			}
		}
		if o.profile {
			p, err := e.profileRun(ctx, o, loadgen(e.podguard.URL, e.podguard.Pid()), b.name)
			if err != nil {
				logf("A %-19s profiling podguard: %v", b.name, err)
				continue
			}
			e.profiles = append(e.profiles, p)
			logf("A %-19s podguard CPU profile (an extra, unmeasured run): %s", b.name, p.Path)
		}
	}
	return runs, nil
}

// cpuPerReview is the server's CPU time per answered review, in ms.
func cpuPerReview(r loadResult) float64 {
	if r.Reviews == 0 {
		return 0
	}
	return float64(r.CPUNs) / float64(r.Reviews) / float64(time.Millisecond)
}

// summarizeReviews takes the medians over rounds per body and server, in
// the order of bodyFiles, podguard first.
func summarizeReviews(runs []reviewRun) []reviewSummary {
	var out []reviewSummary
	for _, b := range bodyFiles {
		for _, s := range []string{serverPodguard, serverNull} {
			sum := reviewSummary{Body: b.name, Path: b.path, Server: s}
			var rate, p50, p99, cpu []float64
			for _, r := range runs {
				if r.Body != b.name || r.Server != s {
					continue
				}
				sum.Rounds++
				rate = append(rate, float64(r.Reviews)/r.Seconds)
				p50 = append(p50, r.P50Ms)
				p99 = append(p99, r.P99Ms)
				cpu = append(cpu, cpuPerReview(r.loadResult))
				sum.Errors += r.Errors
				if sum.FirstErr == "" {
					sum.FirstErr = r.FirstErr
				}
				if r.Protocol != "" {
					sum.Protocol = r.Protocol
				}
			}
			if sum.Rounds == 0 {
				continue
			}
			sum.ReviewsPerSec, sum.P50Ms, sum.P99Ms, sum.CPUPerReview = median(rate), median(p50), median(p99), median(cpu)
			out = append(out, sum)
		}
	}
	return out
}
