//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	orclientset "github.com/openreports/reports-api/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/e2e/framework"
	"github.com/podguard/podguard/reports"
	wgv1alpha2 "github.com/podguard/podguard/reports/wgpolicy/v1alpha2"
)

// TestReports writes policy reports into a real API server, in both APIs,
// as podguard's ServiceAccount with only the RBAC of
// deploy/components/policy-reports: the CRDs' schemas take them, an
// unchanged audit writes nothing, a changed one updates, a large one is
// split under etcd's request limit, two writers at once make no
// duplicates, a new Writer (podguard restarted) loads what the last one
// wrote, and the reports read back with the APIs' typed clients.
func TestReports(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	admin := reportsClient(t, cluster.Config)

	// Nothing served yet.
	if api, err := reports.Detect(discoveryFor(t, cluster.Config), "auto"); err != nil || api != "" {
		t.Fatalf("Detect(auto) with no report CRD = %q, %v; want none", api, err)
	}
	ns := newNamespace(t, "reports", nil)
	err := reports.NewWriter(admin, reports.APIOpenReports, logr.Discard()).Sync(ctx, ns, reportEntries(ns, "first"))
	if !errors.Is(err, reports.ErrAPINotServed) {
		t.Fatalf("Sync without the CRD: %v, want ErrAPINotServed", err)
	}

	// The component's openreports.io CRDs and the base's RBAC to write
	// reports; Kyverno's wgpolicyk8s.io CRD, as podguard vendors it.
	deploy := filepath.Join(repoRoot, "deploy")
	var objs []*unstructured.Unstructured
	for _, f := range []string{"components/policy-reports/openreports.io_reports.yaml", "components/policy-reports/openreports.io_clusterreports.yaml", "base/policy-reports-rbac.yaml"} {
		o, err := framework.ReadManifests(filepath.Join(deploy, f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	wgCRDs, err := reports.CRDs(reports.APIWGPolicy)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range wgCRDs {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{Object: u}
		obj.SetGroupVersionKind(crd.GroupVersionKind())
		objs = append(objs, obj)
	}
	wgObjs := objs[len(objs)-len(wgCRDs):]
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := framework.DeleteObjects(ctx, cluster.Client, objs); err != nil {
			t.Errorf("removing the report CRDs and RBAC: %v", err)
		}
	})
	// wgpolicyk8s.io first, as in a cluster with Kyverno.
	if err := framework.ApplyObjects(ctx, cluster.Client, wgObjs); err != nil {
		t.Fatal(err)
	}
	if api, err := reports.Detect(discoveryFor(t, cluster.Config), "auto"); err != nil || api != reports.APIWGPolicy {
		t.Fatalf("Detect(auto) with wgpolicyk8s.io served = %q, %v", api, err)
	}
	if err := framework.ApplyObjects(ctx, cluster.Client, objs); err != nil {
		t.Fatal(err)
	}
	if api, err := reports.Detect(discoveryFor(t, cluster.Config), "auto"); err != nil || api != reports.APIOpenReports {
		t.Fatalf("Detect(auto) with both served = %q, %v", api, err)
	}

	kubeconfig, err := cluster.ServiceAccountKubeconfig("podguard-system", "podguard")
	if err != nil {
		t.Fatal(err)
	}
	saConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}

	for _, api := range []string{reports.APIOpenReports, reports.APIWGPolicy} {
		t.Run(api, func(t *testing.T) {
			testReportsIn(t, ctx, api, saConfig)
		})
	}

	// The CRD goes while a Writer still knows its kind: the API server's
	// 404 is ErrAPINotServed too.
	w := reports.NewWriter(admin, reports.APIOpenReports, logr.Discard())
	if err := w.Sync(ctx, ns, reportEntries(ns, "first")); err != nil {
		t.Fatal(err)
	}
	if err := framework.DeleteObjects(ctx, cluster.Client, objs[:2]); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx, ns, reportEntries(ns, "first")); !errors.Is(err, reports.ErrAPINotServed) {
		t.Errorf("Sync after the CRD was deleted: %v, want ErrAPINotServed", err)
	}
	if _, _, err := w.Load(ctx); !errors.Is(err, reports.ErrAPINotServed) {
		t.Errorf("Load after the CRD was deleted: %v, want ErrAPINotServed", err)
	}
}

func testReportsIn(t *testing.T, ctx context.Context, api string, saConfig *rest.Config) {
	ns := newNamespace(t, "reports", nil)
	other := newNamespace(t, "reports-other", nil)
	c := reportsClient(t, saConfig)

	// Create.
	if err := reports.NewWriter(c, api, logr.Discard()).Sync(ctx, ns, reportEntries(ns, "first")); err != nil {
		t.Fatal(err)
	}
	if err := reports.NewWriter(c, api, logr.Discard()).Sync(ctx, other, reportEntries(other, "first")); err != nil {
		t.Fatal(err)
	}
	first := readBack(t, ctx, api, ns)
	if len(first) != 1 || first[0].name != "podguard" {
		t.Fatalf("reports %v, want one named podguard", first)
	}
	r := first[0]
	if r.summary != [5]int{1, 2, 1, 0, 0} || len(r.results) != 4 || r.labels[reports.ManagedByLabel] != "podguard" {
		t.Fatalf("report as read back: %+v", r)
	}
	fail := r.results[1]
	if fail.policy != "envfrom-keys" || fail.status != "fail" || fail.severity != "high" || fail.source != "podguard" ||
		fail.resource.Name != "web" || fail.resource.UID != "uid-web-"+types.UID(ns) ||
		fail.properties["field"] != "spec.template.spec.containers[0].envFrom[0]" || fail.properties["mode"] != "audit" || fail.message != "first" {
		t.Errorf("fail result as read back: %+v", fail)
	}

	// The same audit again, a second later, by another Writer: no write.
	time.Sleep(1100 * time.Millisecond)
	if err := reports.NewWriter(c, api, logr.Discard()).Sync(ctx, ns, reportEntries(ns, "first")); err != nil {
		t.Fatal(err)
	}
	if again := readBack(t, ctx, api, ns); again[0].resourceVersion != r.resourceVersion {
		t.Errorf("an unchanged audit wrote the report: resourceVersion %s, then %s", r.resourceVersion, again[0].resourceVersion)
	}

	// A changed message: an update, and only that result's timestamp moves.
	if err := reports.NewWriter(c, api, logr.Discard()).Sync(ctx, ns, reportEntries(ns, "second")); err != nil {
		t.Fatal(err)
	}
	changed := readBack(t, ctx, api, ns)[0]
	if changed.resourceVersion == r.resourceVersion {
		t.Fatal("a changed result did not update the report")
	}
	for i, res := range changed.results {
		switch {
		case res.message == "second" && res.timestamp <= r.results[i].timestamp:
			t.Errorf("the changed result %s kept its timestamp %d", res.policy, res.timestamp)
		case res.message != "second" && res.timestamp != r.results[i].timestamp:
			t.Errorf("the unchanged result %d (%s %s) has a new timestamp: %d, was %d", i, res.policy, res.status, res.timestamp, r.results[i].timestamp)
		}
	}

	// A large audit, by two Writers at once: a report per chunk, each
	// accepted by the API server, and no duplicates.
	large := largeEntries(ns, 2400)
	chunks, err := reports.Build(api, ns, large, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var wantNames []string
	for _, c := range chunks {
		wantNames = append(wantNames, c.GetName())
	}
	slices.Sort(wantNames)
	if len(wantNames) < 3 {
		t.Fatalf("the large audit makes %d reports, want more", len(wantNames))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			errs[i] = reports.NewWriter(reportsClient(t, saConfig), api, logr.Discard()).Sync(ctx, ns, large)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got := readBack(t, ctx, api, ns)
	var names []string
	results := 0
	for _, r := range got {
		names = append(names, r.name)
		results += len(r.results)
	}
	if !slices.Equal(names, wantNames) || results != 2400*2 {
		t.Errorf("after a large audit by two writers: reports %v with %d results, want %v with %d", names, results, wantNames, 2400*2)
	}

	// podguard restarts: a new Writer loads what was written.
	failing, namespaces, err := reports.NewWriter(c, api, logr.Discard()).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(namespaces, ns) || !slices.Contains(namespaces, other) {
		t.Errorf("Load's namespaces %v lack %s or %s", namespaces, ns, other)
	}
	if got := failing["uid-web-"+types.UID(other)]; !slices.Equal(got, []string{"envfrom-keys", "mount-shadowing"}) {
		t.Errorf("Load: %s/web fails %v, want envfrom-keys and mount-shadowing", other, got)
	}
	if got := failing["uid-app-01999-"+types.UID(ns)]; !slices.Equal(got, []string{"envfrom-keys"}) {
		t.Errorf("Load: %s/app-01999 fails %v, want envfrom-keys", ns, got)
	}
	if got, known := failing["uid-api-"+types.UID(other)]; !known || len(got) != 0 {
		t.Errorf("Load: %s/api, which passed: %v (known %v), want known with no policy failing", other, got, known)
	}

	// Shrink, then empty.
	if err := reports.NewWriter(c, api, logr.Discard()).Sync(ctx, ns, reportEntries(ns, "first")); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, ctx, api, ns); len(got) != 1 {
		t.Errorf("%d reports after shrinking, want 1", len(got))
	}
	if err := reports.NewWriter(c, api, logr.Discard()).Sync(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, ctx, api, ns); len(got) != 0 {
		t.Errorf("%d reports after an empty audit, want none", len(got))
	}
}

// reportEntries are a namespace's verdicts: web fails both validating
// policies (envfrom-keys with the given message), api passes, and a bare
// Pod warns.
func reportEntries(ns, message string) []reports.Entry {
	ref := func(kind, name string) corev1.ObjectReference {
		apiVersion := "apps/v1"
		if kind == "Pod" {
			apiVersion = "v1"
		}
		return corev1.ObjectReference{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name, UID: types.UID("uid-" + name + "-" + ns)}
	}
	return []reports.Entry{
		{Resource: ref("Deployment", "web"), Results: []reports.Result{
			{Policy: "envfrom-keys", Status: reports.StatusFail, Field: "spec.template.spec.containers[0].envFrom[0]", Message: message, Mode: "audit"},
			{Policy: "mount-shadowing", Status: reports.StatusFail, Field: "spec.template.spec.containers[0].volumeMounts[0].mountPath", Message: "hides /usr/local/tomcat/conf", Mode: "enforce"},
		}},
		{Resource: ref("Deployment", "api"), Results: []reports.Result{reports.PassResult("envfrom-keys")}},
		{Resource: ref("Pod", "debug"), Results: []reports.Result{{Policy: "envfrom-keys", Status: reports.StatusWarn, Field: "spec.containers[0].envFrom[0]", Message: "key app-name is not a POSIX name"}}},
	}
}

// largeEntries are n Deployments with two results each, 2 KiB messages.
func largeEntries(ns string, n int) []reports.Entry {
	out := make([]reports.Entry, n)
	for i := range out {
		name := fmt.Sprintf("app-%05d", i)
		out[i] = reports.Entry{
			Resource: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: name, UID: types.UID("uid-" + name + "-" + ns)},
			Results: []reports.Result{
				{Policy: "envfrom-keys", Status: reports.StatusFail, Field: "spec.template.spec.containers[0].envFrom[0]", Message: strings.Repeat("m", 2000), Mode: "warn"},
				reports.PassResult("mount-shadowing"),
			},
		}
	}
	return out
}

// readReport is a report as read back with its API's typed client.
type readReport struct {
	name, resourceVersion string
	labels                map[string]string
	summary               [5]int // pass, fail, warn, error, skip
	results               []readResult
}

type readResult struct {
	source, policy, rule, status, severity, message string
	resource                                        corev1.ObjectReference
	properties                                      map[string]string
	timestamp                                       int64
}

// readBack reads a namespace's podguard reports, sorted by name: Reports
// with the openreports.io clientset of github.com/openreports/reports-api,
// PolicyReports with a client of podguard's wgpolicyk8s.io types (no typed
// clientset of that API is in a module podguard can use).
func readBack(t *testing.T, ctx context.Context, api, ns string) []readReport {
	t.Helper()
	selector := reports.ManagedByLabel + "=" + reports.ManagedBy
	var out []readReport
	switch api {
	case reports.APIOpenReports:
		cs, err := orclientset.NewForConfig(cluster.Config)
		if err != nil {
			t.Fatal(err)
		}
		list, err := cs.OpenreportsV1alpha1().Reports(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list.Items {
			rr := readReport{name: r.Name, resourceVersion: r.ResourceVersion, labels: r.Labels,
				summary: [5]int{r.Summary.Pass, r.Summary.Fail, r.Summary.Warn, r.Summary.Error, r.Summary.Skip}}
			if r.Source != reports.Source {
				t.Errorf("report %s has source %q", r.Name, r.Source)
			}
			for _, res := range r.Results {
				rr.results = append(rr.results, readResult{res.Source, res.Policy, res.Rule, string(res.Result), string(res.Severity), res.Description,
					oneRef(t, res.Subjects), res.Properties, res.Timestamp.Seconds})
			}
			out = append(out, rr)
		}
	case reports.APIWGPolicy:
		var list wgv1alpha2.PolicyReportList
		if err := reportsClient(t, cluster.Config).List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{reports.ManagedByLabel: reports.ManagedBy}); err != nil {
			t.Fatal(err)
		}
		for _, r := range list.Items {
			rr := readReport{name: r.Name, resourceVersion: r.ResourceVersion, labels: r.Labels,
				summary: [5]int{r.Summary.Pass, r.Summary.Fail, r.Summary.Warn, r.Summary.Error, r.Summary.Skip}}
			for _, res := range r.Results {
				rr.results = append(rr.results, readResult{res.Source, res.Policy, res.Rule, string(res.Result), string(res.Severity), res.Message,
					oneRef(t, res.Resources), res.Properties, res.Timestamp.Seconds})
			}
			out = append(out, rr)
		}
	}
	slices.SortFunc(out, func(a, b readReport) int { return strings.Compare(a.name, b.name) })
	return out
}

func oneRef(t *testing.T, refs []corev1.ObjectReference) corev1.ObjectReference {
	t.Helper()
	if len(refs) != 1 {
		t.Errorf("a result names %d resources, want 1", len(refs))
		return corev1.ObjectReference{}
	}
	return refs[0]
}

// reportsClient is a controller-runtime client that knows both report APIs,
// reading from the API server.
func reportsClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := reports.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func discoveryFor(t *testing.T, cfg *rest.Config) discovery.DiscoveryInterface {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dc
}
