package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "apiVersion: podguard.io/v1alpha1\nkind: Config\npolicies:\n  envFromKeys: {posix: deny}\n")
	bad := write("bad.yaml", "apiVersion: podguard.io/v1alpha1\nkind: Config\npolicies:\n  envFromKeys: {posx: deny}\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "prints usage without a command", wantCode: 2, wantStderr: []string{"Usage:", "podguard serve"}},
		{name: "rejects an unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`}},
		{name: "validates a good config", args: []string{"config", "validate", good}, wantCode: 0, wantStdout: []string{good + ": valid"}},
		{name: "reports a bad config with its field path and exits 1", args: []string{"config", "validate", good, bad}, wantCode: 1,
			wantStdout: []string{good + ": valid", "invalid config " + bad, "policies.envFromKeys.posx: Forbidden: unknown field"}},
		{name: "reports a missing config file", args: []string{"config", "validate", filepath.Join(dir, "nope.yaml")}, wantCode: 1, wantStdout: []string{"no such file"}},
		{name: "needs a file to validate", args: []string{"config", "validate"}, wantCode: 2, wantStderr: []string{"needs at least one FILE"}},
		{name: "needs the validate verb", args: []string{"config"}, wantCode: 2, wantStderr: []string{"usage: podguard config validate"}},
		{name: "rejects an unknown serve flag", args: []string{"serve", "--prot", "1"}, wantCode: 2, wantStderr: []string{"flag provided but not defined: -prot"}},
		{name: "rejects serve arguments", args: []string{"serve", "extra"}, wantCode: 2, wantStderr: []string{`serve takes no arguments`}},
		{name: "rejects an unknown cert mode", args: []string{"serve", "--cert-mode", "cert-manager"}, wantCode: 2,
			wantStderr: []string{`--cert-mode must be "files" or "self-managed", got "cert-manager"`}},
		{name: "rejects a bad self-managed host", args: []string{"serve", "--cert-mode", "self-managed", "--cert-hosts", "podguard.svc, under_score"}, wantCode: 2,
			wantStderr: []string{`--cert-hosts: "under_score" is neither an IP address nor a DNS name`}},
		{name: "rejects empty self-managed hosts", args: []string{"serve", "--cert-mode", "self-managed", "--cert-hosts", " , "}, wantCode: 2,
			wantStderr: []string{"--cert-hosts: no host names"}},
		{name: "rejects a zero rollover delay", args: []string{"serve", "--cert-mode", "self-managed", "--ca-rollover-delay", "0s"}, wantCode: 2,
			wantStderr: []string{"--ca-rollover-delay must be positive, got 0s"}},
		{name: "prints the version", args: []string{"version"}, wantCode: 0, wantStdout: []string{"podguard " + build.Version + "\n"}},
		{name: "prints the version for --version", args: []string{"--version"}, wantCode: 0, wantStdout: []string{"podguard " + build.Version + "\n"}},
		{name: "rejects an unknown version format", args: []string{"version", "-o", "yaml"}, wantCode: 2, wantStderr: []string{`unknown output format "yaml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func TestParseCertHosts(t *testing.T) {
	got, err := parseCertHosts(" podguard.podguard-system.svc, 10.0.0.1,,::1 ")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"podguard.podguard-system.svc", "10.0.0.1", "::1"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}
