package framework

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// FieldOwner is the field manager of the server-side applies of ApplyObjects.
const FieldOwner = "podguard-e2e"

// CertManagerModule is the Go module whose deploy/crds directory
// InstallCertManagerCRDs installs, at the version go.mod requires.
const CertManagerModule = "github.com/cert-manager/cert-manager"

const (
	// crdEstablishedTimeout bounds the wait for applied CRDs to be served.
	crdEstablishedTimeout = 30 * time.Second
	// noMatchTimeout bounds the retries of an apply whose kind the API
	// server does not serve yet, such as that of a CRD just established.
	noMatchTimeout = 10 * time.Second
	// objectsGoneTimeout bounds the wait of DeleteObjects, which includes
	// the namespace controller emptying and finalizing namespaces.
	objectsGoneTimeout = 2 * time.Minute
)

var (
	namespaceGK = schema.GroupKind{Kind: "Namespace"}
	crdGK       = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	crdGVK      = crdGK.WithVersion("v1")
)

// RenderOverlay renders the kustomize overlay (or any kustomization) in dir
// and returns its objects, in kustomize's order.
func RenderOverlay(dir string) ([]*unstructured.Unstructured, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("rendering kustomize overlay %s: %w", dir, err)
	}
	objs := make([]*unstructured.Unstructured, 0, resources.Size())
	for _, r := range resources.Resources() {
		// Through JSON, so that numbers are int64 or float64 as in any
		// unstructured object, not kyaml's int.
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encoding %s %s of overlay %s: %w", r.GetKind(), r.GetName(), dir, err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("decoding %s %s of overlay %s: %w", r.GetKind(), r.GetName(), dir, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// ApplyObjects server-side applies objs with field manager FieldOwner,
// forcing ownership of conflicting fields. opts can override both and add a
// dry run (client.DryRunAll); of the patch options, only DryRun, Force and
// FieldManager apply.
//
// The objects are applied in an order that works on an empty cluster:
// Namespaces, then CustomResourceDefinitions, then everything else except
// webhook configurations and APIServices, which come last so that they never
// intercept the install of what they depend on. Within each group the order
// of objs is kept. Unless in a dry run, ApplyObjects waits for the
// CustomResourceDefinitions it applied to be established before it applies
// the rest. An apply of a kind the API server does not serve (yet) is
// retried for a few seconds.
//
// A dry run persists nothing, so namespaced objects can only be dry-run in
// namespaces that exist, and custom resources only once their CRDs exist.
//
// objs are not modified.
func ApplyObjects(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, opts ...client.PatchOption) error {
	po := (&client.PatchOptions{}).ApplyOptions(opts)
	ao := &client.ApplyOptions{FieldManager: FieldOwner, Force: ptr.To(true), DryRun: po.DryRun}
	if po.FieldManager != "" {
		ao.FieldManager = po.FieldManager
	}
	if po.Force != nil {
		ao.Force = po.Force
	}
	dryRun := len(ao.DryRun) > 0

	ordered := slices.Clone(objs)
	slices.SortStableFunc(ordered, func(a, b *unstructured.Unstructured) int {
		return applyRank(a) - applyRank(b)
	})

	var crds []string
	crdsEstablished := false
	for _, obj := range ordered {
		if applyRank(obj) > rankCRD && !crdsEstablished {
			crdsEstablished = true
			if !dryRun && len(crds) > 0 {
				if err := WaitForCRDsEstablished(ctx, c, crds...); err != nil {
					return err
				}
			}
		}
		if err := applyObject(ctx, c, obj, ao); err != nil {
			return err
		}
		if obj.GroupVersionKind().GroupKind() == crdGK {
			crds = append(crds, obj.GetName())
		}
	}
	if !crdsEstablished && !dryRun && len(crds) > 0 {
		return WaitForCRDsEstablished(ctx, c, crds...)
	}
	return nil
}

// applyObject server-side applies one object, retrying for a few seconds
// while its kind is not served.
func applyObject(ctx context.Context, c client.Client, obj *unstructured.Unstructured, ao *client.ApplyOptions) error {
	var applyErr error
	err := Eventually(ctx, noMatchTimeout, pollInterval, func() (bool, error) {
		// Apply decodes the response into the object it is given: a copy
		// keeps the caller's objects as rendered.
		applyErr = c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), ao)
		if meta.IsNoMatchError(applyErr) {
			return false, nil
		}
		return true, applyErr
	})
	if err != nil {
		if applyErr != nil && meta.IsNoMatchError(applyErr) {
			err = applyErr
		}
		return fmt.Errorf("applying %s: %w", Describe(obj), err)
	}
	return nil
}

// The ranks of applyRank.
const (
	rankNamespace = iota
	rankCRD
	rankDefault
	rankLast
)

// applyRank orders objects for ApplyObjects; DeleteObjects uses the reverse.
func applyRank(obj *unstructured.Unstructured) int {
	switch obj.GroupVersionKind().GroupKind() {
	case namespaceGK:
		return rankNamespace
	case crdGK:
		return rankCRD
	case schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"},
		schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"},
		schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"},
		schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"},
		schema.GroupKind{Group: "apiregistration.k8s.io", Kind: "APIService"}:
		return rankLast
	default:
		return rankDefault
	}
}

// Describe names an object for messages: its kind and namespace/name, or
// name for a cluster-scoped object, such as "Deployment podguard-system/podguard".
func Describe(obj client.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = fmt.Sprintf("%T", obj)
	}
	if ns := obj.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + obj.GetName()
	}
	return kind + " " + obj.GetName()
}

// DeleteObjects deletes objs, in the reverse of the order ApplyObjects
// applies them in, and waits until every one of them is gone. Objects that
// are already gone, including those of a kind the API server no longer
// serves, are not an error.
//
// Deleted Namespaces are emptied and finalized by kube-controller-manager's
// namespace controller, and owned objects, such as a Deployment's
// ReplicaSets and Pods, are removed by its garbage collector: both run in a
// Cluster. The wait is bounded by ctx and by two minutes.
func DeleteObjects(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	ordered := slices.Clone(objs)
	slices.SortStableFunc(ordered, func(a, b *unstructured.Unstructured) int {
		return applyRank(b) - applyRank(a)
	})
	var errs []error
	for _, obj := range ordered {
		err := c.Delete(ctx, obj.DeepCopy(), client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", Describe(obj), err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	var remaining []string
	err := Eventually(ctx, objectsGoneTimeout, pollInterval, func() (bool, error) {
		remaining = remaining[:0]
		for _, obj := range ordered {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(obj.GroupVersionKind())
			err := c.Get(ctx, client.ObjectKeyFromObject(obj), u)
			switch {
			case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
			case err != nil:
				return false, fmt.Errorf("getting %s: %w", Describe(obj), err)
			default:
				remaining = append(remaining, Describe(obj))
			}
		}
		return len(remaining) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for deleted objects to be gone (still there: %s): %w", strings.Join(remaining, ", "), err)
	}
	return nil
}

// WaitForCRDsEstablished waits until the API server serves the
// CustomResourceDefinitions with the given names: until each has the
// condition Established=True.
func WaitForCRDsEstablished(ctx context.Context, c client.Client, names ...string) error {
	var pending []string
	err := Eventually(ctx, crdEstablishedTimeout, pollInterval, func() (bool, error) {
		pending = pending[:0]
		for _, name := range names {
			crd := &unstructured.Unstructured{}
			crd.SetGroupVersionKind(crdGVK)
			if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
				if apierrors.IsNotFound(err) {
					pending = append(pending, name)
					continue
				}
				return false, fmt.Errorf("getting CustomResourceDefinition %s: %w", name, err)
			}
			if !hasCondition(crd, "Established", "True") {
				pending = append(pending, name)
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for CustomResourceDefinitions to be established (pending: %s): %w", strings.Join(pending, ", "), err)
	}
	return nil
}

// hasCondition reports whether obj has status.conditions[type=condType] with
// the given status.
func hasCondition(obj *unstructured.Unstructured, condType, status string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == condType {
			return m["status"] == status
		}
	}
	return false
}

// InstallCertManagerCRDs installs the CustomResourceDefinitions of
// cert-manager, from the deploy/crds directory of the version of
// CertManagerModule that go.mod requires, and waits until they are
// established. It is idempotent.
func InstallCertManagerCRDs(ctx context.Context, c client.Client) error {
	dir, err := certManagerModuleDir(ctx)
	if err != nil {
		return err
	}
	crdDir := filepath.Join(dir, "deploy", "crds")
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("listing cert-manager CRDs: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("no cert-manager CRDs in %s", crdDir)
	}
	var crds []*unstructured.Unstructured
	for _, f := range files {
		objs, err := ReadManifests(f)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			if obj.GroupVersionKind() != crdGVK {
				return fmt.Errorf("%s: %s is not an %s", f, Describe(obj), crdGVK)
			}
		}
		crds = append(crds, objs...)
	}
	if err := ApplyObjects(ctx, c, crds); err != nil {
		return fmt.Errorf("installing cert-manager CRDs: %w", err)
	}
	return nil
}

// certManagerModuleDir returns the directory of CertManagerModule in the
// module cache, as `go list -m` reports it from the repository root.
func certManagerModuleDir(ctx context.Context) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", CertManagerModule)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("locating module %s with `go list -m`: %w: %s", CertManagerModule, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(stdout.String())
	if dir == "" {
		return "", fmt.Errorf("module %s is not in the module cache; run `go mod download %s`", CertManagerModule, CertManagerModule)
	}
	return dir, nil
}

// ReadManifests decodes every non-empty YAML document of a file.
func ReadManifests(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening manifest: %w", err)
	}
	defer f.Close()
	var objs []*unstructured.Unstructured
	docs := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		if s := strings.TrimSpace(string(data)); s == "null" || s == "{}" {
			continue // an empty document
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		objs = append(objs, obj)
	}
}
