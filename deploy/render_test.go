// Package deploy_test renders every kustomize overlay under overlays/ the way
// `kubectl apply -k` would and checks what an install relies on: the webhooks'
// failure policies, exclusions and scope, the Deployment's availability and
// Pod Security, the Service and PDB wiring, least-privilege RBAC, and the
// serving certificate of each TLS mode.
//
// Each check returns its problems instead of failing the test, so that
// TestChecksCatchBreakage can prove that it fails on a broken render.
package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/podguard/podguard/config"
)

// scope is which namespaces an overlay's webhooks act in.
type scope string

const (
	optIn       scope = "opt-in"       // only those labelled podguard.io/enabled=true
	clusterWide scope = "cluster-wide" // all but those labelled podguard.io/enabled=false
)

// tlsMode is where an overlay's serving certificate comes from.
type tlsMode string

const (
	certManager tlsMode = "cert-manager" // issued by cert-manager, CA injected by its cainjector
	selfManaged tlsMode = "self-managed" // issued and rotated by podguard itself
)

// overlay is one install variant and what the checks expect of it.
type overlay struct {
	dir   string // under overlays/, slash-separated
	scope scope
	tls   tlsMode
}

// overlays lists every overlay. TestEveryOverlayIsChecked fails when a
// directory under overlays/ with a kustomization is missing here.
var overlays = []overlay{
	{dir: "opt-in", scope: optIn, tls: certManager},
	{dir: "cluster-wide", scope: clusterWide, tls: certManager},
	{dir: "self-managed/opt-in", scope: optIn, tls: selfManaged},
	{dir: "self-managed/cluster-wide", scope: clusterWide, tls: selfManaged},
}

const (
	installNamespace   = "podguard-system"
	configurationName  = "podguard" // of both webhook configurations
	deploymentName     = "podguard"
	containerName      = "podguard"
	serviceAccountName = "podguard"
	tlsSecretName      = "podguard-tls" // the Secret self-managed TLS keeps its CA and certificate in

	namespaceNameLabel = "kubernetes.io/metadata.name"
	enabledLabel       = "podguard.io/enabled"
	psaEnforceLabel    = "pod-security.kubernetes.io/enforce"
	injectCAAnnotation = "cert-manager.io/inject-ca-from"
)

// excludedNamespaces are never to be admitted by podguard, whatever their
// labels: what podguard depends on. The control plane's, so that an outage
// cannot block it; podguard's own, so that it can always start and recover;
// cert-manager's, which issues podguard's certificate on a first install.
// Every webhook carries exactly this list, which is also podguard's config
// default, the second line of defence.
var excludedNamespaces = config.DefaultExcludedNamespaces

// mustExclude are the namespaces excludedNamespaces must hold: a shorter
// config default would quietly shrink what the checks demand.
var mustExclude = []string{"kube-system", "kube-node-lease", installNamespace, "cert-manager"}

func TestExcludedNamespacesCoverDependencies(t *testing.T) {
	for _, ns := range mustExclude {
		if !slices.Contains(excludedNamespaces, ns) {
			t.Errorf("config.DefaultExcludedNamespaces %v lacks %s", excludedNamespaces, ns)
		}
	}
}

func TestEveryOverlayIsChecked(t *testing.T) {
	found, err := discoverOverlays("overlays")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Fatal("no kustomization found under overlays/")
	}
	listed := map[string]bool{}
	for _, o := range overlays {
		listed[o.dir] = true
	}
	for _, dir := range found {
		if !listed[dir] {
			t.Errorf("overlay overlays/%s is not in the overlays table of render_test.go: add it with its scope and TLS mode", dir)
		}
		delete(listed, dir)
	}
	for dir := range listed {
		t.Errorf("the overlays table lists %s, but overlays/%s has no kustomization", dir, dir)
	}
}

// discoverOverlays returns the directories under root, relative to it and
// slash-separated, that hold a kustomization file.
func discoverOverlays(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch d.Name() {
		case "kustomization.yaml", "kustomization.yml", "Kustomization":
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("looking for overlays under %s: %w", root, err)
	}
	sort.Strings(dirs)
	return dirs, nil
}

// check is one group of assertions on a rendered overlay. It adds what is
// wrong to p rather than failing a test.
type check struct {
	name string
	run  func(r *render, o overlay, p *problems)
}

var checks = []check{
	{"webhook configurations", checkWebhooks},
	{"namespace exclusions", checkExclusions},
	{"one exclusion list", checkExclusionList},
	{"scope", checkScope},
	{"rules", checkRules},
	{"match conditions", checkMatchConditions},
	{"namespace", checkNamespace},
	{"deployment", checkDeployment},
	{"priority class", checkPriorityClass},
	{"pod security", checkPodSecurity},
	{"config", checkConfig},
	{"disruption budget", checkPDB},
	{"service", checkService},
	{"rbac", checkRBAC},
	{"tls", checkTLS},
	{"webhook configurations held to caBundle", checkCAOnlyPolicy},
}

func TestOverlays(t *testing.T) {
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			r, err := load(o.dir)
			if err != nil {
				t.Fatalf("overlay %s: %v", o.dir, err)
			}
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					var p problems
					c.run(r, o, &p)
					for _, msg := range p {
						t.Errorf("overlay %s: %s", o.dir, msg)
					}
				})
			}
		})
	}
}

// problems collects what a check finds wrong, each naming the object and
// the field path.
type problems []string

func (p *problems) add(obj, fieldPath, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if fieldPath != "" {
		msg = fieldPath + ": " + msg
	}
	// Several webhooks can lead to the same fault: report it once.
	if msg = obj + ": " + msg; !slices.Contains(*p, msg) {
		*p = append(*p, msg)
	}
}

// Rendering and decoding.

// rawObject is one object of a render, as JSON.
type rawObject struct {
	gvk             schema.GroupVersionKind
	namespace, name string
	json            []byte
}

func (o rawObject) String() string { return describe(o.gvk.Kind, o.namespace, o.name) }

// describe names an object in messages: Kind namespace/name, or Kind name.
func describe(kind, namespace, name string) string {
	if namespace == "" {
		return kind + " " + name
	}
	return kind + " " + namespace + "/" + name
}

var renders = struct {
	sync.Mutex
	m map[string][]rawObject
}{m: map[string][]rawObject{}}

// renderOverlay runs kustomize on overlays/<dir>, as `kubectl kustomize`
// does, once per test binary.
func renderOverlay(dir string) ([]rawObject, error) {
	renders.Lock()
	defer renders.Unlock()
	if objs, ok := renders.m[dir]; ok {
		return objs, nil
	}
	objs, err := kustomize(filepath.Join("overlays", filepath.FromSlash(dir)))
	if err != nil {
		return nil, err
	}
	renders.m[dir] = objs
	return objs, nil
}

// kustomize renders the kustomization in dir.
func kustomize(dir string) ([]rawObject, error) {
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", dir, err)
	}
	var objs []rawObject
	for _, r := range res.Resources() {
		js, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", r.CurId(), err)
		}
		gvk := r.GetGvk()
		objs = append(objs, rawObject{
			gvk:       schema.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			namespace: r.GetNamespace(),
			name:      r.GetName(),
			json:      js,
		})
	}
	return objs, nil
}

// load renders an overlay and decodes a fresh copy of its objects, which the
// caller may change.
func load(dir string) (*render, error) {
	objs, err := renderOverlay(dir)
	if err != nil {
		return nil, err
	}
	return decodeRender(objs)
}

// render is an overlay's objects, decoded into their API types.
type render struct {
	namespaces          []*corev1.Namespace
	serviceAccounts     []*corev1.ServiceAccount
	configMaps          []*corev1.ConfigMap
	services            []*corev1.Service
	deployments         []*appsv1.Deployment
	pdbs                []*policyv1.PodDisruptionBudget
	mutating            []*admissionregistrationv1.MutatingWebhookConfiguration
	validating          []*admissionregistrationv1.ValidatingWebhookConfiguration
	clusterRoles        []*rbacv1.ClusterRole
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
	roles               []*rbacv1.Role
	roleBindings        []*rbacv1.RoleBinding
	// certManager holds cert-manager.io Issuers, ClusterIssuers and
	// Certificates, unstructured to keep cert-manager's API out of the
	// imports.
	certManager []*unstructured.Unstructured
	// policies and policyBindings are ValidatingAdmissionPolicies and their
	// bindings (components/self-managed holds podguard to caBundle with one).
	policies       []*admissionregistrationv1.ValidatingAdmissionPolicy
	policyBindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	// networkPolicies come from the optional components/network-policy.
	networkPolicies []*networkingv1.NetworkPolicy
	// resourceQuotas let the Deployment's critical priority class in.
	resourceQuotas []*corev1.ResourceQuota
}

// decodeRender decodes every object strictly into its API type: an unknown
// or misspelt field is an error, as is a kind the checks do not know.
func decodeRender(objs []rawObject) (*render, error) {
	r := &render{}
	var errs []error
	for _, o := range objs {
		var err error
		switch o.gvk {
		case corev1.SchemeGroupVersion.WithKind("Namespace"):
			err = decodeInto(o.json, &r.namespaces)
		case corev1.SchemeGroupVersion.WithKind("ServiceAccount"):
			err = decodeInto(o.json, &r.serviceAccounts)
		case corev1.SchemeGroupVersion.WithKind("ConfigMap"):
			err = decodeInto(o.json, &r.configMaps)
		case corev1.SchemeGroupVersion.WithKind("Service"):
			err = decodeInto(o.json, &r.services)
		case corev1.SchemeGroupVersion.WithKind("ResourceQuota"):
			err = decodeInto(o.json, &r.resourceQuotas)
		case appsv1.SchemeGroupVersion.WithKind("Deployment"):
			err = decodeInto(o.json, &r.deployments)
		case policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):
			err = decodeInto(o.json, &r.pdbs)
		case admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration"):
			err = decodeInto(o.json, &r.mutating)
		case admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingWebhookConfiguration"):
			err = decodeInto(o.json, &r.validating)
		case rbacv1.SchemeGroupVersion.WithKind("ClusterRole"):
			err = decodeInto(o.json, &r.clusterRoles)
		case rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding"):
			err = decodeInto(o.json, &r.clusterRoleBindings)
		case rbacv1.SchemeGroupVersion.WithKind("Role"):
			err = decodeInto(o.json, &r.roles)
		case rbacv1.SchemeGroupVersion.WithKind("RoleBinding"):
			err = decodeInto(o.json, &r.roleBindings)
		case admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingAdmissionPolicy"):
			err = decodeInto(o.json, &r.policies)
		case admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingAdmissionPolicyBinding"):
			err = decodeInto(o.json, &r.policyBindings)
		case networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"):
			err = decodeInto(o.json, &r.networkPolicies)
		case certManagerGV.WithKind("Issuer"), certManagerGV.WithKind("ClusterIssuer"), certManagerGV.WithKind("Certificate"):
			u := &unstructured.Unstructured{}
			if err = json.Unmarshal(o.json, &u.Object); err == nil {
				r.certManager = append(r.certManager, u)
			}
		default:
			err = fmt.Errorf("apiVersion %s kind %s is not one the checks know; decode it in decodeRender so that its fields are checked", o.gvk.GroupVersion(), o.gvk.Kind)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o, err))
		}
	}
	return r, errors.Join(errs...)
}

var certManagerGV = schema.GroupVersion{Group: "cert-manager.io", Version: "v1"}

// decodeInto decodes data strictly into a new T, which it appends to list.
// Field names are case-sensitive, and unknown or duplicate fields are errors.
func decodeInto[T any](data []byte, list *[]*T) error {
	obj := new(T)
	strict, err := sigsjson.UnmarshalStrict(data, obj)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return errors.Join(strict...)
	}
	*list = append(*list, obj)
	return nil
}

// Lookups.

// deployment returns the podguard Deployment, or nil after adding a problem.
func (r *render) deployment(p *problems) *appsv1.Deployment {
	if len(r.deployments) != 1 || r.deployments[0].Name != deploymentName {
		var names []string
		for _, d := range r.deployments {
			names = append(names, d.Namespace+"/"+d.Name)
		}
		p.add("render", "", "has Deployments %v, want exactly one, named %s", names, deploymentName)
		return nil
	}
	return r.deployments[0]
}

// podguardContainer returns the podguard container of d and its field path,
// or nil after adding a problem.
func podguardContainer(d *appsv1.Deployment, p *problems) (*corev1.Container, string) {
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == containerName {
			return c, fmt.Sprintf("spec.template.spec.containers[%d]", i)
		}
	}
	p.add(deploymentRef(d), "spec.template.spec.containers", "no container named %s", containerName)
	return nil, ""
}

func deploymentRef(d *appsv1.Deployment) string { return describe("Deployment", d.Namespace, d.Name) }

// argValue returns the value of a Go flag in args, written -name=value,
// --name=value, -name value or --name value.
func argValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, prefix := range []string{"--", "-"} {
			if v, ok := strings.CutPrefix(a, prefix+name+"="); ok {
				return v, true
			}
			if a == prefix+name && i+1 < len(args) {
				return args[i+1], true
			}
		}
	}
	return "", false
}

// hook is one webhook of either configuration, with the fields the checks
// read.
type hook struct {
	config   string // the configuration, e.g. "MutatingWebhookConfiguration podguard"
	path     string // field path in it, e.g. "webhooks[0]"
	mutating bool

	name                    string
	clientConfig            admissionregistrationv1.WebhookClientConfig
	rules                   []admissionregistrationv1.RuleWithOperations
	failurePolicy           *admissionregistrationv1.FailurePolicyType
	namespaceSelector       *metav1.LabelSelector
	sideEffects             *admissionregistrationv1.SideEffectClass
	timeoutSeconds          *int32
	admissionReviewVersions []string
	reinvocationPolicy      *admissionregistrationv1.ReinvocationPolicyType
}

func (h hook) where(field string) string { return h.path + "(" + h.name + ")." + field }

// stateGuardName is the validating webhook that judges ConfigMap (and, with
// components/secret-access, Secret) writes against the workloads that read
// them: it guards, so it fails open and has no side effects.
const stateGuardName = "state.podguard.io"

// stateGuard reports whether h is the state guard.
func (h hook) stateGuard() bool { return !h.mutating && h.name == stateGuardName }

func (r *render) hooks() []hook {
	var hooks []hook
	for _, c := range r.mutating {
		for i, w := range c.Webhooks {
			hooks = append(hooks, hook{
				config: describe("MutatingWebhookConfiguration", "", c.Name), path: fmt.Sprintf("webhooks[%d]", i), mutating: true,
				name: w.Name, clientConfig: w.ClientConfig, rules: w.Rules, failurePolicy: w.FailurePolicy,
				namespaceSelector: w.NamespaceSelector, sideEffects: w.SideEffects, timeoutSeconds: w.TimeoutSeconds,
				admissionReviewVersions: w.AdmissionReviewVersions, reinvocationPolicy: w.ReinvocationPolicy,
			})
		}
	}
	for _, c := range r.validating {
		for i, w := range c.Webhooks {
			hooks = append(hooks, hook{
				config: describe("ValidatingWebhookConfiguration", "", c.Name), path: fmt.Sprintf("webhooks[%d]", i),
				name: w.Name, clientConfig: w.ClientConfig, rules: w.Rules, failurePolicy: w.FailurePolicy,
				namespaceSelector: w.NamespaceSelector, sideEffects: w.SideEffects, timeoutSeconds: w.TimeoutSeconds,
				admissionReviewVersions: w.AdmissionReviewVersions,
			})
		}
	}
	return hooks
}

// selects evaluates a webhook's namespaceSelector against a namespace named
// ns with extra labels, as the API server does: every namespace has the
// kubernetes.io/metadata.name label, and no selector selects everything.
func (h hook) selects(ns string, extra map[string]string) (bool, error) {
	sel := labels.Everything()
	if h.namespaceSelector != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(h.namespaceSelector); err != nil {
			return false, err
		}
	}
	set := labels.Set{namespaceNameLabel: ns}
	for k, v := range extra {
		set[k] = v
	}
	return sel.Matches(set), nil
}

// Webhook configurations.

func checkWebhooks(r *render, _ overlay, p *problems) {
	for kind, names := range map[string][]string{
		"MutatingWebhookConfiguration":   objectNames(r.mutating),
		"ValidatingWebhookConfiguration": objectNames(r.validating),
	} {
		if len(names) != 1 || names[0] != configurationName {
			p.add("render", "", "has %ss %v, want exactly one, named %s", kind, names, configurationName)
		}
	}
	for _, c := range r.mutating {
		if len(c.Webhooks) == 0 {
			p.add(describe("MutatingWebhookConfiguration", "", c.Name), "webhooks", "empty")
		}
	}
	for _, c := range r.validating {
		if len(c.Webhooks) == 0 {
			p.add(describe("ValidatingWebhookConfiguration", "", c.Name), "webhooks", "empty")
		}
	}
	guards := 0
	for _, h := range r.hooks() {
		// Each pod webhook can deny a controller's pod, which puts an event
		// on its workload, except on a dry run; the state guard writes
		// nothing.
		wantSideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
		if h.stateGuard() {
			guards++
			wantSideEffects = admissionregistrationv1.SideEffectClassNone
		}
		if got := ptr.Deref(h.sideEffects, ""); got != wantSideEffects {
			p.add(h.config, h.where("sideEffects"), "%q, want %s", got, wantSideEffects)
		}
		if !slices.Equal(h.admissionReviewVersions, []string{"v1"}) {
			p.add(h.config, h.where("admissionReviewVersions"), "%q, want [v1]", h.admissionReviewVersions)
		}
		// The API server's default is 10s, its maximum 30s.
		if got := ptr.Deref(h.timeoutSeconds, 10); got > 10 {
			p.add(h.config, h.where("timeoutSeconds"), "%d, want at most 10", got)
		}
		// The API server's default failurePolicy is Fail, and its default
		// reinvocationPolicy Never.
		failurePolicy := ptr.Deref(h.failurePolicy, admissionregistrationv1.Fail)
		if h.mutating {
			if failurePolicy != admissionregistrationv1.Ignore {
				p.add(h.config, h.where("failurePolicy"), "%s, want Ignore: a missed mutation must not stop pods while podguard is down", failurePolicy)
			}
			if got := ptr.Deref(h.reinvocationPolicy, admissionregistrationv1.NeverReinvocationPolicy); got != admissionregistrationv1.IfNeededReinvocationPolicy {
				p.add(h.config, h.where("reinvocationPolicy"), "%s, want IfNeeded", got)
			}
		} else if h.stateGuard() {
			if failurePolicy != admissionregistrationv1.Ignore {
				p.add(h.config, h.where("failurePolicy"), "%s, want Ignore: the state guard must never block a ConfigMap write while podguard is down", failurePolicy)
			}
		} else if failurePolicy != admissionregistrationv1.Fail {
			p.add(h.config, h.where("failurePolicy"), "%s, want Fail", failurePolicy)
		}
	}
	if guards != 1 {
		p.add(describe("ValidatingWebhookConfiguration", "", configurationName), "webhooks", "has %d webhooks named %s, want one", guards, stateGuardName)
	}
}

func objectNames[T metav1.Object](objs []T) []string {
	names := []string{}
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	return names
}

// checkExclusions evaluates every webhook's namespaceSelector against the
// excluded namespaces, whatever podguard label they carry.
func checkExclusions(r *render, _ overlay, p *problems) {
	for _, h := range r.hooks() {
		for _, ns := range excludedNamespaces {
			for _, extra := range []map[string]string{nil, {enabledLabel: "true"}, {enabledLabel: "false"}} {
				selected, err := h.selects(ns, extra)
				if err != nil {
					p.add(h.config, h.where("namespaceSelector"), "invalid: %v", err)
					return
				}
				if selected {
					p.add(h.config, h.where("namespaceSelector"), "selects namespace %s with labels %v; it must never", ns, namespaceLabels(ns, extra))
				}
			}
		}
	}
}

// checkExclusionList checks that every webhook names the excluded namespaces
// in one kubernetes.io/metadata.name NotIn expression holding exactly
// excludedNamespaces, in order: one list (base/excluded-namespaces.yaml)
// copied into all three webhooks, and the config's namespaces.exclude and
// default beside it.
func checkExclusionList(r *render, _ overlay, p *problems) {
	for _, cm := range r.configMaps {
		if cm.Name != "podguard-config" {
			continue
		}
		// As written, not as defaulted: the default is the same list, and
		// an overlay's edit must show beside the webhooks'.
		ref := describe("ConfigMap", cm.Namespace, cm.Name)
		var written struct {
			Namespaces struct {
				Exclude []string `json:"exclude"`
			} `json:"namespaces"`
		}
		if err := sigsyaml.Unmarshal([]byte(cm.Data["config.yaml"]), &written); err != nil {
			p.add(ref, "data.config.yaml", "not YAML: %v", err)
		} else if !slices.Equal(written.Namespaces.Exclude, excludedNamespaces) {
			p.add(ref, "data.config.yaml: namespaces.exclude", "is %v, want %v, the webhooks' list, written out", written.Namespaces.Exclude, excludedNamespaces)
		}
	}
	for _, h := range r.hooks() {
		var lists [][]string
		if h.namespaceSelector != nil {
			for _, e := range h.namespaceSelector.MatchExpressions {
				if e.Key == namespaceNameLabel && e.Operator == metav1.LabelSelectorOpNotIn {
					lists = append(lists, e.Values)
				}
			}
		}
		if len(lists) != 1 || !slices.Equal(lists[0], excludedNamespaces) {
			p.add(h.config, h.where("namespaceSelector.matchExpressions"), "%s NotIn lists %v, want one list %v, the same in every webhook and in config.DefaultExcludedNamespaces",
				namespaceNameLabel, lists, excludedNamespaces)
		}
	}
}

func namespaceLabels(ns string, extra map[string]string) labels.Set {
	set := labels.Set{namespaceNameLabel: ns}
	for k, v := range extra {
		set[k] = v
	}
	return set
}

// checkScope evaluates every webhook's namespaceSelector against ordinary
// namespaces with and without podguard's label.
func checkScope(r *render, o overlay, p *problems) {
	const ns = "team-a"
	type want struct {
		extra    map[string]string
		selected bool
	}
	var wants []want
	switch o.scope {
	case optIn:
		wants = []want{{map[string]string{enabledLabel: "true"}, true}, {nil, false}, {map[string]string{enabledLabel: "false"}, false}}
	case clusterWide:
		wants = []want{{nil, true}, {map[string]string{enabledLabel: "true"}, true}, {map[string]string{enabledLabel: "false"}, false}}
	default:
		p.add("overlays table", o.dir, "unknown scope %q", o.scope)
		return
	}
	for _, h := range r.hooks() {
		for _, w := range wants {
			selected, err := h.selects(ns, w.extra)
			if err != nil {
				p.add(h.config, h.where("namespaceSelector"), "invalid: %v", err)
				return
			}
			if selected != w.selected {
				verb := "does not select"
				if selected {
					verb = "selects"
				}
				p.add(h.config, h.where("namespaceSelector"), "%s a namespace with labels %v; the %s scope must %s it",
					verb, namespaceLabels(ns, w.extra), o.scope, map[bool]string{true: "select", false: "not select"}[w.selected])
			}
		}
	}
}

// Rules.

// ruleWant is a set of resources a configuration must intercept for each
// operation listed.
type ruleWant struct {
	group, version string
	resources      []string
	operations     []admissionregistrationv1.OperationType
}

var (
	create       = []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	update       = []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
	createUpdate = []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}

	mutatingRules = []ruleWant{{"", "v1", []string{"pods"}, create}}
	// Pods are checked on CREATE, and on an UPDATE that changes an image
	// (a match condition sends no other); workload templates on CREATE and
	// UPDATE, when they are applied rather than when their pods fail to
	// start.
	validatingRules = []ruleWant{
		{"", "v1", []string{"pods"}, createUpdate},
		{"apps", "v1", []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, createUpdate},
		{"batch", "v1", []string{"jobs", "cronjobs"}, createUpdate},
		// kubectl debug: the ephemeral containers it adds are validated.
		{"", "v1", []string{"pods/ephemeralcontainers"}, update},
		// kubectl scale, warned (never denied) when the new pods would be.
		{"apps", "v1", []string{"deployments/scale", "replicasets/scale", "statefulsets/scale"}, update},
		{"", "v1", []string{"replicationcontrollers/scale"}, update},
	}
)

// stateGuardRules are what the state guard must intercept, and
// stateGuardOnly what it alone may: the writes it judges.
var (
	stateGuardRules = []ruleWant{{"", "v1", []string{"configmaps"}, createUpdate}}
	stateGuardOnly  = []string{"configmaps", "secrets"}
)

func checkRules(r *render, _ overlay, p *problems) {
	byConfig := map[string][]hook{}
	var configs []string
	for _, h := range r.hooks() {
		if h.stateGuard() {
			for _, w := range stateGuardRules {
				for _, res := range w.resources {
					for _, op := range w.operations {
						if !intercepts(h.rules, w.group, w.version, res, op) {
							p.add(h.config, h.where("rules"), "does not intercept %s %s %s", op, w.version, res)
						}
					}
				}
			}
			// Pods and workloads are /validate's: sent here, they would be
			// allowed unjudged.
			for _, rule := range h.rules {
				for _, res := range rule.Resources {
					if !slices.Contains(stateGuardOnly, res) {
						p.add(h.config, h.where("rules"), "intercepts %s; the state guard judges only %v", res, stateGuardOnly)
					}
				}
			}
			continue
		}
		if _, ok := byConfig[h.config]; !ok {
			configs = append(configs, h.config)
		}
		byConfig[h.config] = append(byConfig[h.config], h)
	}
	for _, c := range configs {
		hooks := byConfig[c]
		wants := validatingRules
		if hooks[0].mutating {
			wants = mutatingRules
		}
		for _, w := range wants {
			for _, res := range w.resources {
				for _, op := range w.operations {
					if !slices.ContainsFunc(hooks, func(h hook) bool { return intercepts(h.rules, w.group, w.version, res, op) }) {
						gr := res
						if w.group != "" {
							gr = w.group + "/" + res
						}
						p.add(c, "webhooks[*].rules", "no rule intercepts %s %s %s", op, w.version, gr)
					}
				}
			}
		}
	}
}

// intercepts reports whether rules match a namespaced request, as the API
// server matches them, wildcards included.
func intercepts(rules []admissionregistrationv1.RuleWithOperations, group, version, resource string, op admissionregistrationv1.OperationType) bool {
	in := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, r := range rules {
		scope := ptr.Deref(r.Scope, admissionregistrationv1.AllScopes)
		if in(r.APIGroups, group) && in(r.APIVersions, version) &&
			(in(r.Resources, resource) || slices.Contains(r.Resources, "*/*")) &&
			(slices.Contains(r.Operations, op) || slices.Contains(r.Operations, admissionregistrationv1.OperationAll)) &&
			(scope == admissionregistrationv1.AllScopes || scope == admissionregistrationv1.NamespacedScope) {
			return true
		}
	}
	return false
}

// Namespace and Deployment.

func checkNamespace(r *render, _ overlay, p *problems) {
	for _, ns := range r.namespaces {
		if ns.Name == installNamespace {
			if got := ns.Labels[psaEnforceLabel]; got != string(api.LevelRestricted) {
				p.add(describe("Namespace", "", ns.Name), "metadata.labels["+psaEnforceLabel+"]", "%q, want restricted", got)
			}
			return
		}
	}
	p.add("render", "", "has no Namespace %s", installNamespace)
}

func checkDeployment(r *render, _ overlay, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	ref := deploymentRef(d)
	if d.Namespace != installNamespace {
		p.add(ref, "metadata.namespace", "%q, want %s", d.Namespace, installNamespace)
	}
	spec := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	if n := ptr.Deref(d.Spec.Replicas, 1); n < 2 {
		p.add(ref, "spec.replicas", "%d, want at least 2, so that one replica can be down without stopping admissions", n)
	}
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		p.add(ref, "spec.selector", "does not select the pod template's labels %v (err: %v)", podLabels, err)
	}
	if len(spec.TopologySpreadConstraints) == 0 {
		p.add(ref, "spec.template.spec.topologySpreadConstraints", "none; the replicas may all land on one node")
	}
	for i, c := range spec.TopologySpreadConstraints {
		if sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector); err != nil || !sel.Matches(podLabels) {
			p.add(ref, fmt.Sprintf("spec.template.spec.topologySpreadConstraints[%d].labelSelector", i), "does not select the pod template's labels %v, so it spreads nothing", podLabels)
		}
	}

	type ctr struct {
		path string
		c    corev1.Container
	}
	var all []ctr
	for i, c := range spec.InitContainers {
		all = append(all, ctr{fmt.Sprintf("spec.template.spec.initContainers[%d](%s)", i, c.Name), c})
	}
	for i, c := range spec.Containers {
		all = append(all, ctr{fmt.Sprintf("spec.template.spec.containers[%d](%s)", i, c.Name), c})
	}
	for _, c := range all {
		if !strings.Contains(c.path, "initContainers") {
			if c.c.LivenessProbe == nil {
				p.add(ref, c.path+".livenessProbe", "missing")
			}
			if c.c.ReadinessProbe == nil {
				p.add(ref, c.path+".readinessProbe", "missing")
			}
		}
		// A memory limit but no CPU limit: CPU is compressible, and a CPU
		// limit would throttle admissions under load.
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.c.Resources.Requests[name]; !ok {
				p.add(ref, c.path+".resources.requests."+string(name), "missing")
			}
		}
		if _, ok := c.c.Resources.Limits[corev1.ResourceMemory]; !ok {
			p.add(ref, c.path+".resources.limits.memory", "missing")
		}
		if c.c.SecurityContext == nil || !ptr.Deref(c.c.SecurityContext.ReadOnlyRootFilesystem, false) {
			p.add(ref, c.path+".securityContext.readOnlyRootFilesystem", "not true")
		}
	}
}

// criticalPriorityClasses are the priority classes that clusters such as GKE
// admit outside kube-system only in a namespace whose ResourceQuota covers
// them.
var criticalPriorityClasses = []string{"system-cluster-critical", "system-node-critical"}

// checkPriorityClass checks that a Deployment of a critical priority class
// comes with the ResourceQuota that lets it into its namespace on such
// clusters, one that allows at least the pods of a rollout.
func checkPriorityClass(r *render, _ overlay, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	class := d.Spec.Template.Spec.PriorityClassName
	if !slices.Contains(criticalPriorityClasses, class) {
		return
	}
	// A rollout runs the replicas plus a surge of at most as many again.
	need := 2 * int64(ptr.Deref(d.Spec.Replicas, 1))
	for _, q := range r.resourceQuotas {
		if q.Namespace != d.Namespace || q.Spec.ScopeSelector == nil {
			continue
		}
		covers := false
		for _, e := range q.Spec.ScopeSelector.MatchExpressions {
			if e.ScopeName == corev1.ResourceQuotaScopePriorityClass &&
				(e.Operator == corev1.ScopeSelectorOpExists || (e.Operator == corev1.ScopeSelectorOpIn && slices.Contains(e.Values, class))) {
				covers = true
			}
		}
		if !covers {
			continue
		}
		ref := describe("ResourceQuota", q.Namespace, q.Name)
		if n, ok := q.Spec.Hard[corev1.ResourcePods]; !ok || n.Value() < need {
			p.add(ref, "spec.hard.pods", "%s, want at least %d: the replicas and a rollout's surge", n.String(), need)
		}
		for name := range q.Spec.Hard {
			if name != corev1.ResourcePods {
				p.add(ref, "spec.hard."+string(name), "set; the quota exists to let the priority class in, not to limit podguard's %s", name)
			}
		}
		return
	}
	p.add(deploymentRef(d), "spec.template.spec.priorityClassName", "%s, but no ResourceQuota in %s has a PriorityClass scope covering it: GKE and others refuse the pods", class, d.Namespace)
}

var restrictedEvaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// checkPodSecurity runs the Pod Security Admission checks of the restricted
// level, latest version, on the Deployment's pod template, as the API server
// would in a namespace that enforces it.
func checkPodSecurity(r *render, _ overlay, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	eval, err := restrictedEvaluator()
	if err != nil {
		p.add("Pod Security evaluator", "", "%v", err)
		return
	}
	lv := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	for _, res := range eval.EvaluatePod(lv, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
		if !res.Allowed {
			p.add(deploymentRef(d), "spec.template", "violates Pod Security %s: %s: %s", lv, res.ForbiddenReason, res.ForbiddenDetail)
		}
	}
}

// flagFile is a file that a flag of podguard's container names, followed to
// the volume it is read from.
type flagFile struct {
	d          *appsv1.Deployment
	ref, cpath string
	flag, file string
	mount      corev1.VolumeMount // the deepest mount above the file
	vol        *corev1.Volume     // the mount's volume; nil if there is none
	rel        string             // the file's path within the volume
}

// followFlagFile follows --flag of podguard's container to the mount and
// volume it is read from. It reports a missing flag (with missing), a file
// under no mount, and a subPath mount (which stops updates of the file from
// reaching podguard: subPathStops says which), and returns false when there
// is nothing more to check.
func followFlagFile(r *render, p *problems, flag, missing, subPathStops string) (flagFile, bool) {
	d := r.deployment(p)
	if d == nil {
		return flagFile{}, false
	}
	c, cpath := podguardContainer(d, p)
	if c == nil {
		return flagFile{}, false
	}
	f := flagFile{d: d, ref: deploymentRef(d), cpath: cpath, flag: flag}
	file, ok := argValue(c.Args, flag)
	if !ok {
		p.add(f.ref, cpath+".args", "%s", missing)
		return f, false
	}
	f.file = path.Clean(file)
	mountIdx := -1
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(f.file, strings.TrimSuffix(m.MountPath, "/")+"/") && (mountIdx < 0 || len(m.MountPath) > len(c.VolumeMounts[mountIdx].MountPath)) {
			mountIdx = i
		}
	}
	if mountIdx < 0 {
		p.add(f.ref, cpath+".args", "--%s=%s is not under any of the container's volumeMounts", flag, f.file)
		return f, false
	}
	f.mount = c.VolumeMounts[mountIdx]
	if f.mount.SubPath != "" || f.mount.SubPathExpr != "" {
		p.add(f.ref, cpath+".volumeMounts["+f.mount.Name+"]", "uses subPath, which stops %s from reaching podguard", subPathStops)
	}
	if vi := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == f.mount.Name }); vi >= 0 {
		f.vol = &d.Spec.Template.Spec.Volumes[vi]
	}
	f.rel = strings.TrimPrefix(f.file, strings.TrimSuffix(f.mount.MountPath, "/")+"/")
	return f, true
}

// checkConfig follows --config to the ConfigMap key it reads and parses it
// as podguard would.
func checkConfig(r *render, _ overlay, p *problems) {
	f, ok := followFlagFile(r, p, "config", "no --config flag; podguard would run on built-in defaults", "ConfigMap updates")
	if !ok {
		return
	}
	d, ref, file, vol, rel := f.d, f.ref, f.file, f.vol, f.rel
	if vol == nil || vol.ConfigMap == nil {
		p.add(ref, "spec.template.spec.volumes["+f.mount.Name+"]", "--config=%s is on volume %s, which is not a ConfigMap volume", file, f.mount.Name)
		return
	}
	key := rel
	if len(vol.ConfigMap.Items) > 0 {
		key = ""
		for _, it := range vol.ConfigMap.Items {
			if it.Path == rel {
				key = it.Key
			}
		}
		if key == "" {
			p.add(ref, "spec.template.spec.volumes["+vol.Name+"].configMap.items", "no item has path %s, which --config=%s reads", rel, file)
			return
		}
	}
	var cm *corev1.ConfigMap
	for _, m := range r.configMaps {
		if m.Name == vol.ConfigMap.Name && m.Namespace == d.Namespace {
			cm = m
		}
	}
	if cm == nil {
		p.add(ref, "spec.template.spec.volumes["+vol.Name+"].configMap.name", "ConfigMap %s/%s is not in the render", d.Namespace, vol.ConfigMap.Name)
		return
	}
	cmRef := describe("ConfigMap", cm.Namespace, cm.Name)
	data, ok := cm.Data[key]
	if !ok {
		p.add(cmRef, "data", "has no key %s, which --config=%s reads", key, file)
		return
	}
	if _, err := config.Parse(cmRef+" data."+key, []byte(data)); err != nil {
		p.add(cmRef, "data."+key, "podguard would reject it: %v", err)
	}
}

// checkPDB looks for a PodDisruptionBudget over the Deployment's pods.
func checkPDB(r *render, _ overlay, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	podLabels := labels.Set(d.Spec.Template.Labels)
	var found bool
	for _, b := range r.pdbs {
		ref := describe("PodDisruptionBudget", b.Namespace, b.Name)
		// A nil selector selects no pods in policy/v1.
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil {
			p.add(ref, "spec.selector", "invalid: %v", err)
			continue
		}
		if b.Namespace != d.Namespace || !sel.Matches(podLabels) {
			p.add(ref, "spec.selector", "%q in namespace %s does not select the pods of %s (labels %v)", sel, b.Namespace, deploymentRef(d), podLabels)
			continue
		}
		found = true
		if b.Spec.MaxUnavailable == nil && b.Spec.MinAvailable == nil {
			p.add(ref, "spec", "neither maxUnavailable nor minAvailable is set")
		}
	}
	if !found {
		p.add("render", "", "no PodDisruptionBudget selects the pods of %s", deploymentRef(d))
	}
}

// checkService follows each webhook's clientConfig.service to a Service port,
// and that port to a container port of the Deployment's pods.
func checkService(r *render, _ overlay, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	podLabels := labels.Set(d.Spec.Template.Labels)
	servePort := 0
	if c, _ := podguardContainer(d, p); c != nil {
		if v, ok := argValue(c.Args, "port"); ok {
			servePort, _ = strconv.Atoi(v)
		}
	}
	for _, h := range r.hooks() {
		svcRef := h.clientConfig.Service
		if svcRef == nil {
			p.add(h.config, h.where("clientConfig.service"), "missing; the shipped webhooks must call podguard's Service")
			continue
		}
		wantPath := "/validate"
		switch {
		case h.mutating:
			wantPath = "/mutate"
		case h.stateGuard():
			wantPath = "/validate-state"
		}
		if got := ptr.Deref(svcRef.Path, ""); got != wantPath {
			p.add(h.config, h.where("clientConfig.service.path"), "%q, want %s", got, wantPath)
		}
		var svc *corev1.Service
		for _, s := range r.services {
			if s.Name == svcRef.Name && s.Namespace == svcRef.Namespace {
				svc = s
			}
		}
		if svc == nil {
			p.add(h.config, h.where("clientConfig.service"), "Service %s/%s is not in the render", svcRef.Namespace, svcRef.Name)
			continue
		}
		ref := describe("Service", svc.Namespace, svc.Name)
		if len(svc.Spec.Selector) == 0 || svc.Namespace != d.Namespace || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			p.add(ref, "spec.selector", "%v does not select the pods of %s (labels %v)", svc.Spec.Selector, deploymentRef(d), podLabels)
		}
		port := ptr.Deref(svcRef.Port, 443) // the API server's default
		var sp *corev1.ServicePort
		for i := range svc.Spec.Ports {
			if svc.Spec.Ports[i].Port == port {
				sp = &svc.Spec.Ports[i]
			}
		}
		if sp == nil {
			p.add(h.config, h.where("clientConfig.service.port"), "%d is not a port of %s", port, ref)
			continue
		}
		portPath := fmt.Sprintf("spec.ports[%s].targetPort", sp.Name)
		target, ok := containerPort(d, sp.TargetPort, sp.Port)
		if !ok {
			p.add(ref, portPath, "%q names no containerPort of %s", sp.TargetPort.String(), deploymentRef(d))
			continue
		}
		if servePort != 0 && target != servePort {
			p.add(ref, portPath, "%q is container port %d, but podguard serves the webhook on --port=%d", sp.TargetPort.String(), target, servePort)
		}
	}
}

// containerPort resolves a Service port's targetPort against the pod
// template: a name must name a containerPort, a number must be one.
func containerPort(d *appsv1.Deployment, target intstr.IntOrString, port int32) (int, bool) {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, cp := range c.Ports {
			switch {
			case target.Type == intstr.String && target.StrVal == cp.Name:
				return int(cp.ContainerPort), true
			case target.Type == intstr.Int && target.IntVal == 0 && cp.ContainerPort == port:
				return int(cp.ContainerPort), true // unset: the Service port itself
			case target.Type == intstr.Int && target.IntVal != 0 && target.IntVal == cp.ContainerPort:
				return int(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

// RBAC.

// grant is one verb on one resource, by name or not, in one namespace or
// cluster-wide: the unit RBAC allows.
type grant struct {
	namespace string // "" is cluster-wide
	group     string
	resource  string
	verb      string
	name      string // "" is any name
}

func (g grant) String() string {
	s := g.verb + " " + g.resource
	if g.group != "" {
		s = g.verb + " " + g.group + "/" + g.resource
	}
	if g.name != "" {
		s += " named " + g.name
	}
	if g.namespace == "" {
		return s + " cluster-wide"
	}
	return s + " in namespace " + g.namespace
}

// allowedGrants is the exact set of permissions podguard's ServiceAccount
// may hold in an overlay.
func allowedGrants(o overlay) map[grant]bool {
	allowed := map[grant]bool{}
	// What the policies read, cached by podguard's informers.
	for _, res := range []string{"configmaps", "namespaces", "nodes"} {
		for _, verb := range []string{"get", "list", "watch"} {
			allowed[grant{resource: res, verb: verb}] = true
		}
	}
	// The PodDenied event on a workload, written and counted by client-go's
	// recorder.
	allowed[grant{resource: "events", verb: "create"}] = true
	allowed[grant{resource: "events", verb: "patch"}] = true
	// The Pods and pod-bearing workloads: a GET of a denied pod's
	// controller, to check it is the one the pod names and to find a
	// ReplicaSet's Deployment or a Job's CronJob, and of a scaled workload,
	// to warn; a list of a namespace's, when a ConfigMap or Secret write
	// there changes key names (the state guard); list and watch for the
	// background audit.
	for _, gr := range []struct{ group, resource string }{
		{"", "pods"}, {"", "replicationcontrollers"},
		{"apps", "deployments"}, {"apps", "replicasets"}, {"apps", "statefulsets"}, {"apps", "daemonsets"},
		{"batch", "jobs"}, {"batch", "cronjobs"},
	} {
		for _, verb := range []string{"get", "list", "watch"} {
			allowed[grant{group: gr.group, resource: gr.resource, verb: verb}] = true
		}
	}
	// The background audit: the pod webhook's namespaceSelector, from
	// podguard's own configuration; the Lease its replicas hold in turn;
	// the policy reports it writes, in either API.
	allowed[grant{group: admissionregistrationv1.GroupName, resource: "validatingwebhookconfigurations", verb: "get", name: configurationName}] = true
	allowed[grant{namespace: installNamespace, group: "coordination.k8s.io", resource: "leases", verb: "create"}] = true
	for _, verb := range []string{"get", "update"} {
		allowed[grant{namespace: installNamespace, group: "coordination.k8s.io", resource: "leases", verb: verb, name: "podguard-audit"}] = true
	}
	for _, gr := range []struct{ group, resource string }{{"openreports.io", "reports"}, {"wgpolicyk8s.io", "policyreports"}} {
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			allowed[grant{group: gr.group, resource: gr.resource, verb: verb}] = true
		}
	}
	// Authentication and authorisation of /metrics scrapers.
	allowed[grant{group: "authentication.k8s.io", resource: "tokenreviews", verb: "create"}] = true
	allowed[grant{group: "authorization.k8s.io", resource: "subjectaccessreviews", verb: "create"}] = true
	if o.tls == selfManaged {
		// Its own Secret, and the caBundle of its own webhook configurations.
		for _, verb := range []string{"get", "list", "watch", "update"} {
			allowed[grant{namespace: installNamespace, resource: "secrets", verb: verb, name: tlsSecretName}] = true
		}
		allowed[grant{namespace: installNamespace, resource: "secrets", verb: "create"}] = true
		for _, res := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
			for _, verb := range []string{"get", "list", "watch", "patch"} {
				allowed[grant{group: admissionregistrationv1.GroupName, resource: res, verb: verb, name: configurationName}] = true
			}
		}
	}
	return allowed
}

// checkRBAC collects every rule bound to the Deployment's ServiceAccount and
// compares it with allowedGrants.
func checkRBAC(r *render, o overlay, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	saName := d.Spec.Template.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	saRef := describe("ServiceAccount", d.Namespace, saName)
	if saName != serviceAccountName {
		p.add(deploymentRef(d), "spec.template.spec.serviceAccountName", "%q, want %s", saName, serviceAccountName)
	}
	if !slices.ContainsFunc(r.serviceAccounts, func(sa *corev1.ServiceAccount) bool { return sa.Name == saName && sa.Namespace == d.Namespace }) {
		p.add("render", "", "has no %s, which %s runs as", saRef, deploymentRef(d))
	}

	granted := map[grant][]string{} // grant → where it comes from
	addRules := func(source, namespace string, rules []rbacv1.PolicyRule) {
		for i, rule := range rules {
			where := fmt.Sprintf("%s rules[%d]", source, i)
			if len(rule.NonResourceURLs) > 0 {
				p.add(saRef, where+".nonResourceURLs", "%v is not in the allow-list", rule.NonResourceURLs)
			}
			for _, f := range []struct {
				field  string
				values []string
			}{{"apiGroups", rule.APIGroups}, {"resources", rule.Resources}, {"verbs", rule.Verbs}, {"resourceNames", rule.ResourceNames}} {
				if slices.ContainsFunc(f.values, func(v string) bool { return strings.Contains(v, "*") }) {
					p.add(saRef, where+"."+f.field, "%q has a wildcard", f.values)
				}
			}
			names := rule.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, verb := range rule.Verbs {
						for _, name := range names {
							k := grant{namespace: namespace, group: g, resource: res, verb: verb, name: name}
							granted[k] = append(granted[k], where)
						}
					}
				}
			}
		}
	}
	clusterRole := func(name string) *rbacv1.ClusterRole {
		for _, cr := range r.clusterRoles {
			if cr.Name == name {
				return cr
			}
		}
		return nil
	}
	bindRole := func(binding, bindingNS string, ref rbacv1.RoleRef) {
		source := binding + " → " + describe(ref.Kind, "", ref.Name)
		if ref.APIGroup != rbacv1.GroupName {
			p.add(binding, "roleRef.apiGroup", "%q, want %s", ref.APIGroup, rbacv1.GroupName)
			return
		}
		switch ref.Kind {
		case "ClusterRole":
			cr := clusterRole(ref.Name)
			if cr == nil {
				p.add(binding, "roleRef", "binds ClusterRole %s, which is not in the render, so its rules cannot be checked", ref.Name)
				return
			}
			if cr.AggregationRule != nil {
				p.add(describe("ClusterRole", "", cr.Name), "aggregationRule", "set; aggregated rules cannot be checked")
			}
			addRules(source, bindingNS, cr.Rules)
		case "Role":
			for _, role := range r.roles {
				if role.Name == ref.Name && role.Namespace == bindingNS {
					addRules(describe("Role", role.Namespace, role.Name)+" via "+binding, bindingNS, role.Rules)
					return
				}
			}
			p.add(binding, "roleRef", "binds Role %s/%s, which is not in the render", bindingNS, ref.Name)
		default:
			p.add(binding, "roleRef.kind", "%q, want ClusterRole or Role", ref.Kind)
		}
	}
	for _, b := range r.clusterRoleBindings {
		if bindsServiceAccount(b.Subjects, "", d.Namespace, saName) {
			bindRole(describe("ClusterRoleBinding", "", b.Name), "", b.RoleRef)
		}
	}
	for _, b := range r.roleBindings {
		if bindsServiceAccount(b.Subjects, b.Namespace, d.Namespace, saName) {
			bindRole(describe("RoleBinding", b.Namespace, b.Name), b.Namespace, b.RoleRef)
		}
	}

	allowed := allowedGrants(o)
	var extra, missing []string
	for g, sources := range granted {
		if !allowed[g] {
			extra = append(extra, fmt.Sprintf("%s (from %s)", g, strings.Join(sources, ", ")))
		}
	}
	for g := range allowed {
		if _, ok := granted[g]; !ok {
			missing = append(missing, g.String())
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	for _, g := range extra {
		p.add(saRef, "", "may %s, which the %s allow-list does not include", g, o.tls)
	}
	for _, g := range missing {
		p.add(saRef, "", "may not %s, which podguard needs with %s TLS", g, o.tls)
	}
}

// bindsServiceAccount reports whether a binding in bindingNS ("" for a
// ClusterRoleBinding) with subjects applies to the ServiceAccount ns/name,
// as the RBAC authorizer decides it.
func bindsServiceAccount(subjects []rbacv1.Subject, bindingNS, ns, name string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			saNS := s.Namespace
			if saNS == "" {
				saNS = bindingNS
			}
			if s.Name == name && saNS == ns {
				return true
			}
		case rbacv1.UserKind:
			if s.Name == "system:serviceaccount:"+ns+":"+name {
				return true
			}
		case rbacv1.GroupKind:
			if s.Name == "system:serviceaccounts" || s.Name == "system:serviceaccounts:"+ns || s.Name == "system:authenticated" {
				return true
			}
		}
	}
	return false
}

// TLS.

func checkTLS(r *render, o overlay, p *problems) {
	switch o.tls {
	case certManager:
		checkCertManager(r, p)
	case selfManaged:
		checkSelfManaged(r, p)
	default:
		p.add("overlays table", o.dir, "unknown TLS mode %q", o.tls)
	}
}

// webhookConfigs returns the name and annotations of every webhook
// configuration.
func (r *render) webhookConfigs() map[string]map[string]string {
	configs := map[string]map[string]string{}
	for _, c := range r.mutating {
		configs[describe("MutatingWebhookConfiguration", "", c.Name)] = c.Annotations
	}
	for _, c := range r.validating {
		configs[describe("ValidatingWebhookConfiguration", "", c.Name)] = c.Annotations
	}
	return configs
}

// certManagerObject returns the cert-manager object of that kind, namespace
// and name, or nil.
func (r *render) certManagerObject(kind, namespace, name string) *unstructured.Unstructured {
	for _, u := range r.certManager {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	return nil
}

func unstructuredRef(u *unstructured.Unstructured) string {
	return describe(u.GetKind(), u.GetNamespace(), u.GetName())
}

func nestedString(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

// issuerOf returns the Issuer a Certificate's issuerRef names, or nil after
// adding a problem.
func (r *render) issuerOf(cert *unstructured.Unstructured, p *problems) *unstructured.Unstructured {
	ref := unstructuredRef(cert)
	kind := nestedString(cert, "spec", "issuerRef", "kind")
	if kind == "" {
		kind = "Issuer"
	}
	if g := nestedString(cert, "spec", "issuerRef", "group"); g != "" && g != certManagerGV.Group {
		p.add(ref, "spec.issuerRef.group", "%q, want %s", g, certManagerGV.Group)
		return nil
	}
	if kind != "Issuer" {
		p.add(ref, "spec.issuerRef.kind", "%q; want an Issuer in %s, which the render can show", kind, cert.GetNamespace())
		return nil
	}
	name := nestedString(cert, "spec", "issuerRef", "name")
	issuer := r.certManagerObject("Issuer", cert.GetNamespace(), name)
	if issuer == nil {
		p.add(ref, "spec.issuerRef.name", "Issuer %s/%s is not in the render", cert.GetNamespace(), name)
	}
	return issuer
}

// checkCertManager follows the CA injection annotation to the serving
// Certificate, and its issuer chain to a self-signed root.
func checkCertManager(r *render, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	c, cpath := podguardContainer(d, p)
	if c == nil {
		return
	}
	if v, _ := argValue(c.Args, "cert-mode"); v == "self-managed" {
		p.add(deploymentRef(d), cpath+".args", "--cert-mode=self-managed in a cert-manager overlay")
	}
	// The Secret podguard reads its certificate from.
	var secret, mountPath string
	for _, m := range c.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				if secret != "" {
					p.add(deploymentRef(d), cpath+".volumeMounts", "mounts more than one Secret (%s, %s); want only the serving certificate's", secret, v.Secret.SecretName)
				}
				secret, mountPath = v.Secret.SecretName, m.MountPath
			}
		}
	}
	if secret == "" {
		p.add(deploymentRef(d), cpath+".volumeMounts", "mounts no Secret; podguard has no serving certificate")
		return
	}
	if dir, ok := argValue(c.Args, "cert-dir"); ok && path.Clean(dir) != path.Clean(mountPath) {
		p.add(deploymentRef(d), cpath+".args", "--cert-dir=%s, but the Secret %s is mounted at %s", dir, secret, mountPath)
	}

	for config, annotations := range r.webhookConfigs() {
		from, ok := annotations[injectCAAnnotation]
		if !ok {
			p.add(config, "metadata.annotations["+injectCAAnnotation+"]", "missing; cert-manager would not inject the CA, and the API server could not call podguard")
			continue
		}
		ns, name, ok := strings.Cut(from, "/")
		if !ok {
			p.add(config, "metadata.annotations["+injectCAAnnotation+"]", "%q, want namespace/name of a Certificate", from)
			continue
		}
		cert := r.certManagerObject("Certificate", ns, name)
		if cert == nil {
			p.add(config, "metadata.annotations["+injectCAAnnotation+"]", "names Certificate %s, which is not in the render", from)
			continue
		}
		checkServingCertificate(r, d, cert, secret, p)
	}
}

func checkServingCertificate(r *render, d *appsv1.Deployment, cert *unstructured.Unstructured, secret string, p *problems) {
	ref := unstructuredRef(cert)
	if cert.GetNamespace() != d.Namespace {
		p.add(ref, "metadata.namespace", "%q; the Secret must be in the Deployment's namespace %s", cert.GetNamespace(), d.Namespace)
	}
	if got := nestedString(cert, "spec", "secretName"); got != secret {
		p.add(ref, "spec.secretName", "%q, but %s mounts Secret %q", got, deploymentRef(d), secret)
	}
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	for _, h := range r.hooks() {
		if s := h.clientConfig.Service; s != nil {
			if want := s.Name + "." + s.Namespace + ".svc"; !slices.Contains(dnsNames, want) {
				p.add(ref, "spec.dnsNames", "%q lacks %s, the name the API server calls %s on", dnsNames, want, h.name)
			}
		}
	}

	ca := r.issuerOf(cert, p)
	if ca == nil {
		return
	}
	caRef := unstructuredRef(ca)
	caSecret := nestedString(ca, "spec", "ca", "secretName")
	if caSecret == "" {
		p.add(caRef, "spec.ca.secretName", "missing; %s must be issued by a CA Issuer", ref)
		return
	}
	var root *unstructured.Unstructured
	for _, u := range r.certManager {
		if u.GetKind() == "Certificate" && u.GetNamespace() == ca.GetNamespace() && nestedString(u, "spec", "secretName") == caSecret {
			root = u
		}
	}
	if root == nil {
		p.add(caRef, "spec.ca.secretName", "Secret %s is issued by no Certificate in the render", caSecret)
		return
	}
	rootRef := unstructuredRef(root)
	if isCA, _, _ := unstructured.NestedBool(root.Object, "spec", "isCA"); !isCA {
		p.add(rootRef, "spec.isCA", "not true, but %s signs with its Secret %s", caRef, caSecret)
	}
	selfSigned := r.issuerOf(root, p)
	if selfSigned == nil {
		return
	}
	if _, ok, _ := unstructured.NestedFieldNoCopy(selfSigned.Object, "spec", "selfSigned"); !ok {
		p.add(unstructuredRef(selfSigned), "spec.selfSigned", "missing; %s must be issued by a selfSigned Issuer", rootRef)
	}
}

// checkSelfManaged checks that podguard runs its own certificate management
// and that nothing of cert-manager's is left.
func checkSelfManaged(r *render, p *problems) {
	for _, u := range r.certManager {
		p.add(unstructuredRef(u), "", "a cert-manager object in a self-managed overlay")
	}
	for config, annotations := range r.webhookConfigs() {
		if v, ok := annotations[injectCAAnnotation]; ok {
			p.add(config, "metadata.annotations["+injectCAAnnotation+"]", "%q in a self-managed overlay; podguard patches the CA itself", v)
		}
	}
	d := r.deployment(p)
	if d == nil {
		return
	}
	c, cpath := podguardContainer(d, p)
	if c == nil {
		return
	}
	ref := deploymentRef(d)
	if v, ok := argValue(c.Args, "cert-mode"); v != "self-managed" {
		p.add(ref, cpath+".args", "--cert-mode=%q (set: %t), want --cert-mode=self-managed", v, ok)
	}
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" })
	if i < 0 {
		p.add(ref, cpath+".env", "no POD_NAMESPACE; podguard would not know where its Secret lives")
		return
	}
	e := c.Env[i]
	if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		p.add(ref, fmt.Sprintf("%s.env[%d](POD_NAMESPACE)", cpath, i), "want valueFrom.fieldRef.fieldPath metadata.namespace (the downward API), got %s", mustJSON(e))
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// Proof that the checks fail.

func TestDiscoverOverlays(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"a/kustomization.yaml", "b/c/kustomization.yml", "b/d/Kustomization", "b/README.md", "e/patch.yaml"} {
		p := filepath.Join(root, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := discoverOverlays(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b/c", "b/d"}; !slices.Equal(got, want) {
		t.Errorf("discoverOverlays = %q, want %q", got, want)
	}
}

// runChecks runs every check on r and returns the problems found.
func runChecks(r *render, o overlay) problems {
	var p problems
	for _, c := range checks {
		c.run(r, o, &p)
	}
	return p
}

func overlayByDir(t *testing.T, dir string) overlay {
	t.Helper()
	for _, o := range overlays {
		if o.dir == dir {
			return o
		}
	}
	t.Fatalf("no overlay %s in the table", dir)
	return overlay{}
}

// Accessors for the breakage cases. They fail the test, rather than panic,
// when the render no longer has the object a case breaks.
func mutatingHook(t *testing.T, r *render) *admissionregistrationv1.MutatingWebhook {
	t.Helper()
	if len(r.mutating) == 0 || len(r.mutating[0].Webhooks) == 0 {
		t.Fatal("the render has no mutating webhook to break")
	}
	return &r.mutating[0].Webhooks[0]
}

func stateGuardHook(t *testing.T, r *render) *admissionregistrationv1.ValidatingWebhook {
	t.Helper()
	for _, c := range r.validating {
		for i := range c.Webhooks {
			if c.Webhooks[i].Name == stateGuardName {
				return &c.Webhooks[i]
			}
		}
	}
	t.Fatal("the render has no state guard to break")
	return nil
}

func validatingHook(t *testing.T, r *render) *admissionregistrationv1.ValidatingWebhook {
	t.Helper()
	if len(r.validating) == 0 || len(r.validating[0].Webhooks) == 0 {
		t.Fatal("the render has no validating webhook to break")
	}
	return &r.validating[0].Webhooks[0]
}

func deploymentOf(t *testing.T, r *render) *appsv1.Deployment {
	t.Helper()
	if len(r.deployments) == 0 {
		t.Fatal("the render has no Deployment to break")
	}
	return r.deployments[0]
}

func containerOf(t *testing.T, r *render) *corev1.Container {
	t.Helper()
	d := deploymentOf(t, r)
	var p problems
	c, _ := podguardContainer(d, &p)
	if c == nil {
		t.Fatal(p)
	}
	return c
}

func setArg(t *testing.T, r *render, name, value string) {
	t.Helper()
	c := containerOf(t, r)
	c.Args = slices.DeleteFunc(c.Args, func(a string) bool {
		return a == "--"+name || strings.HasPrefix(a, "--"+name+"=") || a == "-"+name || strings.HasPrefix(a, "-"+name+"=")
	})
	if value != "" {
		c.Args = append(c.Args, "--"+name+"="+value)
	}
}

func clusterRoleOf(t *testing.T, r *render, name string) *rbacv1.ClusterRole {
	t.Helper()
	for _, cr := range r.clusterRoles {
		if cr.Name == name {
			return cr
		}
	}
	t.Fatalf("the render has no ClusterRole %s to break", name)
	return nil
}

func certManagerOf(t *testing.T, r *render, kind, name string) *unstructured.Unstructured {
	t.Helper()
	if u := r.certManagerObject(kind, installNamespace, name); u != nil {
		return u
	}
	t.Fatalf("the render has no %s %s/%s to break", kind, installNamespace, name)
	return nil
}

func setNested(t *testing.T, u *unstructured.Unstructured, value any, fields ...string) {
	t.Helper()
	if err := unstructured.SetNestedField(u.Object, value, fields...); err != nil {
		t.Fatal(err)
	}
}

// TestChecksCatchBreakage breaks one thing at a time in a decoded overlay and
// expects the checks to report it, with a message that the unbroken overlay
// does not produce.
func TestChecksCatchBreakage(t *testing.T) {
	const (
		cmOptIn      = "opt-in"
		cmWide       = "cluster-wide"
		selfOptIn    = "self-managed/opt-in"
		selfWide     = "self-managed/cluster-wide"
		webhookRole  = "podguard-webhook-ca"
		deploymentID = "Deployment podguard-system/podguard: "
	)
	tests := []struct {
		name    string
		overlay string
		breaks  func(t *testing.T, r *render)
		want    string // a substring of one problem
	}{
		// Webhook configurations.
		{"validating webhook fails open", cmOptIn, func(t *testing.T, r *render) {
			validatingHook(t, r).FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		}, "ValidatingWebhookConfiguration podguard: webhooks[0](validate.podguard.io).failurePolicy: Ignore, want Fail"},
		{"state guard fails closed", cmWide, func(t *testing.T, r *render) {
			stateGuardHook(t, r).FailurePolicy = ptr.To(admissionregistrationv1.Fail)
		}, "ValidatingWebhookConfiguration podguard: webhooks[1](state.podguard.io).failurePolicy: Fail, want Ignore"},
		{"state guard sent pods", selfOptIn, func(t *testing.T, r *render) {
			h := stateGuardHook(t, r)
			h.Rules[0].Resources = append(h.Rules[0].Resources, "pods")
		}, "webhooks[1](state.podguard.io).rules: intercepts pods; the state guard judges only"},
		{"state guard sent no ConfigMap", cmOptIn, func(t *testing.T, r *render) {
			stateGuardHook(t, r).Rules[0].Operations = create
		}, "webhooks[1](state.podguard.io).rules: does not intercept UPDATE v1 configmaps"},
		{"state guard outside the opt-in scope", cmOptIn, func(t *testing.T, r *render) {
			h := stateGuardHook(t, r)
			h.NamespaceSelector.MatchExpressions = h.NamespaceSelector.MatchExpressions[:1]
		}, "webhooks[1](state.podguard.io).namespaceSelector: selects a namespace with labels kubernetes.io/metadata.name=team-a; the opt-in scope must not select it"},
		{"state guard gone", selfWide, func(t *testing.T, r *render) {
			r.validating[0].Webhooks = r.validating[0].Webhooks[:1]
		}, "ValidatingWebhookConfiguration podguard: webhooks: has 0 webhooks named state.podguard.io, want one"},
		{"mutating webhook fails closed by default", selfWide, func(t *testing.T, r *render) {
			mutatingHook(t, r).FailurePolicy = nil
		}, "MutatingWebhookConfiguration podguard: webhooks[0](mutate.podguard.io).failurePolicy: Fail, want Ignore"},
		{"mutating webhook not reinvoked", cmWide, func(t *testing.T, r *render) {
			mutatingHook(t, r).ReinvocationPolicy = nil
		}, "webhooks[0](mutate.podguard.io).reinvocationPolicy: Never, want IfNeeded"},
		{"side effects", cmOptIn, func(t *testing.T, r *render) {
			validatingHook(t, r).SideEffects = ptr.To(admissionregistrationv1.SideEffectClassNone)
		}, `webhooks[0](validate.podguard.io).sideEffects: "None", want NoneOnDryRun`},
		{"review versions", cmOptIn, func(t *testing.T, r *render) {
			mutatingHook(t, r).AdmissionReviewVersions = []string{"v1", "v1beta1"}
		}, `webhooks[0](mutate.podguard.io).admissionReviewVersions: ["v1" "v1beta1"], want [v1]`},
		{"timeout", selfOptIn, func(t *testing.T, r *render) {
			validatingHook(t, r).TimeoutSeconds = ptr.To[int32](30)
		}, "webhooks[0](validate.podguard.io).timeoutSeconds: 30, want at most 10"},
		{"a second mutating configuration", cmOptIn, func(t *testing.T, r *render) {
			extra := r.mutating[0].DeepCopy()
			extra.Name = "podguard-extra"
			r.mutating = append(r.mutating, extra)
		}, "render: has MutatingWebhookConfigurations [podguard podguard-extra], want exactly one, named podguard"},
		{"validating configuration renamed", selfOptIn, func(t *testing.T, r *render) {
			r.validating[0].Name = "podguard-validating"
		}, "render: has ValidatingWebhookConfigurations [podguard-validating], want exactly one, named podguard"},

		// Exclusions and scope, by selector evaluation.
		{"kube-node-lease no longer excluded", cmWide, func(t *testing.T, r *render) {
			sel := mutatingHook(t, r).NamespaceSelector
			for i := range sel.MatchExpressions {
				sel.MatchExpressions[i].Values = slices.DeleteFunc(sel.MatchExpressions[i].Values, func(v string) bool { return v == "kube-node-lease" })
			}
		}, "MutatingWebhookConfiguration podguard: webhooks[0](mutate.podguard.io).namespaceSelector: selects namespace kube-node-lease with labels kubernetes.io/metadata.name=kube-node-lease"},
		{"cert-manager not excluded", selfOptIn, func(t *testing.T, r *render) {
			sel := stateGuardHook(t, r).NamespaceSelector
			for i := range sel.MatchExpressions {
				sel.MatchExpressions[i].Values = slices.DeleteFunc(sel.MatchExpressions[i].Values, func(v string) bool { return v == "cert-manager" })
			}
		}, "webhooks[1](state.podguard.io).namespaceSelector: selects namespace cert-manager with labels kubernetes.io/metadata.name=cert-manager,podguard.io/enabled=true; it must never"},
		{"one webhook excludes one more namespace", cmWide, func(t *testing.T, r *render) {
			sel := validatingHook(t, r).NamespaceSelector
			sel.MatchExpressions[0].Values = append(sel.MatchExpressions[0].Values, "team-b")
		}, "ValidatingWebhookConfiguration podguard: webhooks[0](validate.podguard.io).namespaceSelector.matchExpressions: kubernetes.io/metadata.name NotIn lists [[kube-system kube-node-lease podguard-system cert-manager team-b]], want one list [kube-system kube-node-lease podguard-system cert-manager]"},
		{"exclusions split in two expressions", selfWide, func(t *testing.T, r *render) {
			sel := mutatingHook(t, r).NamespaceSelector
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: namespaceNameLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"cert-manager"}})
		}, "webhooks[0](mutate.podguard.io).namespaceSelector.matchExpressions: kubernetes.io/metadata.name NotIn lists"},
		{"opt-in label re-includes kube-system", cmOptIn, func(t *testing.T, r *render) {
			validatingHook(t, r).NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{enabledLabel: "true"}}
		}, "webhooks[0](validate.podguard.io).namespaceSelector: selects namespace kube-system with labels kubernetes.io/metadata.name=kube-system,podguard.io/enabled=true; it must never"},
		{"no selector selects podguard-system", selfWide, func(t *testing.T, r *render) {
			validatingHook(t, r).NamespaceSelector = nil
		}, "namespaceSelector: selects namespace podguard-system with labels kubernetes.io/metadata.name=podguard-system; it must never"},
		{"opt-in overlay acting cluster-wide", cmOptIn, func(t *testing.T, r *render) {
			sel := mutatingHook(t, r).NamespaceSelector
			for i := range sel.MatchExpressions {
				if sel.MatchExpressions[i].Key == enabledLabel {
					sel.MatchExpressions[i] = metav1.LabelSelectorRequirement{Key: enabledLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}
				}
			}
		}, "webhooks[0](mutate.podguard.io).namespaceSelector: selects a namespace with labels kubernetes.io/metadata.name=team-a; the opt-in scope must not select it"},
		{"cluster-wide overlay acting opt-in", selfWide, func(t *testing.T, r *render) {
			sel := validatingHook(t, r).NamespaceSelector
			for i := range sel.MatchExpressions {
				if sel.MatchExpressions[i].Key == enabledLabel {
					sel.MatchExpressions[i] = metav1.LabelSelectorRequirement{Key: enabledLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}}
				}
			}
		}, "webhooks[0](validate.podguard.io).namespaceSelector: does not select a namespace with labels kubernetes.io/metadata.name=team-a; the cluster-wide scope must select it"},
		{"cluster-wide overlay ignores opt-out", cmWide, func(t *testing.T, r *render) {
			sel := validatingHook(t, r).NamespaceSelector
			sel.MatchExpressions = slices.DeleteFunc(sel.MatchExpressions, func(e metav1.LabelSelectorRequirement) bool { return e.Key == enabledLabel })
		}, "selects a namespace with labels kubernetes.io/metadata.name=team-a,podguard.io/enabled=false; the cluster-wide scope must not select it"},

		// Rules.
		{"cronjobs not validated", cmOptIn, func(t *testing.T, r *render) {
			for i := range validatingHook(t, r).Rules {
				rule := &validatingHook(t, r).Rules[i]
				rule.Resources = slices.DeleteFunc(rule.Resources, func(s string) bool { return s == "cronjobs" })
			}
		}, "ValidatingWebhookConfiguration podguard: webhooks[*].rules: no rule intercepts CREATE v1 batch/cronjobs"},
		{"workload updates not validated", selfOptIn, func(t *testing.T, r *render) {
			for i := range validatingHook(t, r).Rules {
				validatingHook(t, r).Rules[i].Operations = create
			}
		}, "no rule intercepts UPDATE v1 apps/statefulsets"},
		{"scale not validated", cmWide, func(t *testing.T, r *render) {
			for i := range validatingHook(t, r).Rules {
				rule := &validatingHook(t, r).Rules[i]
				rule.Resources = slices.DeleteFunc(rule.Resources, func(s string) bool { return strings.HasSuffix(s, "/scale") })
			}
		}, "no rule intercepts UPDATE v1 apps/deployments/scale"},
		{"pod creates not mutated", cmWide, func(t *testing.T, r *render) {
			for i := range mutatingHook(t, r).Rules {
				mutatingHook(t, r).Rules[i].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
			}
		}, "MutatingWebhookConfiguration podguard: webhooks[*].rules: no rule intercepts CREATE v1 pods"},

		// Namespace and Deployment.
		{"namespace does not enforce restricted", cmOptIn, func(t *testing.T, r *render) {
			delete(r.namespaces[0].Labels, psaEnforceLabel)
		}, `Namespace podguard-system: metadata.labels[pod-security.kubernetes.io/enforce]: "", want restricted`},
		{"critical priority class without its quota", cmWide, func(t *testing.T, r *render) {
			r.resourceQuotas = nil
		}, deploymentID + "spec.template.spec.priorityClassName: system-cluster-critical, but no ResourceQuota in podguard-system has a PriorityClass scope covering it"},
		{"quota for another priority class", selfOptIn, func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Template.Spec.PriorityClassName = "system-node-critical"
		}, deploymentID + "spec.template.spec.priorityClassName: system-node-critical, but no ResourceQuota"},
		{"quota too small for a rollout", cmOptIn, func(t *testing.T, r *render) {
			if len(r.resourceQuotas) == 0 {
				t.Fatal("the render has no ResourceQuota to break")
			}
			r.resourceQuotas[0].Spec.Hard[corev1.ResourcePods] = resource.MustParse("2")
		}, "ResourceQuota podguard-system/podguard-critical-pods: spec.hard.pods: 2, want at least 4"},
		{"one replica", cmOptIn, func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Replicas = nil
		}, deploymentID + "spec.replicas: 1, want at least 2"},
		{"no topology spread", selfWide, func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Template.Spec.TopologySpreadConstraints = nil
		}, deploymentID + "spec.template.spec.topologySpreadConstraints: none"},
		{"topology spread over other pods", cmOptIn, func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
		}, deploymentID + "spec.template.spec.topologySpreadConstraints[0].labelSelector: does not select the pod template's labels"},
		{"no readiness probe", cmOptIn, func(t *testing.T, r *render) {
			containerOf(t, r).ReadinessProbe = nil
		}, deploymentID + "spec.template.spec.containers[0](podguard).readinessProbe: missing"},
		{"no liveness probe", selfOptIn, func(t *testing.T, r *render) {
			containerOf(t, r).LivenessProbe = nil
		}, deploymentID + "spec.template.spec.containers[0](podguard).livenessProbe: missing"},
		{"no memory limit", cmWide, func(t *testing.T, r *render) {
			delete(containerOf(t, r).Resources.Limits, corev1.ResourceMemory)
		}, deploymentID + "spec.template.spec.containers[0](podguard).resources.limits.memory: missing"},
		{"no cpu request", cmOptIn, func(t *testing.T, r *render) {
			delete(containerOf(t, r).Resources.Requests, corev1.ResourceCPU)
		}, deploymentID + "spec.template.spec.containers[0](podguard).resources.requests.cpu: missing"},
		{"an init container without resources", cmOptIn, func(t *testing.T, r *render) {
			d := deploymentOf(t, r)
			d.Spec.Template.Spec.InitContainers = append(d.Spec.Template.Spec.InitContainers, corev1.Container{Name: "init", Image: "busybox"})
		}, deploymentID + "spec.template.spec.initContainers[0](init).resources.requests.memory: missing"},
		{"writable root filesystem", selfOptIn, func(t *testing.T, r *render) {
			containerOf(t, r).SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
		}, deploymentID + "spec.template.spec.containers[0](podguard).securityContext.readOnlyRootFilesystem: not true"},

		// Pod Security, restricted:latest.
		{"privilege escalation allowed", cmOptIn, func(t *testing.T, r *render) {
			containerOf(t, r).SecurityContext.AllowPrivilegeEscalation = nil
		}, deploymentID + "spec.template: violates Pod Security restricted:latest: allowPrivilegeEscalation != false"},
		{"capabilities kept", selfWide, func(t *testing.T, r *render) {
			containerOf(t, r).SecurityContext.Capabilities = nil
		}, "violates Pod Security restricted:latest: unrestricted capabilities"},
		{"no seccomp profile", cmWide, func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Template.Spec.SecurityContext.SeccompProfile = nil
		}, "violates Pod Security restricted:latest: seccompProfile"},
		{"may run as root", cmOptIn, func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
			containerOf(t, r).SecurityContext.RunAsNonRoot = nil
		}, "violates Pod Security restricted:latest: runAsNonRoot != true"},
		{"host network", selfOptIn, func(t *testing.T, r *render) {
			deploymentOf(t, r).Spec.Template.Spec.HostNetwork = true
		}, "violates Pod Security restricted:latest: host namespaces: hostNetwork=true"},

		// Config.
		{"no --config", cmOptIn, func(t *testing.T, r *render) {
			setArg(t, r, "config", "")
		}, deploymentID + "spec.template.spec.containers[0].args: no --config flag"},
		{"--config outside the mount", selfWide, func(t *testing.T, r *render) {
			setArg(t, r, "config", "/etc/other/config.yaml")
		}, "--config=/etc/other/config.yaml is not under any of the container's volumeMounts"},
		{"--config names a missing key", cmOptIn, func(t *testing.T, r *render) {
			setArg(t, r, "config", "/etc/podguard/podguard.yaml")
		}, "ConfigMap podguard-system/podguard-config: data: has no key podguard.yaml, which --config=/etc/podguard/podguard.yaml reads"},
		{"config volume not a ConfigMap", cmWide, func(t *testing.T, r *render) {
			for i, v := range deploymentOf(t, r).Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					deploymentOf(t, r).Spec.Template.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
				}
			}
		}, "which is not a ConfigMap volume"},
		{"invalid config", selfOptIn, func(t *testing.T, r *render) {
			for _, cm := range r.configMaps {
				for k, v := range cm.Data {
					cm.Data[k] = strings.Replace(v, "posix: warn", "posix: maybe", 1) + "  unknownPolicy: {}\n"
				}
			}
		}, "ConfigMap podguard-system/podguard-config: data.config.yaml: podguard would reject it: invalid config"},

		// PodDisruptionBudget.
		{"PDB selects other pods", cmOptIn, func(t *testing.T, r *render) {
			r.pdbs[0].Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
		}, "render: no PodDisruptionBudget selects the pods of Deployment podguard-system/podguard"},
		{"PDB without a budget", selfWide, func(t *testing.T, r *render) {
			r.pdbs[0].Spec.MaxUnavailable, r.pdbs[0].Spec.MinAvailable = nil, nil
		}, "PodDisruptionBudget podguard-system/podguard: spec: neither maxUnavailable nor minAvailable is set"},
		{"no PDB", cmWide, func(t *testing.T, r *render) {
			r.pdbs = nil
		}, "render: no PodDisruptionBudget selects the pods of Deployment podguard-system/podguard"},

		// Service.
		{"Service selects other pods", cmOptIn, func(t *testing.T, r *render) {
			r.services[0].Spec.Selector = map[string]string{"app": "other"}
		}, "Service podguard-system/podguard: spec.selector: map[app:other] does not select the pods of Deployment podguard-system/podguard"},
		{"targetPort names no container port", selfOptIn, func(t *testing.T, r *render) {
			for i, sp := range r.services[0].Spec.Ports {
				if sp.Port == 443 {
					r.services[0].Spec.Ports[i].TargetPort = intstr.FromString("https")
				}
			}
		}, `Service podguard-system/podguard: spec.ports[webhook].targetPort: "https" names no containerPort of Deployment podguard-system/podguard`},
		{"webhook port not the one podguard serves", cmWide, func(t *testing.T, r *render) {
			c := containerOf(t, r)
			for i := range c.Ports {
				if c.Ports[i].Name == "webhook" {
					c.Ports[i].ContainerPort = 9444
				}
			}
		}, `spec.ports[webhook].targetPort: "webhook" is container port 9444, but podguard serves the webhook on --port=9443`},
		{"mutating webhook calls /validate", cmOptIn, func(t *testing.T, r *render) {
			mutatingHook(t, r).ClientConfig.Service.Path = ptr.To("/validate")
		}, `MutatingWebhookConfiguration podguard: webhooks[0](mutate.podguard.io).clientConfig.service.path: "/validate", want /mutate`},
		{"webhook calls a port the Service lacks", selfWide, func(t *testing.T, r *render) {
			validatingHook(t, r).ClientConfig.Service.Port = ptr.To[int32](9999)
		}, "webhooks[0](validate.podguard.io).clientConfig.service.port: 9999 is not a port of Service podguard-system/podguard"},
		{"webhook calls another Service", cmOptIn, func(t *testing.T, r *render) {
			validatingHook(t, r).ClientConfig.Service.Name = "podguard-webhook"
		}, "webhooks[0](validate.podguard.io).clientConfig.service: Service podguard-system/podguard-webhook is not in the render"},
		{"webhook calls a URL", cmOptIn, func(t *testing.T, r *render) {
			mutatingHook(t, r).ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://podguard.example.com/mutate")}
		}, "webhooks[0](mutate.podguard.io).clientConfig.service: missing"},

		// RBAC.
		{"a wildcard verb", cmOptIn, func(t *testing.T, r *render) {
			clusterRoleOf(t, r, "podguard").Rules[0].Verbs = []string{"*"}
		}, `ServiceAccount podguard-system/podguard: ClusterRoleBinding podguard → ClusterRole podguard rules[0].verbs: ["*"] has a wildcard`},
		{"a wildcard resource", selfOptIn, func(t *testing.T, r *render) {
			clusterRoleOf(t, r, webhookRole).Rules[0].Resources = []string{"*"}
		}, `rules[0].resources: ["*"] has a wildcard`},
		{"an extra verb", cmWide, func(t *testing.T, r *render) {
			cr := clusterRoleOf(t, r, "podguard")
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"update"}})
		}, "ServiceAccount podguard-system/podguard: may update configmaps cluster-wide (from ClusterRoleBinding podguard → ClusterRole podguard rules[6]), which the cert-manager allow-list does not include"},
		// Listed and watched they may be (the state guard, the background
		// audit); written, never.
		{"workloads written, not just read", cmOptIn, func(t *testing.T, r *render) {
			cr := clusterRoleOf(t, r, "podguard")
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"update"}})
		}, "may update apps/deployments cluster-wide"},
		{"a missing read", selfWide, func(t *testing.T, r *render) {
			rule := &clusterRoleOf(t, r, "podguard").Rules[0]
			rule.Resources = slices.DeleteFunc(rule.Resources, func(s string) bool { return s == "nodes" })
		}, "ServiceAccount podguard-system/podguard: may not watch nodes cluster-wide, which podguard needs with self-managed TLS"},
		{"webhook configurations patchable by any name", selfOptIn, func(t *testing.T, r *render) {
			clusterRoleOf(t, r, webhookRole).Rules[0].ResourceNames = nil
		}, "may patch admissionregistration.k8s.io/validatingwebhookconfigurations cluster-wide (from ClusterRoleBinding podguard-webhook-ca → ClusterRole podguard-webhook-ca rules[0]), which the self-managed allow-list does not include"},
		{"self-managed rules in a cert-manager overlay", cmOptIn, func(t *testing.T, r *render) {
			self, err := load(selfOptIn)
			if err != nil {
				t.Fatal(err)
			}
			r.roles, r.roleBindings = self.roles, self.roleBindings
		}, "may update secrets named podguard-tls in namespace podguard-system (from Role podguard-system/podguard-certs via RoleBinding podguard-system/podguard-certs rules[0]), which the cert-manager allow-list does not include"},
		{"bound to a role the render lacks", cmOptIn, func(t *testing.T, r *render) {
			r.clusterRoleBindings = append(r.clusterRoleBindings, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "podguard-admin"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "system:serviceaccounts:" + installNamespace}},
			})
		}, "ClusterRoleBinding podguard-admin: roleRef: binds ClusterRole cluster-admin, which is not in the render"},
		{"binding for another namespace's ServiceAccount", cmWide, func(t *testing.T, r *render) {
			for _, b := range r.clusterRoleBindings {
				for i := range b.Subjects {
					b.Subjects[i].Namespace = "default"
				}
			}
		}, "ServiceAccount podguard-system/podguard: may not list configmaps cluster-wide"},
		{"non-resource URLs", selfWide, func(t *testing.T, r *render) {
			cr := clusterRoleOf(t, r, "podguard")
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}})
		}, `ClusterRoleBinding podguard → ClusterRole podguard rules[6].nonResourceURLs: [/metrics] is not in the allow-list`},

		// cert-manager TLS.
		{"no CA injection", cmOptIn, func(t *testing.T, r *render) {
			delete(r.validating[0].Annotations, injectCAAnnotation)
		}, "ValidatingWebhookConfiguration podguard: metadata.annotations[cert-manager.io/inject-ca-from]: missing"},
		{"CA injected from a missing Certificate", cmWide, func(t *testing.T, r *render) {
			r.mutating[0].Annotations[injectCAAnnotation] = installNamespace + "/podguard-cert"
		}, "MutatingWebhookConfiguration podguard: metadata.annotations[cert-manager.io/inject-ca-from]: names Certificate podguard-system/podguard-cert, which is not in the render"},
		{"Certificate issues another Secret", cmOptIn, func(t *testing.T, r *render) {
			setNested(t, certManagerOf(t, r, "Certificate", "podguard-serving"), "podguard-serving-tls", "spec", "secretName")
		}, `Certificate podguard-system/podguard-serving: spec.secretName: "podguard-serving-tls", but Deployment podguard-system/podguard mounts Secret "podguard-tls"`},
		{"Certificate lacks the Service's name", cmWide, func(t *testing.T, r *render) {
			setNested(t, certManagerOf(t, r, "Certificate", "podguard-serving"), []any{"podguard.podguard-system.svc.cluster.local"}, "spec", "dnsNames")
		}, "Certificate podguard-system/podguard-serving: spec.dnsNames: [\"podguard.podguard-system.svc.cluster.local\"] lacks podguard.podguard-system.svc"},
		{"serving Certificate from a ClusterIssuer", cmOptIn, func(t *testing.T, r *render) {
			setNested(t, certManagerOf(t, r, "Certificate", "podguard-serving"), "ClusterIssuer", "spec", "issuerRef", "kind")
		}, `Certificate podguard-system/podguard-serving: spec.issuerRef.kind: "ClusterIssuer"`},
		{"CA Issuer signs with an unissued Secret", cmOptIn, func(t *testing.T, r *render) {
			setNested(t, certManagerOf(t, r, "Issuer", "podguard-ca"), "other-ca", "spec", "ca", "secretName")
		}, "Issuer podguard-system/podguard-ca: spec.ca.secretName: Secret other-ca is issued by no Certificate in the render"},
		{"serving Certificate from a self-signed Issuer", cmWide, func(t *testing.T, r *render) {
			setNested(t, certManagerOf(t, r, "Certificate", "podguard-serving"), "podguard-selfsigned", "spec", "issuerRef", "name")
		}, "Issuer podguard-system/podguard-selfsigned: spec.ca.secretName: missing; Certificate podguard-system/podguard-serving must be issued by a CA Issuer"},
		{"CA Certificate not a CA", cmOptIn, func(t *testing.T, r *render) {
			setNested(t, certManagerOf(t, r, "Certificate", "podguard-ca"), false, "spec", "isCA")
		}, "Certificate podguard-system/podguard-ca: spec.isCA: not true"},
		{"CA not self-signed", cmWide, func(t *testing.T, r *render) {
			setNested(t, certManagerOf(t, r, "Issuer", "podguard-selfsigned"), map[string]any{"ca": map[string]any{"secretName": "x"}}, "spec")
		}, "Issuer podguard-system/podguard-selfsigned: spec.selfSigned: missing"},
		{"--cert-dir not where the Secret is mounted", cmOptIn, func(t *testing.T, r *render) {
			setArg(t, r, "cert-dir", "/certs")
		}, "--cert-dir=/certs, but the Secret podguard-tls is mounted at /tls"},
		{"self-managed mode in a cert-manager overlay", cmWide, func(t *testing.T, r *render) {
			setArg(t, r, "cert-mode", "self-managed")
		}, "--cert-mode=self-managed in a cert-manager overlay"},

		// Self-managed TLS.
		{"no --cert-mode", selfOptIn, func(t *testing.T, r *render) {
			setArg(t, r, "cert-mode", "")
		}, deploymentID + `spec.template.spec.containers[0].args: --cert-mode="" (set: false), want --cert-mode=self-managed`},
		{"a cert-manager object", selfWide, func(t *testing.T, r *render) {
			cm, err := load(cmWide)
			if err != nil {
				t.Fatal(err)
			}
			r.certManager = cm.certManager
		}, "Certificate podguard-system/podguard-serving: a cert-manager object in a self-managed overlay"},
		{"CA injection annotation", selfOptIn, func(t *testing.T, r *render) {
			r.mutating[0].Annotations = map[string]string{injectCAAnnotation: installNamespace + "/podguard-serving"}
		}, `MutatingWebhookConfiguration podguard: metadata.annotations[cert-manager.io/inject-ca-from]: "podguard-system/podguard-serving" in a self-managed overlay`},
		{"no POD_NAMESPACE", selfWide, func(t *testing.T, r *render) {
			containerOf(t, r).Env = nil
		}, deploymentID + "spec.template.spec.containers[0].env: no POD_NAMESPACE"},
		{"POD_NAMESPACE hard-coded", selfOptIn, func(t *testing.T, r *render) {
			containerOf(t, r).Env = []corev1.EnvVar{{Name: "POD_NAMESPACE", Value: installNamespace}}
		}, deploymentID + `spec.template.spec.containers[0].env[0](POD_NAMESPACE): want valueFrom.fieldRef.fieldPath metadata.namespace (the downward API), got {"name":"POD_NAMESPACE","value":"podguard-system"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := overlayByDir(t, tt.overlay)
			intact, err := load(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range runChecks(intact, o) {
				if strings.Contains(msg, tt.want) {
					t.Fatalf("the intact overlay %s already reports %q, so this case proves nothing:\n%s", o.dir, tt.want, msg)
				}
			}
			broken, err := load(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.breaks(t, broken)
			got := runChecks(broken, o)
			if !slices.ContainsFunc(got, func(msg string) bool { return strings.Contains(msg, tt.want) }) {
				t.Errorf("overlay %s broken: no problem contains %q; got:\n%s", o.dir, tt.want, strings.Join(got, "\n"))
			}
		})
	}
}

// TestBrokenOverlays renders an overlay of a shipped overlay that breaks it,
// from a temporary directory, through the same kustomize and decoding as
// TestOverlays.
func TestBrokenOverlays(t *testing.T) {
	tests := []struct {
		name     string
		overlay  string
		patches  string // the kustomization's patches:, as YAML
		wantErr  string // of decoding, or
		wantProb string // of the checks
	}{
		{
			name:    "a misspelt field fails decoding",
			overlay: "opt-in",
			patches: `
- target: {kind: Deployment, name: podguard}
  patch: |-
    - {op: add, path: /spec/template/spec/containers/0/readinesProbe, value: {periodSeconds: 5}}
`,
			wantErr: `Deployment podguard-system/podguard: unknown field "spec.template.spec.containers[0].readinesProbe"`,
		},
		{
			name:    "a field in the wrong case fails decoding",
			overlay: "self-managed/cluster-wide",
			patches: `
- target: {kind: ValidatingWebhookConfiguration, name: podguard}
  patch: |-
    - {op: add, path: /webhooks/0/FailurePolicy, value: Ignore}
`,
			wantErr: `ValidatingWebhookConfiguration podguard: unknown field "webhooks[0].FailurePolicy"`,
		},
		{
			name:    "a kind the checks do not know fails decoding",
			overlay: "cluster-wide",
			patches: `
- target: {kind: ConfigMap, name: podguard-config}
  patch: |-
    - {op: replace, path: /kind, value: Secret}
`,
			wantErr: "apiVersion v1 kind Secret is not one the checks know",
		},
		{
			name:    "a patched failure policy fails the checks",
			overlay: "self-managed/opt-in",
			patches: `
- target: {kind: ValidatingWebhookConfiguration, name: podguard}
  patch: |-
    - {op: replace, path: /webhooks/0/failurePolicy, value: Ignore}
`,
			wantProb: "ValidatingWebhookConfiguration podguard: webhooks[0](validate.podguard.io).failurePolicy: Ignore, want Fail",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := overlayByDir(t, tt.overlay)
			dir := t.TempDir()
			target, err := filepath.Abs(filepath.Join("overlays", filepath.FromSlash(o.dir)))
			if err != nil {
				t.Fatal(err)
			}
			// kustomize takes resources by relative path only.
			rel, err := filepath.Rel(dir, target)
			if err != nil {
				t.Fatal(err)
			}
			k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + filepath.ToSlash(rel) + "\npatches:" + tt.patches
			if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
				t.Fatal(err)
			}
			objs, err := kustomize(dir)
			if err != nil {
				t.Fatalf("%v\nkustomization:\n%s", err, k)
			}
			r, err := decodeRender(objs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("decoding: got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			got := runChecks(r, o)
			if !slices.ContainsFunc(got, func(msg string) bool { return strings.Contains(msg, tt.wantProb) }) {
				t.Errorf("no problem contains %q; got:\n%s", tt.wantProb, strings.Join(got, "\n"))
			}
		})
	}
}

// certManagerElsewhere is the patch the README ("First install: the order")
// gives to an admin whose cert-manager runs in namespace security: it adds
// that namespace to the exclusions of all three webhooks. The test ops stop
// it from patching the wrong expression or webhook if the shipped order
// changes.
const certManagerElsewhere = `
- target: {group: admissionregistration.k8s.io, kind: MutatingWebhookConfiguration, name: podguard}
  patch: |-
    - {op: test, path: /webhooks/0/namespaceSelector/matchExpressions/0/key, value: kubernetes.io/metadata.name}
    - {op: add, path: /webhooks/0/namespaceSelector/matchExpressions/0/values/-, value: security}
- target: {group: admissionregistration.k8s.io, kind: ValidatingWebhookConfiguration, name: podguard}
  patch: |-
    - {op: test, path: /webhooks/0/namespaceSelector/matchExpressions/0/key, value: kubernetes.io/metadata.name}
    - {op: add, path: /webhooks/0/namespaceSelector/matchExpressions/0/values/-, value: security}
    - {op: test, path: /webhooks/1/namespaceSelector/matchExpressions/0/key, value: kubernetes.io/metadata.name}
    - {op: add, path: /webhooks/1/namespaceSelector/matchExpressions/0/values/-, value: security}
`

// TestCertManagerElsewhere applies the README's patch to every overlay and
// checks that all three webhooks then exclude the same list, the shipped one
// plus namespace security, and still select an ordinary namespace as their
// scope says.
func TestCertManagerElsewhere(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), strings.TrimPrefix(certManagerElsewhere, "\n")) {
		t.Errorf("README.md does not show the patch certManagerElsewhere holds:\n%s", certManagerElsewhere)
	}
	want := append(slices.Clone(excludedNamespaces), "security")
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			r := renderPatched(t, o, certManagerElsewhere)
			for _, h := range r.hooks() {
				var got [][]string
				for _, e := range h.namespaceSelector.MatchExpressions {
					if e.Key == namespaceNameLabel {
						got = append(got, e.Values)
					}
				}
				if len(got) != 1 || !slices.Equal(got[0], want) {
					t.Errorf("%s %s: %s lists %v, want %v", h.config, h.where("namespaceSelector"), namespaceNameLabel, got, want)
				}
			}
			var p problems
			checkScope(r, o, &p)
			for _, msg := range p {
				t.Error(msg)
			}
		})
	}
}

// renderPatched renders an overlay of a shipped overlay with the given
// patches (the kustomization's patches:, as YAML), from a temporary
// directory, and decodes it.
func renderPatched(t *testing.T, o overlay, patches string) *render {
	t.Helper()
	dir := t.TempDir()
	target, err := filepath.Abs(filepath.Join("overlays", filepath.FromSlash(o.dir)))
	if err != nil {
		t.Fatal(err)
	}
	// kustomize takes resources by relative path only.
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + filepath.ToSlash(rel) + "\npatches:" + patches
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := kustomize(dir)
	if err != nil {
		t.Fatalf("%v\nkustomization:\n%s", err, k)
	}
	r, err := decodeRender(objs)
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return r
}

// dropPriorityClass is the README's patch ("Priority class") that runs
// podguard at the default priority, without the ResourceQuota.
const dropPriorityClass = `
- target: {group: apps, kind: Deployment, name: podguard}
  patch: |-
    - {op: remove, path: /spec/template/spec/priorityClassName}
- target: {kind: ResourceQuota, name: podguard-critical-pods}
  patch: |-
    $patch: delete
    apiVersion: v1
    kind: ResourceQuota
    metadata:
      name: podguard-critical-pods
`

// TestDropPriorityClass applies the README's patch to every overlay: the
// class and the quota are gone, and every check still passes.
func TestDropPriorityClass(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), strings.TrimPrefix(dropPriorityClass, "\n")) {
		t.Errorf("README.md does not show the patch dropPriorityClass holds:\n%s", dropPriorityClass)
	}
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			r := renderPatched(t, o, dropPriorityClass)
			if len(r.resourceQuotas) != 0 {
				t.Errorf("%d ResourceQuotas left", len(r.resourceQuotas))
			}
			if d := deploymentOf(t, r); d.Spec.Template.Spec.PriorityClassName != "" {
				t.Errorf("priorityClassName %q left", d.Spec.Template.Spec.PriorityClassName)
			}
			for _, msg := range runChecks(r, o) {
				t.Error(msg)
			}
		})
	}
}
