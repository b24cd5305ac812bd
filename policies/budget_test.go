package policies

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// resultBytes is how much a result says: every finding's field and message.
func resultBytes(res *Result) int {
	n := 0
	for _, f := range append(slices.Clone(res.Violations), res.Warnings...) {
		n += len(f.Policy) + len(f.Field) + len(f.Message)
	}
	return n
}

// commas is the annotation: n commas, n+1 empty entries.
func commas(n int) string { return strings.Repeat(",", n) }

// logEntries is n distinct, valid entries for container c0.
func logEntries(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("c0=/var/log/d%d", i)
	}
	return strings.Join(parts, ",")
}

func TestBudgetsHoldForTheWorstAnnotations(t *testing.T) {
	engine := NewEngine(defaultSettings())
	world := nativeWorld("v1.33.0", "v1.33.0")
	for _, tc := range []struct {
		name       string
		containers int
		logs       string
		violations int // log-sidecar violations, including the summary
		first      string
		last       string
	}{
		{"denies 20,000 commas with 10 empty entries and a count of the rest", 1, commas(20000), MaxFindingsPerPolicy + 1,
			`entry 1 of ",,,,`, "and 19,991 more violations of this policy"},
		{"denies repeated separators around a valid entry", 1, ",, ,/logs, ,,", 6, `entry 1 of ",, ,/logs, ,,"`, ""},
		{"denies 50,000 valid entries at the entry limit, once", 1, logEntries(50000), 1,
			"asks for more than 64 log directories", ""},
		{"denies 50,000 entries naming a missing container, listing 10 of 2,000 containers", 2000, strings.Repeat("nope=/x,", 50000), MaxFindingsPerPolicy + 1,
			`container "nope" does not exist; the pod's containers are "c0", "c1"`, "and 49,991 more violations"},
		{"cuts a 100,000-byte entry to 128 bytes with a marker", 1, "c0=" + strings.Repeat("x", 100000), 1,
			`…(100,000 bytes in all) is not an absolute path`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := annotatedPod(tc.containers, map[string]string{LogsAnnotation: tc.logs})
			res, err := engine.Mutate(pod, world)
			if err != nil {
				t.Fatal(err)
			}
			checkBudget(t, res)
			if len(res.Violations) != tc.violations {
				t.Fatalf("%d violations, want %d: %v", len(res.Violations), tc.violations, res.Violations)
			}
			if !strings.Contains(res.Violations[0].Message, tc.first) {
				t.Errorf("first violation %q does not contain %q", res.Violations[0].Message, tc.first)
			}
			if last := res.Violations[len(res.Violations)-1]; !strings.Contains(last.Message, tc.last) {
				t.Errorf("last violation %q does not contain %q", last.Message, tc.last)
			}
			for _, v := range res.Violations {
				if v.Field != "metadata.annotations[podguard.io/logs]" {
					t.Errorf("field %q, want the annotation's path", v.Field)
				}
			}
			if size := resultBytes(res); size > 12*1024 {
				t.Errorf("%d bytes of findings, want at most 12 KiB", size)
			}
		})
	}
}

func TestSixtyFourLogEntriesAreInjectedOnce(t *testing.T) {
	engine := NewEngine(defaultSettings())
	world := nativeWorld("v1.33.0", "v1.33.0")
	pod := annotatedPod(1, map[string]string{LogsAnnotation: logEntries(MaxLogEntries) + "," + logEntries(MaxLogEntries)})
	res, err := engine.Mutate(pod, world)
	if err != nil || res.Denied() {
		t.Fatalf("err %v, violations %v", err, res.Violations)
	}
	if n := len(res.Pod.Spec.InitContainers); n != MaxLogEntries {
		t.Fatalf("%d sidecars, want %d", n, MaxLogEntries)
	}
	names := map[string]bool{}
	for _, c := range res.Pod.Spec.InitContainers {
		if names[c.Name] {
			t.Fatalf("sidecar name %q twice", c.Name)
		}
		names[c.Name] = true
	}
	again, err := engine.Mutate(res.Pod, world)
	if err != nil || len(again.Mutated) > 0 {
		t.Fatalf("second pass: err %v, mutated %v", err, again.Mutated)
	}
}

// bigKeySet is a ConfigMap of n keys that start with a digit (dropped by
// kubelets up to 1.29) and contain a dot (not POSIX), each keyLen long.
func bigKeySet(n, keyLen int) map[string]string {
	data := make(map[string]string, n)
	for i := range n {
		k := fmt.Sprintf("%d.key", i)
		if len(k) < keyLen {
			k += strings.Repeat("k", keyLen-len(k))
		}
		data[k] = ""
	}
	return data
}

func envFromPod(refs int, prefix func(i int) string) *Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a"}}
	c := corev1.Container{Name: "app", Image: "nginx"}
	for i := range refs {
		c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{Prefix: prefix(i), ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "big"}}})
	}
	p.Spec.Containers = []corev1.Container{c}
	return NewPod(p)
}

func TestEnvFromKeysBudgets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refs    int
		keys    int
		keyLen  int
		prefix  func(int) string
		kubelet string
		want    string
	}{
		{"denies 2,000 references to 5,000 dropped keys with 10 findings of 10 keys each", 2000, 5000, 0, func(int) string { return "" }, "1.29",
			`and 4,990 more would be skipped`},
		{"denies 2,000 distinct prefixes that start with a digit", 2000, 5000, 0, func(i int) string { return fmt.Sprintf("%d_", i) }, "1.29",
			`(with prefix "0_")`},
		{"warns of 2,000 references to 5,000 non-POSIX keys on 1.30", 2000, 5000, 0, func(int) string { return "" }, "1.30",
			`and 4,990 more are not POSIX`},
		{"cuts 10 KB key names to 128 bytes", 50, 20, 10000, func(int) string { return "" }, "1.29",
			`…(10,000 bytes in all)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "team-a"}, Data: bigKeySet(tc.keys, tc.keyLen)}
			w := NewSnapshot()
			w.AddConfigMap(cm)
			w.Versions = Cluster{KubeletVersion: kubelet(tc.kubelet)}
			res, err := NewEngine(defaultSettings()).Validate(envFromPod(tc.refs, tc.prefix), w)
			if err != nil {
				t.Fatal(err)
			}
			checkBudget(t, res)
			findings := append(slices.Clone(res.Violations), res.Warnings...)
			if len(findings) != MaxFindingsPerPolicy+1 {
				t.Fatalf("%d findings, want %d", len(findings), MaxFindingsPerPolicy+1)
			}
			if !strings.Contains(findings[0].Message, tc.want) {
				t.Errorf("first finding %q does not contain %q", findings[0].Message, tc.want)
			}
			if findings[0].Field != "spec.containers[0].envFrom[0]" || findings[10].Field != "spec.containers[0].envFrom[10]" {
				t.Errorf("fields %q, %q: want envFrom[0] first and the summary at envFrom[10]", findings[0].Field, findings[10].Field)
			}
			if want := fmt.Sprintf("and %s more", thousands(tc.refs-MaxFindingsPerPolicy)); !strings.HasPrefix(findings[10].Message, want) {
				t.Errorf("summary %q, want it to start with %q", findings[10].Message, want)
			}
			if size := resultBytes(res); size > 24*1024 {
				t.Errorf("%d bytes of findings, want at most 24 KiB", size)
			}
			// A denial carries every key it is about, where its message
			// lists 10: shared by the findings, not copied for each.
			for i, f := range res.Violations[:min(len(res.Violations), MaxFindingsPerPolicy)] {
				if len(f.Keys) != tc.keys {
					t.Fatalf("violation %d carries %d keys, want all %d", i, len(f.Keys), tc.keys)
				}
				if &f.Keys[0] != &res.Violations[0].Keys[0] && tc.prefix(i) == tc.prefix(0) {
					t.Errorf("violation %d has its own copy of the keys", i)
				}
			}
			// The summary of the 1,990 findings beyond them carries their
			// keys once: they share one list.
			if n := len(res.Violations); n > MaxFindingsPerPolicy && len(res.Violations[n-1].Keys) != tc.keys {
				t.Errorf("the summary carries %d keys, want the %d of the one list its findings share", len(res.Violations[n-1].Keys), tc.keys)
			}
		})
	}
}

// TestEnvPrefixClassesAgreeWithTheKubelet checks envPrefixClass's promise:
// two prefixes of one class give every key the same verdict.
func TestEnvPrefixClassesAgreeWithTheKubelet(t *testing.T) {
	prefixes := []string{"", ".", "..", "..x", ".x", "-", "_", "a", "A_1", "a.b", "a-b", "1", "1a", "$", "a$", "é", "x..", "-.", "_.", ". "}
	keys := []string{"a", "A", "_", "1", "1a", ".", "..", "...", ".a", "..a", "-", "a.b", "a-b", "a$", "é", "a b", "Z9_"}
	type verdict struct{ dropped, posix bool }
	byClass := map[string]map[string]verdict{}
	for _, p := range prefixes {
		class := envPrefixClass(p)
		for _, k := range keys {
			v := verdict{len(validation.IsEnvVarName(p+k)) > 0, posixName.MatchString(p + k)}
			seen, ok := byClass[class]
			if !ok {
				seen = map[string]verdict{}
				byClass[class] = seen
			}
			if prev, ok := seen[k]; ok && prev != v {
				t.Errorf("class %q: prefix %q key %q gives %+v, another prefix of the class gave %+v", class, p, k, v, prev)
			}
			seen[k] = v
		}
	}
}

func TestMountShadowingBudgets(t *testing.T) {
	const containers, mounts, keys = 200, 200, 5000
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a"}}
	p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "big"}}}}}
	for i := range containers {
		c := corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "tomcat"}
		for j := range mounts {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "cfg", MountPath: fmt.Sprintf("/conf/%d.key", j)})
		}
		p.Spec.Containers = append(p.Spec.Containers, c)
	}
	w := NewSnapshot()
	w.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "team-a"}, Data: bigKeySet(keys, 0)})
	res, err := NewEngine(defaultSettings()).Validate(NewPod(p), w)
	if err != nil {
		t.Fatal(err)
	}
	checkBudget(t, res)
	if len(res.Violations) != MaxFindingsPerPolicy+1 {
		t.Fatalf("%d violations, want %d", len(res.Violations), MaxFindingsPerPolicy+1)
	}
	if got, want := res.Violations[10].Message, "and 39,990 more violations"; !strings.HasPrefix(got, want) {
		t.Errorf("summary %q, want %q", got, want)
	}
	if res.Violations[0].Field != "spec.containers[0].volumeMounts[0].mountPath" {
		t.Errorf("first field %q", res.Violations[0].Field)
	}
}

func TestACancelledContextStopsTheEngineWithAnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	engine := NewEngine(defaultSettings())
	pod := annotatedPod(1, map[string]string{LogsAnnotation: commas(100000)})
	res, err := engine.CheckContext(ctx, pod, nativeWorld("v1.33.0", "v1.33.0"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Denied() {
		t.Errorf("a cancelled run decided: %v", res.Violations[:1])
	}
}

// benchmarkShape times one worst shape at two sizes: cost is linear when
// the larger size's ns/op is about 10 times the smaller's (make bench prints
// both; a quadratic cost shows as 100 times).
func benchmarkShape(b *testing.B, run func(n int) *Result, sizes ...int) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				run(n)
			}
		})
	}
}

func BenchmarkLogsAnnotationCommas(b *testing.B) {
	engine := NewEngine(defaultSettings())
	world := nativeWorld("v1.33.0", "v1.33.0")
	benchmarkShape(b, func(n int) *Result {
		res, _ := engine.Mutate(annotatedPod(1, map[string]string{LogsAnnotation: commas(n)}), world)
		return res
	}, 5000, 50000)
}

func BenchmarkLogsAnnotationEntries(b *testing.B) {
	engine := NewEngine(defaultSettings())
	world := nativeWorld("v1.33.0", "v1.33.0")
	benchmarkShape(b, func(n int) *Result {
		res, _ := engine.Mutate(annotatedPod(n/100+1, map[string]string{LogsAnnotation: strings.Repeat("nope=/x,", n)}), world)
		return res
	}, 5000, 50000)
}

func BenchmarkEnvFromReferences(b *testing.B) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "team-a"}, Data: bigKeySet(5000, 0)}
	w := NewSnapshot()
	w.AddConfigMap(cm)
	engine := NewEngine(defaultSettings())
	benchmarkShape(b, func(n int) *Result {
		res, _ := engine.Validate(envFromPod(n, func(i int) string { return fmt.Sprintf("P%d_", i) }), w)
		return res
	}, 200, 2000)
}

func TestQuoteBoundsWhatItWritesNotWhatItReads(t *testing.T) {
	for _, s := range []string{strings.Repeat("\xff", 200), strings.Repeat("\x00", 200), strings.Repeat("é", 200), strings.Repeat("x", 200)} {
		q := quote(s)
		inner, _, _ := strings.Cut(q[1:], `"…(`)
		if len(inner) > MaxQuoted || !strings.HasSuffix(q, "(200 bytes in all)") && !strings.HasSuffix(q, "(400 bytes in all)") {
			t.Errorf("quote(%.10q...) = %s: %d bytes quoted, want at most %d and the length", s, q, len(inner), MaxQuoted)
		}
	}
	if got := quote(`a"b`); got != `"a\"b"` {
		t.Errorf("quote of a short string = %s", got)
	}
}
