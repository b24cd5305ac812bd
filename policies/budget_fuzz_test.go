package policies

import (
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxFindingBytes bounds what one policy may say about one pod: its
// listed findings, its summary of the rest, and their field paths.
const maxFindingBytes = (MaxFindingsPerPolicy + 1) * (MaxMessageBytes + 512)

// checkBudget fails when a result breaks the budgets: too many findings of
// a policy, a message over MaxMessageBytes, invalid UTF-8 (kube-apiserver
// drops a warning that is not UTF-8), or more bytes than maxFindingBytes
// per policy.
func checkBudget(t testing.TB, res *Result) {
	t.Helper()
	for _, list := range [][]Finding{res.Violations, res.Warnings} {
		count, size := map[string]int{}, map[string]int{}
		for _, f := range list {
			count[f.Policy]++
			size[f.Policy] += len(f.Field) + len(f.Message)
			if len(f.Message) > MaxMessageBytes {
				t.Fatalf("[%s] message of %d bytes, over %d", f.Policy, len(f.Message), MaxMessageBytes)
			}
			if _, beyond := isNotListed(f); beyond {
				t.Fatalf("[%s] a finding beyond the budget was listed", f.Policy)
			}
			if !utf8.ValidString(f.Message) {
				t.Fatalf("[%s] message is not UTF-8: %q", f.Policy, f.Message)
			}
		}
		for p, n := range count {
			if n > MaxFindingsPerPolicy+1 {
				t.Fatalf("[%s] %d findings, over %d and a summary", p, n, MaxFindingsPerPolicy)
			}
			if size[p] > maxFindingBytes {
				t.Fatalf("[%s] %d bytes of findings, over %d", p, size[p], maxFindingBytes)
			}
		}
	}
}

// annotatedPod is a pod with n containers (c0, c1, ...) and the annotations.
func annotatedPod(containers int, annotations map[string]string) *Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a", Annotations: annotations}}
	for i := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + itoa(i), Image: "tomcat:10"})
	}
	return NewPod(p)
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// FuzzLogsAnnotation runs the whole engine over a pod whose
// podguard.io/logs annotation is the input: it must not panic, must stay
// within the finding budgets, and must never add more than MaxLogEntries
// sidecars; a pod it mutates must come out the same when mutated again.
func FuzzLogsAnnotation(f *testing.F) {
	for _, seed := range []string{
		"/usr/local/tomcat/logs",
		"web=/var/log/app,worker=/var/log/jobs",
		",,,,",
		"", " ", "=", "c0=", "=/x", "c0=/a,c0=/a,c0=/b",
		"relative/path", "/a:b", "/", "c9=/x", "c0=/x/../..",
		strings.Repeat(",", 2000),
		strings.Repeat("c0=/l,", 100),
		"\x00\x01\n/\u2028,\xff",
	} {
		f.Add(seed, uint8(1))
		f.Add(seed, uint8(3))
	}
	engine := NewEngine(defaultSettings())
	world := nativeWorld("v1.33.0", "v1.33.0")
	f.Fuzz(func(t *testing.T, raw string, containers uint8) {
		pod := annotatedPod(int(containers%8), map[string]string{LogsAnnotation: raw})
		res, err := engine.Mutate(pod, world)
		if err != nil {
			t.Fatal(err)
		}
		checkBudget(t, res)
		if res.Denied() {
			return
		}
		if n := len(res.Pod.Spec.InitContainers); n > MaxLogEntries {
			t.Fatalf("%d sidecars, over %d", n, MaxLogEntries)
		}
		again, err := engine.Mutate(res.Pod, world)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Mutated) > 0 {
			t.Fatalf("mutating the mutated pod changed it again (%v)", again.Mutated)
		}
	})
}

// FuzzSkipAnnotation runs the whole engine over a pod whose
// podguard.io/skip annotation is the input: no panic, and findings within
// the budgets.
func FuzzSkipAnnotation(f *testing.F) {
	for _, seed := range []string{
		"all", "envfrom-keys,image-pull-secrets", "", ",", " all ", "nope",
		strings.Repeat("x,", 1000), strings.Repeat("a", 5000), "log-sidecar,,\x00,\xff",
	} {
		f.Add(seed)
	}
	engine := NewEngine(defaultSettings())
	world := nativeWorld("v1.33.0", "v1.33.0")
	f.Fuzz(func(t *testing.T, raw string) {
		pod := annotatedPod(1, map[string]string{SkipAnnotation: raw, LogsAnnotation: "/logs"})
		res, err := engine.Check(pod, world)
		if err != nil {
			t.Fatal(err)
		}
		checkBudget(t, res)
	})
}
