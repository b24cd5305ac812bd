//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podguard/podguard/policies"
)

// Budgets of the adversarial suite, stated in the README ("Budgets" under
// "The server"): any pod a user may create, up to the API server's own
// limits (256 KiB of annotations, 3 MiB per request), is answered by
// podguard within timeBudget (its own admission_duration, both webhooks
// together) and through kube-apiserver within apiBudget (which includes the
// API server's own work on the pod, the larger part for the largest pods),
// with podguard's resident memory growing by at most memBudget, while
// /readyz keeps answering 200.
const (
	timeBudget = time.Second
	apiBudget  = 5 * time.Second
	memBudget  = 64 << 20
)

// memBudgetFor is the memory budget for a pod of size bytes: memBudget up to
// 512 KiB, then 100 bytes per byte of pod. Decoding the pod, copying it for
// the mutators and diffing it for the JSON patch cost about 80 per byte: a
// 1.4 MB pod took 113 MiB.
func memBudgetFor(size int) int64 {
	return max(memBudget, 100*int64(size))
}

// attack is one hostile pod, created by a user who may only create pods.
type attack struct {
	name string
	// fast cases run in `make test`; `make soak` (PODGUARD_SOAK=1) runs all.
	fast bool
	pod  func(ns string) *corev1.Pod
	// admitted is the expected outcome; else the create is denied.
	admitted bool
}

// row is one line of the soak table.
type row struct {
	input         string
	size          int
	took, podTook time.Duration
	extraRSS      int64
	verdict       string
}

// hostilePod is a pod with one container "app" and the annotations.
func hostilePod(ns string, annotations map[string]string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "hostile-", Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

// distinctEntries is n podguard.io/logs entries, each a directory of its own.
func distinctEntries(n int, container string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = container + "/" + strconv.FormatInt(int64(i), 36)
	}
	return strings.Join(parts, ",")
}

func envFromRefs(n int, prefix func(int) string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		for i := range n {
			p.Spec.Containers[0].EnvFrom = append(p.Spec.Containers[0].EnvFrom, corev1.EnvFromSource{
				Prefix:       prefix(i),
				ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "big"}},
			})
		}
	}
}

func attacks() []attack {
	// The API server keeps a pod's annotations under 256 KiB in all.
	const annotationRoom = 250 << 10
	noPrefix := func(int) string { return "" }
	return []attack{
		{name: "logs: 250,000 commas", fast: true, pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, map[string]string{policies.LogsAnnotation: strings.Repeat(",", annotationRoom)}, nil)
		}},
		{name: "logs: 40,000 distinct entries", fast: true, pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, map[string]string{policies.LogsAnnotation: distinctEntries(40000, "")}, nil)
		}},
		{name: "logs: 25,000 entries of 500 missing containers", pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, map[string]string{policies.LogsAnnotation: strings.Repeat("nope=/x,", 25000)}, func(p *corev1.Pod) {
				for i := range 500 {
					p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "nginx"})
				}
			})
		}},
		{name: "logs: repeated separators and spaces", pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, map[string]string{policies.LogsAnnotation: strings.Repeat(" , ,= ,", annotationRoom/7)}, nil)
		}},
		{name: "logs: one 250 KB relative path", pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, map[string]string{policies.LogsAnnotation: "app=" + strings.Repeat("x", annotationRoom)}, nil)
		}},
		{name: "logs: 64 entries (the limit), admitted with 64 sidecars", admitted: true, pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, map[string]string{policies.LogsAnnotation: distinctEntries(64, "")}, nil)
		}},
		{name: "skip: 250 KB of unknown policy names", pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, map[string]string{policies.SkipAnnotation: strings.Repeat("nope,", annotationRoom/5), policies.LogsAnnotation: ","}, nil)
		}},
		{name: "envFrom: 1,000 refs to a 170 KB ConfigMap of bad keys", fast: true, pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, nil, envFromRefs(1000, noPrefix))
		}},
		{name: "envFrom: 5,000 refs with distinct prefixes", pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, nil, envFromRefs(5000, func(i int) string { return fmt.Sprintf("P%d_", i) }))
		}},
		{name: "envFrom: 1,000 refs to 3,000 keys of 253 characters", pod: func(ns string) *corev1.Pod {
			p := hostilePod(ns, nil, envFromRefs(1000, noPrefix))
			for i := range p.Spec.Containers[0].EnvFrom {
				p.Spec.Containers[0].EnvFrom[i].ConfigMapRef.Name = "long-keys"
			}
			return p
		}},
		{name: "mounts: 100 containers x 100 mounts of the 170 KB ConfigMap", pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, nil, mounts(100, 100))
		}},
		{name: "mounts: 300 containers x 100 mounts, a 1.4 MB pod", pod: func(ns string) *corev1.Pod {
			return hostilePod(ns, nil, mounts(300, 100))
		}},
	}
}

// mounts gives a pod n containers that each mount the 170 KB ConfigMap m
// times, at paths named after its keys.
func mounts(n, m int) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "big"}}}}}
		p.Spec.Containers = nil
		for i := range n {
			c := corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "nginx"}
			for j := range m {
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "cfg", MountPath: fmt.Sprintf("/etc/m%d/%05d.key", j, j)})
			}
			p.Spec.Containers = append(p.Spec.Containers, c)
		}
	}
}

// bigConfigMaps creates "big" (15,000 keys that start with a digit and hold
// a dot, about 170 KB) and "long-keys" (3,000 such keys of 253 characters,
// the longest the API server takes) in ns.
func bigConfigMaps(t *testing.T, ns string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	big := map[string]string{}
	for i := range 15000 {
		big[fmt.Sprintf("%05d.key", i)] = ""
	}
	long := map[string]string{}
	for i := range 3000 {
		// 253 characters is the longest key the API server takes.
		k := fmt.Sprintf("%04d.", i)
		long[k+strings.Repeat("k", 253-len(k))] = ""
	}
	for name, data := range map[string]map[string]string{"big": big, "long-keys": long} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
		if err := cluster.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
}

// podCreator returns a client for a user who may only create pods in ns.
func podCreator(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	cs, _, _ := userClient(t, "pod-creator@example.com", nil, []string{ns},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}})
	return cs
}

// procStatus reads a field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// peakRSS measures the resident memory a process reaches while fn runs,
// above what it held before: VmHWM after resetting it (clear_refs 5), and,
// where that is not allowed, the highest VmRSS sampled every 5 ms.
func peakRSS(t *testing.T, pid int, fn func()) int64 {
	t.Helper()
	before, err := procStatus(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	reset := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	var sampled atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if rss, err := procStatus(pid, "VmRSS"); err == nil && rss > sampled.Load() {
				sampled.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	peak := sampled.Load()
	if reset {
		if hwm, err := procStatus(pid, "VmHWM"); err == nil && hwm > peak {
			peak = hwm
		}
	}
	return max(peak-before, 0)
}

// probeReady polls /readyz every 50 ms until stop is closed and returns how
// many probes failed, of how many.
func probeReady(url string, stop <-chan struct{}) func() (failed, total int) {
	var f, n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: time.Second}
		for {
			resp, err := c.Get(url)
			n.Add(1)
			if err != nil {
				f.Add(1)
			} else {
				if resp.StatusCode != http.StatusOK {
					f.Add(1)
				}
				resp.Body.Close()
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() (int, int) { <-done; return int(f.Load()), int(n.Load()) }
}

// TestAdversarialInputs sends the worst pods a user who may only create pods
// can write through the real kube-apiserver, one at a time, and holds each
// to the budgets: answered by podguard within timeBudget and through the
// API server within apiBudget, podguard's resident memory up by at most
// memBudgetFor the pod, /readyz answering throughout, and the denial
// relayed to the user bounded. `make test` runs the fast cases;
// `make soak` (PODGUARD_SOAK=1) runs them all and prints a table.
func TestAdversarialInputs(t *testing.T) {
	soak := os.Getenv("PODGUARD_SOAK") != ""
	pg := runPodguard(t, "opt-in", "cluster: {kubeletVersion: \"1.33\"}\npolicies:\n  envFromKeys: {posix: deny}\n")
	ns := newNamespace(t, "hostile", optIn)
	bigConfigMaps(t, ns)
	attacker := podCreator(t, ns)

	var rows []row
	for _, a := range attacks() {
		if !soak && !a.fast {
			continue
		}
		t.Run(a.name, func(t *testing.T) {
			pod := a.pod(ns)
			raw, _ := json.Marshal(pod)
			stop := make(chan struct{})
			ready := probeReady(pg.HealthURL+"/readyz", stop)
			var err error
			var took time.Duration
			spentBefore := admissionSeconds(t, pg.MetricsURL)
			extra := peakRSS(t, pg.Pid(), func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				start := time.Now()
				_, err = attacker.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
				took = time.Since(start)
			})
			close(stop)
			failed, probes := ready()
			podguardTook := time.Duration((admissionSeconds(t, pg.MetricsURL) - spentBefore) * float64(time.Second))

			verdict := "ok"
			switch {
			case a.admitted && err != nil:
				verdict = "FAIL"
				t.Errorf("want the pod admitted, got %v", firstLine(err.Error()))
			case !a.admitted && err == nil:
				verdict = "FAIL"
				t.Errorf("want the pod denied, it was admitted")
			case !a.admitted && !strings.Contains(err.Error(), "podguard"):
				verdict = "FAIL"
				t.Errorf("want podguard's denial, got %v", firstLine(err.Error()))
			case err != nil && len(err.Error()) > 64<<10:
				verdict = "FAIL"
				t.Errorf("the denial relayed to the user is %d bytes, over 64 KiB", len(err.Error()))
			}
			if podguardTook > timeBudget {
				verdict = "FAIL"
				t.Errorf("podguard took %v, over the %v budget", podguardTook, timeBudget)
			}
			if took > apiBudget {
				verdict = "FAIL"
				t.Errorf("the create took %v through kube-apiserver, over the %v budget", took, apiBudget)
			}
			if budget := memBudgetFor(len(raw)); extra > budget {
				verdict = "FAIL"
				t.Errorf("podguard's resident memory grew by %d MiB, over the %d MiB budget", extra>>20, budget>>20)
			}
			if failed > 0 {
				verdict = "FAIL"
				t.Errorf("/readyz failed %d of %d probes meanwhile", failed, probes)
			}
			t.Logf("%d-byte pod answered in %v (podguard %v), +%d KiB RSS, /readyz %d/%d", len(raw), took, podguardTook, extra>>10, probes-failed, probes)
			rows = append(rows, row{input: a.name, size: len(raw), took: took, podTook: podguardTook, extraRSS: extra, verdict: verdict})
		})
	}
	printTable(t, rows)
}

func printTable(t *testing.T, rows []row) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-62s %10s %13s %9s %14s %24s %s\n", "input", "size", "podguard time", "API time", "peak extra RSS", "budget", "verdict")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-62s %10s %13s %9s %14s %24s %s\n", r.input, kib(int64(r.size)), r.podTook.Round(time.Millisecond), r.took.Round(time.Millisecond), kib(r.extraRSS),
			fmt.Sprintf("%v/%v, %d MiB", timeBudget, apiBudget, memBudgetFor(r.size)>>20), r.verdict)
	}
	t.Log(b.String())
	fmt.Print(b.String())
}

// admissionSeconds is the time podguard has spent answering admission
// requests so far: the sum of podguard_admission_duration_seconds over both
// webhooks.
func admissionSeconds(t *testing.T, metricsURL string) float64 {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "podguard_admission_duration_seconds_sum") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				total += v
			}
		}
	}
	return total
}

func kib(n int64) string { return fmt.Sprintf("%d KiB", n>>10) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 300 {
		line = line[:300] + "..."
	}
	return line
}
