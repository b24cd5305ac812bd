package reports

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	wgv1alpha2 "github.com/podguard/podguard/reports/wgpolicy/v1alpha2"
)

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newWriter(c client.Client, a string, now time.Time) *Writer {
	w := NewWriter(c, a, logr.Discard())
	w.now = func() time.Time { return now }
	return w
}

// stored is what a namespace's podguard reports hold: by name, the
// resourceVersion and the results.
type stored struct {
	rv      string
	labels  map[string]string
	items   []item
	summary summary
}

func read(t *testing.T, c client.Client, a, ns string) map[string]stored {
	t.Helper()
	objs, err := (&Writer{c: c, api: a}).list(context.Background(), client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]stored{}
	for _, obj := range objs {
		out[obj.GetName()] = stored{obj.GetResourceVersion(), obj.GetLabels(), itemsOf(obj), summaryOf(obj)}
	}
	return out
}

func names(m map[string]stored) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestSync(t *testing.T) {
	for _, a := range api {
		t.Run(a, func(t *testing.T) {
			ctx := context.Background()
			c := fake.NewClientBuilder().WithScheme(newScheme(t)).Build()

			// Create.
			if err := newWriter(c, a, t0).Sync(ctx, "shop", sampleEntries()); err != nil {
				t.Fatal(err)
			}
			first := read(t, c, a, "shop")
			if got := names(first); !slices.Equal(got, []string{"podguard"}) {
				t.Fatalf("reports %v, want [podguard]", got)
			}
			if s := first["podguard"].summary; s != (summary{Pass: 2, Fail: 2, Warn: 1}) {
				t.Errorf("summary %+v", s)
			}

			// The same audit an hour later, by a new Writer (a restarted
			// podguard): nothing is written.
			if err := newWriter(c, a, t1).Sync(ctx, "shop", sampleEntries()); err != nil {
				t.Fatal(err)
			}
			again := read(t, c, a, "shop")
			if again["podguard"].rv != first["podguard"].rv {
				t.Errorf("an unchanged audit updated the report: resourceVersion %s, then %s", first["podguard"].rv, again["podguard"].rv)
			}

			// One result changes: an update, where only that result gets a
			// new timestamp.
			entries := sampleEntries()
			entries[0].Results[1].Message = "another message"
			if err := newWriter(c, a, t2).Sync(ctx, "shop", entries); err != nil {
				t.Fatal(err)
			}
			changed := read(t, c, a, "shop")
			if changed["podguard"].rv == first["podguard"].rv {
				t.Fatal("a changed result did not update the report")
			}
			for _, it := range changed["podguard"].items {
				want := t0.Unix()
				if it.Message == "another message" {
					want = t2.Unix()
				}
				if it.Timestamp.Seconds != want {
					t.Errorf("%s %s on %s: timestamp %s, want %s", it.Policy, it.Result, it.Resources[0].Name,
						time.Unix(it.Timestamp.Seconds, 0).UTC(), time.Unix(want, 0).UTC())
				}
			}

			// Grow to three reports, then shrink back to one: the extra
			// chunks go.
			if err := newWriter(c, a, t2).Sync(ctx, "shop", manyEntries(2500, 1, 20)); err != nil {
				t.Fatal(err)
			}
			if got, want := names(read(t, c, a, "shop")), buildNames(t, a, manyEntries(2500, 1, 20)); !slices.Equal(got, want) || len(got) < 3 {
				t.Errorf("reports %v after growing, want Build's %v", got, want)
			}
			if err := newWriter(c, a, t2).Sync(ctx, "shop", sampleEntries()); err != nil {
				t.Fatal(err)
			}
			if got := names(read(t, c, a, "shop")); !slices.Equal(got, []string{"podguard"}) {
				t.Errorf("reports %v after shrinking", got)
			}

			// No entries: no reports.
			if err := newWriter(c, a, t2).Sync(ctx, "shop", nil); err != nil {
				t.Fatal(err)
			}
			if got := read(t, c, a, "shop"); len(got) != 0 {
				t.Errorf("reports %v left after an empty audit", names(got))
			}
		})
	}
}

func TestSyncKeepsOthersLabelsAndObjects(t *testing.T) {
	ctx := context.Background()
	foreign := &orv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "kyverno-web"}, Source: "kyverno"}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(foreign).Build()
	w := newWriter(c, APIOpenReports, t0)
	if err := w.Sync(ctx, "shop", sampleEntries()); err != nil {
		t.Fatal(err)
	}
	var r orv1alpha1.Report
	if err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "podguard"}, &r); err != nil {
		t.Fatal(err)
	}
	r.Labels["team"] = "shop"
	if err := c.Update(ctx, &r); err != nil {
		t.Fatal(err)
	}
	entries := sampleEntries()
	entries[0].Results = entries[0].Results[:1]
	if err := w.Sync(ctx, "shop", entries); err != nil {
		t.Fatal(err)
	}
	got := read(t, c, APIOpenReports, "shop")["podguard"]
	if got.labels["team"] != "shop" || len(got.items) != 4 {
		t.Errorf("after an update: labels %v, %d results", got.labels, len(got.items))
	}
	if err := w.Sync(ctx, "shop", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(foreign), &orv1alpha1.Report{}); err != nil {
		t.Errorf("another tool's report in the namespace: %v", err)
	}
}

func TestSyncWillNotOverwriteAForeignReport(t *testing.T) {
	ctx := context.Background()
	foreign := &orv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podguard"}, Source: "someone"}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(foreign).Build()
	err := newWriter(c, APIOpenReports, t0).Sync(ctx, "shop", sampleEntries())
	if err == nil || !strings.Contains(err.Error(), "it is not podguard's") {
		t.Errorf("error %v, want one saying the report is not podguard's", err)
	}
	var r orv1alpha1.Report
	if err := c.Get(ctx, client.ObjectKeyFromObject(foreign), &r); err != nil || r.Source != "someone" || len(r.Results) != 0 {
		t.Errorf("the foreign report was changed: %+v, %v", r, err)
	}
}

// TestTwoWriters: two podguards that sync one namespace at once, each from
// a list taken before the other wrote, end with one set of reports.
func TestTwoWriters(t *testing.T) {
	for _, a := range api {
		t.Run(a, func(t *testing.T) {
			ctx := context.Background()
			// The first list of each writer sees an empty namespace, as
			// when both list before either creates.
			stale := 2
			c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
				List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if stale > 0 {
						stale--
						return nil
					}
					return cl.List(ctx, list, opts...)
				},
			}).Build()
			one, two := newWriter(c, a, t0), newWriter(c, a, t1)
			if err := one.Sync(ctx, "shop", manyEntries(1500, 1, 10)); err != nil {
				t.Fatal(err)
			}
			if err := two.Sync(ctx, "shop", manyEntries(1500, 1, 10)); err != nil {
				t.Fatal(err)
			}
			got := read(t, c, a, "shop")
			if n, want := names(got), buildNames(t, a, manyEntries(1500, 1, 10)); !slices.Equal(n, want) || len(n) < 2 {
				t.Errorf("reports %v, want Build's %v", n, want)
			}
			results := 0
			for _, s := range got {
				results += len(s.items)
			}
			if results != 1500 {
				t.Errorf("%d results, want 1500", results)
			}
		})
	}
}

func TestSyncAPINotServed(t *testing.T) {
	noMatch := func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "openreports.io", Kind: "Report"}, SearchedVersions: []string{"v1alpha1"}}
	}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithInterceptorFuncs(interceptor.Funcs{List: noMatch}).Build()
	w := newWriter(c, APIOpenReports, t0)
	if err := w.Sync(context.Background(), "shop", sampleEntries()); !errors.Is(err, ErrAPINotServed) {
		t.Errorf("Sync: %v, want ErrAPINotServed", err)
	}
	if _, _, err := w.Load(context.Background()); !errors.Is(err, ErrAPINotServed) {
		t.Errorf("Load: %v, want ErrAPINotServed", err)
	}
	other := errors.New("connection refused")
	c = fake.NewClientBuilder().WithScheme(newScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error { return other },
	}).Build()
	if err := newWriter(c, APIOpenReports, t0).Sync(context.Background(), "shop", nil); errors.Is(err, ErrAPINotServed) || !errors.Is(err, other) {
		t.Errorf("Sync: %v, want the error as it is", err)
	}
	if err := NewWriter(c, "none", logr.Discard()).Sync(context.Background(), "shop", nil); err == nil {
		t.Error("a Writer of no API syncs")
	}
}

// paged makes List answer a page of at most Limit items at a time, as the
// API server does (the fake client ignores Limit).
func paged(pages *int) interceptor.Funcs {
	return interceptor.Funcs{
		List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := cl.List(ctx, list, opts...); err != nil {
				return err
			}
			lo := (&client.ListOptions{}).ApplyOptions(opts)
			if lo.Limit == 0 {
				return nil
			}
			*pages++
			start := 0
			if lo.Continue != "" {
				start, _ = strconv.Atoi(lo.Continue)
			}
			items, err := meta.ExtractList(list)
			if err != nil {
				return err
			}
			end := min(start+int(lo.Limit), len(items))
			if err := meta.SetList(list, items[start:end]); err != nil {
				return err
			}
			if end < len(items) {
				list.SetContinue(strconv.Itoa(end))
			}
			return nil
		},
	}
}

func TestLoad(t *testing.T) {
	for _, a := range api {
		t.Run(a, func(t *testing.T) {
			ctx := context.Background()
			pages := 0
			c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithInterceptorFuncs(paged(&pages)).Build()
			w := newWriter(c, a, t0)
			if err := w.Sync(ctx, "shop", sampleEntries()); err != nil {
				t.Fatal(err)
			}
			// Enough namespaces for two pages.
			for i := range listPageSize {
				ns := "team-" + strconv.Itoa(i)
				e := []Entry{{Resource: deployment("web"), Results: []Result{PassResult("envfrom-keys")}}}
				e[0].Resource.Namespace, e[0].Resource.UID = ns, types.UID("uid-web-"+strconv.Itoa(i))
				if i == 7 {
					e[0].Results = append(e[0].Results, Result{Policy: "mount-shadowing", Status: StatusFail, Field: "f", Message: "m", Mode: "warn"})
				}
				if err := w.Sync(ctx, ns, e); err != nil {
					t.Fatal(err)
				}
			}
			// Another tool's report, and a report podguard did not label,
			// are not podguard's.
			var other client.Object = &orv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "x"}, Results: []orv1alpha1.ReportResult{{Policy: "p", Result: "fail", Subjects: deploymentRefs("x")}}}
			if a == APIWGPolicy {
				other = &wgv1alpha2.PolicyReport{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "x"}, Results: []wgv1alpha2.PolicyReportResult{{Policy: "p", Result: "fail", Resources: deploymentRefs("x")}}}
			}
			if err := c.Create(ctx, other); err != nil {
				t.Fatal(err)
			}
			pages = 0
			failing, namespaces, err := newWriter(c, a, t1).Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[types.UID][]string{"uid-web": {"envfrom-keys", "mount-shadowing"}, "uid-web-7": {"mount-shadowing"}}
			failed := 0
			for _, ps := range failing {
				if len(ps) > 0 {
					failed++
				}
			}
			if failed != len(want) || !slices.Equal(failing["uid-web"], want["uid-web"]) || !slices.Equal(failing["uid-web-7"], want["uid-web-7"]) {
				t.Errorf("failing %v, want %v", failing, want)
			}
			// An object that only passed is known, with no policy failing:
			// a turn to fail after a restart is told from a new object.
			if ps, known := failing["uid-api"]; !known || ps == nil || len(ps) != 0 {
				t.Errorf("a passing object: %v (known %v), want an empty list", ps, known)
			}
			if _, known := failing["uid-x"]; known {
				t.Error("a report podguard did not write was read")
			}
			if len(namespaces) != listPageSize+1 || !slices.Contains(namespaces, "shop") || slices.Contains(namespaces, "elsewhere") {
				t.Errorf("%d namespaces (%v...), want %d with shop and without elsewhere", len(namespaces), namespaces[:3], listPageSize+1)
			}
			if !slices.IsSorted(namespaces) {
				t.Error("namespaces are not sorted")
			}
			if pages != 2 {
				t.Errorf("Load read %d pages, want 2", pages)
			}
		})
	}
}

func deploymentRefs(name string) []corev1.ObjectReference {
	return []corev1.ObjectReference{deployment(name)}
}

func TestNotServed(t *testing.T) {
	gr := schema.GroupResource{Group: "openreports.io", Resource: "reports"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no kind match", &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "openreports.io", Kind: "Report"}}, true},
		{"a 404 for the resource", apierrors.NewGenericServerResponse(404, "list", gr, "", "", 0, false), true},
		{"an object not found", apierrors.NewNotFound(gr, "podguard"), false},
		{"a namespace not found", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "shop"), false},
		{"forbidden", apierrors.NewForbidden(gr, "", errors.New("no")), false},
	}
	for _, tt := range tests {
		if got := errors.Is(notServed(tt.err), ErrAPINotServed); got != tt.want {
			t.Errorf("%s: ErrAPINotServed %v, want %v", tt.name, got, tt.want)
		}
	}
}

// buildNames are the names of the reports Build makes of entries, sorted as
// names() sorts them.
func buildNames(t *testing.T, api string, entries []Entry) []string {
	t.Helper()
	objs, err := Build(api, "shop", entries, t0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	slices.Sort(out)
	return out
}
