package deploy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Match conditions.

// matchCase is a request a webhook's matchConditions decide about.
type matchCase struct {
	what       string
	validating bool // only the validating webhook sees this kind of request
	request    admissionv1.AdmissionRequest
	object     runtime.Object
	oldObject  runtime.Object // for an UPDATE
	wantSent   bool
}

var (
	kubeletUser = authenticationv1.UserInfo{Username: "system:node:node-a", Groups: []string{"system:nodes", "system:authenticated"}}
	podAuthor   = authenticationv1.UserInfo{Username: "dev", Groups: []string{"system:authenticated"}}
	mirrorNote  = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
)

func podRequest(op admissionv1.Operation, subresource string, user authenticationv1.UserInfo) admissionv1.AdmissionRequest {
	return admissionv1.AdmissionRequest{
		Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:    metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		SubResource: subresource, Operation: op, Namespace: "team-a", UserInfo: user,
	}
}

// podRunning is a pod with an app and an init container of the given
// images, and a label.
func podRunning(app, init, label string) *corev1.Pod {
	p := podWith(nil)
	p.Labels = map[string]string{"rev": label}
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: init}}
	p.Spec.Containers = []corev1.Container{{Name: "app", Image: app}}
	return p
}

func podWith(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", Annotations: annotations}}
}

// matchCases are what podguard's webhooks must and must not be sent. Only a
// kubelet's mirror pod is left out: the annotation alone is anyone's to set.
var matchCases = []matchCase{
	{what: "a mirror pod a kubelet creates", request: podRequest(admissionv1.Create, "", kubeletUser), object: podWith(mirrorNote), wantSent: false},
	{what: "a pod that sets the mirror annotation itself", request: podRequest(admissionv1.Create, "", podAuthor), object: podWith(mirrorNote), wantSent: true},
	{what: "a mirror-annotated pod from a user named like a node outside system:nodes", request: podRequest(admissionv1.Create, "",
		authenticationv1.UserInfo{Username: "system:node:node-a", Groups: []string{"system:authenticated"}}), object: podWith(mirrorNote), wantSent: true},
	{what: "a mirror-annotated pod from a requester with no groups", request: podRequest(admissionv1.Create, "", authenticationv1.UserInfo{Username: "system:node:node-a"}),
		object: podWith(mirrorNote), wantSent: true},
	{what: "a mirror-annotated pod from a requester with no name", request: podRequest(admissionv1.Create, "", authenticationv1.UserInfo{Groups: []string{"system:nodes"}}),
		object: podWith(mirrorNote), wantSent: true},
	{what: "a pod a kubelet creates without the mirror annotation", request: podRequest(admissionv1.Create, "", kubeletUser), object: podWith(nil), wantSent: true},
	{what: "a pod without annotations", request: podRequest(admissionv1.Create, "", podAuthor), object: podWith(nil), wantSent: true},
	{what: "a pod update that changes a container's image", validating: true, request: podRequest(admissionv1.Update, "", podAuthor),
		oldObject: podRunning("debug/tomcat:10", "busybox", "1"), object: podRunning("tomcat:10", "busybox", "1"), wantSent: true},
	{what: "a pod update that changes an init container's image", validating: true, request: podRequest(admissionv1.Update, "", podAuthor),
		oldObject: podRunning("tomcat:10", "busybox", "1"), object: podRunning("tomcat:10", "alpine", "1"), wantSent: true},
	{what: "a pod update that changes only a label", validating: true, request: podRequest(admissionv1.Update, "", podAuthor),
		oldObject: podRunning("tomcat:10", "busybox", "1"), object: podRunning("tomcat:10", "busybox", "2"), wantSent: false},
	{what: "a pod update of a pod without init containers that changes only a label", validating: true, request: podRequest(admissionv1.Update, "", podAuthor),
		oldObject: podWith(nil), object: podWith(map[string]string{"a": "b"}), wantSent: false},
	{what: "ephemeral containers added to a pod that set the mirror annotation itself", validating: true,
		request: podRequest(admissionv1.Update, "ephemeralcontainers", podAuthor), object: podWith(mirrorNote), wantSent: true},
	{what: "a Deployment a node identity writes", validating: true, request: admissionv1.AdmissionRequest{
		Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, Operation: admissionv1.Create, UserInfo: kubeletUser},
		object: &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: mirrorNote}}}}, wantSent: true},
	{what: "a scale a node identity writes", validating: true, request: admissionv1.AdmissionRequest{
		Kind: metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, SubResource: "scale", Operation: admissionv1.Update, UserInfo: kubeletUser},
		object: &autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"}, ObjectMeta: metav1.ObjectMeta{Annotations: mirrorNote}}, wantSent: true},
}

// checkMatchConditions evaluates every webhook's matchConditions with CEL
// over the requests above, given to CEL as the API server gives them: the
// AdmissionRequest and the object as unstructured JSON, whose empty fields
// are absent.
func checkMatchConditions(r *render, _ overlay, p *problems) {
	type webhook struct {
		config, where string
		validating    bool
		conditions    []admissionregistrationv1.MatchCondition
	}
	var hooks []webhook
	for _, c := range r.mutating {
		for i, w := range c.Webhooks {
			hooks = append(hooks, webhook{describe("MutatingWebhookConfiguration", "", c.Name), fmt.Sprintf("webhooks[%d](%s).matchConditions", i, w.Name), false, w.MatchConditions})
		}
	}
	for _, c := range r.validating {
		for i, w := range c.Webhooks {
			// The cases are Pods and workloads: a webhook sent none (the
			// state guard, sent ConfigMaps) has nothing to match them on,
			// and checkRules keeps it from being sent them.
			if !intercepts(w.Rules, "", "v1", "pods", admissionregistrationv1.Create) && !intercepts(w.Rules, "apps", "v1", "deployments", admissionregistrationv1.Create) {
				continue
			}
			hooks = append(hooks, webhook{describe("ValidatingWebhookConfiguration", "", c.Name), fmt.Sprintf("webhooks[%d](%s).matchConditions", i, w.Name), true, w.MatchConditions})
		}
	}
	env, err := cel.NewEnv(cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType), cel.Variable("request", cel.DynType))
	if err != nil {
		p.add("render", "", "building a CEL environment: %v", err)
		return
	}
	for _, h := range hooks {
		var programs []cel.Program
		for i, mc := range h.conditions {
			ast, iss := env.Compile(mc.Expression)
			if iss.Err() != nil {
				p.add(h.config, fmt.Sprintf("%s[%d](%s)", h.where, i, mc.Name), "does not compile: %v", iss.Err())
				continue
			}
			prg, err := env.Program(ast)
			if err != nil {
				p.add(h.config, fmt.Sprintf("%s[%d](%s)", h.where, i, mc.Name), "%v", err)
				continue
			}
			programs = append(programs, prg)
		}
		for _, mc := range matchCases {
			if mc.validating && !h.validating {
				continue
			}
			request, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&mc.request)
			if err != nil {
				p.add("render", "", "%s: %v", mc.what, err)
				continue
			}
			object, err := runtime.DefaultUnstructuredConverter.ToUnstructured(mc.object)
			if err != nil {
				p.add("render", "", "%s: %v", mc.what, err)
				continue
			}
			var oldObject any
			if mc.oldObject != nil {
				if oldObject, err = runtime.DefaultUnstructuredConverter.ToUnstructured(mc.oldObject); err != nil {
					p.add("render", "", "%s: %v", mc.what, err)
					continue
				}
			}
			sent := true
			for i, prg := range programs {
				out, _, err := prg.Eval(map[string]any{"object": object, "oldObject": oldObject, "request": request})
				if err != nil {
					// The API server applies the failurePolicy to an error:
					// an Ignore webhook is skipped, a Fail one refuses.
					p.add(h.config, fmt.Sprintf("%s[%d]", h.where, i), "fails on %s: %v", mc.what, err)
					sent = false
					break
				}
				if ok, isBool := out.Value().(bool); !isBool || !ok {
					sent = false
				}
			}
			if sent != mc.wantSent {
				got, want := "does not send", "sent"
				if sent {
					got, want = "sends", "not sent"
				}
				p.add(h.config, h.where, "%s %s, want it %s", got, mc.what, want)
			}
		}
	}
}

// TestMatchConditionsCatchBreakage breaks the shipped matchConditions and
// expects checkMatchConditions to say so.
func TestMatchConditionsCatchBreakage(t *testing.T) {
	annotationOnly := "!has(object.metadata.annotations) || !('kubernetes.io/config.mirror' in object.metadata.annotations)"
	tests := []struct {
		name   string
		breaks func(t *testing.T, r *render)
		want   string
	}{
		{"the mirror annotation alone keeps a pod from the mutating webhook", func(t *testing.T, r *render) {
			mutatingHook(t, r).MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "not-a-mirror-pod", Expression: annotationOnly}}
		}, "MutatingWebhookConfiguration podguard: webhooks[0](mutate.podguard.io).matchConditions: does not send a pod that sets the mirror annotation itself, want it sent"},
		{"the mirror annotation alone keeps a pod from the validating webhook", func(t *testing.T, r *render) {
			validatingHook(t, r).MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "not-a-mirror-pod", Expression: "request.kind.kind != 'Pod' || " + annotationOnly}}
		}, "webhooks[0](validate.podguard.io).matchConditions: does not send ephemeral containers added to a pod that set the mirror annotation itself, want it sent"},
		{"no condition: a kubelet's mirror pod is sent", func(t *testing.T, r *render) {
			mutatingHook(t, r).MatchConditions = nil
		}, "webhooks[0](mutate.podguard.io).matchConditions: sends a mirror pod a kubelet creates, want it not sent"},
		{"a condition that fails on a requester without groups", func(t *testing.T, r *render) {
			validatingHook(t, r).MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "nodes", Expression: "!('system:nodes' in request.userInfo.groups)"}}
		}, "webhooks[0](validate.podguard.io).matchConditions[0]: fails on a mirror-annotated pod from a requester with no groups"},
	}
	o := overlayByDir(t, "opt-in")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := load(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			var intact problems
			checkMatchConditions(r, o, &intact)
			if len(intact) > 0 {
				t.Fatalf("the intact overlay already has problems:\n%s", strings.Join(intact, "\n"))
			}
			broken, err := load(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.breaks(t, broken)
			var got problems
			checkMatchConditions(broken, o, &got)
			if !slices.ContainsFunc(got, func(msg string) bool { return strings.Contains(msg, tt.want) }) {
				t.Errorf("no problem contains %q; got:\n%s", tt.want, strings.Join(got, "\n"))
			}
		})
	}
}
