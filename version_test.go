package podguard

import "testing"

func TestVersionFileIsARelease(t *testing.T) {
	if !IsRelease(Version) {
		t.Fatalf("VERSION holds %q, want a release tag such as v1.2.3 or v1.2.3-rc.1", Version)
	}
}

func TestIsRelease(t *testing.T) {
	for v, want := range map[string]bool{
		"v0.1.0":                             true,
		"v1.22.3":                            true,
		"v1.2.3-rc.1":                        true,
		"v1.2.3-rc.0":                        true,
		"1.2.3":                              false, // the git tag has the v
		"v1.2":                               false,
		"v01.2.3":                            false,
		"v1.2.3-beta.1":                      false, // pre-releases are release candidates only
		"v1.2.3-rc1":                         false,
		"v1.2.3+build.5":                     false,
		"v0.1.0-3-gabcdef0":                  false, // git describe past a tag
		"v0.1.0-dirty":                       false,
		"v0.0.0-20260101120000-abcdef012345": false, // a Go pseudo-version
		"dev":                                false,
		"":                                   false,
	} {
		if got := IsRelease(v); got != want {
			t.Errorf("IsRelease(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestImage(t *testing.T) {
	if got, want := Image("v1.2.3"), "ghcr.io/podguard/podguard:v1.2.3"; got != want {
		t.Fatalf("Image = %q, want %q", got, want)
	}
}
