package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// kubectlCases are the inputs of testdata/kubectl, each with what podguard
// makes of it. e2e/yaml_parity_test.go runs the same files through a real
// kubectl (`kubectl create --dry-run=client` and `--dry-run=server`) and
// podguard check, and requires the same verdict; here, the same files go
// through the code kubectl reads them with (readAsKubectl), so that the
// behaviour is pinned without a cluster.
var kubectlCases = []struct {
	file string
	// objects are the names of the objects read, in order: kubectl creates
	// the same, with the same content.
	objects []string
	warns   []string
	errs    []string
	// serverRejects is set when kubectl reads the file, but the API server
	// rejects the object with its strict field validation (the default of
	// kubectl create and apply), as podguard does.
	serverRejects bool
}{
	{file: "merge-key-then-override.yaml", objects: []string{"merge"}},
	{file: "override-then-merge-key.yaml", objects: []string{"merge-late"}},
	{file: "invalid-utf8-in-comment.yaml", objects: []string{"latin1-comment"},
		warns: []string{"7: invalid UTF-8 on line 7: each bad byte is read as U+FFFD, as kubectl reads it; save the file as UTF-8"}},
	{file: "invalid-utf8-in-value.yaml", objects: []string{"latin1-value"},
		warns: []string{"6: invalid UTF-8 on line 6: each bad byte is read as U+FFFD, as kubectl reads it; save the file as UTF-8"}},
	{file: "bom-first-document.yaml", objects: []string{"bom-first"}},
	{file: "bom-second-document.yaml", objects: []string{"bom-one", "bom-two"}},
	{file: "duplicate-key.yaml", objects: []string{"duplicate-key"}, warns: []string{
		`7: document 0 (ConfigMap "duplicate-key"): duplicate key "metadata.labels.app" (first on line 6): the last value is used, as kubectl uses it`,
		`8: document 0 (ConfigMap "duplicate-key"): duplicate key "metadata.name" (first on line 4): the last value is used, as kubectl uses it`,
	}},
	{file: "duplicate-field.json", objects: []string{"duplicate-field"}, warns: []string{
		`5: document 0 (ConfigMap "duplicate-field"): duplicate field "metadata": the last value is used, as kubectl uses it`,
	}},
	{file: "crlf.yaml", objects: []string{"crlf-one", "crlf-two"}},
	{file: "crlf-no-final-newline.yaml", objects: []string{"crlf-unterminated"}},
	{file: "tab-indentation.yaml", errs: []string{
		"4: document 0: invalid YAML: found character that cannot start any token",
	}},
	{file: "tab-in-second-document.yaml", objects: []string{"tabs-ok"}, errs: []string{
		"11: document 1: invalid YAML: found character that cannot start any token",
	}},
	{file: "tab-after-colon.yaml", objects: []string{"tab-value"}},
	{file: "separator-with-content.yaml", objects: []string{"sep-one"}, errs: []string{
		`5: invalid document separator "--- {apiVersion: v1, kind: ConfigMap, me...": only white space or a comment may follow "---" on its line (kubectl rejects it too)`,
	}},
	{file: "document-end-marker.yaml", objects: []string{"end-one"}, warns: []string{
		`5: what follows the document end marker "..." (from line 6 on) is ignored, as kubectl ignores it: start a new document with "---" instead`,
	}},
	{file: "json-then-yaml.yaml", objects: []string{"json-first", "yaml-second"}},
	{file: "flow-mapping.yaml", objects: []string{"flow"}},
	{file: "utf16-with-bom.yaml", objects: []string{"utf16"}},
	{file: "nul-byte.yaml", errs: []string{
		"6: document 0: invalid YAML: control characters are not allowed (U+0000); is this a binary file?",
	}},
	{file: "null-document.yaml", objects: []string{"after-null"}},
	{file: "yaml-directive.yaml", objects: []string{"after-directive"}, errs: []string{
		"1: document 0: invalid YAML: did not find expected <document start>",
	}},
	{file: "unknown-field.yaml", serverRejects: true, errs: []string{
		`5: document 0 (ConfigMap "unknown-field"): unknown field "dta"`,
	}},
}

// TestReadsLikeKubectl reads every file of testdata/kubectl with Parse and
// with kubectl's own reading code: what one reads, the other must read,
// to the same objects; what one rejects, the other must reject.
func TestReadsLikeKubectl(t *testing.T) {
	dir := filepath.Join("testdata", "kubectl")
	files, err := filepath.Glob(filepath.Join(dir, "[^.]*"))
	if err != nil {
		t.Fatal(err)
	}
	var inTable []string
	for _, tc := range kubectlCases {
		inTable = append(inTable, filepath.Join(dir, tc.file))
	}
	slices.Sort(inTable)
	if diff := cmp.Diff(inTable, files); diff != "" {
		t.Errorf("kubectlCases and the files of %s differ (-table +files):\n%s", dir, diff)
	}
	for _, tc := range kubectlCases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			docs, warns, errs := Parse(path, data)
			var names []string
			for _, d := range docs {
				names = append(names, d.Object.(interface{ GetName() string }).GetName())
			}
			if diff := cmp.Diff(tc.objects, names); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(prefixed(path+":", tc.warns), warnings(warns)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(prefixed(path+":", tc.errs), messages(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}

			objs, kerr := readAsKubectl(data)
			if kubectlRejects := kerr != nil; kubectlRejects != (len(errs) > 0 && !tc.serverRejects) {
				t.Fatalf("kubectl's reading: error %v; podguard's: %q", kerr, messages(errs))
			}
			if kerr != nil {
				return
			}
			if tc.serverRejects {
				return // podguard, like the API server, has no object to compare
			}
			var got []any
			for _, d := range docs {
				got = append(got, jsonValue(t, d.Raw))
			}
			var want []any
			for _, o := range objs {
				want = append(want, jsonValue(t, o))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("objects differ from kubectl's (-kubectl +podguard):\n%s", diff)
			}
		})
	}
}

func prefixed(prefix string, msgs []string) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, prefix+m)
	}
	return out
}

func jsonValue(t *testing.T, js []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	return v
}

// readAsKubectl reads a file as `kubectl create -f` does before it talks to
// the API server (k8s.io/cli-runtime/pkg/resource: FileVisitor,
// StreamVisitor, and the mapper's decoding into Unstructured), and returns
// the objects as JSON. Client-side schema validation is left out: kubectl
// skips it when the API server does strict field validation, as every
// supported one does. The first error ends the file, as in kubectl.
func readAsKubectl(data []byte) ([][]byte, error) {
	r := transform.NewReader(bytes.NewReader(data), unicode.BOMOverride(unicode.UTF8.NewDecoder()))
	d := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs [][]byte
	for {
		ext := k8sruntime.RawExtension{}
		if err := d.Decode(&ext); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		ext.Raw = bytes.TrimSpace(ext.Raw)
		if len(ext.Raw) == 0 || bytes.Equal(ext.Raw, []byte("null")) {
			continue
		}
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(ext.Raw, nil, nil)
		if err != nil {
			return nil, err
		}
		js, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		objs = append(objs, js)
	}
}
