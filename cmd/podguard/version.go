package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/podguard/podguard"
	"github.com/podguard/podguard/policies"
)

// version and commit are set at build time by make build, the Dockerfile and
// the release workflow: -ldflags "-X main.version=v1.2.3 -X main.commit=SHA".
// A build without them (go install, go build) gets them from the build info
// the Go toolchain embeds: see resolveBuild.
var (
	version = ""
	commit  = ""
)

// buildInfo is what `podguard version` reports.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// build is this binary's build, resolved once at start-up.
var build = resolveBuild(version, commit, readBuildInfo())

func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

func init() {
	version = build.Version
	// The log sidecar runs podguard's own image. A release binary streams
	// with the image of its own release; any other build with the release
	// this tree installs (VERSION), which policies already defaults to.
	if podguard.IsRelease(version) {
		policies.DefaultSidecarImage = podguard.Image(version)
	}
}

// resolveBuild says which podguard this is, from the best source known:
//   - the -X main.version flag of make build and the release builds;
//   - else the module version the Go toolchain records: v0.2.0 for
//     `go install github.com/podguard/podguard/cmd/podguard@v0.2.0`, and,
//     since Go 1.24, a pseudo-version (v0.0.0-DATE-REVISION[+dirty]) for a
//     go build in a git checkout;
//   - else, when the toolchain records no version but a VCS stamp,
//     dev-REVISION[-dirty];
//   - else (-buildvcs=false, a tree outside git) dev.
func resolveBuild(ldVersion, ldCommit string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	var revision string
	var modified bool
	if bi != nil {
		if bi.GoVersion != "" {
			b.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if b.Commit == "" {
		b.Commit = revision
	}
	if b.Version != "" {
		return b
	}
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
		return b
	}
	b.Version = "dev"
	if revision != "" {
		b.Version += "-" + shortRevision(revision)
		if modified {
			b.Version += "-dirty"
		}
	}
	return b
}

func shortRevision(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// versionCommand runs `podguard version` and `podguard --version`, which
// print the same thing.
func versionCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("o", "text", "output format: text or json (version, commit, Go version, platform)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: podguard version [-o text|json]\n\nPrints podguard's version (also: podguard --version).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("version takes no arguments")
	}
	switch *format {
	case "text":
		_, err := fmt.Fprintln(stdout, "podguard", build.Version)
		return err
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(build)
	default:
		return usageError("unknown output format %q: use text or json", *format)
	}
}
