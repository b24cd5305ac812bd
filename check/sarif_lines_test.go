package check

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/podguard/podguard/manifests"
	"github.com/podguard/podguard/policies"
)

// sarifLinesInput has several documents, each with a finding some lines
// below its start, and one whose finding is about a field a mutation adds.
const sarifLinesInput = `# a ConfigMap whose key the kubelet drops
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: shop}
data:
  1st.key: x
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        envFrom:
        - secretRef: {name: other, optional: true}
        - configMapRef: {name: cfg}        # envFrom[1]
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: app-conf, namespace: shop}
  data: {app.xml: "<x/>"}
- apiVersion: v1
  kind: Pod
  metadata:
    name: api
    namespace: shop
    annotations:
      podguard.io/skip: nope             # an unknown policy
  spec:
    volumes:
    - name: conf
      configMap: {name: app-conf}
    containers:
    - name: api
      image: nginx
      volumeMounts:
      - name: conf
        mountPath: /etc/app.xml          # a file's path, made a directory
`

// lineOf is the 1-based line of sarifLinesInput that contains s.
func lineOf(t *testing.T, s string) float64 {
	t.Helper()
	for i, l := range strings.Split(sarifLinesInput, "\n") {
		if strings.Contains(l, s) {
			return float64(i + 1)
		}
	}
	t.Fatalf("no line contains %q", s)
	return 0
}

// TestOutputSARIFPointsAtTheField: each SARIF result's region starts at
// the line of its field in the file, in a multi-document file and in a
// List, not at the first line of the document.
func TestOutputSARIFPointsAtTheField(t *testing.T) {
	docs, warns, errs := manifests.Parse("deploy/all.yaml", []byte(sarifLinesInput))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rep, err := Run(docs, warns, nil, policies.NewEngine(defaultSettings()), Options{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	// A report keeps no key lists (policies.Finding.Keys): they could be
	// every dropped key of every ConfigMap, once per workload.
	for _, r := range rep.Results {
		for _, v := range r.Violations {
			if v.Keys != nil {
				t.Errorf("%s %s: violation %s keeps keys %q", r.Kind, r.Name, v.Policy, v.Keys)
			}
		}
	}
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID    string `json:"ruleId"`
				Message   struct{ Text string }
				Locations []struct {
					PhysicalLocation struct {
						Region struct {
							StartLine float64 `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(render(t, rep, FormatSARIF), &log); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range log.Runs[0].Results {
		field, _, _ := strings.Cut(r.Message.Text, ": ")
		got[r.RuleID+" "+field] = r.Locations[0].PhysicalLocation.Region.StartLine
	}
	for finding, want := range map[string]float64{
		"envfrom-keys spec.template.spec.containers[0].envFrom[1]":     lineOf(t, "envFrom[1]"),
		"mount-shadowing spec.containers[0].volumeMounts[0].mountPath": lineOf(t, "mountPath: /etc/app.xml"),
		"podguard metadata.annotations[podguard.io/skip]":              lineOf(t, "podguard.io/skip: nope"),
	} {
		line, ok := got[finding]
		switch {
		case !ok:
			t.Errorf("no result for %s; results: %v", finding, got)
		case line != want:
			t.Errorf("%s: startLine %v, want %v, the line of the field", finding, line, want)
		}
	}
}
