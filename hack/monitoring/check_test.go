package monitoring

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The files checked, from the repository root.
const (
	root            = "../.."
	rulesFile       = "deploy/components/monitoring/prometheusrule.yaml"
	dashboardFile   = "deploy/components/monitoring/dashboard.json"
	seriesFile      = "deploy/testdata/series-at-start.txt"
	runtimeFile     = "deploy/testdata/runtime-series.txt"
	dashboardSchema = "schema/dashboard.jsonschema.json"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func series(t *testing.T) *Series {
	t.Helper()
	s, err := LoadSeries(bytes.NewReader(read(t, filepath.Join(root, seriesFile))))
	if err != nil {
		t.Fatalf("%s: %v", seriesFile, err)
	}
	if err := s.AddRuntime(bytes.NewReader(read(t, filepath.Join(root, runtimeFile)))); err != nil {
		t.Fatalf("%s: %v", runtimeFile, err)
	}
	return s
}

func TestShippedRules(t *testing.T) {
	for _, p := range CheckRules(read(t, filepath.Join(root, rulesFile)), series(t)) {
		t.Errorf("%s: %s", rulesFile, p)
	}
}

func TestShippedDashboard(t *testing.T) {
	for _, p := range CheckDashboard(read(t, filepath.Join(root, dashboardFile)), read(t, dashboardSchema), series(t)) {
		t.Errorf("%s: %s", dashboardFile, p)
	}
}

// TestLaterMetricsExist: the metrics that have no series at start are
// defined in podguard's code.
func TestLaterMetricsExist(t *testing.T) {
	var src strings.Builder
	for _, dir := range []string{"audit", "webhook", "certs", "inspector"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				src.Write(read(t, f))
			}
		}
	}
	for name, labels := range Later {
		// Name: "...", Help: "...", }, []string{"a", "b"})
		def := regexp.MustCompile(`Name:\s+"` + name + `",[^}]*\},\s*\[\]string\{([^}]*)\}`).FindStringSubmatch(src.String())
		if def == nil {
			t.Errorf("%s is not a labelled metric podguard defines", name)
			continue
		}
		if got, want := strings.ReplaceAll(def[1], " ", ""), `"`+strings.Join(labels, `","`)+`"`; got != want {
			t.Errorf("%s has labels %s, Later says %s", name, got, want)
		}
	}
}

// TestChecksCatchMistakes: each mistake, made in the shipped files, is
// reported.
func TestChecksCatchMistakes(t *testing.T) {
	s := series(t)
	rules := string(read(t, filepath.Join(root, rulesFile)))
	dashboard := string(read(t, filepath.Join(root, dashboardFile)))
	schema := read(t, dashboardSchema)
	tests := []struct {
		name      string
		file      string // rules or dashboard
		old, new  string
		wantInMsg string
	}{
		{"a misspelt metric in an alert", "rules", "podguard_policy_panics_total", "podguard_policy_panic_total", "podguard exports no metric podguard_policy_panic_total"},
		{"a misspelt label in an alert", "rules", `{result=~"error|timeout"}`, `{reslut=~"error|timeout"}`, `has no label "reslut"`},
		{"a label value no series has", "rules", `{result="failure"}`, `{result="failed"}`, "matches none of the series"},
		{"a misspelt grouping label", "rules", "sum by (policy) (increase(podguard_policy_panics_total", "sum by (polcy) (increase(podguard_policy_panics_total", `by "polcy"`},
		{"a misspelt metric inside absent()", "rules", `absent(up{job="podguard"} == 1)`, `absent(podguard_up{job="podguard"} == 1)`, "podguard exports no metric podguard_up"},
		{"a misspelt runtime metric", "rules", "0.8 * go_gc_gomemlimit_bytes", "0.8 * go_gc_memlimit_bytes", "podguard exports no metric go_gc_memlimit_bytes"},
		{"a label a runtime metric lacks", "rules", `go_gc_heap_live_bytes{job="podguard"}`, `go_gc_heap_live_bytes{job="podguard",policy="x"}`, `has no label "policy"`},
		{"invalid PromQL", "rules", "podguard_config_last_reload_successful == 0", "podguard_config_last_reload_successful == ", "parse error"},
		{"an unknown rule field", "rules", "      for: 10m\n", "      fro: 10m\n", "fro"},
		{"a broken annotation template", "rules", "{{ $value | humanizePercentage }}", "{{ $value | humanizePercent }}", "humanizePercent"},
		{"a misspelt metric in a panel", "dashboard", "podguard_webhook_open_connections", "podguard_webhook_open_conections", "podguard exports no metric podguard_webhook_open_conections"},
		{"a panel the schema refuses", "dashboard", `"gridPos": {`, `"gridPosition": {`, "schema"},
		{"a mistyped dashboard field", "dashboard", `"graphTooltip": 1`, `"graphTooltip": "shared"`, "schema"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var problems []string
			switch tc.file {
			case "rules":
				if !strings.Contains(rules, tc.old) {
					t.Fatalf("%s has no %q to break", rulesFile, tc.old)
				}
				problems = CheckRules([]byte(strings.Replace(rules, tc.old, tc.new, 1)), s)
			case "dashboard":
				if !strings.Contains(dashboard, tc.old) {
					t.Fatalf("%s has no %q to break", dashboardFile, tc.old)
				}
				problems = CheckDashboard([]byte(strings.Replace(dashboard, tc.old, tc.new, 1)), schema, s)
			}
			for _, p := range problems {
				if strings.Contains(p, tc.wantInMsg) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", tc.wantInMsg, problems)
		})
	}
}
