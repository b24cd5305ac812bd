package framework

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const (
	defaultReadyTimeout = 60 * time.Second
	podguardStopTimeout = 30 * time.Second
)

// PodguardOptions configures StartPodguard.
type PodguardOptions struct {
	// Binary is the podguard binary. Default: bin/podguard at the repository
	// root.
	Binary string
	// Kubeconfig is passed as --kubeconfig. Required.
	Kubeconfig string
	// CertDir, when set, is passed as --cert-dir; it must hold tls.crt and
	// tls.key (see NewServingCerts). Leave it empty for
	// --cert-mode=self-managed, passed in Args.
	CertDir string
	// ConfigPath, when set, is passed as --config.
	ConfigPath string
	// Port is the webhook server's port on 127.0.0.1; HealthPort and
	// MetricsPort those of the health probes and of the metrics endpoint.
	// Zero picks a free port.
	Port, HealthPort, MetricsPort int
	// LogPath receives podguard's stdout and stderr, appended. Default:
	// podguard.log in a new temporary directory.
	LogPath string
	// Args are extra command-line arguments, appended after the others.
	Args []string
	// Wrap, when set, is a command that runs podguard, with the binary and
	// its arguments appended to it, such as []string{"taskset", "-c", "1"}.
	// It must exec podguard (as taskset, nice or chrt do), so that Pid is
	// podguard's and Stop signals podguard itself.
	Wrap []string
	// ReadyTimeout bounds the wait for /readyz. Default: 60s.
	ReadyTimeout time.Duration
}

// Podguard is a running podguard process.
type Podguard struct {
	// URL is the webhook server's base URL, https://127.0.0.1:Port: the
	// baseURL for InstallWebhooks.
	URL string
	// HealthURL is the base URL of the health probes: HealthURL+"/readyz"
	// and HealthURL+"/healthz".
	HealthURL string
	// MetricsURL is the Prometheus metrics endpoint.
	MetricsURL string
	// LogPath is the file podguard's stdout and stderr go to.
	LogPath string

	proc *proc
}

// StartPodguard runs `podguard serve` and returns once its /readyz endpoint
// answers 200. If podguard exits first or is not ready within the timeout,
// the error includes the end of its log. The context bounds only the start:
// the process runs until Stop or Kill.
func StartPodguard(ctx context.Context, opts PodguardOptions) (*Podguard, error) {
	if opts.Kubeconfig == "" {
		return nil, errors.New("podguard needs a kubeconfig")
	}
	bin := opts.Binary
	if bin == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		bin = filepath.Join(root, "bin", "podguard")
	}
	if info, err := os.Stat(bin); err != nil || info.IsDir() {
		return nil, fmt.Errorf("podguard binary %s not found; build it with `go build -o bin/podguard ./cmd/podguard`", bin)
	}
	logPath := opts.LogPath
	if logPath == "" {
		dir, err := os.MkdirTemp("", "podguard-")
		if err != nil {
			return nil, fmt.Errorf("creating log dir: %w", err)
		}
		logPath = filepath.Join(dir, "podguard.log")
	}
	ports := []*int{&opts.Port, &opts.HealthPort, &opts.MetricsPort}
	for _, p := range ports {
		if *p != 0 {
			continue
		}
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}

	healthAddr := "127.0.0.1:" + strconv.Itoa(opts.HealthPort)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(opts.MetricsPort)
	args := []string{"serve",
		"--kubeconfig", opts.Kubeconfig,
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(opts.Port),
		"--health-addr", healthAddr,
		"--metrics-addr", metricsAddr,
		// Plain HTTP on loopback, so tests scrape without a token; the
		// shipped Deployment serves HTTPS with authentication.
		"--metrics-insecure-loopback",
	}
	if opts.CertDir != "" {
		args = append(args, "--cert-dir", opts.CertDir)
	}
	if opts.ConfigPath != "" {
		args = append(args, "--config", opts.ConfigPath)
	}
	args = append(args, opts.Args...)

	if len(opts.Wrap) > 0 {
		args = append(append(opts.Wrap[1:len(opts.Wrap):len(opts.Wrap)], bin), args...)
		bin = opts.Wrap[0]
	}
	p, err := startProc("podguard", logPath, bin, args...)
	if err != nil {
		return nil, err
	}
	pg := &Podguard{
		URL:        "https://127.0.0.1:" + strconv.Itoa(opts.Port),
		HealthURL:  "http://" + healthAddr,
		MetricsURL: "http://" + metricsAddr + "/metrics",
		LogPath:    logPath,
		proc:       p,
	}

	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	if err := pg.waitReady(ctx, timeout); err != nil {
		p.kill()
		return nil, withLogTail(err, "podguard", logPath)
	}
	return pg, nil
}

func (pg *Podguard) waitReady(ctx context.Context, timeout time.Duration) error {
	httpClient := &http.Client{Timeout: 2 * time.Second}
	readyz := pg.HealthURL + "/readyz"
	err := Eventually(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		if pg.proc.exited() {
			return false, pg.proc.exitError()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		if err != nil {
			return false, err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for podguard to be ready at %s: %w", readyz, err)
	}
	return nil
}

// Stop sends SIGTERM to podguard, waits up to 30s for it to exit and kills it
// after that. It returns nil if podguard exited with status 0; an error
// wrapping the *exec.ExitError if it exited otherwise, or had exited before
// Stop; and an error saying so if it had to be killed. Later calls return the
// first call's result; after Kill, Stop returns nil.
func (pg *Podguard) Stop() error {
	return pg.proc.stop(podguardStopTimeout)
}

// Kill kills podguard with SIGKILL, as a crash would, and waits for it to
// exit.
func (pg *Podguard) Kill() {
	pg.proc.kill()
}

// Pid is the podguard process's id, to read its memory from
// /proc/<pid>/status.
func (pg *Podguard) Pid() int {
	return pg.proc.cmd.Process.Pid
}

// Done is closed when the podguard process has exited, for whatever reason.
func (pg *Podguard) Done() <-chan struct{} {
	return pg.proc.done
}
