package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/e2e/framework"
	"github.com/podguard/podguard/internal/memlimit"
)

// Phase C measures the background audit where it starts in a real cluster:
// with the state already there. It writes Deployments, each with its
// ReplicaSet and Pods (owner references as the controllers write them),
// and ConfigMaps, straight into kube-apiserver, then starts podguard serve
// twice on that state, side by side: with the background audit off (the
// webhook's own informers only) and on. Each run reads podguard's peak and
// settled resident memory (/proc/PID/status VmHWM, VmRSS), its heap in use
// and, with the audit on, the time from start to the first pass published
// and how many objects it judged.
//
// kube-controller-manager is stopped before the objects are written, so
// that no controller races the harness (it would create the pods again, or
// adopt and delete them); the namespaces and their default ServiceAccounts
// are made first, while it runs. Every tenth ConfigMap has a key the
// kubelet drops (1st.key), so that a tenth of the Deployments fail.

// auditNamespacePrefix names phase C's namespaces, which opt in.
const auditNamespacePrefix = "audit-"

// auditRun is one podguard start of phase C.
type auditRun struct {
	Audit bool `json:"audit"`
	// MemoryLimit is the GOMEMLIMIT podguard ran with, if any: what
	// serve's --memory-limit-ratio sets under a container's limit.
	MemoryLimit string `json:"gomemlimit,omitempty"`
	// PagedLists turns client-go's streamed initial lists off
	// (KUBE_FEATURE_WatchListClient=false), as against an API server
	// without them.
	PagedLists bool `json:"pagedLists,omitempty"`
	// ReadySec is from the process's start to /readyz answering.
	ReadySec float64 `json:"readySeconds"`
	// FirstPassSec is, with the audit on, from the process's start to the
	// end of the first pass over every object (the
	// podguard_audit_first_pass_duration_seconds histogram counting one).
	FirstPassSec float64 `json:"firstPassSeconds,omitempty"`
	// FirstPassMetricSec is that pass's own duration, as podguard measures
	// it: from the term's start, once the caches have synced.
	FirstPassMetricSec float64 `json:"firstPassMetricSeconds,omitempty"`
	// Judged is the sum of podguard_audit_objects: the workloads and bare
	// Pods with a verdict (a Deployment's ReplicaSets and Pods are folded
	// into it).
	Judged int `json:"judged,omitempty"`
	Failed int `json:"failed,omitempty"`
	// PeakRSSMiB is VmHWM, the process's peak resident memory, after the
	// first pass (or, without the audit, after the settle time);
	// RSSMiB is VmRSS then.
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	RSSMiB     float64 `json:"rssMiB"`
	// HeapInuseMiB is go_memstats_heap_inuse_bytes then.
	HeapInuseMiB float64 `json:"heapInuseMiB"`
}

// auditScale is what phase C writes.
type auditScale struct {
	Pods       int `json:"pods"`
	Workloads  int `json:"deployments"`
	ConfigMaps int `json:"configMaps"`
	Namespaces int `json:"namespaces"`
	// BigConfigMaps: 20 more keys of 200 bytes each and the last-applied
	// annotation, about 9 KB a ConfigMap.
	BigConfigMaps bool `json:"bigConfigMaps,omitempty"`
	// SeedSec is how long writing them took.
	SeedSec float64 `json:"seedSeconds"`
}

// phaseC writes the state, then measures podguard without and with the
// background audit.
func (e *env) phaseC(ctx context.Context, o options) (auditScale, []auditRun, error) {
	scale := auditScale{Pods: o.auditPods, Workloads: max(o.auditWorkloads, 1), ConfigMaps: max(o.auditConfigMaps, o.auditWorkloads), BigConfigMaps: o.auditBigConfigMaps}
	scale.Namespaces = max(1, scale.Workloads/1000)
	// podguard of phases A and B, and the webhooks pointed at it or at the
	// null webhook, are done: the state is written without webhooks, and
	// each run has the CPUs to itself.
	if err := framework.UninstallWebhooks(ctx, e.cluster.Client); err != nil {
		return scale, nil, err
	}
	for _, stop := range []func() error{e.stopPodguard, e.stopNull} {
		if err := stop(); err != nil {
			return scale, nil, err
		}
	}
	for i := range scale.Namespaces {
		if err := e.cluster.CreateNamespace(ctx, auditNamespace(i), optInLabels); err != nil {
			return scale, nil, err
		}
	}
	if err := e.cluster.CreateNamespace(ctx, leaseNamespace, nil); err != nil {
		return scale, nil, err
	}
	logf("phase C: stopping kube-controller-manager, so that no controller races the objects written")
	if err := e.cluster.StopControllerManager(); err != nil {
		return scale, nil, err
	}
	t0 := time.Now()
	if err := e.seedAuditState(ctx, scale, o.creators); err != nil {
		return scale, nil, err
	}
	scale.SeedSec = time.Since(t0).Seconds()
	logf("phase C: wrote %d Deployments (with as many ReplicaSets), %d Pods and %d ConfigMaps in %d namespaces in %s",
		scale.Workloads, scale.Pods, scale.ConfigMaps, scale.Namespaces, time.Since(t0).Round(time.Second))

	// Then podguard as a Deployment runs it, in a container whose limit
	// serve gives 90% of to the runtime: the shipped 1Gi, and 512Mi. The
	// last run lists as client-go does against an API server that cannot
	// stream the initial lists (before watch-list): one LIST per kind,
	// which the watch cache answers whole.
	gomemlimit := func(containerLimit int64) string {
		ratio := memlimit.DefaultRatio
		return strconv.FormatInt(int64(ratio*float64(containerLimit)), 10)
	}
	var runs []auditRun
	for i, run := range []auditRun{
		{Audit: false},
		{Audit: true},
		{Audit: true, MemoryLimit: gomemlimit(512 << 20)},
		{Audit: true, MemoryLimit: gomemlimit(shippedMemoryLimit)},
		{Audit: true, MemoryLimit: gomemlimit(shippedMemoryLimit), PagedLists: true},
	} {
		r, err := e.auditRun(ctx, i, run, o.auditSettle)
		if err != nil {
			return scale, runs, err
		}
		logf("phase C: audit %v, GOMEMLIMIT %q, paged lists %v: ready in %.1fs, first pass at %.1fs, peak RSS %.0f MiB, RSS %.0f MiB, heap %.0f MiB, %d judged",
			r.Audit, r.MemoryLimit, r.PagedLists, r.ReadySec, r.FirstPassSec, r.PeakRSSMiB, r.RSSMiB, r.HeapInuseMiB, r.Judged)
		runs = append(runs, r)
	}
	return scale, runs, nil
}

// shippedMemoryLimit is the memory limit of deploy/'s Deployment and the
// chart's default.
const shippedMemoryLimit = 1 << 30

// leaseNamespace holds podguard's audit Lease (--namespace).
const leaseNamespace = "podguard-system"

func auditNamespace(i int) string { return fmt.Sprintf("%s%02d", auditNamespacePrefix, i) }

// auditRun starts podguard on the written state with the background audit
// on or off, waits for its first pass (or settle), reads its memory and
// stops it.
func (e *env) auditRun(ctx context.Context, n int, r auditRun, settle time.Duration) (_ auditRun, err error) {
	audit := r.Audit
	cfg := fmt.Sprintf("apiVersion: podguard.io/v1alpha1\nkind: Config\nimages: {inspect: false}\naudit: {background: %v, interval: 1h}\n", audit)
	cfgPath := filepath.Join(e.workDir, fmt.Sprintf("audit-run%d.yaml", n))
	logName := fmt.Sprintf("podguard-audit-run%d.log", n)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return r, err
	}
	port, err := framework.FreePort()
	if err != nil {
		return r, err
	}
	var env []string
	if r.MemoryLimit != "" {
		env = append(env, "GOMEMLIMIT="+r.MemoryLimit)
	}
	if r.PagedLists {
		env = append(env, "KUBE_FEATURE_WatchListClient=false")
	}
	wrap := e.pin
	if len(env) > 0 {
		wrap = append(append([]string{"env"}, env...), e.pin...)
	}
	// The audit's scope is the namespaceSelector of podguard's own
	// ValidatingWebhookConfiguration: it is there before podguard starts,
	// as in a cluster.
	if err := framework.InstallWebhooks(ctx, e.cluster.Client, e.overlay, fmt.Sprintf("https://127.0.0.1:%d", port), e.caPEM); err != nil {
		return r, err
	}
	started := time.Now()
	pg, err := framework.StartPodguard(ctx, framework.PodguardOptions{
		Kubeconfig:   e.cluster.KubeconfigPath,
		CertDir:      e.certDir,
		ConfigPath:   cfgPath,
		Port:         port,
		LogPath:      filepath.Join(e.workDir, logName),
		Wrap:         wrap,
		Args:         []string{"--namespace", leaseNamespace},
		ReadyTimeout: 10 * time.Minute,
	})
	if err != nil {
		return r, err
	}
	defer func() {
		if stopErr := pg.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	r.ReadySec = time.Since(started).Seconds()
	client := &http.Client{Timeout: 10 * time.Second}
	if audit {
		err = framework.Eventually(ctx, 20*time.Minute, 200*time.Millisecond, func() (bool, error) {
			m, err := scrape(ctx, client, pg.MetricsURL)
			if err != nil {
				return false, nil
			}
			if m["podguard_audit_first_pass_duration_seconds_count"] == 0 {
				return false, nil
			}
			r.FirstPassSec = time.Since(started).Seconds()
			r.FirstPassMetricSec = m["podguard_audit_first_pass_duration_seconds_sum"]
			return true, nil
		})
		if err != nil {
			return r, fmt.Errorf("waiting for the audit's first pass: %w (see %s)", err, pg.LogPath)
		}
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	m, err := scrape(ctx, client, pg.MetricsURL)
	if err != nil {
		return r, err
	}
	r.HeapInuseMiB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
	r.Judged = int(m[`podguard_audit_objects`])
	r.Failed = int(m[`podguard_audit_objects{result="fail"}`])
	if r.PeakRSSMiB, r.RSSMiB, err = memory(pg.Pid()); err != nil {
		return r, err
	}
	return r, nil
}

// scrape reads a Prometheus text exposition into a map from each series
// (name{labels}) to its value, and from each metric name to the sum of its
// series.
func scrape(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	resp, err := get(ctx, client, url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		out[series] = v
		if name, labels, ok := strings.Cut(series, "{"); ok {
			out[name] += v
			// The series of one label alone, e.g.
			// podguard_audit_objects{result="fail"}, summed over the
			// others; a series of one label is that already.
			if list := strings.Split(strings.TrimSuffix(labels, "}"), ","); len(list) > 1 {
				for _, l := range list {
					out[name+"{"+l+"}"] += v
				}
			}
		}
	}
	return out, sc.Err()
}

// memory reads a process's peak and current resident memory, in MiB.
func memory(pid int) (peak, rss float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			peak = kb / 1024
		case "VmRSS":
			rss = kb / 1024
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
	}
	return peak, rss, nil
}

// seedAuditState writes the Deployments, their ReplicaSets and Pods, and
// the ConfigMaps, with workers writers in parallel.
func (e *env) seedAuditState(ctx context.Context, s auditScale, workers int) error {
	cfg := rest.CopyConfig(e.cluster.Config)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit: the API server's is the limit
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	total := max(s.Workloads, s.ConfigMaps)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		done     atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := writeWorkload(ctx, cs, s, i); err != nil {
					fail(err)
					return
				}
				if n := done.Add(1); n%5000 == 0 {
					logf("phase C: %d of %d ConfigMaps written, with their Deployments", n, total)
				}
			}
		}()
	}
	// Workload i owns ConfigMap i; the ConfigMaps beyond the workloads
	// are read by nobody, as most of a cluster's are.
feed:
	for i := range total {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// writeWorkload writes ConfigMap i and, for i below s.Workloads,
// Deployment i with its ReplicaSet and its share of the Pods.
func writeWorkload(ctx context.Context, cs kubernetes.Interface, s auditScale, i int) error {
	ns := auditNamespace(i % s.Namespaces)
	name := fmt.Sprintf("app-%d", i)
	data := map[string]string{"LOG_LEVEL": "info", "DB_HOST": "db", "FEATURE_FLAGS": "a,b,c"}
	if i%10 == 0 {
		data["1st.key"] = "dropped by kubelets up to 1.29"
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-env"}, Data: data}
	if s.BigConfigMaps {
		for k := range 20 {
			data[fmt.Sprintf("SETTING_%02d", k)] = strings.Repeat(string(rune('a'+k)), 200)
		}
		applied, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": cm.Name, "namespace": ns}, "data": data})
		if err != nil {
			return err
		}
		cm.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: string(applied)}
	}
	if err := create(ctx, func() error { _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); return err }); err != nil {
		return err
	}
	if i >= s.Workloads {
		return nil
	}
	replicas := s.Pods / s.Workloads
	if i < s.Pods%s.Workloads {
		replicas++
	}
	labels := map[string]string{"app": name}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example/shop/" + name + ":1.0.0",
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name}}}},
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app/config.yaml", SubPath: "config.yaml"}},
			}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name}}}}},
		},
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: template,
		},
	}
	// A create that failed returns an empty object, not the one sent: keep
	// the one sent for a retry, and read the one written back after a
	// create that timed out yet went through.
	if err := create(ctx, func() error {
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	const hash = "5d9c8b7f6"
	rsTemplate := *template.DeepCopy()
	rsTemplate.Labels = map[string]string{"app": name, appsv1.DefaultDeploymentUniqueLabelKey: hash}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + hash, Labels: rsTemplate.Labels,
			OwnerReferences: []metav1.OwnerReference{controllerRef(d.UID, "apps/v1", "Deployment", d.Name)}},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: rsTemplate.Labels},
			Template: rsTemplate,
		},
	}
	if err := create(ctx, func() error {
		_, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	if rs, err = cs.AppsV1().ReplicaSets(ns).Get(ctx, rs.Name, metav1.GetOptions{}); err != nil {
		return err
	}
	for k := range replicas {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%s-%d", name, hash, k), Labels: rsTemplate.Labels,
				OwnerReferences: []metav1.OwnerReference{controllerRef(rs.UID, "apps/v1", "ReplicaSet", rs.Name)}},
			Spec: *rsTemplate.Spec.DeepCopy(),
		}
		if err := create(ctx, func() error { _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); return err }); err != nil {
			return err
		}
	}
	return nil
}

// create runs a create, retrying while the API server pushes back (429,
// or a timeout under load) and taking an existing object as written.
func create(ctx context.Context, do func() error) error {
	for attempt := 0; ; attempt++ {
		err := do()
		switch {
		case err == nil, apierrors.IsAlreadyExists(err):
			return nil
		case attempt < 10 && (apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err)):
			select {
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			return err
		}
	}
}

// controllerRef is the owner reference a controller writes on what it
// makes.
func controllerRef(uid types.UID, apiVersion, kind, name string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

// printAudit prints phase C's table: podguard on the same state with the
// background audit off, the baseline, and on.
func printAudit(w io.Writer, res *results) {
	if res.AuditScale == nil || len(res.AuditRuns) == 0 {
		return
	}
	s := res.AuditScale
	fmt.Fprintf(w, "\n### The background audit's start (issue 13)\n\n")
	size := ""
	if s.BigConfigMaps {
		size = " (about 9 KB each: 20 keys of 200 bytes and the last-applied annotation)"
	}
	fmt.Fprintf(w, "%s Pods, %s Deployments (each with its ReplicaSet) and %s ConfigMaps%s in %d namespaces, written in %s before podguard starts; "+
		"kube-controller-manager stopped. Memory is /proc/PID/status after the first pass (audit on) or readiness (off), plus the settle time.\n\n",
		thousands(float64(s.Pods)), thousands(float64(s.Workloads)), thousands(float64(s.ConfigMaps)), size, s.Namespaces, secs(s.SeedSec))
	fmt.Fprintln(w, "| background audit | GOMEMLIMIT | initial lists | ready s | first pass s (podguard's own) | judged | failed | peak RSS MiB | RSS MiB | heap in use MiB |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	var base *auditRun
	for i, r := range res.AuditRuns {
		pass, on := "–", "off"
		if r.Audit {
			pass, on = fmt.Sprintf("%.1f (%.1f)", r.FirstPassSec, r.FirstPassMetricSec), "on"
		} else {
			base = &res.AuditRuns[i]
		}
		limit := "none"
		if n, err := strconv.ParseFloat(r.MemoryLimit, 64); err == nil {
			limit = fmt.Sprintf("%.0f MiB (%.0f%% of a %.0f MiB limit)", n/(1<<20), memlimit.DefaultRatio*100, n/memlimit.DefaultRatio/(1<<20))
		}
		lists := "streamed (watch-list)"
		if r.PagedLists {
			lists = "LIST (WatchListClient off)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %s | %d | %d | %.0f | %.0f | %.0f |\n", on, limit, lists, r.ReadySec, pass, r.Judged, r.Failed, r.PeakRSSMiB, r.RSSMiB, r.HeapInuseMiB)
	}
	for _, r := range res.AuditRuns {
		if r.Audit && r.MemoryLimit == "" && !r.PagedLists && base != nil {
			fmt.Fprintf(w, "\nWithout a GOMEMLIMIT, the audit adds %+.0f MiB peak RSS, %+.0f MiB RSS and %+.0f MiB heap to the same podguard without it. The shipped memory limit is 1 GiB.\n",
				r.PeakRSSMiB-base.PeakRSSMiB, r.RSSMiB-base.RSSMiB, r.HeapInuseMiB-base.HeapInuseMiB)
		}
	}
}
