//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// yamlParityCases is what kubectl v1.36 does with each file of
// manifests/testdata/kubectl (issue 10): `kubectl create --dry-run=client
// -f FILE`, which reads the file and stops short of the API server, and
// `--dry-run=server`, which also sends each object through the API server's
// strict field validation, as a real create or apply does. podguard check
// must accept what kubectl create accepts and reject what it rejects, and
// warn where kubectl warns; manifests.TestReadsLikeKubectl pins podguard's
// own messages for the same files.
var yamlParityCases = []struct {
	file string
	// client and server are whether kubectl accepts the file with
	// --dry-run=client and with --dry-run=server.
	client, server bool
	// podguardWarns is whether podguard check warns about it. kubectl warns
	// about none of these inputs: where podguard does, it says what kubectl
	// does silently (a duplicate key's last value wins, a bad byte becomes
	// U+FFFD, a document after "..." is dropped).
	podguardWarns bool
}{
	{file: "merge-key-then-override.yaml", client: true, server: true},
	{file: "override-then-merge-key.yaml", client: true, server: true},
	{file: "invalid-utf8-in-comment.yaml", client: true, server: true, podguardWarns: true},
	{file: "invalid-utf8-in-value.yaml", client: true, server: true, podguardWarns: true},
	{file: "bom-first-document.yaml", client: true, server: true},
	{file: "bom-second-document.yaml", client: true, server: true},
	{file: "duplicate-key.yaml", client: true, server: true, podguardWarns: true},
	{file: "duplicate-field.json", client: true, server: true, podguardWarns: true},
	{file: "crlf.yaml", client: true, server: true},
	{file: "crlf-no-final-newline.yaml", client: true, server: true},
	{file: "tab-indentation.yaml"},
	{file: "tab-in-second-document.yaml"},
	{file: "tab-after-colon.yaml", client: true, server: true},
	{file: "separator-with-content.yaml"},
	{file: "document-end-marker.yaml", client: true, server: true, podguardWarns: true},
	{file: "json-then-yaml.yaml", client: true, server: true},
	{file: "flow-mapping.yaml", client: true, server: true},
	{file: "utf16-with-bom.yaml", client: true, server: true},
	{file: "nul-byte.yaml"},
	{file: "null-document.yaml", client: true, server: true},
	// kubectl reads "%YAML 1.1" as a document of its own, which yaml
	// rejects: it has no content.
	{file: "yaml-directive.yaml"},
	// kubectl leaves field validation to the API server, so a client dry
	// run takes an unknown field; the server rejects it, as podguard does.
	{file: "unknown-field.yaml", client: true},
}

// kubectlWarning matches a warning kubectl prints: the API server's
// ("Warning: ...") or its own (klog's "W1201 12:00:00.000000 ...").
var kubectlWarning = regexp.MustCompile(`(?mi)^(warning: |W\d{4} )`)

// TestYAMLParity runs a real kubectl, built from the same pinned modules as
// the control plane (make kubectl), and podguard check over the same bytes,
// and requires the same verdict.
func TestYAMLParity(t *testing.T) {
	kubectl := filepath.Join(repoRoot, "bin", "kubectl")
	podguard := filepath.Join(repoRoot, "bin", "podguard")
	for _, bin := range []string{kubectl, podguard} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%v: run make kubectl build (make e2e does)", err)
		}
	}
	dir := filepath.Join(repoRoot, "manifests", "testdata", "kubectl")
	files, err := filepath.Glob(filepath.Join(dir, "[^.]*"))
	if err != nil {
		t.Fatal(err)
	}
	var inTable []string
	for _, tc := range yamlParityCases {
		inTable = append(inTable, filepath.Join(dir, tc.file))
	}
	slices.Sort(inTable)
	if !slices.Equal(inTable, files) {
		t.Fatalf("yamlParityCases lists %q, but %s holds %q", inTable, dir, files)
	}
	ns := newNamespace(t, "yaml", nil)
	cacheDir := t.TempDir()

	for _, tc := range yamlParityCases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			client := runKubectlCreate(t, kubectl, cacheDir, ns, "client", path)
			server := runKubectlCreate(t, kubectl, cacheDir, ns, "server", path)
			pg := runPodguardCheck(t, podguard, path)
			t.Logf("kubectl --dry-run=client: accepted %v, objects %q\n%s", client.accepted, client.objects, client.stderr)
			t.Logf("kubectl --dry-run=server: accepted %v, objects %q\n%s", server.accepted, server.objects, server.stderr)
			t.Logf("podguard check: exit %d\n%s", pg.code, pg.output)

			if client.accepted != tc.client || server.accepted != tc.server {
				t.Errorf("kubectl accepted the file with --dry-run=client %v and --dry-run=server %v; the table says %v and %v",
					client.accepted, server.accepted, tc.client, tc.server)
			}
			if pg.accepted() != server.accepted {
				t.Errorf("podguard check accepted = %v (exit %d), kubectl create accepted = %v", pg.accepted(), pg.code, server.accepted)
			}
			if client.accepted != server.accepted && tc.file != "unknown-field.yaml" {
				t.Errorf("kubectl's client and server dry runs disagree on a file that is only about reading YAML")
			}
			if server.accepted && pg.accepted() && pg.report.Summary.Documents != len(server.objects) {
				t.Errorf("podguard read %d objects, kubectl created %q", pg.report.Summary.Documents, server.objects)
			}
			kubectlWarned := kubectlWarning.MatchString(client.stderr) || kubectlWarning.MatchString(server.stderr)
			if kubectlWarned && !pg.warned() {
				t.Errorf("kubectl warned and podguard check did not")
			}
			if pg.warned() != tc.podguardWarns {
				t.Errorf("podguard check warned = %v, the table says %v", pg.warned(), tc.podguardWarns)
			}
			if kubectlWarned && !tc.podguardWarns {
				t.Errorf("kubectl warned, and the table says podguard need not")
			}
		})
	}
}

// kubectlRun is what a kubectl create did.
type kubectlRun struct {
	accepted bool
	objects  []string // "configmap/name", as -o name prints them
	stderr   string
}

// runKubectlCreate runs kubectl create with a dry run of the given kind.
func runKubectlCreate(t *testing.T, kubectl, cacheDir, ns, dryRun, path string) kubectlRun {
	t.Helper()
	ctx := testContext(t, time.Minute)
	cmd := exec.CommandContext(ctx, kubectl, "create", "--dry-run="+dryRun, "-o", "name",
		"--kubeconfig", cluster.KubeconfigPath, "--cache-dir", cacheDir, "-n", ns, "-f", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("kubectl: %v\n%s", err, stderr.String())
	}
	return kubectlRun{accepted: err == nil, objects: strings.Fields(stdout.String()), stderr: stderr.String()}
}

// checkRun is what a podguard check -o json did.
type checkRun struct {
	code   int
	output string
	report struct {
		InputWarnings []json.RawMessage `json:"inputWarnings"`
		Summary       struct {
			Documents int `json:"documents"`
			Warnings  int `json:"warnings"`
			Errors    int `json:"errors"`
		} `json:"summary"`
	}
}

// accepted is whether nothing would be rejected; the inputs are
// ConfigMaps, which no policy checks, so only reading can fail.
func (r checkRun) accepted() bool { return r.code == 0 }
func (r checkRun) warned() bool   { return r.report.Summary.Warnings > 0 }

func runPodguardCheck(t *testing.T, podguard, path string) checkRun {
	t.Helper()
	ctx := testContext(t, time.Minute)
	cmd := exec.CommandContext(ctx, podguard, "check", "-o", "json", "-f", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var r checkRun
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("podguard check: %v\n%s", err, stderr.String())
	}
	r.output = string(out) + stderr.String()
	if r.code == 0 || r.code == 2 && len(out) > 0 {
		if err := json.Unmarshal(out, &r.report); err != nil {
			t.Fatalf("podguard check -o json: %v\n%s", err, r.output)
		}
	}
	if r.code != 0 && r.code != 2 {
		t.Fatalf("podguard check exited %d: only reading can fail on these inputs\n%s", r.code, r.output)
	}
	return r
}
