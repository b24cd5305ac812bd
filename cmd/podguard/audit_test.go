package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditExitsTwoOnUsageErrorsAndAnUnreachableCluster(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	// Nothing listens on port 1 of loopback: the cluster is unreachable.
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown output format", []string{"-o", "xml"}, "unknown output format"},
		{"a bad selector", []string{"-l", "app in ("}, "--selector"},
		{"a bad kubelet version", []string{"--kubelet-version", "one"}, "--kubelet-version"},
		{"arguments", []string{"shop"}, "unexpected arguments"},
		{"an unreachable cluster", []string{"--timeout", "10s"}, "reading the API server's version"},
		{"an unreachable cluster, opt-in", []string{"--opt-in", "--timeout", "10s"}, "reading the API server's version"},
		{"an unknown context", []string{"--context", "nope"}, "kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"audit", "--kubeconfig", kubeconfig}, tc.args...)
			if code := run(args, nil, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.want)
			}
		})
	}
}
