package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podguard/podguard/e2e/framework"
)

// The modes of phase B.
const (
	modeClosed = "closed"
	modePaced  = "paced"
)

// createRun is one run of phase B.
type createRun struct {
	Config   string    `json:"config"`
	Mode     string    `json:"mode"`
	Round    int       `json:"round"`
	Start    time.Time `json:"start"`
	Loadavg  string    `json:"loadavgAtStart"`
	ClearSec float64   `json:"clearSeconds"` // deleting the previous run's pods
	Creates  int       `json:"creates"`      // succeeded
	Errors   int       `json:"errors"`
	FirstErr string    `json:"firstError,omitempty"`
	Seconds  float64   `json:"seconds"` // from the first start to the last end
	PerSec   float64   `json:"createsPerSec"`
	P50Ms    float64   `json:"p50Ms"`
	P90Ms    float64   `json:"p90Ms"`
	P99Ms    float64   `json:"p99Ms"`
}

// createSummary is the median over rounds of one configuration and mode.
type createSummary struct {
	Config   string  `json:"config"`
	Mode     string  `json:"mode"`
	PerSec   float64 `json:"createsPerSec"`
	P50Ms    float64 `json:"p50Ms"`
	P90Ms    float64 `json:"p90Ms"`
	P99Ms    float64 `json:"p99Ms"`
	Errors   int     `json:"errors"` // over all rounds
	FirstErr string  `json:"firstError,omitempty"`
	Rounds   int     `json:"rounds"`
}

var configs = []string{configNone, configNull, configPodguard}

// phaseB creates pods through kube-apiserver for every configuration,
// rotating their order round by round.
func (e *env) phaseB(ctx context.Context, o options) ([]createRun, error) {
	cfg := rest.CopyConfig(e.cluster.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var runs []createRun
	for round := range o.createRounds {
		for i := range configs {
			config := configs[(i+round)%len(configs)]
			if err := e.switchTo(ctx, config); err != nil {
				return runs, err
			}
			for _, mode := range []string{modeClosed, modePaced} {
				t0 := time.Now()
				if err := deleteAllPods(ctx, cs); err != nil {
					return runs, err
				}
				clear := time.Since(t0)
				start, load := time.Now(), loadavg()
				prefix := fmt.Sprintf("%s-%s-%d", config, mode, round)
				var lat []time.Duration
				var r createRun
				if mode == modeClosed {
					lat, r = closedLoop(ctx, cs, prefix, o.creators, o.createDuration)
				} else {
					lat, r = paced(ctx, cs, prefix, o.pace, o.createDuration)
				}
				if err := ctx.Err(); err != nil {
					return runs, err
				}
				r.Config, r.Mode, r.Round = config, mode, round
				r.Start, r.Loadavg, r.ClearSec = start, load, clear.Seconds()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				r.Creates = len(lat)
				if r.Seconds > 0 {
					r.PerSec = float64(r.Creates) / r.Seconds
				}
				r.P50Ms, r.P90Ms, r.P99Ms = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
				runs = append(runs, r)
				logf("B %-8s %-6s round %d: %6.1f creates/s, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, %d errors (load %s; pods cleared in %.1fs)",
					config, mode, round+1, r.PerSec, r.P50Ms, r.P90Ms, r.P99Ms, r.Errors, load, clear.Seconds())
			}
		}
	}
	return runs, deleteAllPods(ctx, cs)
}

// shardLabel spreads the created pods over deleteShards, so that
// deleteAllPods can delete them with parallel DeleteCollection calls:
// kube-apiserver deletes the items of one call one by one
// (--delete-collection-workers defaults to 1), which took longer than the
// runs themselves.
const (
	shardLabel   = "perf.podguard.io/shard"
	deleteShards = 8
)

func createPod(ctx context.Context, cs kubernetes.Interface, name string, n int) error {
	pod := nginxPod(namespace, name)
	pod.Labels = map[string]string{shardLabel: strconv.Itoa(n % deleteShards)}
	_, err := cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	return err
}

// outcomes collects the latencies and errors of concurrent creates.
type outcomes struct {
	mu  sync.Mutex
	lat []time.Duration
	r   createRun
}

func (o *outcomes) add(took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.r.Errors++
		if o.r.FirstErr == "" {
			o.r.FirstErr = err.Error()
		}
		return
	}
	o.lat = append(o.lat, took)
}

// closedLoop runs creators that each create pods back to back for d.
func closedLoop(ctx context.Context, cs kubernetes.Interface, prefix string, creators int, d time.Duration) ([]time.Duration, createRun) {
	var (
		o  outcomes
		wg sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				t0 := time.Now()
				err := createPod(ctx, cs, fmt.Sprintf("%s-%d-%d", prefix, w, n), w+n)
				o.add(time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	o.r.Seconds = time.Since(start).Seconds()
	return o.lat, o.r
}

// paced starts pace creates per second for d, each on schedule whether or
// not the earlier ones have finished (open loop); a latency runs from the
// scheduled start.
func paced(ctx context.Context, cs kubernetes.Interface, prefix string, pace int, d time.Duration) ([]time.Duration, createRun) {
	var (
		o  outcomes
		wg sync.WaitGroup
	)
	start := time.Now()
	total := int(d.Seconds() * float64(pace))
	interval := time.Second / time.Duration(pace)
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := createPod(ctx, cs, fmt.Sprintf("%s-%d", prefix, i), i)
			o.add(time.Since(at), err)
		}()
	}
	wg.Wait()
	o.r.Seconds = time.Since(start).Seconds()
	return o.lat, o.r
}

// deleteAllPods deletes every pod of the namespace, one DeleteCollection
// per shard in parallel and one for the rest (the probe pods), and waits
// until the list is empty, so that each run starts from the same etcd
// contents.
func deleteAllPods(ctx context.Context, cs kubernetes.Interface) error {
	pods := cs.CoreV1().Pods(namespace)
	selectors := []string{""}
	for i := range deleteShards {
		selectors = append(selectors, fmt.Sprintf("%s=%d", shardLabel, i))
	}
	errs := make([]error, len(selectors))
	var wg sync.WaitGroup
	for i, sel := range selectors[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i+1] = pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{LabelSelector: sel})
		}()
	}
	wg.Wait()
	errs[0] = pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deleting the pods: %w", err)
	}
	var left int // 0 or 1: whether a pod was left
	err := framework.Eventually(ctx, 2*time.Minute, 100*time.Millisecond, func() (bool, error) {
		// One item is enough to tell; listing thousands would load the
		// API server that is about to be measured.
		list, err := pods.List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return false, err
		}
		left = len(list.Items)
		return left == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the pods to be gone (some left: %t): %w", left > 0, err)
	}
	return nil
}

// summarizeCreates takes the medians over rounds per configuration and
// mode.
func summarizeCreates(runs []createRun) []createSummary {
	var out []createSummary
	for _, mode := range []string{modeClosed, modePaced} {
		for _, config := range configs {
			s := createSummary{Config: config, Mode: mode}
			var rate, p50, p90, p99 []float64
			for _, r := range runs {
				if r.Config != config || r.Mode != mode {
					continue
				}
				s.Rounds++
				rate = append(rate, r.PerSec)
				p50 = append(p50, r.P50Ms)
				p90 = append(p90, r.P90Ms)
				p99 = append(p99, r.P99Ms)
				s.Errors += r.Errors
				if s.FirstErr == "" {
					s.FirstErr = r.FirstErr
				}
			}
			if s.Rounds == 0 {
				continue
			}
			s.PerSec, s.P50Ms, s.P90Ms, s.P99Ms = median(rate), median(p50), median(p90), median(p99)
			out = append(out, s)
		}
	}
	return out
}
