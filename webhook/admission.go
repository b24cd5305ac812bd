// Package webhook turns AdmissionReviews into policy calls and responses, and
// runs podguard's TLS admission server on controller-runtime's webhook
// server.
//
// /mutate admits Pods on CREATE: it runs the mutating policies and answers
// with a JSON patch computed by diffing the original against the mutated pod
// (internal/typedpatch: only the fields the policies changed are encoded).
// /validate admits Pods on CREATE and the pod-bearing workloads (Deployment,
// ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController,
// PodTemplate) on CREATE and UPDATE. A Pod is validated as it is (/mutate has
// run); a workload's template goes through policies.Engine.Check, as its
// pods will be mutated and then validated, so that a workload whose pods
// would be rejected is rejected when it is applied. A scale of a Deployment,
// ReplicaSet, StatefulSet or ReplicationController is never denied; it warns
// when the workload's pods would be. An UPDATE of pods/ephemeralcontainers
// (kubectl debug) has the ephemeral containers it adds validated.
// Everything else is allowed unchanged. A pod with the mirror annotation is
// left alone only when a kubelet (system:node:<name>, group system:nodes)
// creates it.
//
// /validate-state admits ConfigMap (and Secret) CREATE and UPDATE: a write
// that changes key names is judged against the workloads that read the
// object, and warned of, or refused, when it would break them (see
// StateGuard).
//
// A denied pod that a controller created gets a Warning event on its
// workload (see DenialEvents).
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/internal/typedpatch"
	"github.com/podguard/podguard/policies"
)

// Audit annotation keys. The API server records them prefixed with the
// webhook's name, e.g. mutate.podguard.io/mutated-by.
const (
	auditMutatedBy = "mutated-by"
	auditDeniedBy  = "denied-by"
)

var podGVK = corev1.SchemeGroupVersion.WithKind("Pod")

// State is the config in force and the engine built from it. A config reload
// builds a new State and swaps it in atomically; requests in flight finish on
// the one they started with.
type State struct {
	Config   *config.Config
	Engine   *policies.Engine
	excluded sets.Set[string]
	kubelet  *version.Version
	// Images inspects the pods' images when the config turns the inspector
	// on; nil otherwise. A reload keeps the inspector (and its cache) when
	// the images settings did not change.
	Images policies.ImageSource
}

// NewState builds the engine for a defaulted, validated config.
func NewState(cfg *config.Config) (*State, error) {
	st := &State{Config: cfg, Engine: policies.NewEngine(&cfg.Policies, policies.WithExemptions(&cfg.Exemptions)), excluded: sets.New(cfg.Namespaces.Exclude...)}
	if v := cfg.Cluster.KubeletVersion; v != "" {
		pinned, err := policies.ParseKubeVersion(v)
		if err != nil {
			return nil, fmt.Errorf("cluster.kubeletVersion: %w", err)
		}
		st.kubelet = pinned
	}
	return st, nil
}

// Admission answers admission requests with the policy engine.
type Admission struct {
	state atomic.Pointer[State]
	world policies.World
	log   logr.Logger
	// events, when set, reports the denials of controllers' pods on their
	// workloads.
	events *DenialEvents
	// workloads, when set, reads the workload a scale request is about;
	// without it a scale gets no warning.
	workloads client.Reader
}

// NewAdmission returns the admission logic for the given world and initial state.
func NewAdmission(world policies.World, st *State, log logr.Logger) *Admission {
	a := &Admission{world: world, log: log}
	a.state.Store(st)
	return a
}

// SetState puts a new config in force.
func (a *Admission) SetState(st *State) { a.state.Store(st) }

// State returns the config in force.
func (a *Admission) State() *State { return a.state.Load() }

// pinnedWorld overrides the kubelet version the cluster reports with the one
// pinned in config.
type pinnedWorld struct {
	policies.World
	kubelet *version.Version
}

func (w pinnedWorld) Cluster() policies.Cluster {
	c := w.World.Cluster()
	c.KubeletVersion = w.kubelet
	return c
}

func (a *Admission) worldFor(st *State) policies.World {
	if st.kubelet != nil {
		return pinnedWorld{World: a.world, kubelet: st.kubelet}
	}
	return a.world
}

// worldForPod is worldFor with what the image inspector knows of pod's
// images, for which it waits at most the configured budget: the fetches go
// on in the background, and the policies fall back to their heuristics
// with a warning.
func (a *Admission) worldForPod(ctx context.Context, st *State, pod *policies.Pod) policies.World {
	w := a.worldFor(st)
	if st.Images == nil {
		return w
	}
	return policies.WithImages(w, st.Engine.InspectImages(ctx, st.Images, w, pod, st.Config.Images.Budget.Duration))
}

// Mutate answers /mutate.
func (a *Admission) Mutate(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer a.observe("mutate", req, time.Now(), &resp)
	defer a.recoverPanic(req, &resp)

	if schema.GroupVersionKind(req.Kind) != podGVK || req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("")
	}
	st := a.state.Load()
	if st.excluded.Has(req.Namespace) {
		return admission.Allowed("")
	}
	obj, err := objectOf(ctx, req)
	pod, _ := obj.(*corev1.Pod)
	if err != nil || pod == nil {
		return admission.Errored(http.StatusBadRequest, errors.New(truncateBytes(fmt.Sprintf("podguard could not decode the object as a Pod: %v", err), maxErrorBytes)))
	}
	view := policies.NewPod(pod)
	view.Namespace = req.Namespace
	view.CreatedByNode = createdByNode(req.UserInfo)
	res, err := st.Engine.MutateContext(ctx, view, a.worldForPod(ctx, st, view))
	defer func() { countOutcomesOf("mutate", res, &resp) }()
	if err != nil && ctx.Err() != nil {
		return a.timedOut(ctx, req)
	}
	if err != nil {
		return a.policyFailed(req, err)
	}
	if res.Denied() {
		a.events.Report(req, &pod.ObjectMeta, res)
		return a.deny(ctx, req, res)
	}
	if len(res.Mutated) == 0 {
		a.logDecision(ctx, req, "allowed", res)
		return admission.Allowed("").WithWarnings(warnings(res)...)
	}

	// The patch is diffed between typed values, so it holds only what the
	// policies changed. Diffing against the raw request instead would also
	// "remove" any field newer than podguard's API types.
	// Policies change metadata and spec only.
	ops, err := typedpatch.DiffAt("/metadata", &pod.ObjectMeta, &res.Pod.Meta)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("computing the patch: %w", err))
	}
	specOps, err := typedpatch.DiffAt("/spec", &pod.Spec, &res.Pod.Spec)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("computing the patch: %w", err))
	}
	resp = admission.Patched("", append(ops, specOps...)...)
	if len(resp.Patches) == 0 {
		// A policy returned a copy that changes nothing: not a mutation.
		a.logDecision(ctx, req, "allowed", res)
		return admission.Allowed("").WithWarnings(warnings(res)...)
	}
	if ctx.Err() != nil {
		// The API server has given up, or is about to: a patch sent now
		// would not be applied, so it must not be logged or counted as one.
		return a.timedOut(ctx, req)
	}
	resp.AuditAnnotations = map[string]string{auditMutatedBy: strings.Join(res.Mutated, ",")}
	resp.Warnings = boundWarnings(append(mutationWarnings(st.Config.Admission.MutationWarnings, res.Mutated, resp.Patches), warnings(res)...))
	a.logDecision(ctx, req, "patched", res)
	return resp
}

// Validate answers /validate.
func (a *Admission) Validate(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer a.observe("validate", req, time.Now(), &resp)
	defer a.recoverPanic(req, &resp)

	switch req.SubResource {
	case "scale":
		return a.validateScale(ctx, req)
	case "ephemeralcontainers":
		return a.validateEphemeral(ctx, req)
	}
	gvk := schema.GroupVersionKind(req.Kind)
	newObject, ok := policies.PodBearingKinds[gvk]
	if !ok || req.SubResource != "" {
		return admission.Allowed("")
	}
	// A Pod's spec is checked on CREATE, and again when an UPDATE changes a
	// container's image, the only part of its containers that can change:
	// an image exemption must not carry over to the next image. Workloads
	// are checked whenever they are written.
	switch {
	case req.Operation == admissionv1.Create:
	case req.Operation == admissionv1.Update: // a Pod's only if an image changed: see below
	default:
		return admission.Allowed("")
	}
	st := a.state.Load()
	if st.excluded.Has(req.Namespace) {
		return admission.Allowed("")
	}
	obj, err := objectOf(ctx, req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, errors.New(truncateBytes(fmt.Sprintf("podguard could not decode the object as a %s: %v", gvk.Kind, err), maxErrorBytes)))
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetNamespace(req.Namespace)
	}
	if p, ok := obj.(*corev1.Pod); ok && req.Operation == admissionv1.Update && !a.imagesChanged(req, p) {
		return admission.Allowed("")
	}
	pod := policies.PodOf(obj)
	if pod == nil {
		return admission.Allowed("")
	}
	// A Pod reaches /validate already mutated by /mutate (or, if that
	// failed open, as it will run): validate it as it is. A workload's pods
	// are mutated later, so its template is checked as they will be.
	verdict := st.Engine.CheckContext
	if gvk == podGVK {
		verdict = st.Engine.ValidateContext
		pod.CreatedByNode = createdByNode(req.UserInfo)
	}
	res, err := verdict(ctx, pod, a.worldForPod(ctx, st, pod))
	defer func() { countOutcomesOf("validate", res, &resp) }()
	if err != nil && ctx.Err() != nil {
		return a.timedOut(ctx, req)
	}
	if err != nil {
		return a.policyFailed(req, err)
	}
	if res.Denied() && req.Operation == admissionv1.Update && a.templateUnchanged(req, newObject, pod) {
		// The violations predate this update (a scale, a label, a finalizer
		// removed on delete): blocking it would not fix them and could stop
		// a rollback or a deletion. Say so instead.
		warnOfExisting(res)
	}
	if res.Denied() {
		if p, ok := obj.(*corev1.Pod); ok {
			a.events.Report(req, &p.ObjectMeta, res)
		}
		return a.deny(ctx, req, res)
	}
	a.logDecision(ctx, req, "allowed", res)
	return admission.Allowed("").WithWarnings(warnings(res)...)
}

// warnOfExisting turns the violations of a template that an update leaves
// as it was into warnings that say so.
func warnOfExisting(res *policies.Result) {
	for _, v := range res.Violations {
		res.Warnings = append(res.Warnings, policies.Finding{Policy: v.Policy, Field: v.Field, Message: "(existing, not introduced by this update) " + v.Message})
	}
	res.Violations = nil
}

// scalable are the workloads with a scale subresource, by resource.
var scalable = map[schema.GroupResource]schema.GroupVersionKind{
	{Group: "apps", Resource: "deployments"}:  appsv1.SchemeGroupVersion.WithKind("Deployment"),
	{Group: "apps", Resource: "replicasets"}:  appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
	{Group: "apps", Resource: "statefulsets"}: appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
	{Resource: "replicationcontrollers"}:      corev1.SchemeGroupVersion.WithKind("ReplicationController"),
}

// scaleLookupTimeout bounds the GET of a scaled workload, well inside the
// webhook's timeout.
const scaleLookupTimeout = 2 * time.Second

// validateScale answers an UPDATE of a workload's scale subresource. It is
// never denied: scaling a broken workload down must always work, and
// scaling it up breaks nothing that is not broken already. When the new
// replicas' pods would be denied, it answers as /validate answers an UPDATE
// that leaves the template unchanged: allowed, with the violations as
// warnings. If the workload cannot be read, it allows without a warning.
func (a *Admission) validateScale(ctx context.Context, req admission.Request) admission.Response {
	gvk, ok := scalable[schema.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource}]
	st := a.state.Load()
	if !ok || req.Operation != admissionv1.Update || a.workloads == nil || st.excluded.Has(req.Namespace) {
		return admission.Allowed("")
	}
	log := a.log.WithValues("uid", req.UID, "kind", gvk.Kind, "namespace", req.Namespace, "name", req.Name)
	scale := &autoscalingv1.Scale{}
	if err := decodeObject(req.Object, scale); err != nil {
		log.Error(err, "decoding a scale request; allowed without checking")
		return admission.Allowed("")
	}
	if scale.Spec.Replicas == 0 {
		return admission.Allowed("")
	}
	obj, ok := policies.PodBearingKinds[gvk]().(client.Object)
	if !ok {
		return admission.Allowed("")
	}
	getCtx, cancel := context.WithTimeout(ctx, scaleLookupTimeout)
	defer cancel()
	if err := a.workloads.Get(getCtx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, obj); err != nil {
		log.Error(err, "reading the scaled workload; allowed without checking")
		return admission.Allowed("")
	}
	pod := policies.PodOf(obj)
	if pod == nil {
		return admission.Allowed("")
	}
	res, err := st.Engine.CheckContext(ctx, pod, a.worldForPod(ctx, st, pod))
	countOutcomes("validate", res)
	if err != nil && ctx.Err() != nil {
		log.Info("the scaled workload's template was not checked within the API server's timeout; allowed without warnings")
		return admission.Allowed("")
	}
	if err != nil {
		policyPanics.WithLabelValues(policyName(err)).Inc()
		log.Error(err, "a policy panicked on a scaled workload's template; allowed without checking")
		return admission.Allowed("")
	}
	warnOfExisting(res)
	a.logDecision(ctx, req, "allowed", res)
	return admission.Allowed("").WithWarnings(warnings(res)...)
}

// imagesChanged reports whether a Pod UPDATE changes the image of a
// container or init container of cur, the decoded new pod. An undecodable
// old object counts as changed, so that the pod is judged (and refused)
// rather than let through.
func (a *Admission) imagesChanged(req admission.Request, cur *corev1.Pod) bool {
	var old corev1.Pod
	if decodeObject(req.OldObject, &old) != nil {
		return true
	}
	images := func(cs []corev1.Container) []string {
		out := make([]string, len(cs))
		for i := range cs {
			out[i] = cs[i].Image
		}
		return out
	}
	return !slices.Equal(images(old.Spec.Containers), images(cur.Spec.Containers)) ||
		!slices.Equal(images(old.Spec.InitContainers), images(cur.Spec.InitContainers))
}

// templateUnchanged reports whether an UPDATE leaves the pod template as it was.
func (a *Admission) templateUnchanged(req admission.Request, newObject func() runtime.Object, pod *policies.Pod) bool {
	old := newObject()
	if err := decodeObject(req.OldObject, old); err != nil {
		return false
	}
	oldPod := policies.PodOf(old)
	return oldPod != nil && apiequality.Semantic.DeepEqual(oldPod.Spec, pod.Spec) &&
		apiequality.Semantic.DeepEqual(oldPod.Meta.Annotations, pod.Meta.Annotations)
}

// deny answers with every violation, each with its policy and field path, in
// the message and as status causes. Warnings are never attached to a denial.
func (a *Admission) deny(ctx context.Context, req admission.Request, res *policies.Result) admission.Response {
	msg, causes := denialResponse(req.Kind.Kind, res.Violations)
	denied := sets.New[string]()
	for _, v := range res.Violations {
		denied.Insert(v.Policy)
	}
	resp := admission.Denied(msg)
	resp.Result.Details = &metav1.StatusDetails{Name: req.Name, Kind: req.Kind.Kind, Causes: causes}
	resp.AuditAnnotations = map[string]string{auditDeniedBy: strings.Join(sets.List(denied), ",")}
	a.logDecision(ctx, req, "denied", res)
	return resp
}

// policyFailed answers a request on which a policy panicked. The response is
// an HTTP 500 (see reviewServer), so the API server treats it as it treats
// podguard being unreachable: per the webhook's failurePolicy.
func (a *Admission) policyFailed(req admission.Request, err error) admission.Response {
	name := policyName(err)
	var stack []byte
	if pe, ok := err.(*policies.PolicyError); ok {
		stack = pe.Stack
	}
	policyPanics.WithLabelValues(name).Inc()
	a.log.Error(err, "policy panicked; answering with an error", "policy", name, "uid", req.UID,
		"kind", req.Kind.Kind, "namespace", req.Namespace, "stack", string(stack))
	return admission.Errored(http.StatusInternalServerError, fmt.Errorf("podguard: %w; the request was not admitted by podguard (this is a podguard bug: see its logs)", err))
}

// policyName is the policy that failed with err, or "unknown".
func policyName(err error) string {
	if pe, ok := err.(*policies.PolicyError); ok {
		return pe.Policy
	}
	return "unknown"
}

// recoverPanic is the last line of defence for a panic outside any policy.
func (a *Admission) recoverPanic(req admission.Request, resp *admission.Response) {
	if v := recover(); v != nil {
		*resp = a.policyFailed(req, &policies.PolicyError{Policy: "unknown", Value: v, Stack: debug.Stack()})
	}
}

// observe records the request's latency by webhook, kind, operation and result.
func (a *Admission) observe(webhook string, req admission.Request, start time.Time, resp *admission.Response) {
	admissionDuration.WithLabelValues(webhook, req.Kind.Kind, string(req.Operation), resultOf(resp)).Observe(time.Since(start).Seconds())
}

func resultOf(resp *admission.Response) string {
	switch {
	case resp.Allowed && len(resp.Patches) > 0:
		return "patched"
	case resp.Allowed:
		return "allowed"
	case resp.Result != nil && resp.Result.Code == http.StatusGatewayTimeout:
		return "timeout"
	case resp.Result != nil && resp.Result.Code >= http.StatusInternalServerError:
		return "error"
	case resp.Result != nil && resp.Result.Code == http.StatusBadRequest:
		return "bad_request"
	default:
		return "denied"
	}
}

// logDecision logs what was decided about an object, never its contents.
// Every decision is logged, at info level, plain allows included: the logs
// are the record of what podguard did to each object, and podguard's logger
// does not sample (see cmd/podguard).
func (a *Admission) logDecision(ctx context.Context, req admission.Request, decision string, res *policies.Result) {
	kv := make([]any, 0, 16) // the fields every decision has, and one more
	kv = append(kv, "uid", req.UID, "kind", req.Kind.Kind, "namespace", req.Namespace,
		"name", objectName(ctx, req), "operation", req.Operation, "dryRun", req.DryRun != nil && *req.DryRun, "decision", decision)
	if len(res.Mutated) > 0 {
		kv = append(kv, "mutatedBy", res.Mutated)
	}
	// The findings are named by policy and field path, which is what an
	// operator needs to find them (see loggedFinding).
	if len(res.Violations) > 0 {
		kv = append(kv, "violations", loggedFindings(res.Violations))
	}
	if len(res.Warned) > 0 {
		// Warn mode: admitted, and these would have denied it.
		kv = append(kv, "warned", loggedFindings(res.Warned))
	}
	if len(res.Audited) > 0 {
		// Audit mode: the pod is admitted and this line is the record of
		// what would have denied it.
		kv = append(kv, "audited", loggedFindings(res.Audited))
	}
	if len(res.Warnings) > 0 {
		kv = append(kv, "warnings", loggedFindings(res.Warnings))
	}
	if res.Skipped != "" {
		kv = append(kv, "skipped", res.Skipped)
	}
	a.log.Info("admission", kv...)
}

// loggedFinding is a finding as a decision line records it: the policy and
// the field path. The message is left out: it quotes key names and paths,
// runs to a kilobyte, and is in the response and the workload's event
// already. No finding carries a value. The list is bounded by the engine's
// MaxFindingsPerPolicy per policy (beyond it, one finding stands for the rest).
type loggedFinding struct {
	Policy string `json:"policy"`
	Field  string `json:"field,omitempty"`
}

func loggedFindings(fs []policies.Finding) []loggedFinding {
	out := make([]loggedFinding, len(fs))
	for i, f := range fs {
		out[i] = loggedFinding{Policy: f.Policy, Field: f.Field}
	}
	return out
}

// objectName is the name of the admitted object, or its generateName prefix
// for objects the API server has not named yet (pods of a ReplicaSet). It
// reads the object decodeReview decoded, and parses the raw object only
// when there is none.
func objectName(ctx context.Context, req admission.Request) string {
	if req.Name != "" {
		return req.Name
	}
	var generateName string
	if obj := decodedObject(ctx, req); obj != nil {
		if m, err := meta.Accessor(obj); err == nil {
			generateName = m.GetGenerateName()
		}
	} else {
		var m struct {
			Metadata struct {
				GenerateName string `json:"generateName"`
			} `json:"metadata"`
		}
		if jsonv2.Unmarshal(req.Object.Raw, &m, objectOptions) == nil {
			generateName = m.Metadata.GenerateName
		}
	}
	if generateName != "" {
		return generateName + "*"
	}
	return ""
}

// countOutcomesOf counts what the policies did once the answer is known. A
// request that timed out counts nothing here: none of what the policies did
// took effect (podguard_admission_duration_seconds counts it as a timeout).
func countOutcomesOf(webhook string, res *policies.Result, resp *admission.Response) {
	if resp.Result != nil && resp.Result.Code == http.StatusGatewayTimeout {
		return
	}
	countOutcomes(webhook, res)
}

func countOutcomes(webhook string, res *policies.Result) {
	if res == nil {
		return
	}
	for policy, outcome := range res.Outcomes {
		policyOutcomes.WithLabelValues(webhook, policy, string(outcome)).Inc()
	}
}

// warnings renders the findings as admission warnings.
func warnings(res *policies.Result) []string {
	out := make([]string, len(res.Warnings))
	for i, w := range res.Warnings {
		out[i] = "podguard " + w.String()
	}
	return boundWarnings(out)
}

// mutationWarnings are the warnings a mutated pod's creator sees about the
// mutation, as admission.mutationWarnings says: with "on", which policies
// changed what; with "summary", which policies changed the pod; with "off",
// none. Pods are mutated as a matter of course, and a warning on every one
// of them teaches people to ignore warnings; the audit annotation and the
// decision log record the mutation whatever this says.
func mutationWarnings(mode config.MutationWarnings, mutatedBy []string, patch []jsonpatch.JsonPatchOperation) []string {
	switch mode {
	case config.MutationWarningsOff:
		return nil
	case config.MutationWarningsSummary:
		return []string{fmt.Sprintf("podguard mutated this pod (%s)", strings.Join(mutatedBy, ", "))}
	default:
		return []string{mutationSummary(mutatedBy, patch)}
	}
}

// mutationSummary is the warning a mutated pod's creator sees with
// admission.mutationWarnings on: which policies changed what.
func mutationSummary(mutatedBy []string, patch []jsonpatch.JsonPatchOperation) string {
	paths := sets.New[string]()
	for _, op := range patch {
		paths.Insert(op.Path)
	}
	list := sets.List(paths)
	const most = 6
	if len(list) > most {
		list = append(list[:most], fmt.Sprintf("and %d more", len(list)-most))
	}
	return fmt.Sprintf("podguard mutated this pod (%s): %s", strings.Join(mutatedBy, ", "), strings.Join(list, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
