package check

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/podguard/podguard/policies"
)

// sampleReport has a denied Deployment (two policies), an admitted Pod with
// a warning and mutations, a clean Pod, a Pod read from stdin, and an input
// error. Messages carry <, & and quotes, as real ones do.
func sampleReport() *Report {
	return &Report{
		Results: []Result{
			{
				File: "./deploy/app.yaml", Document: 0, Line: 1,
				APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web",
				Violations: []policies.Finding{
					{Policy: "envfrom-keys", Field: "spec.template.spec.containers[0].envFrom[0]", Message: `ConfigMap "cfg" key "1st.key" would be skipped`},
					{Policy: "mount-shadowing", Field: "spec.template.spec.containers[0].volumeMounts[0].mountPath", Message: `volume "conf" at /etc/app.xml creates a <directory> & hides "app.xml"`},
				},
				Warnings:  []string{},
				Mutations: []string{"security-context"},
				// The mount's field is written on no line podguard found.
				FieldLines: map[string]int{"spec.template.spec.containers[0].envFrom[0]": 12},
			},
			{
				File: "./deploy/app.yaml", Document: 1, Line: 30,
				APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "debug",
				Warnings:   []string{`podguard [image-pull-secrets] spec.containers[0].image: image "r.example/x" needs pull secret "key", which does not exist`},
				Mutations:  []string{"image-pull-secrets", "security-context"},
				FieldLines: map[string]int{"spec.containers[0].image": 38},
			},
			{
				// nil slices, as a checker may leave them.
				File: "deploy/clean.yaml", Document: 0, Line: 1,
				APIVersion: "v1", Kind: "Pod", Name: "clean",
			},
			{
				File: "-", Document: 0, Line: 1,
				APIVersion: "v1", Kind: "Pod", Namespace: "default", Name: "piped",
				Warnings:   []string{`podguard [podguard] metadata.annotations[podguard.io/skip]: names unknown policies "nope"`},
				FieldLines: map[string]int{"metadata.annotations[podguard.io/skip]": 4},
			},
		},
		Errors: []InputError{
			{File: "deploy/broken.yaml", Line: 7, Message: "yaml: line 7: mapping values are not allowed in this context"},
		},
		Summary: Summary{Files: 4, Documents: 5, Checked: 4, Denied: 1, Violations: 2, Warnings: 2, Mutated: 2, Errors: 1},
	}
}

func render(t *testing.T, rep *Report, format Format) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, rep, format, "v1.2.3"); err != nil {
		t.Fatalf("Write(%s): %v", format, err)
	}
	return b.Bytes()
}

func TestOutputText(t *testing.T) {
	got := string(render(t, sampleReport(), FormatText))
	want := `./deploy/app.yaml:1: Deployment shop/web
  DENY  [envfrom-keys] spec.template.spec.containers[0].envFrom[0] (line 12): ConfigMap "cfg" key "1st.key" would be skipped
  DENY  [mount-shadowing] spec.template.spec.containers[0].volumeMounts[0].mountPath: volume "conf" at /etc/app.xml creates a <directory> & hides "app.xml"
  MUTATE security-context
./deploy/app.yaml:30: Pod shop/debug
  WARN  [image-pull-secrets] spec.containers[0].image (line 38): image "r.example/x" needs pull secret "key", which does not exist
  MUTATE image-pull-secrets, security-context
stdin:1: Pod default/piped
  WARN  [podguard] metadata.annotations[podguard.io/skip] (line 4): names unknown policies "nope"
deploy/broken.yaml:7: error: yaml: line 7: mapping values are not allowed in this context
checked 4 objects in 4 files: 1 denied (2 violations), 2 warnings, 2 would be mutated; 1 input error
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("text output (-want +got):\n%s", diff)
	}
}

func TestOutputTextSummary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		summary Summary
		want    string
	}{
		{"says all admitted when nothing is wrong",
			Summary{Files: 3, Checked: 12},
			"checked 12 objects in 3 files: all admitted"},
		{"still counts mutations and warnings of admitted objects",
			Summary{Files: 1, Checked: 2, Warnings: 1, Mutated: 2},
			"checked 2 objects in 1 file: all admitted, 1 warning, 2 would be mutated"},
		{"uses the singular for one of each",
			Summary{Files: 1, Checked: 1, Denied: 1, Violations: 1, Errors: 1},
			"checked 1 object in 1 file: 1 denied (1 violation); 1 input error"},
		{"matches the documented example",
			Summary{Files: 3, Checked: 12, Denied: 2, Violations: 3, Warnings: 4, Mutated: 5, Errors: 1},
			"checked 12 objects in 3 files: 2 denied (3 violations), 4 warnings, 5 would be mutated; 1 input error"},
		{"does not claim anything was admitted when nothing could be read",
			Summary{Files: 2, Errors: 2},
			"checked 0 objects in 2 files; 2 input errors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(render(t, &Report{Summary: tc.summary}, FormatText))
			if got != tc.want+"\n" {
				t.Errorf("got %q, want %q", got, tc.want+"\n")
			}
		})
	}
}

func TestOutputTextIndentsMultilineMessages(t *testing.T) {
	rep := &Report{
		Results: []Result{{File: "a.yaml", Line: 3, Kind: "Pod", Name: "p", Violations: []policies.Finding{
			{Policy: "mount-shadowing", Field: "spec", Message: "first\nsecond"},
		}}},
		Errors:  []InputError{{File: "b.yaml", Message: "cannot parse:\n  bad indent\n"}},
		Summary: Summary{Files: 2, Checked: 1, Denied: 1, Violations: 1, Errors: 1},
	}
	want := `a.yaml:3: Pod p
  DENY  [mount-shadowing] spec: first
        second
b.yaml: error: cannot parse:
      bad indent
checked 1 object in 2 files: 1 denied (1 violation); 1 input error
`
	if diff := cmp.Diff(want, string(render(t, rep, FormatText))); diff != "" {
		t.Errorf("text output (-want +got):\n%s", diff)
	}
}

func TestOutputJSON(t *testing.T) {
	rep := sampleReport()
	raw := render(t, rep, FormatJSON)

	if !bytes.HasSuffix(raw, []byte("}\n")) || !bytes.HasPrefix(raw, []byte("{\n  \"results\": [\n    {\n")) {
		t.Errorf("want a two-space indented object with a trailing newline, got:\n%s", raw)
	}
	if bytes.Contains(raw, []byte("null")) {
		t.Errorf("output contains null:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte(`creates a <directory> & hides`)) {
		t.Errorf("<, > and & should not be escaped for HTML:\n%s", raw)
	}
	if rep.Results[2].Violations != nil || rep.Results[2].Mutations != nil {
		t.Errorf("Write modified the caller's report: %+v", rep.Results[2])
	}

	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	results := doc["results"].([]any)
	if len(results) != 4 {
		t.Fatalf("got %d results, want 4", len(results))
	}
	web := results[0].(map[string]any)
	for key, want := range map[string]any{
		"file": "./deploy/app.yaml", "document": 0.0, "line": 1.0, "apiVersion": "apps/v1",
		"kind": "Deployment", "namespace": "shop", "name": "web",
	} {
		if web[key] != want {
			t.Errorf("results[0].%s = %#v, want %#v", key, web[key], want)
		}
	}
	wantViolations := []any{
		map[string]any{"policy": "envfrom-keys", "field": "spec.template.spec.containers[0].envFrom[0]", "message": `ConfigMap "cfg" key "1st.key" would be skipped`},
		map[string]any{"policy": "mount-shadowing", "field": "spec.template.spec.containers[0].volumeMounts[0].mountPath", "message": `volume "conf" at /etc/app.xml creates a <directory> & hides "app.xml"`},
	}
	if diff := cmp.Diff(wantViolations, web["violations"]); diff != "" {
		t.Errorf("results[0].violations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"security-context"}, web["mutations"]); diff != "" {
		t.Errorf("results[0].mutations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"spec.template.spec.containers[0].envFrom[0]": 12.0}, web["fieldLines"]); diff != "" {
		t.Errorf("results[0].fieldLines (-want +got):\n%s", diff)
	}
	debug := results[1].(map[string]any)
	if diff := cmp.Diff([]any{rep.Results[1].Warnings[0]}, debug["warnings"]); diff != "" {
		t.Errorf("results[1].warnings (-want +got):\n%s", diff)
	}
	if _, ok := results[2].(map[string]any)["fieldLines"]; ok {
		t.Errorf("results[2] has fieldLines; none are known")
	}
	clean := results[2].(map[string]any)
	for _, key := range []string{"violations", "warnings", "mutations"} {
		if got, ok := clean[key].([]any); !ok || len(got) != 0 {
			t.Errorf("results[2].%s = %#v, want []", key, clean[key])
		}
	}
	if diff := cmp.Diff([]any{map[string]any{"file": "deploy/broken.yaml", "line": 7.0, "message": rep.Errors[0].Message}}, doc["errors"]); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	wantSummary := map[string]any{"files": 4.0, "documents": 5.0, "checked": 4.0, "denied": 1.0, "violations": 2.0, "warnings": 2.0, "mutated": 2.0, "errors": 1.0}
	if diff := cmp.Diff(wantSummary, doc["summary"]); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}

	// And back into a Report, unchanged but for the nil slices.
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	want := sampleReport()
	want.Results[1].Violations = []policies.Finding{}
	want.Results[2].Violations, want.Results[2].Warnings, want.Results[2].Mutations = []policies.Finding{}, []string{}, []string{}
	want.Results[3].Violations, want.Results[3].Mutations = []policies.Finding{}, []string{}
	if diff := cmp.Diff(want, &back, cmpopts.IgnoreUnexported(Result{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestOutputJSONEmptyReport(t *testing.T) {
	got := string(render(t, &Report{}, FormatJSON))
	want := `{
  "results": [],
  "summary": {
    "files": 0,
    "documents": 0,
    "checked": 0,
    "denied": 0,
    "violations": 0,
    "warnings": 0,
    "mutated": 0,
    "errors": 0
  }
}
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// sarif decodes SARIF generically, so that the test checks the wire names
// rather than the implementation's structs.
func sarif(t *testing.T, rep *Report) (doc map[string]any, run map[string]any, rules, results []map[string]any) {
	t.Helper()
	raw := render(t, rep, FormatSARIF)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	runs := doc["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("got %d runs, want 1", len(runs))
	}
	run = runs[0].(map[string]any)
	driver := run["tool"].(map[string]any)["driver"].(map[string]any)
	for _, r := range driver["rules"].([]any) {
		rules = append(rules, r.(map[string]any))
	}
	for _, r := range run["results"].([]any) {
		results = append(results, r.(map[string]any))
	}
	return doc, run, rules, results
}

func TestOutputSARIF(t *testing.T) {
	doc, run, rules, results := sarif(t, sampleReport())

	if doc["$schema"] != "https://json.schemastore.org/sarif-2.1.0.json" || doc["version"] != "2.1.0" {
		t.Errorf("$schema = %v, version = %v", doc["$schema"], doc["version"])
	}
	driver := run["tool"].(map[string]any)["driver"].(map[string]any)
	if driver["name"] != "podguard" || driver["version"] != "v1.2.3" || driver["informationUri"] != "https://github.com/podguard/podguard" {
		t.Errorf("tool.driver = %v", driver)
	}

	var ids []string
	seen := map[string]bool{}
	for _, r := range rules {
		id := r["id"].(string)
		if seen[id] {
			t.Errorf("rule %q listed twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
		if d, _ := r["shortDescription"].(map[string]any)["text"].(string); d == "" {
			t.Errorf("rule %q has no shortDescription", id)
		}
	}
	if diff := cmp.Diff([]string{"envfrom-keys", "mount-shadowing", "image-pull-secrets", "podguard", "input"}, ids); diff != "" {
		t.Errorf("rule ids (-want +got):\n%s", diff)
	}
	if got := rules[0]["helpUri"]; got != "https://github.com/podguard/podguard#envfrom-keys-validation" {
		t.Errorf("envfrom-keys helpUri = %v", got)
	}
	if got := rules[2]["helpUri"]; got != "https://github.com/podguard/podguard#image-pull-secrets-mutation" {
		t.Errorf("image-pull-secrets helpUri = %v", got)
	}

	type row struct{ RuleID, Level, Text, URI string }
	var got []row
	for i, r := range results {
		idx := int(r["ruleIndex"].(float64))
		if idx < 0 || idx >= len(rules) || rules[idx]["id"] != r["ruleId"] {
			t.Errorf("results[%d]: ruleIndex %d does not point at rule %v", i, idx, r["ruleId"])
		}
		loc := r["locations"].([]any)[0].(map[string]any)["physicalLocation"].(map[string]any)
		if line := loc["region"].(map[string]any)["startLine"].(float64); line < 1 {
			t.Errorf("results[%d]: startLine %v", i, line)
		}
		if fp, _ := r["partialFingerprints"].(map[string]any)["podguard/v1"].(string); len(fp) < 16 {
			t.Errorf("results[%d]: fingerprint %q", i, fp)
		}
		got = append(got, row{
			RuleID: r["ruleId"].(string),
			Level:  r["level"].(string),
			Text:   r["message"].(map[string]any)["text"].(string),
			URI:    loc["artifactLocation"].(map[string]any)["uri"].(string),
		})
	}
	want := []row{
		{"envfrom-keys", "error", `spec.template.spec.containers[0].envFrom[0]: ConfigMap "cfg" key "1st.key" would be skipped`, "deploy/app.yaml"},
		{"mount-shadowing", "error", `spec.template.spec.containers[0].volumeMounts[0].mountPath: volume "conf" at /etc/app.xml creates a <directory> & hides "app.xml"`, "deploy/app.yaml"},
		{"image-pull-secrets", "warning", `spec.containers[0].image: image "r.example/x" needs pull secret "key", which does not exist`, "deploy/app.yaml"},
		{"podguard", "warning", `metadata.annotations[podguard.io/skip]: names unknown policies "nope"`, "stdin"},
		{"input", "error", "yaml: line 7: mapping values are not allowed in this context", "deploy/broken.yaml"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	startLines := []float64{}
	for _, r := range results {
		startLines = append(startLines, r["locations"].([]any)[0].(map[string]any)["physicalLocation"].(map[string]any)["region"].(map[string]any)["startLine"].(float64))
	}
	// A finding at its field's line; one whose field no line writes, at
	// its document's.
	if diff := cmp.Diff([]float64{12, 1, 38, 4, 7}, startLines); diff != "" {
		t.Errorf("startLines (-want +got):\n%s", diff)
	}
	if _, ok := run["invocations"]; ok {
		t.Errorf("a report within GitHub's limits should have no truncation notice")
	}
}

func TestOutputSARIFEmptyReport(t *testing.T) {
	raw := string(render(t, &Report{}, FormatSARIF))
	for _, want := range []string{`"rules": []`, `"results": []`} {
		if !strings.Contains(raw, want) {
			t.Errorf("want %s in:\n%s", want, raw)
		}
	}
}

func fingerprints(t *testing.T, rep *Report) []string {
	t.Helper()
	_, _, _, results := sarif(t, rep)
	var out []string
	for _, r := range results {
		out = append(out, r["partialFingerprints"].(map[string]any)["podguard/v1"].(string))
	}
	return out
}

func TestOutputSARIFFingerprints(t *testing.T) {
	first, second := fingerprints(t, sampleReport()), fingerprints(t, sampleReport())
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("fingerprints changed between two renders (-first +second):\n%s", diff)
	}
	seen := map[string]int{}
	for i, fp := range first {
		if j, dup := seen[fp]; dup {
			t.Errorf("results %d and %d share fingerprint %s", j, i, fp)
		}
		seen[fp] = i
	}

	t.Run("survives a reworded message and a moved object", func(t *testing.T) {
		rep := sampleReport()
		rep.Results[0].Line = 12
		rep.Results[0].Violations[0].Message = `ConfigMap "cfg" keys "1st.key", "2nd.key" would be skipped`
		if got := fingerprints(t, rep); got[0] != first[0] {
			t.Errorf("fingerprint changed from %s to %s", first[0], got[0])
		}
	})
	t.Run("changes with the object", func(t *testing.T) {
		rep := sampleReport()
		rep.Results[0].Name = "api"
		if got := fingerprints(t, rep); got[0] == first[0] {
			t.Errorf("a finding on another object kept fingerprint %s", got[0])
		}
	})
	t.Run("tells apart two findings at one field", func(t *testing.T) {
		rep := sampleReport()
		v := rep.Results[0].Violations[0]
		v.Message = "another key"
		rep.Results[0].Violations = append(rep.Results[0].Violations, v)
		rep.Results[0].Warnings = nil
		got := fingerprints(t, rep)
		if got[0] == got[2] {
			t.Errorf("two findings at %s share fingerprint %s", v.Field, got[0])
		}
		if got[0] != first[0] {
			t.Errorf("adding a later finding changed the first one's fingerprint")
		}
	})
}

func TestOutputSARIFStaysWithinGitHubLimits(t *testing.T) {
	warnings := make([]string, maxSARIFResults)
	for i := range warnings {
		warnings[i] = fmt.Sprintf("podguard [envfrom-keys] spec.containers[%d].envFrom[0]: posix", i)
	}
	rep := &Report{
		Results: []Result{{File: "big.yaml", Line: 1, Kind: "Pod", Name: "big", Warnings: warnings,
			Violations: []policies.Finding{{Policy: "mount-shadowing", Field: "spec", Message: "denied"}}}},
		Errors: []InputError{{File: "bad.yaml", Message: "unreadable"}},
	}
	_, run, _, results := sarif(t, rep)
	if len(results) != maxSARIFResults {
		t.Fatalf("got %d results, want GitHub's maximum %d", len(results), maxSARIFResults)
	}
	levels := map[string]int{}
	for _, r := range results {
		levels[r["level"].(string)]++
	}
	if levels["error"] != 2 || levels["warning"] != maxSARIFResults-2 {
		t.Errorf("kept %v, want both errors and %d warnings", levels, maxSARIFResults-2)
	}
	note, _ := json.Marshal(run["invocations"])
	if !strings.Contains(string(note), "2 results left out") {
		t.Errorf("no truncation notice, invocations = %s", note)
	}
}

func TestOutputSARIFURI(t *testing.T) {
	for in, want := range map[string]string{
		"deploy/app.yaml":        "deploy/app.yaml",
		"./deploy/app.yaml":      "deploy/app.yaml",
		"././app.yaml":           "app.yaml",
		"../shared/app.yaml":     "../shared/app.yaml",
		"-":                      "stdin",
		"my manifests/app.yaml":  "my%20manifests/app.yaml",
		"/home/ci/repo/app.yaml": "file:///home/ci/repo/app.yaml",
	} {
		if got := artifactURI(in); got != want {
			t.Errorf("artifactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOutputWarningPolicy(t *testing.T) {
	for in, want := range map[string]policies.Finding{
		`podguard [envfrom-keys] spec.containers[0].envFrom[0]: key "a.b" is not a POSIX name`: {
			Policy: "envfrom-keys", Field: "spec.containers[0].envFrom[0]", Message: `key "a.b" is not a POSIX name`},
		`podguard [resources] invalid podguard.io/default-resources: the defaults apply`: {
			Policy: "resources", Message: "invalid podguard.io/default-resources: the defaults apply"},
		`[log-sidecar] spec: no prefix`: {Policy: "log-sidecar", Field: "spec", Message: "no prefix"},
		`podguard mutated this pod (image-pull-secrets): /spec/imagePullSecrets`: {
			Policy: "podguard", Message: "podguard mutated this pod (image-pull-secrets): /spec/imagePullSecrets"},
		`[not a policy] x: y`: {Policy: "podguard", Message: "[not a policy] x: y"},
	} {
		if diff := cmp.Diff(want, warningFinding(in)); diff != "" {
			t.Errorf("warningFinding(%q) (-want +got):\n%s", in, diff)
		}
	}
}

// TestOutputRulesDocumentEveryPolicy keeps SARIF's rule descriptions and help
// links in step with the registry and the README.
func TestOutputRulesDocumentEveryPolicy(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(readme), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	for _, name := range append(policies.Names(), engineRule, inputRule) {
		doc, ok := ruleDocs[name]
		if !ok {
			t.Errorf("policy %q has no entry in ruleDocs", name)
			continue
		}
		if doc.anchor != "" && !anchors[doc.anchor] {
			t.Errorf("policy %q links to #%s, which is no heading in README.md", name, doc.anchor)
		}
	}
}

// githubAnchor is the id GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// junitDoc is what a CI dashboard reads.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Name     string   `xml:"name,attr"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Cases    []struct {
			Classname string `xml:"classname,attr"`
			Name      string `xml:"name,attr"`
			Failures  []struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Errors []struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"error"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestOutputJUnit(t *testing.T) {
	raw := render(t, sampleReport(), FormatJUnit)
	if !bytes.HasPrefix(raw, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("no XML declaration:\n%s", raw)
	}
	for _, escaped := range []string{"&lt;directory&gt; &amp; hides &#34;app.xml&#34;", `name="Deployment shop/web"`} {
		if !bytes.Contains(raw, []byte(escaped)) {
			t.Errorf("want %s in:\n%s", escaped, raw)
		}
	}
	var doc junitDoc
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("does not parse back: %v\n%s", err, raw)
	}
	if doc.Name != "podguard" || doc.Tests != 5 || doc.Failures != 1 || doc.Errors != 1 {
		t.Errorf("testsuites name=%q tests=%d failures=%d errors=%d, want podguard 5 1 1", doc.Name, doc.Tests, doc.Failures, doc.Errors)
	}

	type suite struct {
		Name                   string
		Tests, Failures, Errrs int
		Cases                  []string
	}
	var suites []suite
	for _, s := range doc.Suites {
		got := suite{Name: s.Name, Tests: s.Tests, Failures: s.Failures, Errrs: s.Errors}
		for _, c := range s.Cases {
			if c.Classname != s.Name {
				t.Errorf("testcase %q has classname %q in suite %q", c.Name, c.Classname, s.Name)
			}
			got.Cases = append(got.Cases, c.Name)
		}
		suites = append(suites, got)
	}
	wantSuites := []suite{
		{"./deploy/app.yaml", 2, 1, 0, []string{"Deployment shop/web", "Pod shop/debug"}},
		{"deploy/clean.yaml", 1, 0, 0, []string{"Pod clean"}},
		{"stdin", 1, 0, 0, []string{"Pod default/piped"}},
		{"deploy/broken.yaml", 1, 0, 1, []string{"input error at line 7"}},
	}
	if diff := cmp.Diff(wantSuites, suites); diff != "" {
		t.Fatalf("suites (-want +got):\n%s", diff)
	}

	web := doc.Suites[0].Cases[0]
	if len(web.Failures) != 1 {
		t.Fatalf("denied Deployment has %d failure elements, want 1", len(web.Failures))
	}
	f := web.Failures[0]
	if f.Type != "podguard" {
		t.Errorf("failure type = %q", f.Type)
	}
	if want := `[envfrom-keys] spec.template.spec.containers[0].envFrom[0] (line 12): ConfigMap "cfg" key "1st.key" would be skipped (and 1 more)`; f.Message != want {
		t.Errorf("failure message = %q, want %q", f.Message, want)
	}
	wantBody := `[envfrom-keys] spec.template.spec.containers[0].envFrom[0] (line 12): ConfigMap "cfg" key "1st.key" would be skipped
[mount-shadowing] spec.template.spec.containers[0].volumeMounts[0].mountPath: volume "conf" at /etc/app.xml creates a <directory> & hides "app.xml"`
	if diff := cmp.Diff(wantBody, f.Body); diff != "" {
		t.Errorf("failure body (-want +got):\n%s", diff)
	}

	debug := doc.Suites[0].Cases[1]
	if len(debug.Failures)+len(debug.Errors) != 0 {
		t.Errorf("admitted Pod has failures %v, errors %v", debug.Failures, debug.Errors)
	}
	wantOut := `podguard [image-pull-secrets] spec.containers[0].image: image "r.example/x" needs pull secret "key", which does not exist
would be mutated by: image-pull-secrets, security-context`
	if diff := cmp.Diff(wantOut, debug.SystemOut); diff != "" {
		t.Errorf("system-out (-want +got):\n%s", diff)
	}

	broken := doc.Suites[3].Cases[0]
	if len(broken.Errors) != 1 || broken.Errors[0].Message != "yaml: line 7: mapping values are not allowed in this context" ||
		broken.Errors[0].Body != "deploy/broken.yaml:7: yaml: line 7: mapping values are not allowed in this context" {
		t.Errorf("input error testcase = %+v", broken)
	}
}

func TestOutputJUnitEmptyReport(t *testing.T) {
	got := string(render(t, &Report{}, FormatJUnit))
	want := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="podguard" tests="0" failures="0" errors="0"></testsuites>
`
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOutputUnknownFormat(t *testing.T) {
	var b bytes.Buffer
	err := Write(&b, sampleReport(), "yaml", "v1")
	if err == nil || err.Error() != `unknown output format "yaml": use text, json, sarif or junit` {
		t.Errorf("got error %v", err)
	}
	if b.Len() != 0 {
		t.Errorf("wrote %q for an unknown format", b.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestOutputWriteErrors(t *testing.T) {
	for _, f := range Formats {
		err := Write(failingWriter{}, sampleReport(), f, "v1")
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: got error %v, want the writer's", f, err)
		}
	}
}

// TestOutputInputWarnings shows the warnings about the input in every
// format, as warnings: they never fail the check.
func TestOutputInputWarnings(t *testing.T) {
	rep := &Report{
		Results: []Result{},
		InputWarnings: []InputError{{File: "deploy/cm.yaml", Line: 7,
			Message: `document 0 (ConfigMap "a"): duplicate key "metadata.name" (first on line 4): the last value is used, as kubectl uses it`}},
		Summary: Summary{Files: 1, Documents: 1, Warnings: 1},
	}
	if rep.ExitCode() != 0 {
		t.Errorf("exit code %d, want 0", rep.ExitCode())
	}
	render := func(f Format) string {
		var b bytes.Buffer
		if err := Write(&b, rep, f, "test"); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, tc := range []struct {
		format Format
		want   []string
	}{
		{FormatText, []string{"deploy/cm.yaml:7: warning: document 0 (ConfigMap \"a\"): duplicate key \"metadata.name\"", "checked 0 objects in 1 file: 1 warning\n"}},
		{FormatJSON, []string{`"inputWarnings": [`, `"line": 7,`, `"warnings": 1,`}},
		{FormatSARIF, []string{`"ruleId": "input"`, `"level": "warning"`, `"startLine": 7`}},
		{FormatJUnit, []string{`name="input warning at line 7"`, `deploy/cm.yaml:7: warning: document 0`}},
	} {
		got := render(tc.format)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s output lacks %q:\n%s", tc.format, w, got)
			}
		}
		if tc.format != FormatText && strings.Contains(got, `"error"`) {
			t.Errorf("%s output has an error:\n%s", tc.format, got)
		}
	}
}
