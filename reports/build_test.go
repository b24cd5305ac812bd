package reports

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wgv1alpha2 "github.com/podguard/podguard/reports/wgpolicy/v1alpha2"
)

var (
	t0  = time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	t1  = t0.Add(time.Hour)
	t2  = t1.Add(time.Hour)
	api = []string{APIOpenReports, APIWGPolicy}
)

func deployment(name string) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: name, UID: types.UID("uid-" + name)}
}

// sampleEntries are a namespace's verdicts: a Deployment that fails both
// validating policies, one that passes, and a bare Pod.
func sampleEntries() []Entry {
	return []Entry{
		{Resource: deployment("web"), Results: []Result{
			{Policy: "mount-shadowing", Status: StatusFail, Field: "spec.template.spec.containers[0].volumeMounts[0].mountPath", Message: `ConfigMap "tomcat-server-config" mounted over /usr/local/tomcat/conf hides the image's files`, Mode: "audit"},
			{Policy: "envfrom-keys", Status: StatusFail, Field: "spec.template.spec.containers[0].envFrom[0]", Message: `ConfigMap "app-config" key "1st.key" would be skipped`, Mode: "enforce"},
		}},
		{Resource: deployment("api"), Results: []Result{PassResult("mount-shadowing"), PassResult("envfrom-keys")}},
		{Resource: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Name: "debug", UID: "uid-debug"}, Results: []Result{
			{Policy: "envfrom-keys", Status: StatusWarn, Field: "spec.containers[0].envFrom[0]", Message: "key app-name is not a POSIX name"},
		}},
		{Resource: deployment("idle")}, // no results: no trace in the report
	}
}

func marshal(t *testing.T, objs []client.Object) string {
	t.Helper()
	b, err := json.MarshalIndent(objs, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBuildIsDeterministic(t *testing.T) {
	for _, a := range api {
		t.Run(a, func(t *testing.T) {
			want, err := Build(a, "shop", sampleEntries(), t0)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			for range 20 {
				entries := sampleEntries()
				r.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
				for _, e := range entries {
					r.Shuffle(len(e.Results), func(i, j int) { e.Results[i], e.Results[j] = e.Results[j], e.Results[i] })
				}
				// An exact duplicate changes nothing.
				entries[0].Results = append(entries[0].Results, entries[0].Results...)
				got, err := Build(a, "shop", entries, t0)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(marshal(t, want), marshal(t, got)); diff != "" {
					t.Fatalf("another order of the same entries gives another report (-first +now):\n%s", diff)
				}
			}
		})
	}
}

func TestBuildContent(t *testing.T) {
	objs, err := Build(APIOpenReports, "shop", sampleEntries(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	r := objs[0].(*orv1alpha1.Report)
	if r.Name != "podguard" || r.Namespace != "shop" || r.Labels[ManagedByLabel] != "podguard" || r.Source != "podguard" {
		t.Errorf("metadata and source: %s/%s labels %v source %q", r.Namespace, r.Name, r.Labels, r.Source)
	}
	if r.APIVersion != "openreports.io/v1alpha1" || r.Kind != "Report" {
		t.Errorf("type %s %s", r.APIVersion, r.Kind)
	}
	if want := (orv1alpha1.ReportSummary{Pass: 2, Fail: 2, Warn: 1}); r.Summary != want {
		t.Errorf("summary %+v, want %+v", r.Summary, want)
	}
	var order []string
	for _, res := range r.Results {
		order = append(order, fmt.Sprintf("%s/%s %s %s", res.Subjects[0].Kind, res.Subjects[0].Name, res.Policy, res.Result))
	}
	wantOrder := []string{
		"Deployment/api envfrom-keys pass",
		"Deployment/api mount-shadowing pass",
		"Deployment/web envfrom-keys fail",
		"Deployment/web mount-shadowing fail",
		"Pod/debug envfrom-keys warn",
	}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("results out of order (-want +got):\n%s", diff)
	}
	fail := r.Results[2]
	if fail.Rule != "envfrom-keys" || fail.Severity != "high" || fail.Source != "podguard" || !fail.Scored ||
		fail.Timestamp.Seconds != t0.Unix() || fail.Description != `ConfigMap "app-config" key "1st.key" would be skipped` {
		t.Errorf("fail result: %+v", fail)
	}
	if fail.Properties[PropertyField] != "spec.template.spec.containers[0].envFrom[0]" || fail.Properties[PropertyMode] != "enforce" || len(fail.Properties[PropertyResultID]) != 24 {
		t.Errorf("fail properties: %v", fail.Properties)
	}
	if want := deployment("web"); fail.Subjects[0] != want {
		t.Errorf("resource %+v, want %+v", fail.Subjects[0], want)
	}
	if pod := r.Results[4]; pod.Subjects[0].Namespace != "shop" || pod.Scored {
		t.Errorf("a bare Pod's namespace is filled in and a warn is not scored: %+v", pod)
	}
	if pass := r.Results[0]; pass.Properties[PropertyMode] != "" || pass.Properties[PropertyField] != "" || pass.Severity != "high" {
		t.Errorf("pass result: %+v", pass)
	}
	// Two findings that differ only by field are two results, with two IDs.
	a, b := r.Results[2].Properties[PropertyResultID], r.Results[3].Properties[PropertyResultID]
	if a == b {
		t.Errorf("two results share the ID %s", a)
	}

	wg, err := Build(APIWGPolicy, "shop", sampleEntries(), t0)
	if err != nil {
		t.Fatal(err)
	}
	p := wg[0].(*wgv1alpha2.PolicyReport)
	if p.APIVersion != "wgpolicyk8s.io/v1alpha2" || p.Kind != "PolicyReport" || p.Name != "podguard" || len(p.Results) != 5 ||
		p.Summary != (wgv1alpha2.PolicyReportSummary{Pass: 2, Fail: 2, Warn: 1}) || p.Results[2].Message != fail.Description {
		t.Errorf("wgpolicyk8s report: %+v", p)
	}
}

func TestBuildSeverity(t *testing.T) {
	entries := []Entry{{Resource: deployment("web"), Results: []Result{
		{Policy: "log-sidecar", Status: StatusFail, Message: "bad annotation", Mode: "enforce"},
		{Policy: "mount-shadowing", Status: StatusFail, Severity: SeverityCritical, Message: "x", Mode: "warn"},
	}}}
	objs, err := Build(APIOpenReports, "shop", entries, t0)
	if err != nil {
		t.Fatal(err)
	}
	r := objs[0].(*orv1alpha1.Report)
	if r.Results[0].Severity != SeverityMedium || r.Results[1].Severity != SeverityCritical {
		t.Errorf("severities %q %q, want medium (a mutating policy's denial) and critical (as the caller set it)", r.Results[0].Severity, r.Results[1].Severity)
	}
}

func TestBuildNothing(t *testing.T) {
	for _, entries := range [][]Entry{nil, {{Resource: deployment("idle")}}} {
		objs, err := Build(APIOpenReports, "shop", entries, t0)
		if err != nil || len(objs) != 0 {
			t.Errorf("Build(%v) = %d objects, %v; want none", entries, len(objs), err)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	ok := Result{Policy: "envfrom-keys", Status: StatusFail, Message: "m"}
	tests := []struct {
		name      string
		api, ns   string
		entry     Entry
		wantError string
	}{
		{"an unknown API", "wgpolicyk8s.io/v1beta1", "shop", Entry{deployment("web"), []Result{ok}}, `unknown report API "wgpolicyk8s.io/v1beta1"`},
		{"no namespace", APIOpenReports, "", Entry{deployment("web"), []Result{ok}}, "no namespace"},
		{"an object of another namespace", APIOpenReports, "other", Entry{deployment("web"), []Result{ok}}, "Deployment shop/web is not in namespace other"},
		{"an object without a name", APIOpenReports, "shop", Entry{corev1.ObjectReference{Kind: "Pod"}, []Result{ok}}, "kind and name are required"},
		{"a status no API knows", APIOpenReports, "shop", Entry{deployment("web"), []Result{{Policy: "envfrom-keys", Status: "failed"}}}, `status "failed" is not one of`},
		{"a severity no API knows", APIOpenReports, "shop", Entry{deployment("web"), []Result{{Policy: "envfrom-keys", Status: StatusFail, Severity: "urgent"}}}, `severity "urgent" is not one of`},
		{"no policy", APIOpenReports, "shop", Entry{deployment("web"), []Result{{Status: StatusFail}}}, "no policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.api, tt.ns, []Entry{tt.entry}, t0)
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("error %v, want one containing %q", err, tt.wantError)
			}
		})
	}
}

func TestBuildCutsMessages(t *testing.T) {
	long := strings.Repeat("é", MaxMessageBytes) // 2 bytes a rune
	entries := []Entry{{Resource: deployment("web"), Results: []Result{
		{Policy: "envfrom-keys", Status: StatusFail, Message: long, Field: "spec.x"},
		{Policy: "mount-shadowing", Status: StatusFail, Message: "bad \xff byte", Field: "spec.y"},
	}}}
	objs, err := Build(APIOpenReports, "shop", entries, t0)
	if err != nil {
		t.Fatal(err)
	}
	r := objs[0].(*orv1alpha1.Report)
	if m := r.Results[0].Description; len(m) > MaxMessageBytes || !utf8.ValidString(m) || !strings.HasSuffix(m, "…(truncated)") {
		t.Errorf("a long message is kept at %d bytes (valid UTF-8 %v): ...%q", len(m), utf8.ValidString(m), m[len(m)-20:])
	}
	if m := r.Results[1].Description; m != "bad \uFFFD byte" {
		t.Errorf("invalid UTF-8 kept as %q", m)
	}
}

// manyEntries are n Deployments with perEntry fail results each, whose
// messages are msgLen bytes long.
func manyEntries(n, perEntry, msgLen int) []Entry {
	entries := make([]Entry, n)
	for i := range entries {
		e := Entry{Resource: deployment(fmt.Sprintf("app-%05d", i))}
		for j := range perEntry {
			msg := fmt.Sprintf("finding %d of app %d ", j, i)
			msg += strings.Repeat("x", max(0, msgLen-len(msg)))
			e.Results = append(e.Results, Result{Policy: "envfrom-keys", Status: StatusFail, Field: fmt.Sprintf("spec.template.spec.containers[%d].envFrom[0]", j), Message: msg, Mode: "audit"})
		}
		entries[i] = e
	}
	return entries
}

func TestBuildChunks(t *testing.T) {
	// wantObjects is exact where one report holds all, or where an entry
	// alone overflows one (packed in order); hashed, it is a least: a power
	// of two of buckets, some possibly empty.
	tests := []struct {
		name                  string
		entries               []Entry
		wantObjects           int
		exact                 bool
		wantResultsInFirst    int
		wantResultsInAllCount int
	}{
		{"few results fit one report", manyEntries(999, 1, 50), 1, true, 999, 999},
		{"1000 results fit one report", manyEntries(1000, 1, 50), 1, true, 1000, 1000},
		{"by count: 2,500 small results", manyEntries(2500, 1, 50), 3, false, 0, 2500},
		{"an entry's results stay together", manyEntries(999, 3, 50), 3, false, 0, 2997},
		// About 2,470 bytes a result: 145 entries of 2 fit in 700 KiB,
		// so 600 entries need at least 5 reports.
		{"by size: 1,200 results of 2 KiB messages", manyEntries(600, 2, MaxMessageBytes), 5, false, 0, 1200},
		{"one entry alone over the limit is split", manyEntries(1, 2500, 10), 3, true, 1000, 2500},
	}
	for _, tt := range tests {
		for _, a := range api {
			t.Run(tt.name+"/"+a, func(t *testing.T) {
				objs, err := Build(a, "shop", tt.entries, t0)
				if err != nil {
					t.Fatal(err)
				}
				if len(objs) != tt.wantObjects && (tt.exact || len(objs) < tt.wantObjects) {
					t.Fatalf("%d objects, want %d (exact: %v)", len(objs), tt.wantObjects, tt.exact)
				}
				total := 0
				seen := map[string]string{} // object name by entry
				names := map[string]bool{}
				for i, obj := range objs {
					if !reportName.MatchString(obj.GetName()) || names[obj.GetName()] || (i == 0) != (obj.GetName() == "podguard") {
						t.Errorf("object %d is named %s", i, obj.GetName())
					}
					names[obj.GetName()] = true
					b, err := json.Marshal(obj)
					if err != nil {
						t.Fatal(err)
					}
					if len(b) > MaxResultBytesPerReport+16<<10 {
						t.Errorf("%s is %d bytes of JSON, over the bound", obj.GetName(), len(b))
					}
					items := itemsOf(obj)
					if len(items) > MaxResultsPerReport {
						t.Errorf("%s has %d results", obj.GetName(), len(items))
					}
					if i == 0 && tt.wantResultsInFirst != 0 && len(items) != tt.wantResultsInFirst {
						t.Errorf("%s has %d results, want %d", obj.GetName(), len(items), tt.wantResultsInFirst)
					}
					fails := 0
					for _, it := range items {
						if it.Result == string(StatusFail) {
							fails++
						}
						if len(tt.entries) > 1 {
							if prev, ok := seen[it.Resources[0].Name]; ok && prev != obj.GetName() {
								t.Errorf("%s's results are in %s and %s", it.Resources[0].Name, prev, obj.GetName())
							}
							seen[it.Resources[0].Name] = obj.GetName()
						}
					}
					if got := summaryOf(obj).Fail; got != fails {
						t.Errorf("%s: summary says %d fail, the results %d", obj.GetName(), got, fails)
					}
					total += len(items)
				}
				if total != tt.wantResultsInAllCount {
					t.Errorf("%d results in all, want %d", total, tt.wantResultsInAllCount)
				}
			})
		}
	}
}

// reportName is podguard's report names: podguard, podguard-2, ...
var reportName = regexp.MustCompile(`^podguard(-([2-9]|[1-9][0-9]+))?$`)

// TestBuildChunksStably: a namespace over one report's worth of results
// changes, under churn, one report at a time: an entry that comes, goes or
// changes rewrites its own report, not every report after it in order.
func TestBuildChunksStably(t *testing.T) {
	base := manyEntries(2500, 1, 50)
	before, err := Build(APIOpenReports, "shop", base, t0)
	if err != nil {
		t.Fatal(err)
	}
	byName := func(objs []client.Object) map[string]string {
		out := map[string]string{}
		for _, o := range objs {
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			out[o.GetName()] = string(b)
		}
		return out
	}
	was := byName(before)
	for _, change := range []struct {
		what    string
		entries []Entry
	}{
		{"an entry that sorts first is added", append([]Entry{{Resource: deployment("aaa-new"), Results: []Result{{Policy: "envfrom-keys", Status: StatusPass}}}}, base...)},
		{"the first entry goes", base[1:]},
		{"an entry's result changes", func() []Entry {
			e := slices.Clone(base)
			e[3] = Entry{Resource: e[3].Resource, Results: []Result{{Policy: "envfrom-keys", Status: StatusPass}}}
			return e
		}()},
	} {
		after, err := Build(APIOpenReports, "shop", change.entries, t0)
		if err != nil {
			t.Fatal(err)
		}
		is := byName(after)
		changed := 0
		for name, content := range is {
			if was[name] != content {
				changed++
			}
		}
		for name := range was {
			if _, ok := is[name]; !ok {
				changed++
			}
		}
		if changed != 1 {
			t.Errorf("%s: %d of %d reports changed, want 1", change.what, changed, len(is))
		}
	}
}

func summaryOf(obj client.Object) summary {
	switch r := obj.(type) {
	case *orv1alpha1.Report:
		return summary(r.Summary)
	case *wgv1alpha2.PolicyReport:
		return summary(r.Summary)
	}
	return summary{}
}
