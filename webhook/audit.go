package webhook

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/podguard/podguard/audit"
	"github.com/podguard/podguard/policies"
)

// ValidatingWebhookName is the pod webhook in the ValidatingWebhookConfiguration:
// the background audit judges the namespaces its namespaceSelector admits.
const ValidatingWebhookName = "validate.podguard.io"

// auditEnv is what the config in force gives the background audit. The
// image inspector is asked what it knows, never waited for: an audit pass
// over thousands of workloads must not wait on registries, and an image it
// starts fetching is known at the next pass.
func (a *Admission) auditEnv() audit.Env {
	st := a.state.Load()
	return audit.Env{
		Engine: st.Engine,
		World: func(ctx context.Context, pod *policies.Pod) policies.World {
			w := a.worldFor(st)
			if st.Images == nil || pod == nil || len(pod.Spec.Containers) == 0 {
				return w
			}
			return policies.WithImages(w, st.Engine.InspectImages(ctx, st.Images, w, pod, 0))
		},
		Exclude:  st.Config.Namespaces.Exclude,
		Interval: st.Config.Audit.Interval.Duration,
		Events:   st.Config.Audit.EventsEnabled(),
	}
}

// webhookScope returns the namespaceSelector of the pod webhook in the
// ValidatingWebhookConfiguration name: the namespaces the webhook admits,
// which the cluster-wide and opt-in installs set. Without that object (or
// the right to read it), the cluster-wide install's scope applies: every
// namespace not labelled podguard.io/enabled=false.
func webhookScope(cs kubernetes.Interface, name string, log logr.Logger) func(context.Context) (labels.Selector, error) {
	fallback := labels.SelectorFromSet(nil)
	if r, err := labels.NewRequirement(audit.EnabledLabel, "!=", []string{"false"}); err == nil {
		fallback = labels.NewSelector().Add(*r)
	}
	var warned atomic.Bool // read again from the audit's ticker and from a reload
	return func(ctx context.Context) (labels.Selector, error) {
		vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
			if !warned.Swap(true) {
				log.Info("cannot read the ValidatingWebhookConfiguration: auditing every namespace not labelled "+audit.EnabledLabel+"=false", "name", name, "reason", err.Error())
			}
			return fallback, nil
		case err != nil:
			return nil, err
		}
		for _, wh := range vwc.Webhooks {
			if wh.Name != ValidatingWebhookName {
				continue
			}
			if wh.NamespaceSelector == nil {
				return labels.Everything(), nil
			}
			sel, err := metav1.LabelSelectorAsSelector(wh.NamespaceSelector)
			if err != nil {
				return nil, fmt.Errorf("the namespaceSelector of %s in %s: %w", ValidatingWebhookName, name, err)
			}
			return sel, nil
		}
		if !warned.Swap(true) {
			log.Info("the ValidatingWebhookConfiguration has no "+ValidatingWebhookName+" webhook: auditing every namespace not labelled "+audit.EnabledLabel+"=false", "name", name)
		}
		return fallback, nil
	}
}

// EventReasonPolicyViolation is the reason of the Warning event the
// background audit puts on a workload whose verdict turns to fail: the name
// Kyverno gives its own, so that the same alerts and filters catch both.
const EventReasonPolicyViolation = "PolicyViolation"

// auditEvents records the audit's Warning events.
type auditEvents struct{ recorder record.EventRecorder }

func (e auditEvents) Failed(ref corev1.ObjectReference, newly []audit.Failure) {
	var b strings.Builder
	b.WriteString("podguard's audit: its pods now fail ")
	writeFirst(&b, len(newly), "; ", "; and %d more", func(i int) {
		fmt.Fprintf(&b, "%s (mode %s)", newly[i].Finding.String(), newly[i].Mode)
	})
	b.WriteString(". Their next start ")
	if newly[0].Mode == policies.ModeEnforce {
		b.WriteString("is denied by podguard (the rollout sticks on FailedCreate)")
	} else {
		b.WriteString("is admitted, and breaks as the message says")
	}
	e.recorder.Event(&ref, corev1.EventTypeWarning, EventReasonPolicyViolation, truncateBytes(b.String(), maxEventMessageBytes))
}
