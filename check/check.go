package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/pmezard/go-difflib/difflib"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/yaml"

	"github.com/podguard/podguard/manifests"
	"github.com/podguard/podguard/policies"
)

// Options configure a check.
type Options struct {
	// KubeletVersion is the kubelet the pods will run on. Nil means
	// unknown: the strict behaviour of 1.29 and older applies, as in the
	// webhook. It also stands for the API server's version, which decides
	// native sidecars.
	KubeletVersion *version.Version
	// Namespace is where objects without a namespace go, as kubectl apply
	// would put them in the current context's namespace. Default "default".
	Namespace string
	// Images, when set, inspects the pods' images (--images), waiting up to
	// ImageWait for each pod's.
	Images    policies.ImageSource
	ImageWait time.Duration
}

// podWorld returns w with what opts.Images knows of pod's images, and those
// facts sorted by reference for the report.
func podWorld(ctx context.Context, w policies.World, pod *policies.Pod, engine *policies.Engine, opts Options) (policies.World, []ImageResult, bool) {
	if opts.Images == nil {
		return w, nil, false
	}
	facts := engine.InspectImages(ctx, opts.Images, w, pod, opts.ImageWait)
	aware := true
	var out []ImageResult
	for _, img := range pod.Images() {
		if img.Ref == "" || slices.ContainsFunc(out, func(r ImageResult) bool { return r.Ref == img.Ref }) {
			continue
		}
		f, ok := facts[img.Ref]
		if !ok {
			f = policies.ImageFacts{Ref: img.Ref, Status: policies.ImageNotInspected, Why: "the inspector gave no answer"}
		}
		aware = aware && f.Known()
		out = append(out, ImageResult{Ref: img.Ref, Status: imageStatusNames[f.Status], Digest: f.Digest, Platform: f.Platform, User: f.User, Reason: f.Why})
	}
	slices.SortFunc(out, func(a, b ImageResult) int { return strings.Compare(a.Ref, b.Ref) })
	return policies.WithImages(w, facts), out, aware && len(out) > 0
}

// prefetchImages starts the inspection of every pod's images at once, so
// that a check of many objects waits for the slowest registry once rather
// than once per object.
func prefetchImages(ctx context.Context, pods []*policies.Pod, w policies.World, engine *policies.Engine, opts Options) {
	if opts.Images == nil {
		return
	}
	for _, pod := range pods {
		if pod != nil {
			engine.InspectImages(ctx, opts.Images, w, pod, 0)
		}
	}
}

// world is what the policies may know offline: the Namespaces, ConfigMaps
// and Secrets (key names only) found in the input.
func world(docs []manifests.Document, opts Options) *policies.Snapshot {
	w := policies.NewSnapshot()
	w.Source = "the given manifests"
	w.Versions = policies.Cluster{KubeletVersion: opts.KubeletVersion, ServerVersion: opts.KubeletVersion}
	for _, d := range docs {
		switch o := d.Object.(type) {
		case *corev1.Namespace:
			w.AddNamespace(o)
		case *corev1.ConfigMap:
			cm := *o
			cm.Namespace = namespaceOf(o, opts)
			w.AddConfigMap(&cm)
		case *corev1.Secret:
			s := *o
			s.Namespace = namespaceOf(o, opts)
			w.AddSecret(&s)
		}
	}
	return w
}

func namespaceOf(obj runtime.Object, opts Options) string {
	if m, err := meta.Accessor(obj); err == nil && m.GetNamespace() != "" {
		return m.GetNamespace()
	}
	if opts.Namespace != "" {
		return opts.Namespace
	}
	return "default"
}

// podOf returns the pod (template) of a pod-bearing object, placed in its
// namespace, or nil.
func podOf(obj runtime.Object, opts Options) *policies.Pod {
	pod := policies.PodOf(obj)
	if pod != nil {
		pod.Namespace = namespaceOf(obj, opts)
	}
	return pod
}

// Item is one object to judge, and where it was read: a manifest's file,
// document and line, or nothing for an object read from a cluster, which its
// kind, namespace and name identify.
type Item struct {
	Object   runtime.Object
	File     string
	Document int
	Line     int
	// Admitted says the object is a Pod that already went through
	// admission, mutated by /mutate: it is validated as it is, as /validate
	// judges a Pod. Anything else is mutated, then validated, as /validate
	// judges a workload whose pods are mutated later.
	Admitted bool
	// FieldLines, when set, gives the lines of File where field paths of
	// the object are written (manifests.Document.FieldLines), so that
	// findings can point at their field rather than at Line.
	FieldLines func(paths ...string) []int
}

// Run checks every pod-bearing document with engine.Check, exactly as the
// webhook's /validate does: the pods as the mutating policies would leave
// them, then validated. loadWarns and loadErrs are the loader's warnings and
// errors; they are reported and the rest is still checked.
func Run(docs []manifests.Document, loadWarns []manifests.Warning, loadErrs []error, engine *policies.Engine, opts Options) (*Report, error) {
	files := map[string]bool{}
	items := make([]Item, 0, len(docs))
	var unserved []InputError
	for _, d := range docs {
		files[d.File] = true
		if policies.PodOf(d.Object) == nil {
			if ie, ok := unservedWorkload(d); ok {
				unserved = append(unserved, ie)
			}
			continue
		}
		items = append(items, Item{Object: d.Object, File: d.File, Document: d.Index, Line: d.Line, FieldLines: d.FieldLines})
	}
	rep, err := Judge(items, world(docs, opts), engine, opts)
	if err != nil {
		return nil, err
	}
	rep.Errors = append(rep.Errors, unserved...)
	for _, err := range loadErrs {
		ie := InputError{Message: err.Error()}
		var me *manifests.Error
		if errors.As(err, &me) {
			ie = InputError{File: me.File, Line: me.Line, Message: me.Err.Error()}
			files[me.File] = true
		}
		rep.Errors = append(rep.Errors, ie)
	}
	for _, w := range loadWarns {
		rep.InputWarnings = append(rep.InputWarnings, InputError{File: w.File, Line: w.Line, Message: w.Msg})
		files[w.File] = true
	}
	rep.Summary.Warnings += len(rep.InputWarnings)
	rep.Summary.Files = len(files)
	rep.Summary.Documents = len(docs)
	rep.Summary.Errors = len(rep.Errors)
	return rep, nil
}

// Judge gives the verdict of the webhook's /validate on every item, in
// order, with the World w: `podguard check` passes the manifests' own
// objects, `podguard audit` a cluster's. Items that carry no pod are
// skipped. Summary.Files, Documents and Errors are left for the caller.
func Judge(items []Item, w policies.World, engine *policies.Engine, opts Options) (*Report, error) {
	rep := &Report{Results: []Result{}}
	ctx := context.Background()
	pods := make([]*policies.Pod, len(items))
	for i, it := range items {
		pods[i] = podOf(it.Object, opts)
	}
	prefetchImages(ctx, pods, w, engine, opts)
	if opts.Images != nil {
		rep.Summary.ImageAware = new(int)
	}
	for i, it := range items {
		pod := pods[i]
		if pod == nil {
			continue
		}
		pods[i] = nil // judged: let it go
		pw, images, aware := podWorld(ctx, w, pod, engine, opts)
		verdict := engine.Check
		if it.Admitted {
			verdict = engine.Validate
		}
		res, err := verdict(pod, pw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", itemName(it), err)
		}
		r := resultFor(it, pod, res)
		r.Images, r.ImageAware = images, aware
		if aware {
			*rep.Summary.ImageAware++
		}
		rep.Results = append(rep.Results, r)
		rep.Summary.Checked++
		rep.Summary.Violations += len(r.Violations)
		rep.Summary.Warnings += len(r.Warnings)
		if r.Denied() {
			rep.Summary.Denied++
		}
		if len(r.Mutations) > 0 {
			rep.Summary.Mutated++
		}
	}
	return rep, nil
}

// itemName names an item in an error: "file:line", or "Kind namespace/name".
func itemName(it Item) string {
	if it.File != "" {
		return fmt.Sprintf("%s:%d", it.File, it.Line)
	}
	gvk := it.Object.GetObjectKind().GroupVersionKind()
	if m, err := meta.Accessor(it.Object); err == nil {
		return fmt.Sprintf("%s %s/%s", gvk.Kind, m.GetNamespace(), m.GetName())
	}
	return gvk.Kind
}

// unservedWorkload reports a pod-bearing kind at an apiVersion the API
// server no longer serves (extensions/v1beta1 Deployment, batch/v1beta1
// CronJob): the cluster would refuse it, so it must not pass unchecked.
func unservedWorkload(d manifests.Document) (InputError, bool) {
	gvk := d.Object.GetObjectKind().GroupVersionKind()
	for served := range policies.PodBearingKinds {
		if served.Kind == gvk.Kind && served != gvk {
			return InputError{File: d.File, Line: d.Line, Message: fmt.Sprintf(
				"document %d: %s %s is not served by current Kubernetes versions; use %s", d.Index, gvk.GroupVersion(), gvk.Kind, served.GroupVersion())}, true
		}
	}
	return InputError{}, false
}

func resultFor(it Item, pod *policies.Pod, res *policies.Result) Result {
	gvk := it.Object.GetObjectKind().GroupVersionKind()
	r := Result{
		File: it.File, Document: it.Document, Line: it.Line,
		APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Namespace: pod.Namespace,
		Violations: append([]policies.Finding{}, policies.WithoutKeys(res.Violations)...),
		Warnings:   []string{},
		Mutations:  append([]string{}, res.Mutated...),
	}
	if m, err := meta.Accessor(it.Object); err == nil {
		r.Name = m.GetName()
		if r.Name == "" && m.GetGenerateName() != "" {
			r.Name = m.GetGenerateName() + "*"
		}
	}
	for _, w := range res.Warnings {
		r.Warnings = append(r.Warnings, "podguard "+w.String())
	}
	// Audit mode admits the object silently; check still shows what was
	// recorded, as warnings, so that a rollout can be followed from CI.
	// The marker goes after "[policy] field: ", so that SARIF and the
	// other formats still read the policy and the field from the warning.
	for _, a := range res.Audited {
		a.Message = "audited (mode audit, not denied): " + a.Message
		r.Warnings = append(r.Warnings, "podguard "+a.String())
	}
	r.FieldLines = r.findingLines(it.FieldLines)
	return r
}

// Mutated is one document of `podguard mutate`'s output.
type Mutated struct {
	Document manifests.Document
	// YAML is the document as it comes out: the original when nothing
	// changed, else the original with the policies' changes applied.
	YAML []byte
	// Original is the document as it went in, as YAML.
	Original []byte
	Changed  bool
	// Violations are reasons the cluster would reject the result; the
	// document is still printed.
	Violations []policies.Finding
	// Images and ImageAware are as in Result, with --images.
	Images     []ImageResult
	ImageAware bool
}

// Mutate applies the mutating policies to every pod-bearing document, like
// the webhook's /mutate does to a Pod: for a workload, to its pod template,
// as `istioctl kube-inject` does. Only what the policies changed is changed:
// the patch between the pod before and after is applied to the original
// document, so fields podguard's types do not know survive.
func Mutate(docs []manifests.Document, engine *policies.Engine, opts Options) ([]Mutated, error) {
	w := world(docs, opts)
	ctx := context.Background()
	pods := make([]*policies.Pod, len(docs))
	for i, d := range docs {
		pods[i] = podOf(d.Object, opts)
	}
	prefetchImages(ctx, pods, w, engine, opts)
	out := make([]Mutated, 0, len(docs))
	for i, d := range docs {
		original, err := yaml.JSONToYAML(d.Raw)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", d.File, d.Line, err)
		}
		m := Mutated{Document: d, YAML: original, Original: original}
		if pod := pods[i]; pod != nil {
			pw, images, aware := podWorld(ctx, w, pod, engine, opts)
			m.Images, m.ImageAware = images, aware
			res, err := engine.Mutate(pod, pw)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", d.File, d.Line, err)
			}
			m.Violations = res.Violations
			if len(res.Mutated) > 0 && !res.Denied() {
				after := d.Object.DeepCopyObject()
				policies.SetPod(after, res.Pod)
				raw, err := applyChanges(d.Raw, d.Object, after)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %w", d.File, d.Line, err)
				}
				if m.YAML, err = yaml.JSONToYAML(raw); err != nil {
					return nil, fmt.Errorf("%s:%d: %w", d.File, d.Line, err)
				}
				m.Changed = true
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// applyChanges applies to raw the difference between before and after, both
// typed, as the webhook computes its patch.
func applyChanges(raw []byte, before, after runtime.Object) ([]byte, error) {
	b, err := json.Marshal(before)
	if err != nil {
		return nil, err
	}
	a, err := json.Marshal(after)
	if err != nil {
		return nil, err
	}
	ops, err := jsonpatch.CreatePatch(b, a)
	if err != nil {
		return nil, fmt.Errorf("computing the changes: %w", err)
	}
	patchJSON, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatchapply.DecodePatch(patchJSON)
	if err != nil {
		return nil, err
	}
	// The typed round trip has empty structs the document may lack
	// (resources: {}): adding below one creates it.
	opts := jsonpatchapply.NewApplyOptions()
	opts.EnsurePathExistsOnAdd = true
	out, err := patch.ApplyWithOptions(raw, opts)
	if err != nil {
		return nil, fmt.Errorf("applying the changes: %w", err)
	}
	return out, nil
}

// WriteYAML prints the documents as one multi-document YAML stream.
func WriteYAML(w io.Writer, docs []Mutated) error {
	for i, m := range docs {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(m.YAML); err != nil {
			return err
		}
	}
	return nil
}

// WriteDiff prints a unified diff of every changed document.
func WriteDiff(w io.Writer, docs []Mutated) error {
	for _, m := range docs {
		if !m.Changed {
			continue
		}
		name := fmt.Sprintf("%s (document %d, line %d)", m.Document.File, m.Document.Index, m.Document.Line)
		text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(m.Original)), B: difflib.SplitLines(string(m.YAML)),
			FromFile: name, ToFile: name + " mutated by podguard", Context: 3,
		})
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
	}
	return nil
}
