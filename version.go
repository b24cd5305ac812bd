// Package podguard records which release this tree installs: the version in
// the VERSION file, and the image the release workflow publishes for it.
//
// VERSION is the one source of truth. deploy/base's Deployment, the Helm
// chart's appVersion and image tag, the log-sidecar policy's default image,
// the README's install snippets and the release workflow's tag check all
// follow it; deploy/version_test.go holds them to it. A release bumps VERSION
// (make set-version V=vX.Y.Z), commits, and pushes the tag of the same name.
package podguard

import (
	_ "embed"
	"regexp"
	"strings"
)

//go:embed VERSION
var versionFile string

// Version is the release the manifests in this tree install, as its git tag:
// vMAJOR.MINOR.PATCH, or vMAJOR.MINOR.PATCH-rc.N for a release candidate.
var Version = strings.TrimSpace(versionFile)

// ImageRepository is where the release workflow pushes podguard's
// multi-arch image, tagged with the git tag.
const ImageRepository = "ghcr.io/podguard/podguard"

// Image returns the reference of podguard's image for a release version.
func Image(version string) string { return ImageRepository + ":" + version }

// releaseTag is the version scheme: semver without build metadata, with
// release candidates as the only pre-releases.
var releaseTag = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-rc\.(0|[1-9][0-9]*))?$`)

// IsRelease reports whether v is a release tag (v1.2.3, v1.2.3-rc.1), as
// opposed to a development build's version (dev, v1.2.3-4-gabcdef0-dirty
// from git describe, or a Go pseudo-version).
func IsRelease(v string) bool { return releaseTag.MatchString(v) }
