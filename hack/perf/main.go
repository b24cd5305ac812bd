// Command perf is `make perf`: it measures what podguard costs to serve,
// side by side with a null webhook (hack/nullwebhook), as issue 12 asks.
//
// It starts etcd (data on tmpfs when /dev/shm exists), kube-apiserver and
// kube-controller-manager from bin/, one set of serving certificates,
// bin/podguard serve with its default configuration (no --config) and
// bin/nullwebhook, both pinned to the last CPU with taskset when it exists
// and there are two CPUs or more. It then
//
//   - captures fresh AdmissionReview bodies from kube-apiserver (the
//     nginx and tomcat Pods for /mutate, the nginx Pod and an nginx
//     Deployment for /validate) with podguard's webhook configurations,
//     opt-in overlay, pointed at the null webhook;
//   - phase A: posts each body over HTTP/2 to podguard and to the null
//     webhook, alternated round by round, from a load generator pinned to
//     the other CPUs (this binary's loadgen subcommand), and reads the
//     server's CPU time from /proc;
//   - phase B: creates pods through kube-apiserver, in a namespace that
//     opts in, with no podguard webhooks, with them pointed at the null
//     webhook and pointed at podguard, rotated round by round: 50 creators
//     back to back, and paced at 100 pods/s;
//   - phase C: writes 20,000 Deployments with their ReplicaSets and
//     100,000 Pods, and 100,000 ConfigMaps, with kube-controller-manager
//     stopped, then starts podguard on them with the background audit off,
//     on, and on with the GOMEMLIMIT serve sets under a 512Mi and the
//     shipped 1Gi limit, and reads its peak memory and the time to its
//     first pass (issue 13; audit.go);
//
// and prints markdown tables, with the goals of issue 12, and writes
// everything as JSON. Everything lives in .perf at the repository root,
// recreated on each run. Ctrl-C stops everything it started.
//
// perf -capture-only -out DIR only captures the four bodies into DIR (as
// webhook/testdata/reviews is refreshed) and stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/podguard/podguard/e2e/framework"
)

// options are the command-line flags.
type options struct {
	workDir        string
	out            string
	captureOnly    bool
	rounds         int
	duration       time.Duration
	warmup         time.Duration
	concurrency    int
	createRounds   int
	createDuration time.Duration
	creators       int
	pace           int
	skipA, skipB   bool
	profile        bool
	config         string

	skipC                                      bool
	auditPods, auditWorkloads, auditConfigMaps int
	auditBigConfigMaps                         bool
	auditSettle                                time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loadgen" {
		if err := runLoadgen(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "perf loadgen: %v\n", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.workDir, "work-dir", "", "work directory, recreated (default .perf at the repository root)")
	flag.StringVar(&o.out, "out", "", "where to write the results as JSON (default WORKDIR/results.json); with -capture-only, the directory for the bodies")
	flag.BoolVar(&o.captureOnly, "capture-only", false, "only capture the four AdmissionReview bodies into the -out directory")
	flag.IntVar(&o.rounds, "rounds", 5, "phase A: rounds per body, each running podguard and the null webhook")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "phase A: measured time of each run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "phase A: warm-up before each measured run")
	flag.IntVar(&o.concurrency, "concurrency", 16, "phase A: requests in flight")
	flag.IntVar(&o.createRounds, "create-rounds", 3, "phase B: rounds, each running every configuration")
	flag.DurationVar(&o.createDuration, "create-duration", 10*time.Second, "phase B: duration of each closed-loop and paced run")
	flag.IntVar(&o.creators, "creators", 50, "phase B: concurrent creators of the closed-loop runs")
	flag.IntVar(&o.pace, "pace", 100, "phase B: pods per second of the paced runs")
	flag.StringVar(&o.config, "config", "", "podguard's --config (default: none, podguard's defaults); e.g. one with the mutating policies off, to tell the API server's cost of applying patches from podguard's own")
	flag.BoolVar(&o.profile, "profile", true, "phase A: after each body's rounds, profile podguard's CPU during one extra, unmeasured run (go tool pprof -top is in the report)")
	flag.BoolVar(&o.skipA, "skip-reviews", false, "skip phase A (loopback reviews)")
	flag.BoolVar(&o.skipB, "skip-creates", false, "skip phase B (pod creates through kube-apiserver)")
	flag.BoolVar(&o.skipC, "skip-audit", false, "skip phase C (the background audit's start on existing state)")
	flag.IntVar(&o.auditPods, "audit-pods", 100000, "phase C: Pods written, owned by the Deployments' ReplicaSets")
	flag.IntVar(&o.auditWorkloads, "audit-deployments", 20000, "phase C: Deployments written, each with one ReplicaSet and its share of the Pods")
	flag.IntVar(&o.auditConfigMaps, "audit-configmaps", 100000, "phase C: ConfigMaps written; one per Deployment is read by it, the rest by nobody")
	flag.BoolVar(&o.auditBigConfigMaps, "audit-big-configmaps", false, "phase C: each ConfigMap has 20 more keys of 200 bytes and the last-applied annotation kubectl apply leaves (about 9 KB), as BenchmarkConfigMapCacheMemory's")
	flag.DurationVar(&o.auditSettle, "audit-settle", 10*time.Second, "phase C: wait after podguard's first pass (audit on) or readiness (audit off) before reading its memory")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "perf: unexpected arguments %v\n", flag.Args())
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "perf: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) (retErr error) {
	ctrllog.SetLogger(logr.Discard())
	// podguard warns about every pod it mutates; thousands of creates would
	// bury the progress lines.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	root, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	if o.workDir == "" {
		o.workDir = filepath.Join(root, ".perf")
	}
	if o.captureOnly && o.out == "" {
		return errors.New("-capture-only needs -out DIR")
	}
	if o.out == "" {
		o.out = filepath.Join(o.workDir, "results.json")
	}
	if err := os.RemoveAll(o.workDir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return err
	}
	for _, b := range []string{"podguard", "nullwebhook"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			return fmt.Errorf("bin/%s is missing: run `make perf`, which builds it", b)
		}
	}

	started := time.Now()
	e := &env{root: root, workDir: o.workDir, config: o.config}
	defer func() {
		if err := e.stop(); err != nil {
			retErr = errors.Join(retErr, err)
		}
		if ctx.Err() != nil {
			retErr = errors.Join(retErr, errors.New("interrupted"))
		}
	}()
	e.planPinning()
	logf("%s", e.pinNote)
	logf("starting etcd, kube-apiserver and kube-controller-manager (work dir %s)", o.workDir)
	if err := e.startCluster(ctx); err != nil {
		return err
	}

	if o.captureOnly {
		logf("capturing AdmissionReview bodies into %s", o.out)
		if err := e.capture(ctx, o.out); err != nil {
			return err
		}
		logf("captured %d bodies in %s", len(bodyFiles), time.Since(started).Round(time.Second))
		return nil
	}
	return measure(ctx, e, o, started)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "perf: "+format+"\n", args...)
}
