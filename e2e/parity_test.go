//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestParity runs every golden fixture of policies/testdata both ways:
// through the real API server with the webhook, and through podguard check.
// Both must admit or reject it alike, with the same violation field paths.
// The CLI and the webhook must never drift.
func TestParity(t *testing.T) {
	settings, err := os.ReadFile(filepath.Join(repoRoot, "policies", "testdata", "settings.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := "policies:\n" + indent(string(settings), "  ")
	pg := runPodguard(t, "opt-in", cfg)
	var fixtures []string
	for _, dir := range []string{"mutate", "validate/pass", "validate/fail"} {
		found, err := filepath.Glob(filepath.Join(repoRoot, "policies", "testdata", dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		fixtures = append(fixtures, found...)
	}
	if len(fixtures) < 10 {
		t.Fatalf("found only %d fixtures", len(fixtures))
	}
	for _, fixture := range fixtures {
		rel, _ := filepath.Rel(filepath.Join(repoRoot, "policies", "testdata"), fixture)
		t.Run(rel, func(t *testing.T) {
			// X.yaml.images says what an inspector knows of the fixture's
			// images; this podguard inspects none, and its images are not
			// served here. images_test.go covers inspected images both ways.
			if _, err := os.Stat(fixture + ".images"); err == nil {
				t.Skip("the verdict rests on image facts (" + filepath.Base(fixture) + ".images) that no registry serves here")
			}
			objs := readFixture(t, fixture)
			ns := newNamespace(t, "parity", optIn)
			kubelet := applyWorld(t, ns, objs)
			subject := objs[len(objs)-1]

			cliFields, cliDenied := admitThroughCheck(t, pg.configPath, fixture, ns, kubelet)
			// podguard's caches follow the objects just created within
			// milliseconds; a real difference persists past the deadline.
			var webhookFields []string
			var webhookDenied bool
			deadline := time.Now().Add(10 * time.Second)
			for {
				webhookFields, webhookDenied = admitThroughAPIServer(t, ns, subject)
				if (webhookDenied == cliDenied && slices.Equal(webhookFields, cliFields)) || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}

			if webhookDenied != cliDenied {
				t.Errorf("webhook denied = %v, podguard check denied = %v", webhookDenied, cliDenied)
			}
			if !slices.Equal(webhookFields, cliFields) {
				t.Errorf("violation fields differ:\n  webhook: %q\n  check:   %q", webhookFields, cliFields)
			}
			if strings.HasPrefix(rel, "validate/fail") != webhookDenied && !strings.HasPrefix(rel, "mutate") {
				t.Errorf("a %s fixture got denied = %v", filepath.Dir(rel), webhookDenied)
			}
		})
	}
}

// readFixture decodes a fixture's objects in order; the subject is last.
func readFixture(t *testing.T, path string) []runtime.Object {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []runtime.Object
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// applyWorld creates the fixture's ConfigMaps and Secrets in ns, puts its
// Namespace's labels on ns, sets the Nodes, and returns the oldest kubelet
// version ("" for none).
func applyWorld(t *testing.T, ns string, objs []runtime.Object) string {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var kubelets []string
	for _, obj := range objs[:len(objs)-1] {
		switch o := obj.(type) {
		case *corev1.Node:
			kubelets = append(kubelets, o.Status.NodeInfo.KubeletVersion)
		case *corev1.Namespace:
			live := &corev1.Namespace{}
			if err := cluster.Client.Get(ctx, client.ObjectKey{Name: ns}, live); err != nil {
				t.Fatal(err)
			}
			for k, v := range o.Labels {
				live.Labels[k] = v
			}
			if err := cluster.Client.Update(ctx, live); err != nil {
				t.Fatal(err)
			}
		default:
			o.(client.Object).SetNamespace(ns)
			if err := cluster.Client.Create(ctx, o.(client.Object)); err != nil {
				t.Fatal(err)
			}
		}
	}
	setKubelets(t, kubelets...)
	oldest := ""
	var oldestV *version.Version
	for _, k := range kubelets {
		if v, err := version.ParseGeneric(k); err == nil && (oldestV == nil || v.LessThan(oldestV)) {
			oldest, oldestV = k, v
		}
	}
	return oldest
}

// admitThroughAPIServer creates the subject with a server-side dry run and
// returns the violation fields of podguard's denial, if any.
func admitThroughAPIServer(t *testing.T, ns string, subject runtime.Object) ([]string, bool) {
	t.Helper()
	obj := subject.DeepCopyObject().(client.Object)
	obj.SetNamespace(ns)
	err := cluster.Client.Create(testContext(t, time.Minute), obj, client.DryRunAll)
	if err == nil {
		return []string{}, false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !strings.Contains(err.Error(), "podguard rejected this") {
		t.Fatalf("the API server refused the fixture for another reason: %v", err)
	}
	fields := []string{}
	if d := status.Status().Details; d != nil {
		for _, c := range d.Causes {
			fields = append(fields, c.Field)
		}
	}
	return fields, true
}

// admitThroughCheck runs podguard check -o json on the fixture.
func admitThroughCheck(t *testing.T, configPath, fixture, ns, kubelet string) ([]string, bool) {
	t.Helper()
	args := []string{"check", "-o", "json", "--config", configPath, "--namespace", ns, "-f", fixture}
	if kubelet != "" {
		args = append(args, "--kubelet-version", kubelet)
	}
	cmd := exec.Command(filepath.Join(repoRoot, "bin", "podguard"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) {
		t.Fatalf("podguard check: %v\n%s", err, stderr.String())
	}
	var report struct {
		Results []struct {
			Violations []struct {
				Field string `json:"field"`
			} `json:"violations"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("podguard check -o json: %v\n%s", err, out)
	}
	if len(report.Results) != 1 {
		t.Fatalf("podguard check reported %d objects, want the fixture's one subject", len(report.Results))
	}
	fields := []string{}
	for _, v := range report.Results[0].Violations {
		fields = append(fields, v.Field)
	}
	return fields, len(fields) > 0
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
