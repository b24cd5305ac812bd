package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podguard/podguard/e2e/framework"
)

// namespace is where every object of the harness goes; it opts in to
// podguard (the opt-in overlay's label), so both webhooks apply.
const namespace = "perf"

var optInLabels = map[string]string{"podguard.io/enabled": "true"}

// env is what the harness starts; stop ends it in reverse order.
type env struct {
	root, workDir string
	etcdDir       string

	cluster  *framework.Cluster
	podguard *framework.Podguard
	null     *nullWebhook

	caPEM   []byte
	certDir string
	overlay string

	// pin is the taskset prefix of the servers (empty when unpinned);
	// loadgenPin that of the load generator.
	pin, loadgenPin []string
	pinNote         string

	// config is podguard's --config, if any.
	config string
	// pprofAddr is podguard's --pprof-addr; profiles are those taken.
	pprofAddr string
	profiles  []profile
}

// planPinning pins the servers to the last CPU and the load generator to
// the others, when taskset exists and there are two CPUs or more.
func (e *env) planPinning() {
	n := runtime.NumCPU()
	if _, err := exec.LookPath("taskset"); err != nil {
		e.pinNote = "unpinned: taskset not found"
		return
	}
	if n < 2 {
		e.pinNote = "unpinned: fewer than 2 CPUs"
		return
	}
	last := strconv.Itoa(n - 1)
	others := "0"
	if n > 2 {
		others = "0-" + strconv.Itoa(n-2)
	}
	e.pin = []string{"taskset", "-c", last}
	e.loadgenPin = []string{"taskset", "-c", others}
	e.pinNote = fmt.Sprintf("podguard and the null webhook pinned to CPU %s, load generator to CPU %s (taskset); control plane unpinned", last, others)
}

// startCluster starts the control plane with etcd's data on tmpfs when
// /dev/shm exists.
func (e *env) startCluster(ctx context.Context) error {
	opts := framework.ClusterOptions{WorkDir: filepath.Join(e.workDir, "cluster")}
	if info, err := os.Stat("/dev/shm"); err == nil && info.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "podguard-perf-etcd-")
		if err != nil {
			return err
		}
		e.etcdDir = dir
		opts.EtcdDataDir = dir
	}
	c, err := framework.StartCluster(ctx, opts)
	if err != nil {
		return err
	}
	e.cluster = c
	e.certDir = filepath.Join(e.workDir, "certs")
	e.caPEM, err = framework.NewServingCerts(e.certDir)
	if err != nil {
		return err
	}
	e.overlay = filepath.Join(e.root, "deploy", "overlays", "opt-in")
	return e.cluster.CreateNamespace(ctx, namespace, optInLabels)
}

// startPodguard runs bin/podguard serve with its default configuration
// (no --config), pinned as planned.
func (e *env) startPodguard(ctx context.Context) error {
	port, err := framework.FreePort()
	if err != nil {
		return err
	}
	e.pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
	pg, err := framework.StartPodguard(ctx, framework.PodguardOptions{
		Kubeconfig: e.cluster.KubeconfigPath,
		CertDir:    e.certDir,
		LogPath:    filepath.Join(e.workDir, "podguard.log"),
		Wrap:       e.pin,
		Args:       []string{"--pprof-addr", e.pprofAddr},
		ConfigPath: e.config,
	})
	if err != nil {
		return err
	}
	e.podguard = pg
	return nil
}

// stopPodguard stops podguard, if it runs.
func (e *env) stopPodguard() error {
	if e.podguard == nil {
		return nil
	}
	err := e.podguard.Stop()
	e.podguard = nil
	if err != nil {
		return fmt.Errorf("stopping podguard: %w", err)
	}
	return nil
}

// stopNull stops the null webhook, if it runs.
func (e *env) stopNull() error {
	if e.null == nil {
		return nil
	}
	err := e.null.stop()
	e.null = nil
	return err
}

// nullWebhook is a running bin/nullwebhook.
type nullWebhook struct {
	URL     string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// startNull runs bin/nullwebhook with the shared serving certificates,
// capturing into captureDir when it is not empty.
func (e *env) startNull(ctx context.Context, captureDir string) error {
	port, err := framework.FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append(append([]string(nil), e.pin...), filepath.Join(e.root, "bin", "nullwebhook"), "--cert-dir", e.certDir, "--addr", addr)
	if captureDir != "" {
		args = append(args, "--capture", captureDir)
	}
	logFile, err := os.OpenFile(filepath.Join(e.workDir, "nullwebhook.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting the null webhook: %w", err)
	}
	n := &nullWebhook{URL: "https://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		n.waitErr = cmd.Wait()
		logFile.Close()
		close(n.done)
	}()
	e.null = n
	client := httpsClient(e.caPEM)
	err = framework.Eventually(ctx, 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		select {
		case <-n.done:
			return false, fmt.Errorf("the null webhook exited: %v (see %s)", n.waitErr, logFile.Name())
		default:
		}
		resp, err := client.Get(n.URL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return err
}

func (n *nullWebhook) Pid() int { return n.cmd.Process.Pid }

func (n *nullWebhook) stop() error {
	select {
	case <-n.done:
		return fmt.Errorf("the null webhook had exited: %v", n.waitErr)
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		return errors.New("the null webhook did not stop within 10s of SIGTERM and was killed")
	}
}

// get GETs url and returns the response of a 200; the caller closes its
// body.
func get(ctx context.Context, client *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp, nil
}

// counts returns the reviews the null webhook answered, per path.
func (n *nullWebhook) counts(ctx context.Context, client *http.Client) (map[string]int64, error) {
	resp, err := get(ctx, client, n.URL+"/count")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var counts map[string]int64
	if err := json.NewDecoder(resp.Body).Decode(&counts); err != nil {
		return nil, fmt.Errorf("decoding the null webhook's /count: %w", err)
	}
	return counts, nil
}

// stop stops everything started, in reverse order, and removes etcd's
// tmpfs data dir.
func (e *env) stop() error {
	errs := []error{e.stopNull(), e.stopPodguard()}
	if e.cluster != nil {
		if err := e.cluster.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the control plane: %w", err))
		}
	}
	if e.etcdDir != "" && strings.HasPrefix(e.etcdDir, "/dev/shm/") {
		if err := os.RemoveAll(e.etcdDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
