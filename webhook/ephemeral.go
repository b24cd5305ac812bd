package webhook

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/policies"
)

// nodeUserPrefix and nodesGroup are how a kubelet authenticates: the Node
// authorizer and the NodeRestriction admission plugin recognise the same.
const (
	nodeUserPrefix = "system:node:"
	nodesGroup     = "system:nodes"
)

// createdByNode reports whether the requester is a kubelet. Only a kubelet
// creates mirror pods; anyone who may create a pod can write the
// kubernetes.io/config.mirror annotation.
func createdByNode(u authenticationv1.UserInfo) bool {
	name, ok := strings.CutPrefix(u.Username, nodeUserPrefix)
	return ok && name != "" && slices.Contains(u.Groups, nodesGroup)
}

// validateEphemeral answers an UPDATE of pods/ephemeralcontainers, which is
// how kubectl debug adds a container to a running pod. The ephemeral
// containers the update adds are validated as a new pod's containers are;
// those the pod already had were judged when they were added.
func (a *Admission) validateEphemeral(ctx context.Context, req admission.Request) admission.Response {
	st := a.state.Load()
	if schema.GroupVersionKind(req.Kind) != podGVK || req.Operation != admissionv1.Update || st.excluded.Has(req.Namespace) {
		return admission.Allowed("")
	}
	obj, err := objectOf(ctx, req)
	pod, _ := obj.(*corev1.Pod)
	if err != nil || pod == nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("podguard could not decode the object as a Pod: %w", err))
	}
	old := &corev1.Pod{}
	if err := decodeObject(req.OldObject, old); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("podguard could not decode the old object as a Pod: %w", err))
	}
	had := sets.New[string]()
	for _, c := range old.Spec.EphemeralContainers {
		had.Insert(c.Name)
	}
	added := sets.New[string]()
	for _, c := range pod.Spec.EphemeralContainers {
		if !had.Has(c.Name) {
			added.Insert(c.Name)
		}
	}
	if added.Len() == 0 {
		return admission.Allowed("")
	}
	view := policies.NewPod(pod)
	view.Namespace = req.Namespace
	view.CreatedByNode = createdByNode(req.UserInfo)
	res, err := st.Engine.ValidateEphemeral(view, added, a.worldForPod(ctx, st, view))
	countOutcomes("validate", res)
	if err != nil {
		return a.policyFailed(req, err)
	}
	if res.Denied() {
		return a.deny(ctx, req, res)
	}
	a.logDecision(ctx, req, "allowed", res)
	return admission.Allowed("").WithWarnings(warnings(res)...)
}
