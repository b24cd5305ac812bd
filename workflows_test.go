package podguard_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"

	"github.com/podguard/podguard"
)

// The workflows cannot run here; actionlint checks them statically: their
// syntax, expressions (${{ }}) and their types, the steps' ids, the
// permissions, the inputs of the actions it knows, and, when shellcheck is
// on the PATH, the run scripts.

const workflowsDir = ".github/workflows"

// lintWorkflow returns actionlint's findings on one workflow's content.
func lintWorkflow(t *testing.T, path string, content []byte) []string {
	t.Helper()
	opts := &actionlint.LinterOptions{LogWriter: io.Discard}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = sc
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint(path, content, nil)
	if err != nil {
		t.Fatalf("linting %s: %v", path, err)
	}
	var out []string
	for _, e := range errs {
		out = append(out, fmt.Sprintf("%s:%d:%d: %s [%s]", path, e.Line, e.Column, e.Message, e.Kind))
	}
	return out
}

// usesLine is a step's `uses:`; pinnedUses is one pinned to a commit, with
// the tag it was taken from in a comment.
var (
	usesLine   = regexp.MustCompile(`(?m)^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	pinnedUses = regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	tagComment = regexp.MustCompile(`^\s*#\s*v\d+(\.\d+)*\s*$`)
)

// unpinnedActions lists the actions a workflow takes by a tag or branch,
// which their owners can move, instead of by commit.
func unpinnedActions(path string, content []byte) []string {
	var out []string
	for _, m := range usesLine.FindAllStringSubmatch(string(content), -1) {
		if strings.HasPrefix(m[1], "./") {
			continue // an action of this repository
		}
		if !pinnedUses.MatchString(m[1]) || !tagComment.MatchString(m[2]) {
			out = append(out, fmt.Sprintf("%s: uses %s%s: want owner/repo@<commit SHA> # vX.Y.Z", path, m[1], m[2]))
		}
	}
	return out
}

func readWorkflows(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(workflowsDir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.ToSlash(p)] = data
	}
	for _, want := range []string{"release.yml", "ci.yml"} {
		if _, ok := files[workflowsDir+"/"+want]; !ok {
			t.Errorf("no workflow %s/%s", workflowsDir, want)
		}
	}
	return files
}

// shaPin is an action pinned to a commit, with its tag in a comment.
var shaPin = regexp.MustCompile(`@[0-9a-f]{40}(\s*#\s*(v\d+)[.\d]*)`)

// asMajorVersions rewrites the actions pinned to a commit to their major
// version (@v4), which actionlint knows the inputs and outputs of: it cannot
// check the inputs of an action it knows only by a commit SHA.
func asMajorVersions(content []byte) []byte {
	return shaPin.ReplaceAll(content, []byte("@$2$1"))
}

// lint runs actionlint on a workflow as it is and with its actions at their
// major versions.
func lint(t *testing.T, path string, content []byte) []string {
	return append(lintWorkflow(t, path, content), lintWorkflow(t, path, asMajorVersions(content))...)
}

func TestWorkflowsPassActionlint(t *testing.T) {
	for path, data := range readWorkflows(t) {
		for _, msg := range lint(t, path, data) {
			t.Error(msg)
		}
		for _, msg := range unpinnedActions(path, data) {
			t.Error(msg)
		}
	}
}

// The checks fail on broken workflows: a copy of release.yml with a typo in a
// step id, an invalid permission, an unknown event filter, a misspelt input
// of an action pinned by its commit, and an action taken by its tag.
func TestWorkflowChecksCatchBreakage(t *testing.T) {
	release, err := os.ReadFile(filepath.Join(workflowsDir, "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, old, new, want string
		pins                 bool
	}{
		{name: "a step id that does not exist", old: "steps.image.outputs.digest", new: "steps.imag.outputs.digest", want: `property "imag" is not defined`},
		{name: "an invalid permission", old: "id-token: write", new: "id-token: writ", want: `"writ" is invalid`},
		{name: "an unknown event", old: "tags: [\"v*\"]", new: "tag: [\"v*\"]", want: `unexpected key "tag"`},
		{name: "a misspelt action input", old: "platforms: linux/amd64,linux/arm64", new: "platform: linux/amd64,linux/arm64", want: `input "platform" is not defined in action "docker/build-push-action@v7"`},
		{name: "an action taken by its tag", old: "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1", new: "actions/checkout@v7", want: "uses actions/checkout@v7", pins: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(release, []byte(tt.old)) {
				t.Fatalf("release.yml does not contain %q", tt.old)
			}
			broken := bytes.Replace(release, []byte(tt.old), []byte(tt.new), 1)
			got := unpinnedActions("release.yml", broken)
			if !tt.pins {
				got = lint(t, workflowsDir+"/release.yml", broken)
			}
			if !strings.Contains(strings.Join(got, "\n"), tt.want) {
				t.Errorf("no finding contains %q; got:\n%s", tt.want, strings.Join(got, "\n"))
			}
		})
	}
}

// The release workflow publishes the image the manifests name, tagged with
// the git tag, never latest, and refuses a tag that is not VERSION.
func TestReleaseWorkflowPublishesTheImageTheManifestsName(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(workflowsDir, "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	release := string(data)
	for _, want := range []string{
		"IMAGE: " + podguard.ImageRepository + "\n",
		"tags: ${{ env.IMAGE }}:${{ github.ref_name }}\n",
		`"$(cat VERSION)" != "$TAG"`,
		"platforms: linux/amd64,linux/arm64\n",
		"id-token: write",
		"make dist VERSION=",
		"cosign sign --yes",
		"cosign sign-blob --yes",
	} {
		if !strings.Contains(release, want) {
			t.Errorf("release.yml does not contain %q", want)
		}
	}
	if strings.Contains(release, ":latest") {
		t.Error("release.yml pushes a latest tag")
	}
}

// TestReleaseWorkflowBuildsHelmAtTheTestedVersion holds the helm the
// release packages and pushes the chart with to the Helm SDK version the
// chart's tests run (go.mod).
func TestReleaseWorkflowBuildsHelmAtTheTestedVersion(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*helm\.sh/helm/v3 (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require helm.sh/helm/v3")
	}
	release, err := os.ReadFile(filepath.Join(".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "go install helm.sh/helm/v3/cmd/helm@" + string(m[1])
	if !strings.Contains(string(release), want) {
		t.Errorf("release.yml does not %q, the version the chart is tested with", want)
	}
	if got := regexp.MustCompile(`helm\.sh/helm/v3/cmd/helm@\S+`).FindAllString(string(release), -1); len(got) != 1 {
		t.Errorf("release.yml builds helm %d times (%v), want once", len(got), got)
	}
}
