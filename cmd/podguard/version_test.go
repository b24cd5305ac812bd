package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/podguard/podguard"
	"github.com/podguard/podguard/policies"
)

func TestVersionAndDashDashVersionPrintTheSame(t *testing.T) {
	for _, format := range [][]string{nil, {"-o", "json"}} {
		var a, b, stderr bytes.Buffer
		if code := run(append([]string{"version"}, format...), strings.NewReader(""), &a, &stderr); code != 0 {
			t.Fatalf("podguard version %v: exit %d: %s", format, code, stderr.String())
		}
		if code := run(append([]string{"--version"}, format...), strings.NewReader(""), &b, &stderr); code != 0 {
			t.Fatalf("podguard --version %v: exit %d: %s", format, code, stderr.String())
		}
		if a.String() != b.String() || a.Len() == 0 {
			t.Errorf("podguard version %v printed %q, podguard --version %q", format, a.String(), b.String())
		}
	}
}

func TestVersionJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version", "-o", "json"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got buildInfo
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, stdout.String())
	}
	if got.Version != version || got.GoVersion == "" || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("got %+v, want version %q, a Go version and platform %s/%s", got, version, runtime.GOOS, runtime.GOARCH)
	}
}

func TestResolveBuild(t *testing.T) {
	vcs := func(revision, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: revision}, {Key: "vcs.modified", Value: modified}}
	}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name                 string
		ldVersion, ldCommit  string
		bi                   *debug.BuildInfo
		wantVersion, wantSHA string
	}{
		{name: "the ldflags version wins (make build, the release workflow)", ldVersion: "v0.1.0-3-gabcdef0", ldCommit: "abc",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs(sha, "false")}, wantVersion: "v0.1.0-3-gabcdef0", wantSHA: "abc"},
		{name: "go install module@v0.2.0 reports the module version", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/podguard/podguard", Version: "v0.2.0"}},
			wantVersion: "v0.2.0"},
		{name: "go install module@commit reports the pseudo-version", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.2.1-0.20260101120000-0123456789ab"}},
			wantVersion: "v0.2.1-0.20260101120000-0123456789ab"},
		{name: "a go build in a clean checkout reports its revision", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(sha, "false")},
			wantVersion: "dev-0123456789ab", wantSHA: sha},
		{name: "a go build in a modified checkout says so", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(sha, "true")},
			wantVersion: "dev-0123456789ab-dirty", wantSHA: sha},
		{name: "the commit comes from the VCS stamp when ldflags give none", ldVersion: "v0.2.0", bi: &debug.BuildInfo{Settings: vcs(sha, "false")},
			wantVersion: "v0.2.0", wantSHA: sha},
		{name: "dev when nothing is known", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, wantVersion: "dev"},
		{name: "dev without build info", wantVersion: "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolveBuild(tt.ldVersion, tt.ldCommit, tt.bi)
			if got.Version != tt.wantVersion || got.Commit != tt.wantSHA {
				t.Errorf("got version %q commit %q, want %q %q", got.Version, got.Commit, tt.wantVersion, tt.wantSHA)
			}
			if got.GoVersion == "" || got.Platform == "" {
				t.Errorf("got %+v, want a Go version and a platform", got)
			}
		})
	}
}

// The log sidecar's default image is this binary's own release image, or,
// for a development build, the release this tree installs.
func TestSidecarImageFollowsTheVersion(t *testing.T) {
	want := podguard.Image(podguard.Version)
	if podguard.IsRelease(version) {
		want = podguard.Image(version)
	}
	if policies.DefaultSidecarImage != want {
		t.Fatalf("policies.DefaultSidecarImage = %q, want %q (version %q)", policies.DefaultSidecarImage, want, version)
	}
}
