package inspector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podguard/podguard/internal/registrytest"
	"github.com/podguard/podguard/policies"
)

// seededInspector returns an Inspector of its own (back-off is per registry
// host, so a fault case must not back off the others) on the shared seeded
// registry.
func seededInspector(t *testing.T, reg *registrytest.Registry, o Options) *Inspector {
	t.Helper()
	o.Registries = append(o.Registries, reg.Host)
	if o.FetchTimeout == 0 {
		o.FetchTimeout = 10 * time.Second
	}
	i, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(i.Close)
	return i
}

func TestSeededRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	imgs := registrytest.SeedWith(t, reg, registrytest.SeedOptions{ManyEntries: 20_000})

	type want struct {
		user, workdir string
		files         []string // regular files after symlinks
		dirs          []string
		absent        []string
	}
	known := []struct {
		name     string
		ref      string
		platform string
		digest   string
		want     want
	}{
		{"tomcat", imgs.Tomcat.Ref, "", imgs.Tomcat.Digest.String(), want{
			workdir: "/usr/local/tomcat", files: []string{"/usr/local/tomcat/conf/server.xml", "/usr/local/tomcat/conf/web.xml"},
			dirs: []string{"/usr/local/tomcat/logs", "/bin"}, absent: []string{"/etc/pki", "/etc/pki/tls/certs"}}},
		{"ubuntu", imgs.Ubuntu.Ref, "", imgs.Ubuntu.Digest.String(), want{
			files: []string{"/etc/ssl/certs/ca-certificates.crt", "/bin/sh"}, absent: []string{"/etc/pki/tls/certs"}}},
		{"ubi", imgs.UBI.Ref, "", imgs.UBI.Digest.String(), want{user: "1001", workdir: "/opt/app-root/src",
			files: []string{"/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-bundle.crt"}, dirs: []string{"/etc/pki/tls/certs"}}},
		{"whiteout", imgs.Whiteout.Ref, "", imgs.Whiteout.Digest.String(), want{
			files: []string{"/app/keep.txt", "/opt/data/y"}, absent: []string{"/app/config", "/app/config/a.yaml", "/opt/data/x"}}},
		{"appconfig", imgs.AppConfig.Ref, "", imgs.AppConfig.Digest.String(), want{user: "10001:10001", workdir: "/app",
			files: []string{"/app/config/application.yaml"}}},
		{"users root", imgs.UsersRoot.Ref, "", imgs.UsersRoot.Digest.String(), want{user: "root"}},
		{"users 1000", imgs.UsersNumber.Ref, "", imgs.UsersNumber.Digest.String(), want{user: "1000"}},
		{"users named", imgs.UsersNamed.Ref, "", imgs.UsersNamed.Digest.String(), want{user: "app"}},
		{"multiarch amd64", imgs.MultiArch.Ref, "linux/amd64", imgs.MultiArchAMD64.Digest.String(), want{
			files: []string{"/opt/amd64-only"}, absent: []string{"/opt/arm64-only"}}},
		{"multiarch arm64", imgs.MultiArch.Ref, "linux/arm64", imgs.MultiArchARM64.Digest.String(), want{
			files: []string{"/opt/arm64-only"}, absent: []string{"/opt/amd64-only"}}},
		{"multiarch by digest", imgs.MultiArch.DigestRef(), "linux/arm64/v8", imgs.MultiArchARM64.Digest.String(), want{
			files: []string{"/opt/arm64-only"}}},
		{"traversal stays inside", imgs.MaliciousTraversal.Ref, "", imgs.MaliciousTraversal.Digest.String(), want{}},
	}
	i := seededInspector(t, reg, Options{})
	for _, tc := range known {
		t.Run(tc.name, func(t *testing.T) {
			f := inspectOne(t, i, Request{Refs: []string{tc.ref}, Platform: tc.platform}, 10*time.Second)
			mustKnown(t, f)
			if f.Digest != tc.digest || f.User != tc.want.user || f.WorkingDir != tc.want.workdir {
				t.Errorf("digest %s user %q workdir %q; want %s %q %q", f.Digest, f.User, f.WorkingDir, tc.digest, tc.want.user, tc.want.workdir)
			}
			check := func(paths []string, kind policies.FileKind) {
				for _, p := range paths {
					if k, resolved := f.FS.Stat(p); k != kind {
						t.Errorf("Stat(%s) = %d (%s), want %d", p, k, resolved, kind)
					}
				}
			}
			check(tc.want.files, policies.FileRegular)
			check(tc.want.dirs, policies.FileDir)
			check(tc.want.absent, policies.FileAbsent)
		})
	}
	t.Run("tomcat conf files", func(t *testing.T) {
		f := inspectOne(t, i, Request{Refs: []string{imgs.Tomcat.Ref}}, 10*time.Second)
		mustKnown(t, f)
		if n, sample := f.FS.Files("/usr/local/tomcat/conf", 3); n != len(registrytest.TomcatConfFiles) || len(sample) != 3 {
			t.Errorf("Files(conf) = %d %v, want %d files", n, sample, len(registrytest.TomcatConfFiles))
		}
	})

	failed := []struct {
		name string
		o    Options
		ref  string
		why  string
	}{
		{"huge PAX header", Options{}, imgs.MaliciousPAX.Ref, "layer 1 of 1"},
		{"too many entries", Options{MaxEntries: 10_000}, imgs.MaliciousMany.Ref, "it has more than 10000 paths (images.maxEntries)"},
		{"endless blob declared 1 TiB", Options{}, imgs.Endless.Ref, "exceeds 2147483648 compressed bytes"},
		{"500", Options{}, imgs.Broken.Ref, fmt.Sprintf("registry %s failed (HTTP 500", reg.Host)},
		{"stalled blob", Options{FetchTimeout: 500 * time.Millisecond}, imgs.Stalled.Ref, "timed out after 500ms"},
		{"private, anonymously", Options{}, imgs.Private.Ref, "refused anonymous access (HTTP 401"},
	}
	for _, tc := range failed {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			f := inspectOne(t, seededInspector(t, reg, tc.o), Request{Refs: []string{tc.ref}}, 10*time.Second)
			if f.Status != policies.ImageFailed || !strings.Contains(f.Why, tc.why) {
				t.Errorf("status %d why %q; want failed with %q", f.Status, f.Why, tc.why)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}

	t.Run("private with its pull secret", func(t *testing.T) {
		reads := 0
		i := seededInspector(t, reg, Options{PullSecrets: func(_ context.Context, ns, n string) (*corev1.Secret, error) {
			reads++
			return &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{
				corev1.DockerConfigJsonKey: reg.DockerConfigJSON(registrytest.PrivateUser, registrytest.PrivatePassword)}}, nil
		}})
		f := inspectOne(t, i, Request{Namespace: "apps", Refs: []string{imgs.Private.Ref}, PullSecrets: []string{"regcred"}}, 10*time.Second)
		mustKnown(t, f)
		if f.User != "10001:10001" || reads != 1 {
			t.Errorf("user %q after %d secret reads; want 10001:10001 after 1", f.User, reads)
		}
	})

	t.Run("slow registry within the budget", func(t *testing.T) {
		i := seededInspector(t, reg, Options{})
		start := time.Now()
		f := inspectOne(t, i, Request{Refs: []string{imgs.Slow.Ref}}, 200*time.Millisecond)
		if took := time.Since(start); took > 250*time.Millisecond {
			t.Errorf("Inspect took %s with a 200ms budget", took)
		}
		if f.Status != policies.ImagePending {
			t.Errorf("status %d why %q; want pending", f.Status, f.Why)
		}
	})

	t.Run("500 backs the registry off", func(t *testing.T) {
		i := seededInspector(t, reg, Options{})
		inspectOne(t, i, Request{Refs: []string{imgs.Broken.Ref}}, 10*time.Second)
		reg.ResetRequests()
		f := inspectOne(t, i, Request{Refs: []string{imgs.Ubuntu.Ref}}, 10*time.Second)
		if f.Status != policies.ImageFailed || !strings.Contains(f.Why, "(HTTP 500); retrying after 10s") {
			t.Errorf("status %d why %q; want failed, backed off", f.Status, f.Why)
		}
		if n := len(reg.Requests()); n != 0 {
			t.Errorf("%d requests during the back-off, want 0", n)
		}
	})
}
