package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profile is a CPU profile of podguard taken during an extra, unmeasured
// phase A run on one body (profiling costs CPU of its own, so the measured
// runs are never profiled).
type profile struct {
	Body string `json:"body"`
	Path string `json:"path"`
	// Top is `go tool pprof -top` of the profile, cumulative, podguard's
	// request path only.
	Top string `json:"top"`
}

// pprofURL is podguard's /debug/pprof base, from --pprof-addr.
func (e *env) pprofURL() string { return "http://" + e.pprofAddr + "/debug/pprof" }

// profileRun runs the load generator on podguard while fetching a CPU
// profile of the run's measured window, and returns where it was written.
func (e *env) profileRun(ctx context.Context, o options, loadgen []string, body string) (profile, error) {
	dir := filepath.Join(e.workDir, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return profile{}, err
	}
	out := filepath.Join(dir, body+".pprof")
	cmd := exec.CommandContext(ctx, loadgen[0], loadgen[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return profile{}, err
	}
	defer cmd.Wait() //nolint:errcheck // the run's figures are not used
	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return profile{}, ctx.Err()
	}
	secs := max(1, int(o.duration.Round(time.Second)/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/profile?seconds=%d", e.pprofURL(), secs), nil)
	if err != nil {
		return profile{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return profile{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return profile{}, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	f, err := os.Create(out)
	if err != nil {
		return profile{}, err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return profile{}, err
	}
	if err := f.Close(); err != nil {
		return profile{}, err
	}
	p := profile{Body: body, Path: out}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=25",
		"-focus=reviewServer", filepath.Join(e.root, "bin", "podguard"), out).Output()
	if err == nil {
		p.Top = trimPprofHeader(string(top))
	}
	return p, nil
}

// trimPprofHeader drops pprof's header lines up to the column titles.
func trimPprofHeader(s string) string {
	if i := strings.Index(s, "      flat"); i >= 0 {
		return s[i:]
	}
	return s
}
