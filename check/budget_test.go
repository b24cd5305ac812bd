package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podguard/podguard/manifests"
	"github.com/podguard/podguard/policies"
)

// loadManifest writes text to a file and loads it as podguard check does.
func loadManifest(t testing.TB, text string) []manifests.Document {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	docs, _, errs := manifests.Load([]string{path}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return docs
}

// logsPod is a Pod whose podguard.io/logs annotation is logs.
func logsPod(name, logs string) string {
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "annotations": map[string]string{policies.LogsAnnotation: logs}},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "tomcat"}}},
	}
	b, _ := json.Marshal(pod)
	return string(b)
}

func TestCheckOutputIsBoundedForTheWorstAnnotations(t *testing.T) {
	settings := &policies.Settings{}
	settings.Default()
	engine := policies.NewEngine(settings)
	for _, tc := range []struct {
		name string
		logs string
		max  map[Format]int // bytes
	}{
		// Before: 406 MB of text output and 2.3 GB of memory.
		{"20,000 commas", strings.Repeat(",", 20000), map[Format]int{FormatText: 8 << 10, FormatJSON: 10 << 10, FormatSARIF: 16 << 10, FormatJUnit: 10 << 10}},
		{"50,000 entries", strings.Repeat("app=/var/log/x,", 50000), map[Format]int{FormatText: 4 << 10, FormatJSON: 4 << 10, FormatSARIF: 8 << 10, FormatJUnit: 4 << 10}},
		{"one 1 MB entry", "app=" + strings.Repeat("x", 1<<20), map[Format]int{FormatText: 4 << 10, FormatJSON: 4 << 10, FormatSARIF: 8 << 10, FormatJUnit: 4 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(loadManifest(t, logsPod("p", tc.logs)), nil, nil, engine, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.ExitCode() != 1 {
				t.Fatalf("exit code %d, want 1 (denied)", rep.ExitCode())
			}
			for format, limit := range tc.max {
				var b bytes.Buffer
				if err := Write(&b, rep, format, "test"); err != nil {
					t.Fatal(err)
				}
				if b.Len() > limit {
					t.Errorf("%s output is %d bytes, want at most %d", format, b.Len(), limit)
				}
			}
		})
	}
}

func TestMutateOutputIsBoundedForTheWorstAnnotations(t *testing.T) {
	settings := &policies.Settings{}
	settings.Default()
	engine := policies.NewEngine(settings)
	docs := loadManifest(t, logsPod("p", strings.Repeat("app=/var/log/x,", 50000)))
	out, err := Mutate(docs, engine, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Changed || len(out[0].Violations) != 1 {
		t.Fatalf("want the pod unchanged with one violation (the entry limit), got changed=%v violations=%v", out[0].Changed, out[0].Violations)
	}
	var b bytes.Buffer
	for _, v := range out[0].Violations {
		fmt.Fprintln(&b, v)
	}
	if b.Len() > 4<<10 {
		t.Errorf("%d bytes of violations, want at most 4 KiB", b.Len())
	}
}

func TestTextOutputEscapesControlCharacters(t *testing.T) {
	rep := &Report{Results: []Result{{
		File: "ci/\x1b]0;owned\x07.yaml", Line: 1, Kind: "Pod", Namespace: "default", Name: "evil\x1b[2J\u202e",
		Violations: []policies.Finding{{Policy: "mount-shadowing", Field: "spec.containers[0].volumeMounts[0].mountPath", Message: "mounting at /etc\x1b[31m\nsecond line"}},
		Warnings:   []string{"podguard [envfrom-keys] spec.containers[0].envFrom[0]: key \x00"},
	}}}
	var b bytes.Buffer
	if err := Write(&b, rep, FormatText, "test"); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, raw := range []string{"\x1b", "\x07", "\u202e", "\x00"} {
		if strings.Contains(text, raw) {
			t.Errorf("text output holds %q raw:\n%s", raw, text)
		}
	}
	for _, want := range []string{
		`"ci/\x1b]0;owned\a.yaml:1": "Pod default/evil\x1b[2J\u202e"`,
		`mounting at /etc\x1b[31m` + "\n        second line",
		`key \x00`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

// BenchmarkCheckCommas times podguard check's engine and text output over
// the annotation of commas at two sizes: linear cost shows as ns/op
// growing 10 times with the input (it grew 100 times before).
func BenchmarkCheckCommas(b *testing.B) {
	settings := &policies.Settings{}
	settings.Default()
	engine := policies.NewEngine(settings)
	for _, n := range []int{2000, 20000} {
		docs := loadManifest(b, logsPod("p", strings.Repeat(",", n)))
		b.Run(fmt.Sprintf("commas=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rep, _ := Run(docs, nil, nil, engine, Options{})
				var out bytes.Buffer
				_ = Write(&out, rep, FormatText, "bench")
			}
		})
	}
}
