package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse holds Parse to what podguard check relies on, whatever the
// input: no panic, every error an *Error naming the file, and every
// document placed on a line of the file, with an object and its JSON.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		configMap,
		"---\n# Source: x\n" + deployment + "---\n---\n" + configMap,
		strings2CRLF(configMap + "---\n" + deployment),
		"apiVersion: v1\nkind: List\nitems:\n- " + indent(configMap) + "- kind: Pod\n",
		"apiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: a}\n  spec: {replicas: x}\n",
		`{"apiVersion": "v1", "kind": "ConfigMap"}{"kind": 1}` + "\n[1]",
		`{"apiVersion": "v1", "kind": "List", "items": [{}, {"apiVersion": "v1", "kind": "Pod", "spec": {"x": 1}}]}`,
		"apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: a}\ndata:\n  <<: {x: z}\n",
		"--- {apiVersion: v1, kind: Namespace}\n...\n%YAML 1.1\n---\na: b: c\n",
		"apiVersion: cert-manager.io/v1\nkind: Certificate\nspec: {a: 1, a: 2}\n",
		"\xef\xbb\xbf\x00binary",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// The inputs kubectl is compared with: BOMs, UTF-16, bad UTF-8, CRLF,
	// tabs, separators, JSON then YAML.
	kubectlInputs, err := filepath.Glob(filepath.Join("testdata", "kubectl", "[^.]*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range kubectlInputs {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.yaml"
		docs, warns, errs := Parse(name, data)
		lines := bytes.Count(data, []byte{'\n'}) + 1
		for _, err := range errs {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, not an *Error", err, err)
			}
			if e.File != name {
				t.Fatalf("error %q names file %q, want %q", err, e.File, name)
			}
			if e.Line < 0 || e.Line > lines {
				t.Fatalf("error %q is on line %d of %d", err, e.Line, lines)
			}
			if errors.Is(err, errPanic) {
				t.Fatalf("a decoder panicked: %v", err)
			}
		}
		for _, w := range warns {
			if w.File != name || w.Line < 0 || w.Line > lines || w.Msg == "" {
				t.Fatalf("warning misplaced: %+v, of %d lines", w, lines)
			}
		}
		last := -1
		for _, d := range docs {
			if d.File != name || d.Line < 1 || d.Line > lines || d.Index < last || d.Item < -1 {
				t.Fatalf("document misplaced: file %q, index %d (after %d), line %d of %d, item %d", d.File, d.Index, last, d.Line, lines, d.Item)
			}
			last = d.Index
			if d.Object == nil || !json.Valid(d.Raw) {
				t.Fatalf("document %d has object %v and Raw %q", d.Index, d.Object, d.Raw)
			}
		}
	})
}

func strings2CRLF(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("\n"), []byte("\r\n")))
}
