package policies

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Golden fixtures live in testdata:
//
//	testdata/settings.yaml                 the policy settings every fixture runs with
//	testdata/mutate/X.yaml                 objects: the world, then the pod or workload to mutate
//	testdata/mutate/X.yaml.mutated         that object after the mutating policies
//	testdata/validate/{pass,fail}/X.yaml   objects: the world, then the pod or workload to validate
//	testdata/validate/{pass,fail}/X.yaml.findings  what the validating policies say
//	testdata/.../X.yaml.images             optional: what an image inspector knows of X's images
//
// The world is every Namespace, ConfigMap, Secret and Node in the file; the
// subject is the last pod-bearing object. The API server is taken to be
// v1.33; the Nodes' oldest kubelet is the target kubelet. Images are not
// inspected unless X.yaml.images describes them (see fixtureImage).
//
// PODGUARD_UPDATE_GOLDEN=1 go test ./policies/ rewrites the goldens.
const updateGoldenEnv = "PODGUARD_UPDATE_GOLDEN"

var fixtureServerVersion = version.MustParseGeneric("v1.33.0")

func TestMutateGolden(t *testing.T) {
	engine := NewEngine(fixtureSettings(t))
	for _, input := range fixtureInputs(t, "testdata/mutate") {
		t.Run(filepath.Base(input), func(t *testing.T) {
			world, subject := loadFixture(t, input)
			pod := PodOf(subject)
			res, err := engine.Mutate(pod, world)
			if err != nil {
				t.Fatal(err)
			}
			if res.Denied() {
				t.Fatalf("a mutation fixture was denied: %v", res.Violations)
			}
			out := subject.DeepCopyObject()
			SetPod(out, res.Pod)
			checkGolden(t, input+".mutated", objectYAML(t, out), compareObjects)

			again, err := engine.Mutate(res.Pod, world)
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Mutated) > 0 {
				t.Errorf("not idempotent: a second pass was changed by %v", again.Mutated)
			}
		})
	}
}

func TestValidateGolden(t *testing.T) {
	engine := NewEngine(fixtureSettings(t))
	for _, verdict := range []string{"pass", "fail"} {
		for _, input := range fixtureInputs(t, "testdata/validate/"+verdict) {
			t.Run(verdict+"/"+filepath.Base(input), func(t *testing.T) {
				world, subject := loadFixture(t, input)
				// The verdict path the webhook's /validate and podguard
				// check share: mutate, then validate.
				res, err := engine.Check(PodOf(subject), world)
				if err != nil {
					t.Fatal(err)
				}
				if res.Denied() != (verdict == "fail") {
					t.Errorf("denied = %v in %s/: %v", res.Denied(), verdict, res.Violations)
				}
				var b strings.Builder
				for _, v := range res.Violations {
					fmt.Fprintf(&b, "violation: %s\n", v)
				}
				for _, w := range res.Warnings {
					fmt.Fprintf(&b, "warning: %s\n", w)
				}
				checkGolden(t, input+".findings", []byte(b.String()), bytes.Equal)
			})
		}
	}
}

// TestGoldenFilesHaveInputs catches goldens left behind by a removed or
// renamed fixture.
func TestGoldenFilesHaveInputs(t *testing.T) {
	for dir, suffix := range map[string]string{"testdata/mutate": ".mutated", "testdata/validate/pass": ".findings", "testdata/validate/fail": ".findings"} {
		for _, suffix := range []string{suffix, ".images"} {
			goldens, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range goldens {
				if _, err := os.Stat(strings.TrimSuffix(g, suffix)); err != nil {
					t.Errorf("%s has no input %s: delete it", g, strings.TrimSuffix(g, suffix))
				}
			}
		}
	}
}

func fixtureInputs(t *testing.T, dir string) []string {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	return inputs
}

func fixtureSettings(t *testing.T) *Settings {
	t.Helper()
	data, err := os.ReadFile("testdata/settings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	s := &Settings{}
	strict, err := sigsjson.UnmarshalStrict(js, s)
	if err != nil || len(strict) > 0 {
		t.Fatalf("testdata/settings.yaml: %v %v", err, strict)
	}
	s.Default()
	if errs := s.Validate(nil); len(errs) > 0 {
		t.Fatalf("testdata/settings.yaml: %v", errs.ToAggregate())
	}
	return s
}

// fixtureImage is one entry of a fixture's X.yaml.images, a YAML list of
// images: ref, status (known, pending, failed or notInspected), user (the
// config's USER), why (for the statuses other than known) and files, paths
// as newTestFS reads them ("/etc/ssl/certs -> ../pki/tls/certs" is a link).
type fixtureImage struct {
	Ref    string   `json:"ref"`
	Status string   `json:"status"`
	User   string   `json:"user,omitempty"`
	Why    string   `json:"why,omitempty"`
	Files  []string `json:"files,omitempty"`
}

// fixtureImages reads path+".images", if there is one, into the facts a
// World gives for them.
func fixtureImages(t *testing.T, path string) map[string]ImageFacts {
	t.Helper()
	data, err := os.ReadFile(path + ".images")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var list []fixtureImage
	if err := yaml.UnmarshalStrict(data, &list); err != nil {
		t.Fatalf("%s.images: %v", path, err)
	}
	statuses := map[string]ImageStatus{"known": ImageKnown, "pending": ImagePending, "failed": ImageFailed, "notInspected": ImageNotInspected}
	images := map[string]ImageFacts{}
	for _, img := range list {
		status, ok := statuses[img.Status]
		if !ok || img.Ref == "" {
			t.Fatalf("%s.images: image %q has status %q; want a ref and one of known, pending, failed, notInspected", path, img.Ref, img.Status)
		}
		f := ImageFacts{Ref: img.Ref, Status: status, User: img.User, Why: img.Why}
		if status == ImageKnown {
			f.FS = newTestFS(img.Files...)
		}
		images[img.Ref] = f
	}
	return images
}

// loadFixture decodes a fixture into its world and its subject.
func loadFixture(t *testing.T, path string) (World, runtime.Object) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	world := NewSnapshot()
	world.Versions.ServerVersion = fixtureServerVersion
	var subject runtime.Object
	var nodes []corev1.Node
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	decoder := clientgoscheme.Codecs.UniversalDeserializer()
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if m, err := meta.Accessor(obj); err == nil && m.GetNamespace() == "" {
			if _, isNode := obj.(*corev1.Node); !isNode {
				if _, isNS := obj.(*corev1.Namespace); !isNS {
					m.SetNamespace("team-a")
				}
			}
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			world.AddNamespace(o)
		case *corev1.ConfigMap:
			world.AddConfigMap(o)
		case *corev1.Secret:
			world.AddSecret(o)
		case *corev1.Node:
			nodes = append(nodes, *o)
		default:
			if PodOf(obj) == nil {
				t.Fatalf("%s: document %d: %T is neither part of the world nor pod-bearing", path, i, obj)
			}
			subject = obj
		}
	}
	if subject == nil {
		t.Fatalf("%s: no pod-bearing object", path)
	}
	for _, n := range nodes {
		if v, err := ParseKubeVersion(n.Status.NodeInfo.KubeletVersion); err == nil &&
			(world.Versions.KubeletVersion == nil || v.LessThan(world.Versions.KubeletVersion)) {
			world.Versions.KubeletVersion = v
		}
	}
	return WithImages(world, fixtureImages(t, path)), subject
}

func objectYAML(t *testing.T, obj runtime.Object) []byte {
	t.Helper()
	gvks, _, err := clientgoscheme.Scheme.ObjectKinds(obj)
	if err != nil {
		t.Fatal(err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareObjects compares two YAML documents as objects, not as text.
func compareObjects(a, b []byte) bool {
	var x, y any
	if yaml.Unmarshal(a, &x) != nil || yaml.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func checkGolden(t *testing.T, path string, got []byte, equal func(a, b []byte) bool) {
	t.Helper()
	if os.Getenv(updateGoldenEnv) != "" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("missing golden %s (run with %s=1 to create it): %v", path, updateGoldenEnv, err)
	}
	if !equal(want, got) {
		t.Errorf("%s is stale (run with %s=1 to refresh it, then review the diff):\n%s", path, updateGoldenEnv,
			cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
	}
}
