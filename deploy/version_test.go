package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/podguard/podguard"
	"github.com/podguard/podguard/config"
)

// The repository's VERSION file (podguard.Version) is the one source of the
// release that the manifests install. These tests hold every place that
// names podguard's image to it: each overlay's Deployment, the log-sidecar
// policy's default image, the README's install snippets and, once it
// exists, the Helm chart. `make set-version V=vX.Y.Z` rewrites them all.

// checkReleaseImage checks that every podguard container of the render runs
// the image of the release in VERSION, pulled IfNotPresent: a versioned tag
// never changes, so a node that has it need not ask the registry again (and
// a registry outage does not stop podguard from restarting).
func checkReleaseImage(r *render, _ overlay, p *problems) {
	want := podguard.Image(podguard.Version)
	for _, d := range r.deployments {
		for i, c := range d.Spec.Template.Spec.Containers {
			where := fmt.Sprintf("spec.template.spec.containers[%d]", i)
			if c.Name == containerName && c.Image != want {
				p.add(deploymentRef(d), where+".image", "%q, want %q (VERSION)", c.Image, want)
			}
			if strings.HasPrefix(c.Image, podguard.ImageRepository+":") && c.ImagePullPolicy != corev1.PullIfNotPresent {
				p.add(deploymentRef(d), where+".imagePullPolicy", "%q, want IfNotPresent", c.ImagePullPolicy)
			}
		}
	}
}

func TestEveryOverlayRunsTheReleaseImage(t *testing.T) {
	for _, o := range overlays {
		r, err := load(o.dir)
		if err != nil {
			t.Fatalf("overlay %s: %v", o.dir, err)
		}
		var p problems
		checkReleaseImage(r, o, &p)
		for _, msg := range p {
			t.Errorf("overlay %s: %s", o.dir, msg)
		}
	}
}

func TestCheckReleaseImageCatchesBreakage(t *testing.T) {
	for _, tt := range []struct {
		name   string
		break_ func(c *corev1.Container)
		want   string
	}{
		{"an unversioned image", func(c *corev1.Container) { c.Image = "podguard:latest" },
			`containers[0].image: "podguard:latest", want "` + podguard.Image(podguard.Version) + `"`},
		{"another release", func(c *corev1.Container) { c.Image = podguard.Image("v0.0.1") }, `want "` + podguard.Image(podguard.Version) + `"`},
		{"pulled Always", func(c *corev1.Container) { c.ImagePullPolicy = corev1.PullAlways }, `imagePullPolicy: "Always", want IfNotPresent`},
		{"no pull policy", func(c *corev1.Container) { c.ImagePullPolicy = "" }, `imagePullPolicy: "", want IfNotPresent`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := load(overlays[0].dir)
			if err != nil {
				t.Fatal(err)
			}
			var p problems
			c, _ := podguardContainer(r.deployment(&p), &p)
			if c == nil {
				t.Fatalf("no podguard container: %v", p)
			}
			tt.break_(c)
			checkReleaseImage(r, overlays[0], &p)
			if !slices.ContainsFunc(p, func(msg string) bool { return strings.Contains(msg, tt.want) }) {
				t.Errorf("no problem contains %q; got %q", tt.want, p)
			}
		})
	}
}

// An overlay of the user's own replaces the image with kustomize's images
// (what `kustomize edit set image ghcr.io/podguard/podguard=...` writes), as
// the README's Install section says.
func TestTheImageCanBeOverridden(t *testing.T) {
	dir := t.TempDir()
	target, err := filepath.Abs(filepath.Join("overlays", "opt-in"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + filepath.ToSlash(rel) +
		"\nimages:\n- name: " + podguard.ImageRepository + "\n  newName: registry.example.com/podguard\n  newTag: v9.9.9\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRender(objs)
	if err != nil {
		t.Fatal(err)
	}
	var p problems
	c, _ := podguardContainer(r.deployment(&p), &p)
	if c == nil {
		t.Fatalf("no podguard container: %v", p)
	}
	if want := "registry.example.com/podguard:v9.9.9"; c.Image != want {
		t.Errorf("image = %q, want %q", c.Image, want)
	}
}

// The log sidecar runs podguard's own image: by default, the one the
// manifests install.
func TestLogSidecarDefaultsToTheReleaseImage(t *testing.T) {
	if got, want := config.Default().Policies.LogSidecar.Image, podguard.Image(podguard.Version); got != want {
		t.Errorf("the log sidecar's default image is %q, want %q", got, want)
	}
}

var (
	readmeImage = regexp.MustCompile(`ghcr\.io/podguard/podguard:([^\s"'` + "`" + `)\]]+)`)
	readmeRef   = regexp.MustCompile(`\?ref=([^\s"'` + "`" + `)\]]+)`)
	readmeTag   = regexp.MustCompile(`newTag: (v[^\s]+)`)
	// The cosign certificate identity of a release's signature.
	readmeIdentity = regexp.MustCompile(`refs/tags/(v[^\s"'` + "`" + `]+)`)
	// The chart's version in `helm install oci://.../podguard --version
	// X.Y.Z`: the release's without its v.
	readmeChart = regexp.MustCompile(`charts/podguard --version ([^\s"'` + "`" + `]+)`)
)

// readmeVersionProblems lists the places in a README that name a podguard
// release other than VERSION (placeholders such as vX.Y.Z and <version> are
// fine), and any podguard:latest.
func readmeVersionProblems(readme string) []string {
	var out []string
	for n, line := range strings.Split(readme, "\n") {
		for _, re := range []*regexp.Regexp{readmeImage, readmeRef, readmeTag, readmeIdentity, readmeChart} {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				v := m[1]
				if re == readmeChart {
					v = "v" + v
				}
				if !podguard.IsRelease(v) || v == podguard.Version {
					continue // a placeholder, or the release
				}
				out = append(out, fmt.Sprintf("README.md:%d: %q names %s, want %s (VERSION)", n+1, m[0], v, podguard.Version))
			}
		}
		if strings.Contains(line, "podguard:latest") {
			out = append(out, fmt.Sprintf("README.md:%d: names podguard:latest, which is not published", n+1))
		}
	}
	return out
}

func TestReadmeNamesTheRelease(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range readmeVersionProblems(string(data)) {
		t.Error(msg)
	}
	if !strings.Contains(string(data), podguard.Image(podguard.Version)) {
		t.Errorf("README.md does not name the release image %s", podguard.Image(podguard.Version))
	}
	broken := "resources:\n- github.com/podguard/podguard//deploy/base?ref=v0.0.1\n" +
		"image: ghcr.io/podguard/podguard:v0.0.2\nimage: podguard:latest\n" +
		"--certificate-identity https://github.com/podguard/podguard/.github/workflows/release.yml@refs/tags/v0.0.3\n" +
		"helm install podguard oci://ghcr.io/podguard/charts/podguard --version 0.0.4\n" +
		"fine: ghcr.io/podguard/podguard:vX.Y.Z ?ref=<version> ghcr.io/podguard/podguard:" + podguard.Version + " charts/podguard --version " + strings.TrimPrefix(podguard.Version, "v") + "\n"
	if got := readmeVersionProblems(broken); len(got) != 5 {
		t.Errorf("on a README naming v0.0.1, v0.0.2, v0.0.3, chart 0.0.4 and podguard:latest, got %d problems, want 5: %q", len(got), got)
	}
}

// TestChartNamesTheRelease holds the Helm chart to VERSION: its appVersion is
// the git tag, its version the same without the v (a chart version is
// SemVer), and its default image the release image.
func TestChartNamesTheRelease(t *testing.T) {
	chartYAML, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chartYAML, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.AppVersion != podguard.Version {
		t.Errorf("Chart.yaml appVersion %q, want %q (VERSION)", chart.AppVersion, podguard.Version)
	}
	if want := strings.TrimPrefix(podguard.Version, "v"); chart.Version != want {
		t.Errorf("Chart.yaml version %q, want %q (VERSION without the v)", chart.Version, want)
	}
	valuesYAML, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
			PullPolicy string `json:"pullPolicy"`
		} `json:"image"`
	}
	if err := yaml.Unmarshal(valuesYAML, &values); err != nil {
		t.Fatal(err)
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	if got, want := values.Image.Repository+":"+tag, podguard.Image(podguard.Version); got != want {
		t.Errorf("values.yaml image (repository:tag, tag defaulting to appVersion) %q, want %q", got, want)
	}
	if values.Image.PullPolicy != string(corev1.PullIfNotPresent) {
		t.Errorf("values.yaml image.pullPolicy %q, want IfNotPresent", values.Image.PullPolicy)
	}
}

// TestOneGoToolchain holds the image's build stage to the toolchain go.mod
// names, which setup-go installs for the release's CLI binaries: one
// release, one compiler.
func TestOneGoToolchain(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod names no toolchain: setup-go would install the go line's version, the Dockerfile another")
	}
	docker, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if want := "golang:" + string(m[1]) + " "; !strings.Contains(string(docker), want) {
		t.Errorf("the Dockerfile's build stage is not %q, the toolchain go.mod names", strings.TrimSpace(want))
	}
}
