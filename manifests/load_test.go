package manifests

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeTree creates files under dir: path (with / separators) to content.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for path, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// places lists the documents as "file:line name", and the errors, with the
// temporary folder left out.
func places(dir string, docs []Document, errs []error) ([]string, []string) {
	var gotDocs, gotErrs []string
	rel := func(s string) string { return strings.ReplaceAll(s, dir+string(filepath.Separator), "") }
	for _, d := range docs {
		gotDocs = append(gotDocs, fmt.Sprintf("%s:%d %s", rel(d.File), d.Line, kindName(d)))
	}
	for _, err := range errs {
		gotErrs = append(gotErrs, rel(err.Error()))
	}
	return gotDocs, gotErrs
}

// failingReader fails a test that reads it.
type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("stdin was read, but - was not given")
	return 0, io.EOF
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		paths    []string // relative to the folder the files are in
		stdin    string
		wantDocs []string
		wantErrs []string
	}{
		{
			name:     "reads a file",
			files:    map[string]string{"app.yaml": configMap},
			paths:    []string{"app.yaml"},
			wantDocs: []string{"app.yaml:1 ConfigMap/settings"},
		},
		{
			name: "walks nested folders in lexical order, taking only manifests",
			files: map[string]string{
				"b/z.yaml":               "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bz}\n",
				"b/c/a.yml":              "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bca}\n",
				"a.json":                 `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}`,
				"B.YAML":                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: upper}\n",
				"README.md":              "# not a manifest: {{ }}\n",
				"Chart.lock":             "x: [\n",
				"b/notes.txt":            "x: [\n",
				".hidden.yaml":           "x: [\n",
				".git/config.yaml":       "x: [\n",
				"b/.cache/deep/x.yaml":   "x: [\n",
				"b/c/empty.yaml":         "",
				"b/c/only-comments.yaml": "# nothing yet\n---\n",
			},
			paths: []string{"."},
			wantDocs: []string{
				"B.YAML:1 ConfigMap/upper",
				"a.json:1 ConfigMap/a",
				"b/c/a.yml:1 ConfigMap/bca",
				"b/z.yaml:1 ConfigMap/bz",
			},
		},
		{
			name:     "names walked files with the folder given",
			files:    map[string]string{"deploy/base/app.yaml": configMap},
			paths:    []string{"deploy/"},
			wantDocs: []string{"deploy/base/app.yaml:1 ConfigMap/settings"},
		},
		{
			name:     "reads a folder given as a hidden path",
			files:    map[string]string{".k8s/app.yaml": configMap},
			paths:    []string{".k8s"},
			wantDocs: []string{".k8s/app.yaml:1 ConfigMap/settings"},
		},
		{
			name:     "reads a file named explicitly whatever its extension",
			files:    map[string]string{"rendered.txt": configMap},
			paths:    []string{"rendered.txt"},
			wantDocs: []string{"rendered.txt:1 ConfigMap/settings"},
		},
		{
			name:     "reads stdin for -",
			files:    map[string]string{"app.yaml": configMap},
			paths:    []string{"app.yaml", "-"},
			stdin:    "---\n" + deployment,
			wantDocs: []string{"app.yaml:1 ConfigMap/settings", "-:2 Deployment/web"},
		},
		{
			name:     "reads stdin only once",
			paths:    []string{"-", "-"},
			stdin:    configMap,
			wantDocs: []string{"-:1 ConfigMap/settings"},
			wantErrs: []string{"-: standard input given more than once"},
		},
		{
			name:  "returns nothing for empty stdin",
			paths: []string{"-"},
		},
		{
			name:  "returns nothing for a folder with no manifests",
			files: map[string]string{"docs/README.md": "hello\n", "docs/empty/.keep": ""},
			paths: []string{"docs"},
		},
		{
			name:     "reports an empty path",
			paths:    []string{""},
			wantErrs: []string{"an empty path is neither a file nor a folder"},
		},
		{
			name:     "reports a path that does not exist",
			paths:    []string{"missing.yaml"},
			wantErrs: []string{"missing.yaml: no such file or directory"},
		},
		{
			name: "keeps reading other files when one is bad",
			files: map[string]string{
				"1-good.yaml":   configMap,
				"2-binary.yaml": "\x00\x01\x02",
				"3-broken.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: [\n",
				"4-typo.yaml":   strings.Replace(deployment, "image:", "imag:", 1),
				"5-good.json":   `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}`,
			},
			paths: []string{".", "missing"},
			wantDocs: []string{
				"1-good.yaml:1 ConfigMap/settings",
				"5-good.json:1 Namespace/team",
			},
			wantErrs: []string{
				"2-binary.yaml:1: document 0: invalid YAML: control characters are not allowed (U+0000); is this a binary file?",
				"3-broken.yaml:3: document 0: invalid YAML: did not find expected node content",
				`4-typo.yaml:14: document 0 (Deployment "web"): unknown field "spec.template.spec.containers[0].imag"`,
				"missing: no such file or directory",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			t.Chdir(dir)
			var stdin io.Reader = failingReader{t}
			if tc.stdin != "" || strings.Contains(strings.Join(tc.paths, " "), "-") {
				stdin = strings.NewReader(tc.stdin)
			}
			docs, _, errs := Load(tc.paths, stdin)
			gotDocs, gotErrs := places(dir, docs, errs)
			if diff := cmp.Diff(tc.wantDocs, gotDocs); diff != "" {
				t.Errorf("documents (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantErrs, gotErrs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadErrorsAreErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	_, _, errs := Load([]string{"missing.yaml"}, nil)
	if len(errs) != 1 {
		t.Fatalf("got %v, want one error", errs)
	}
	var e *Error
	if !errors.As(errs[0], &e) || e.File != "missing.yaml" || e.Line != 0 {
		t.Errorf("got %#v, want an *Error for missing.yaml without a line", errs[0])
	}
	if !errors.Is(errs[0], fs.ErrNotExist) {
		t.Errorf("error does not wrap fs.ErrNotExist")
	}
}

func TestLoadWithoutStdin(t *testing.T) {
	_, _, errs := Load([]string{"-"}, nil)
	if diff := cmp.Diff([]string{"-: no standard input to read"}, messages(errs)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestLoadRefusesLargeFiles(t *testing.T) {
	defer func(old int64) { maxFileSize = old }(maxFileSize)
	maxFileSize = 64
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"big.yaml": deployment, "small.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"})
	t.Chdir(dir)
	docs, _, errs := Load([]string{".", "-"}, strings.NewReader(deployment))
	gotDocs, gotErrs := places(dir, docs, errs)
	if diff := cmp.Diff([]string{"small.yaml:1 Namespace/a"}, gotDocs); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
	want := []string{
		"big.yaml: file is larger than 64 bytes; refusing to read it",
		"-: file is larger than 64 bytes; refusing to read it",
	}
	if diff := cmp.Diff(want, gotErrs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestLoadFollowsLinks(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"real/app.yaml": configMap, "other/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"})
	t.Chdir(dir)
	for old, link := range map[string]string{"real": "linked", "../other/ns.yaml": "real/ns-link.yaml", "nowhere.yaml": "real/dangling.yaml"} {
		if err := os.Symlink(old, link); err != nil {
			t.Skipf("cannot make links: %v", err)
		}
	}
	docs, _, errs := Load([]string{"linked"}, nil)
	gotDocs, gotErrs := places(dir, docs, errs)
	if diff := cmp.Diff([]string{"linked/app.yaml:1 ConfigMap/settings", "linked/ns-link.yaml:1 Namespace/a"}, gotDocs); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"linked/dangling.yaml: no such file or directory"}, gotErrs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestLoadReportsUnreadableFiles(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"secret.yaml": configMap, "ok.yaml": configMap, "locked/x.yaml": configMap})
	t.Chdir(dir)
	if err := os.Chmod("secret.yaml", 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("locked", 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod("locked", 0o755)
	docs, _, errs := Load([]string{"."}, nil)
	gotDocs, gotErrs := places(dir, docs, errs)
	if diff := cmp.Diff([]string{"ok.yaml:1 ConfigMap/settings"}, gotDocs); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"locked: permission denied", "secret.yaml: permission denied"}, gotErrs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// endless is /dev/zero: a stdin that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// An endless stdin is cut at the size limit, and reading it allocates less
// than 2.5 times the limit in all: the buffer's capacity never passes the
// limit (a bytes.Buffer's doubling took /dev/zero to about 290 MB for the
// 64 MiB limit).
func TestLoadCutsAnEndlessStdinWithinItsMemoryBudget(t *testing.T) {
	defer func(old int64) { maxFileSize = old }(maxFileSize)
	maxFileSize = 8 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, errs := Load([]string{"-"}, endless{})
	runtime.ReadMemStats(&after)
	if diff := cmp.Diff([]string{"-: file is larger than 8 MiB; refusing to read it"}, messages(errs)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > uint64(maxFileSize)*5/2 {
		t.Errorf("reading allocated %d bytes for a limit of %d: want at most 2.5 times the limit", allocated, maxFileSize)
	}
}
