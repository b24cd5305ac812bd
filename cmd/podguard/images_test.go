package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podguard/podguard/internal/registrytest"
)

// checkJSON is the part of check's JSON output these tests read.
type checkJSON struct {
	Results []struct {
		Name       string `json:"name"`
		ImageAware bool   `json:"imageAware"`
		Violations []struct {
			Policy  string `json:"policy"`
			Message string `json:"message"`
		} `json:"violations"`
		Warnings []string `json:"warnings"`
		Images   []struct {
			Ref, Status, Digest, Reason string
		} `json:"images"`
	} `json:"results"`
}

// mountPod is a Pod that mounts ConfigMap conf at mountPath, and lists the
// pull secrets given.
func mountPod(name, image, mountPath string, pullSecrets ...string) string {
	secrets := ""
	if len(pullSecrets) > 0 {
		secrets = "\n  imagePullSecrets: [{name: " + strings.Join(pullSecrets, "}, {name: ") + "}]"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: shop}
spec:%s
  volumes: [{name: conf, configMap: {name: conf}}]
  containers:
  - name: app
    image: %q
    volumeMounts: [{name: conf, mountPath: %s}]
---
`, name, secrets, image, mountPath)
}

const confMap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf, namespace: shop}\ndata: {settings.ini: x}\n---\n"

func runCheck(t *testing.T, args ...string) (checkJSON, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"check", "-o", "json"}, args...), nil, &stdout, &stderr)
	var out checkJSON
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("exit %d, output is not JSON (%v):\n%s\n%s", code, err, stdout.String(), stderr.String())
	}
	return out, code, stderr.String()
}

func TestCheckImagesJudgesWhatTheImageShips(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no docker config of the machine's
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	r := registrytest.Start(t)
	imgs := registrytest.SeedWith(t, r, registrytest.SeedOptions{ManyEntries: 1000})
	pullSecret := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: shop}\ntype: kubernetes.io/dockerconfigjson\ndata: {.dockerconfigjson: %s}\n---\n",
		base64.StdEncoding.EncodeToString(r.DockerConfigJSON(registrytest.PrivateUser, registrytest.PrivatePassword)))
	dir := writeFiles(t, map[string]string{"pods.yaml": confMap + pullSecret +
		mountPod("kubeflow", imgs.Ubuntu.Ref, "/etc/pki/tls/certs") +
		mountPod("tomcat", imgs.Tomcat.Ref, "/usr/local/tomcat/conf") +
		mountPod("custom", imgs.AppConfig.Ref, "/app/config") +
		mountPod("private", imgs.Private.Ref, "/app/config", "regcred") +
		mountPod("elsewhere", "10.0.0.130:5000/app:1", "/etc/pki/tls/certs")})
	files := []string{"-f", filepath.Join(dir, "pods.yaml")}

	// Offline, the list decides: the kubeflow mount is denied, the custom
	// image's hidden config is not seen.
	offline, code, _ := runCheck(t, files...)
	if code != 1 || len(offline.Results) != 5 {
		t.Fatalf("offline: exit %d, %d results", code, len(offline.Results))
	}
	if len(offline.Results[0].Violations) == 0 || len(offline.Results[2].Violations) != 0 || offline.Results[0].ImageAware {
		t.Errorf("offline verdicts: %+v", offline.Results)
	}

	cache := t.TempDir()
	out, code, stderr := runCheck(t, append(files, "--images", "--image-registries", "127.0.0.1:*", "--image-cache", cache)...)
	if code != 1 {
		t.Fatalf("--images: exit %d: %s", code, stderr)
	}
	byName := map[string]int{}
	for i, res := range out.Results {
		byName[res.Name] = i
	}
	kubeflow, tomcat, custom, private, elsewhere := out.Results[byName["kubeflow"]], out.Results[byName["tomcat"]], out.Results[byName["custom"]], out.Results[byName["private"]], out.Results[byName["elsewhere"]]
	if len(kubeflow.Violations) != 0 || !kubeflow.ImageAware {
		t.Errorf("a Secret over /etc/pki/tls/certs of an image without /etc/pki: %+v", kubeflow)
	}
	if len(tomcat.Violations) != 1 || !strings.Contains(tomcat.Violations[0].Message, "context.xml") || !tomcat.ImageAware {
		t.Errorf("tomcat's conf dir: want one denial naming context.xml, got %+v", tomcat)
	}
	if len(custom.Violations) != 1 || !strings.Contains(custom.Violations[0].Message, "application.yaml") {
		t.Errorf("a custom image's /app/config: want a denial naming application.yaml, got %+v", custom)
	}
	if len(private.Violations) != 1 || !private.ImageAware || private.Images[0].Digest != imgs.Private.Digest.String() {
		t.Errorf("the private image, through the manifests' pull secret: %+v (digest want %s)", private, imgs.Private.Digest)
	}
	if elsewhere.ImageAware || len(elsewhere.Images) != 1 || elsewhere.Images[0].Status != "not-inspected" || !strings.Contains(elsewhere.Images[0].Reason, "not in images.registries") {
		t.Errorf("an image from a registry not allowed: %+v", elsewhere)
	}
	for _, req := range r.Requests() {
		if strings.Contains(req.Path, "/10.0.0.130") {
			t.Errorf("the registry was asked for another registry's image: %s", req.Path)
		}
	}

	// A second run reads the indexes from the cache: no layer is fetched.
	r.ResetRequests()
	if again, _, _ := runCheck(t, append(files, "--images", "--image-registries", "127.0.0.1:*", "--image-cache", cache)...); !again.Results[byName["tomcat"]].ImageAware {
		t.Errorf("second run: tomcat not image-aware")
	}
	for _, req := range r.Requests() {
		if req.Kind == "blob" {
			t.Errorf("second run with --image-cache fetched blob %s", req.Path)
		}
	}
}

func TestMutateImagesOutputPassesCheckImages(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	r := registrytest.Start(t)
	imgs := registrytest.SeedWith(t, r, registrytest.SeedOptions{ManyEntries: 1000})
	pods := ""
	for name, ref := range map[string]string{"numeric": imgs.UsersNumber.Ref, "root": imgs.UsersRoot.Ref, "named": imgs.UsersNamed.Ref} {
		pods += fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: shop}\nspec:\n  containers: [{name: app, image: %q}]\n---\n", name, ref)
	}
	dir := writeFiles(t, map[string]string{
		"pods.yaml":   pods,
		"config.yaml": "apiVersion: podguard.io/v1alpha1\nkind: Config\npolicies:\n  securityContext: {profile: restricted}\n",
	})
	args := []string{"--config", filepath.Join(dir, "config.yaml"), "--images", "--image-registries", "127.0.0.1:*"}
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"mutate", "-f", filepath.Join(dir, "pods.yaml")}, args...), nil, &stdout, &stderr); code != 0 {
		t.Fatalf("mutate --images: exit %d: %s", code, stderr.String())
	}
	mutated := stdout.String()
	if !strings.Contains(stderr.String(), "podguard mutate: 3 of 3 objects image-aware") {
		t.Errorf("mutate --images does not say the objects are image-aware: %s", stderr.String())
	}
	for _, doc := range strings.Split(mutated, "\n---\n") {
		nonRoot := strings.Contains(doc, "runAsNonRoot: true")
		if numeric := strings.Contains(doc, "name: numeric"); nonRoot != numeric {
			t.Errorf("runAsNonRoot %v, want it exactly on the image with a numeric USER:\n%s", nonRoot, doc)
		}
	}
	dir2 := writeFiles(t, map[string]string{"mutated.yaml": mutated})
	out, code, stderr2 := runCheck(t, append([]string{"-f", filepath.Join(dir2, "mutated.yaml")}, args...)...)
	if code != 0 {
		t.Errorf("check --images of mutate --images' output: exit %d: %+v %s", code, out.Results, stderr2)
	}
}

func TestImageFlagsNeedImages(t *testing.T) {
	dir := writeFiles(t, map[string]string{"pod.yaml": goodPod})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-f", filepath.Join(dir, "pod.yaml"), "--image-cache", t.TempDir()}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "need --images") {
		t.Errorf("--image-cache without --images: exit %d: %s", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"check", "-f", filepath.Join(dir, "pod.yaml"), "--images", "--image-registries", "https://ghcr.io"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("--image-registries with a URL: exit %d: %s", code, stderr.String())
	}
}

func TestMutateImagesSaysWhichImagesWereNotInspected(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	r := registrytest.Start(t)
	imgs := registrytest.SeedWith(t, r, registrytest.SeedOptions{ManyEntries: 1000})
	dir := writeFiles(t, map[string]string{"pods.yaml": confMap + mountPod("known", imgs.Ubuntu.Ref, "/srv") + mountPod("elsewhere", "10.0.0.130:5000/app:1", "/srv")})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"mutate", "-f", filepath.Join(dir, "pods.yaml"), "--images", "--image-registries", "127.0.0.1:*"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"warning: image 10.0.0.130:5000/app:1 not-inspected: registry 10.0.0.130:5000 is not in images.registries", "podguard mutate: 1 of 2 objects image-aware"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
