package audit

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
)

// listKind lists one page of kind k in namespace ns ("": all). A typed
// list leaves each item's TypeMeta empty: the verdict names its kind, so
// every item gets it back. Status is read (for whether the object will run
// again) and then cleared: no policy reads it.
func listKind(ctx context.Context, cs kubernetes.Interface, k kindInfo, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	items, la, err := listPage(ctx, cs, k, ns, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(items))
	for i, o := range items {
		done := willNotRunAgain(o)
		clearStatus(o)
		o.GetObjectKind().SetGroupVersionKind(k.gvk)
		out[i] = listed{o, done}
	}
	return out, la.GetContinue(), nil
}

// listPage lists one page of kind k in namespace ns: its items, and its
// list metadata (resourceVersion, continue).
func listPage(ctx context.Context, cs kubernetes.Interface, k kindInfo, ns string, lo metav1.ListOptions) ([]runtime.Object, metav1.ListInterface, error) {
	l, err := k.list(ctx, cs, ns, lo)
	if err != nil {
		return nil, nil, err
	}
	items, err := apimeta.ExtractList(l)
	if err != nil {
		return nil, nil, err
	}
	la, err := apimeta.ListAccessor(l)
	if err != nil {
		return nil, nil, err
	}
	return items, la, nil
}

// clearStatus drops an audited object's status.
func clearStatus(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Pod:
		o.Status = corev1.PodStatus{}
	case *corev1.ReplicationController:
		o.Status = corev1.ReplicationControllerStatus{}
	case *appsv1.Deployment:
		o.Status = appsv1.DeploymentStatus{}
	case *appsv1.ReplicaSet:
		o.Status = appsv1.ReplicaSetStatus{}
	case *appsv1.StatefulSet:
		o.Status = appsv1.StatefulSetStatus{}
	case *appsv1.DaemonSet:
		o.Status = appsv1.DaemonSetStatus{}
	case *batchv1.Job:
		o.Status = batchv1.JobStatus{}
	case *batchv1.CronJob:
		o.Status = batchv1.CronJobStatus{}
	}
}

// scaledToZero is a replicas field set to 0 (unset is 1).
func scaledToZero(replicas *int32) bool { return replicas != nil && *replicas == 0 }

// jobFinished is a Job with a Complete or Failed condition that is true:
// it starts no pod again.
func jobFinished(s *batchv1.JobStatus) bool {
	for _, c := range s.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

var secretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// listSecretNames lists Secrets as PartialObjectMetadata: names, never
// data, when only which exist is needed.
func listSecretNames(ctx context.Context, mc metadata.Interface, ns string, limit int64, add func(ns, name string)) error {
	return paginate(ctx, limit, func(lo metav1.ListOptions) (string, error) {
		l, err := mc.Resource(secretsResource).Namespace(ns).List(ctx, lo)
		if err != nil {
			return "", err
		}
		for i := range l.Items {
			add(l.Items[i].Namespace, l.Items[i].Name)
		}
		return l.Continue, nil
	})
}
