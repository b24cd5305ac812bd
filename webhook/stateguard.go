package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/audit"
	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

// The state guard answers /validate-state: a ConfigMap (or, when the config
// reads Secret key names, a Secret) CREATE or UPDATE that would make the
// pods of workloads already in the namespace lose environment variables, or
// change what a mount hides, on their next start. Pods are judged when they
// are created; a ConfigMap edited afterwards breaks them at their next
// restart or rollout, with nothing but an event on the pod to say so. The
// guard warns the ConfigMap's author then, naming the workloads
// (audit.guard: warn), or refuses the write (deny).
//
// It names workloads of the namespace the ConfigMap is written in to whoever
// may write ConfigMaps there. That is no more than the write itself lets
// them learn: a ConfigMap's author can already see which pods break when it
// changes, and namespace-level RBAC that grants writing ConfigMaps almost
// always grants reading the workloads that use them. Workload names and
// field paths are all it tells; never an environment value.
//
// Only key names matter to the policies, so the guard decodes only the key
// names of object and oldObject, never the values (a Secret's stay in the
// request body, undecoded), and lets every write that leaves the key names
// as they were through at once: most writes change values only.

// configMapGVK and secretGVK are the kinds the state guard judges writes of.
var (
	configMapGVK = corev1.SchemeGroupVersion.WithKind("ConfigMap")
	secretGVK    = corev1.SchemeGroupVersion.WithKind("Secret")
)

// Budgets of the state guard, well inside the webhook's timeoutSeconds (5 s
// in deploy/base/webhooks.yaml; the request's context already ends a second
// before the API server gives up).
const (
	// maxDependentsListTime bounds the listing of the workloads that read
	// the object: at most this, and at most half the request's time, so that
	// judging them and answering have the rest.
	maxDependentsListTime = 2 * time.Second
	// maxGuardWorkloads is how many affected workloads are named, one
	// warning each; the rest are counted.
	maxGuardWorkloads = 10
	// maxGuardWarningRunes bounds each warning. kube-apiserver keeps 4,096
	// runes of warnings per request and, beyond that, cuts each to 256: the
	// guard is the only podguard webhook a ConfigMap or Secret write meets,
	// so its at most maxGuardWorkloads+2 warnings of 256 runes always arrive
	// whole.
	maxGuardWarningRunes = 256
	// maxGuardDenialLineRunes bounds each workload's line of a denial,
	// which the API server relays whole: room for the finding's fix.
	maxGuardDenialLineRunes = 1024
)

// StateGuard answers ConfigMap and Secret writes.
type StateGuard struct {
	adm *Admission // the config in force and the World, shared with /validate
	// dependents lists the pod-bearing objects of a namespace that read a
	// ConfigMap or Secret (audit.ListDependents, uncached).
	dependents func(ctx context.Context, namespace string, ref audit.Ref) (audit.Dependents, error)
	log        logr.Logger
}

// NewStateGuard returns the guard for adm's config and World. It lists
// workloads with cs, straight from the API server: the background audit's
// informers run on the leader replica only, and the guard on every replica.
//
// cs should be the guard's own: its client-side rate limiter then bounds
// the guard's lists alone (see stateGuardClient).
func NewStateGuard(adm *Admission, cs kubernetes.Interface, log logr.Logger) *StateGuard {
	return &StateGuard{
		adm: adm,
		dependents: func(ctx context.Context, ns string, ref audit.Ref) (audit.Dependents, error) {
			return audit.ListDependents(ctx, cs, ns, ref, audit.DefaultPageSize)
		},
		log: log,
	}
}

// The guard's own client: one write that changes key names costs a list
// per pod-bearing kind (8, more for namespaces of over 500 objects). Its
// rate limiter lets a burst of such writes through at once and a steady
// stream at a few a second per replica; beyond that, listings wait on the
// limiter until their budget ends, and the guard says its check was cut
// short. It never delays other clients of podguard (events, certificates).
const (
	stateGuardQPS   = 25
	stateGuardBurst = 50
)

// protobufConfig is a copy of cfg whose clients ask for and send
// protobuf, which built-in kinds speak (a typed clientset's only ones):
// for lists of thousands of objects, less to receive and to decode than
// JSON.
func protobufConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return c
}

// stateGuardClient is a clientset for the guard over cfg, with a rate
// limiter of its own.
func stateGuardClient(cfg *rest.Config) (kubernetes.Interface, error) {
	c := protobufConfig(cfg)
	c.QPS, c.Burst = stateGuardQPS, stateGuardBurst
	c.RateLimiter = nil
	return kubernetes.NewForConfig(c)
}

// Guard results, the values of podguard_state_guard_requests_total's label.
const (
	guardAllowed    = "allowed"
	guardWarned     = "warned"
	guardDenied     = "denied"
	guardIncomplete = "incomplete"
)

// Handle answers /validate-state. It never fails a write for a reason of its
// own: an undecodable object, a listing the API server refuses or a policy
// that panics are logged and the write is allowed (the webhook's
// failurePolicy is Ignore for the same reason).
func (g *StateGuard) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	start := time.Now()
	defer g.adm.observe("validate-state", req, start, &resp)
	result := guardAllowed
	defer func() { stateGuardRequests.WithLabelValues(result).Inc() }()
	defer func() {
		if v := recover(); v != nil {
			g.log.Error(fmt.Errorf("%v", v), "panic in the state guard; allowed", "uid", req.UID)
			resp, result = admission.Allowed(""), guardAllowed
		}
	}()

	st := g.adm.State()
	gvk := schema.GroupVersionKind(req.Kind)
	mode := st.Config.Audit.Guard
	switch {
	case mode == config.GuardOff,
		gvk != configMapGVK && gvk != secretGVK,
		gvk == secretGVK && !st.Config.SecretKeysEnabled(),
		req.SubResource != "",
		req.Operation != admissionv1.Create && req.Operation != admissionv1.Update,
		st.excluded.Has(req.Namespace):
		return admission.Allowed("")
	}
	newKeys, name, err := keyNamesOf(gvk, req.Object.Raw)
	if err != nil {
		g.log.Error(err, "decoding the key names of a write; allowed without checking", "uid", req.UID, "kind", gvk.Kind, "namespace", req.Namespace, "name", req.Name)
		return admission.Allowed("")
	}
	// Before the write, the object had oldObject's key names, or did not
	// exist. The request says so exactly, where the cache may lag (a
	// create at once followed by an update).
	before := policies.Object{Presence: policies.NotFound}
	var oldKeys policies.KeyNames
	if req.Operation == admissionv1.Update {
		if oldKeys, _, err = keyNamesOf(gvk, req.OldObject.Raw); err != nil {
			g.log.Error(err, "decoding the old key names of a write; allowed without checking", "uid", req.UID, "kind", gvk.Kind, "namespace", req.Namespace, "name", req.Name)
			return admission.Allowed("")
		}
		if sameKeys(oldKeys, newKeys) {
			return admission.Allowed("") // the hot path: values changed, key names did not
		}
		before = oldKeys.Object()
	}
	if ns, ok := g.adm.world.Namespace(req.Namespace); ok && ns.Labels[audit.EnabledLabel] == "false" {
		return admission.Allowed("")
	}

	if req.Name != "" {
		name = req.Name
	}
	// A CREATE with generateName may name no object in the request; the
	// object itself has its name by the time validating webhooks see it.
	ref := audit.Ref{Kind: gvk.Kind, Name: name}
	base := g.adm.worldFor(st)
	oldWorld := overrideWorld{World: base, kind: ref.Kind, namespace: req.Namespace, name: ref.Name, obj: before}
	newWorld := overrideWorld{World: base, kind: ref.Kind, namespace: req.Namespace, name: ref.Name, obj: newKeys.Object()}

	listCtx, cancel := context.WithTimeout(ctx, listBudget(ctx))
	deps, err := g.dependents(listCtx, req.Namespace, ref)
	cancel()
	if err != nil {
		g.log.Error(err, "listing the workloads that read a ConfigMap or Secret; allowed without checking", "uid", req.UID, "kind", gvk.Kind, "namespace", req.Namespace, "name", req.Name)
		return admission.Allowed("")
	}
	incomplete := deps.Incomplete
	var broken []brokenWorkload
	for _, obj := range deps.Items {
		fs, err := newFailures(ctx, obj, oldWorld, newWorld, st.Engine)
		if err != nil {
			if ctx.Err() != nil {
				incomplete = true
				break
			}
			g.log.Error(err, "judging a workload that reads a ConfigMap or Secret; skipped", "uid", req.UID, "workload", workloadName(obj))
			continue
		}
		if len(fs) > 0 {
			broken = append(broken, brokenWorkload{obj, fs})
		}
	}

	what := changeDescription(ref, req.Operation == admissionv1.Create, oldKeys, newKeys)
	incompleteNote := fmt.Sprintf("podguard: not every workload that reads %s %q could be checked in time; any not named may break too (podguard audit -n %s lists them)", ref.Kind, ref.Name, req.Namespace)
	kv := []any{"uid", req.UID, "kind", gvk.Kind, "namespace", req.Namespace, "name", ref.Name, "operation", req.Operation,
		"dryRun", req.DryRun != nil && *req.DryRun, "dependents", len(deps.Items), "broken", len(broken), "incomplete", incomplete,
		"took", time.Since(start).Round(time.Millisecond).String()}
	switch {
	case mode == config.GuardDeny && enforced(broken):
		result = guardDenied
		g.log.Info("state guard", append(kv, "decision", "denied")...)
		// A denial's message reaches the client whole: each finding in
		// full, with its fix.
		lines := guardWarnings(what, req.Namespace, broken, maxGuardDenialLineRunes)
		if incomplete {
			lines = append(lines, incompleteNote)
		}
		resp = admission.Denied(truncateBytes(fmt.Sprintf("podguard (audit.guard: deny) rejected this %s write:\n- %s", gvk.Kind, strings.Join(lines, "\n- ")), maxDenialBytes))
		resp.AuditAnnotations = map[string]string{auditDeniedBy: strings.Join(brokenPolicies(broken), ",")}
		return resp
	case incomplete:
		result = guardIncomplete
	case len(broken) > 0:
		result = guardWarned
	}
	g.log.Info("state guard", append(kv, "decision", "allowed")...)
	warnings := guardWarnings(what, req.Namespace, broken, maxGuardWarningRunes)
	if incomplete {
		warnings = append(warnings, truncateRunes(incompleteNote, maxGuardWarningRunes))
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// enforced reports whether a write breaks something in enforce mode: deny
// refuses only what admission would refuse of the workloads' next pods. A
// namespace rolling a policy out in warn or audit mode gets the warning,
// not a refusal of its ConfigMap writes.
func enforced(broken []brokenWorkload) bool {
	for _, b := range broken {
		for _, f := range b.failures {
			if f.Mode == policies.ModeEnforce {
				return true
			}
		}
	}
	return false
}

// listBudget is how long listing the dependents may take: half the time
// left to the request's deadline, at most maxDependentsListTime.
func listBudget(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return maxDependentsListTime
	}
	return min(maxDependentsListTime, time.Until(d)/2)
}

// brokenWorkload is a workload and what a write breaks in it.
type brokenWorkload struct {
	obj      runtime.Object
	failures []audit.Failure
}

// newFailures judges obj in the world before the write and in the world
// after it, and returns the failures only the latter has: what the write
// breaks. A failure at a policy and field that did not fail before is new.
// One at a policy and field that failed before is new when it is about a
// key (Finding.Keys) that none of the failures there was about: removing
// one of two dropped keys is a partial fix, not a new breakage; adding a
// second one is, whether or not the message has room to name it.
func newFailures(ctx context.Context, obj runtime.Object, before, after policies.World, engine *policies.Engine) ([]audit.Failure, error) {
	was, err := audit.Judge(ctx, obj, before, engine)
	if err != nil {
		return nil, err
	}
	will, err := audit.Judge(ctx, obj, after, engine)
	if err != nil {
		return nil, err
	}
	// Findings about one object share one key list (a workload with 50
	// references to one ConfigMap of 100,000 keys): each list becomes a set
	// once, and a list is checked against another list's set once.
	type at struct{ policy, field string }
	type listID = policies.KeyListID
	id := policies.KeyListOf
	setOf := map[listID]sets.Set[string]{}
	known := map[at][]listID{}
	for _, f := range was.Failed {
		i := id(f.Keys)
		if _, ok := setOf[i]; !ok {
			setOf[i] = sets.New(f.Keys...)
		}
		k := at{f.Policy, f.Field}
		known[k] = append(known[k], i)
	}
	type pair struct{ keys, in listID }
	within := map[pair]bool{}
	covered := func(keys []string, lists []listID) bool {
		if len(lists) == 1 {
			p := pair{id(keys), lists[0]}
			if v, ok := within[p]; ok {
				return v
			}
			within[p] = setOf[lists[0]].HasAll(keys...)
			return within[p]
		}
		for _, k := range keys {
			if !slices.ContainsFunc(lists, func(l listID) bool { return setOf[l].Has(k) }) {
				return false
			}
		}
		return true
	}
	var out []audit.Failure
	for _, f := range will.Failed {
		lists, failed := known[at{f.Policy, f.Field}]
		if !failed || !covered(f.Keys, lists) {
			out = append(out, f)
		}
	}
	return out, nil
}

// guardWarnings renders one line per broken workload, each at most maxRunes
// long, the first
// maxGuardWorkloads, and counts the rest: `ConfigMap "app-env" key
// "1st.key" would make Deployment shop/web lose environment variables on
// its pods' next start: [envfrom-keys] spec.template...: ...`.
func guardWarnings(what, namespace string, broken []brokenWorkload, maxRunes int) []string {
	var out []string
	for i, b := range broken {
		if i == maxGuardWorkloads {
			rest := len(broken) - i
			out = append(out, fmt.Sprintf("podguard: and %d more %s would break likewise (podguard audit -n %s lists them)", rest, plural(rest, "workload", "workloads"), namespace))
			break
		}
		f := b.failures[0]
		effect := "would fail %s on %s next start"
		switch f.Policy {
		case policies.EnvFromKeysName:
			effect = "would make %s lose environment variables on %s next start"
		case policies.MountShadowingName:
			effect = "would change what a mount hides in %s on %s next start"
		}
		whose := "its pods'"
		if _, isPod := b.obj.(*corev1.Pod); isPod {
			whose = "its containers'"
		}
		more := ""
		if n := len(b.failures) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more)", n)
		}
		w := fmt.Sprintf("podguard: %s "+effect+"%s: %s", what, workloadName(b.obj), whose, more, f.Finding.String())
		out = append(out, truncateRunes(w, maxRunes))
	}
	return out
}

// brokenPolicies names the policies the write would fail, sorted, once each.
func brokenPolicies(broken []brokenWorkload) []string {
	names := sets.New[string]()
	for _, b := range broken {
		for _, f := range b.failures {
			names.Insert(f.Policy)
		}
	}
	return sets.List(names)
}

// workloadName is "Deployment shop/web".
func workloadName(obj runtime.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	m, err := meta.Accessor(obj)
	if err != nil {
		return kind
	}
	return kind + " " + m.GetNamespace() + "/" + m.GetName()
}

// changeDescription names the object and, for an update, the key names it
// adds (or, adding none, removes): `ConfigMap "app-env" key "1st.key"`.
func changeDescription(ref audit.Ref, create bool, old, cur policies.KeyNames) string {
	what := fmt.Sprintf("%s %q", ref.Kind, ref.Name)
	if create {
		return what
	}
	was, is := sets.New(allKeys(old)...), sets.New(allKeys(cur)...)
	if added := sets.List(is.Difference(was)); len(added) > 0 {
		return what + " " + keysPhrase(added)
	}
	if removed := sets.List(was.Difference(is)); len(removed) > 0 {
		return what + " without " + keysPhrase(removed)
	}
	return what
}

func allKeys(k policies.KeyNames) []string { return append(slices.Clip(k.Env), k.FileOnly...) }

// keysPhrase is `key "a"`, `keys "a", "b", "c"` or `keys "a", "b", "c" and 4 more`.
func keysPhrase(keys []string) string {
	const most = 3
	q := make([]string, 0, most)
	for _, k := range keys[:min(len(keys), most)] {
		q = append(q, fmt.Sprintf("%q", truncateRunes(k, 40)))
	}
	s := strings.Join(q, ", ")
	if more := len(keys) - most; more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return plural(len(keys), "key ", "keys ") + s
}

// sameKeys reports whether a write leaves the key names as they were.
func sameKeys(a, b policies.KeyNames) bool {
	return slices.Equal(a.Env, b.Env) && slices.Equal(a.FileOnly, b.FileOnly)
}

// overrideWorld is a World in which one ConfigMap or Secret is as obj says:
// the object as a write leaves it (or found it). Everything else is
// asked of the World it wraps.
type overrideWorld struct {
	policies.World
	kind, namespace, name string
	obj                   policies.Object
}

func (w overrideWorld) ConfigMap(namespace, name string) policies.Object {
	if w.kind == "ConfigMap" && namespace == w.namespace && name == w.name {
		return w.obj
	}
	return w.World.ConfigMap(namespace, name)
}

func (w overrideWorld) Secret(namespace, name string) policies.Object {
	if w.kind == "Secret" && namespace == w.namespace && name == w.name {
		return w.obj
	}
	return w.World.Secret(namespace, name)
}

// keyNamesIn is a ConfigMap or Secret as the guard decodes it: the names of
// its keys, never their values.
type keyNamesIn struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Data       keySet `json:"data"`
	BinaryData keySet `json:"binaryData"`
	StringData keySet `json:"stringData"`
}

// keySet reads a JSON object's member names and skips their values, so
// that no value (a Secret's) is ever decoded or copied.
type keySet []string

func (k *keySet) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	*k = nil
	switch kind := dec.PeekKind(); kind {
	case 'n':
		_, err := dec.ReadToken()
		return err
	case '{':
	default:
		return fmt.Errorf("expected an object of keys, got %v", kind)
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		*k = append(*k, name.String())
		if err := dec.SkipValue(); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// keyNamesOf reads the key names of a ConfigMap or Secret from its JSON,
// as policies.ConfigMapKeys and SecretKeys read them from the object.
// name is the object's metadata.name.
func keyNamesOf(gvk schema.GroupVersionKind, raw []byte) (keys policies.KeyNames, name string, err error) {
	if len(raw) == 0 {
		return policies.KeyNames{}, "", errors.New("there is no content to decode")
	}
	var in keyNamesIn
	if err := jsonv2.Unmarshal(raw, &in, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)); err != nil {
		return policies.KeyNames{}, "", err
	}
	empty := func(keys keySet) map[string]string {
		m := make(map[string]string, len(keys))
		for _, k := range keys {
			m[k] = ""
		}
		return m
	}
	if gvk == secretGVK {
		// Data's keys only matter: values are never put in the object.
		data := make(map[string][]byte, len(in.Data))
		for _, k := range in.Data {
			data[k] = nil
		}
		return policies.SecretKeys(&corev1.Secret{Data: data, StringData: empty(in.StringData)}), in.Metadata.Name, nil
	}
	binary := make(map[string][]byte, len(in.BinaryData))
	for _, k := range in.BinaryData {
		binary[k] = nil
	}
	return policies.ConfigMapKeys(&corev1.ConfigMap{Data: empty(in.Data), BinaryData: binary}), in.Metadata.Name, nil
}
