package check

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/podguard/podguard/policies"
)

// clusterReport is what `podguard audit` reports: objects read from a
// cluster, with no file, in two namespaces.
func clusterReport() *Report {
	return &Report{
		Results: []Result{
			{
				APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web",
				Violations: []policies.Finding{{Policy: "envfrom-keys", Field: "spec.template.spec.containers[0].envFrom[0]", Message: `ConfigMap "cfg" key "1st.key" would be skipped`}},
				Warnings:   []string{}, Mutations: []string{"security-context"},
			},
			{
				APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "hand-made",
				Warnings: []string{`podguard [envfrom-keys] spec.containers[0].envFrom[0]: key "log.level" is not a shell name`},
			},
			{APIVersion: "batch/v1", Kind: "CronJob", Namespace: "billing", Name: "nightly"},
		},
		Summary: Summary{Namespaces: 2, Documents: 3, Checked: 3, Denied: 1, Violations: 1, Warnings: 1, Mutated: 1},
	}
}

func TestOutputTextNamesClusterObjectsByKindNamespaceName(t *testing.T) {
	got := string(render(t, clusterReport(), FormatText))
	want := `Deployment shop/web
  DENY  [envfrom-keys] spec.template.spec.containers[0].envFrom[0]: ConfigMap "cfg" key "1st.key" would be skipped
  MUTATE security-context
Pod shop/hand-made
  WARN  [envfrom-keys] spec.containers[0].envFrom[0]: key "log.level" is not a shell name
checked 3 objects in 2 namespaces: 1 denied (1 violation), 1 warning, 1 would be mutated
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

func TestOutputJSONLeavesTheFileOutOfClusterObjects(t *testing.T) {
	var got struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(render(t, clusterReport(), FormatJSON), &got); err != nil {
		t.Fatal(err)
	}
	r := got.Results[0]
	for _, k := range []string{"file", "document", "line"} {
		if _, ok := r[k]; ok {
			t.Errorf("result has %q: %v", k, r)
		}
	}
	if r["kind"] != "Deployment" || r["namespace"] != "shop" || r["name"] != "web" {
		t.Errorf("result names %v/%v/%v, want Deployment/shop/web", r["kind"], r["namespace"], r["name"])
	}
	// A result read from a file keeps all three, even at document 0.
	file, err := json.Marshal(Result{File: "a.yaml", Line: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(file), `"file":"a.yaml","document":0,"line":1`) {
		t.Errorf("file result = %s, want file, document and line", file)
	}
}

func TestOutputSARIFLocatesClusterObjectsLogically(t *testing.T) {
	var log struct {
		Runs []struct {
			Results []struct {
				Locations []map[string]json.RawMessage `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	out := render(t, clusterReport(), FormatSARIF)
	if err := json.Unmarshal(out, &log); err != nil {
		t.Fatal(err)
	}
	res := log.Runs[0].Results
	if len(res) != 2 {
		t.Fatalf("%d results, want 2 (a violation and a warning)", len(res))
	}
	for i, want := range []string{"Deployment/shop/web", "Pod/shop/hand-made"} {
		loc := res[i].Locations[0]
		if _, ok := loc["physicalLocation"]; ok {
			t.Errorf("result %d has a physicalLocation: %s", i, out)
		}
		var logical []sarifLogicalLocation
		if err := json.Unmarshal(loc["logicalLocations"], &logical); err != nil {
			t.Fatal(err)
		}
		if len(logical) != 1 || logical[0].FullyQualifiedName != want || logical[0].Kind != "resource" {
			t.Errorf("result %d logicalLocations = %+v, want %s", i, logical, want)
		}
	}
}

func TestOutputJUnitHasASuitePerNamespace(t *testing.T) {
	var doc junitSuites
	if err := xml.Unmarshal(render(t, clusterReport(), FormatJUnit), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			got = append(got, s.Name+": "+c.Classname+" "+c.Name)
		}
	}
	want := []string{"shop: shop Deployment shop/web", "shop: shop Pod shop/hand-made", "billing: billing CronJob billing/nightly"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("suites (-want +got):\n%s", diff)
	}
}
