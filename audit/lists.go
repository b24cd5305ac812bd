package audit

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
)

// Typed lists leave each item's TypeMeta empty: the verdict names its kind,
// so every item gets it back. Status is read (for whether the object will
// run again) and then cleared: no policy reads it.

func listPods(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.CoreV1().Pods(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		done := willNotRunAgain(o)
		o.Status = corev1.PodStatus{}
		o.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
		out[i] = listed{o, done}
	}
	return out, l.Continue, nil
}

// scaledToZero is a replicas field set to 0 (unset is 1).
func scaledToZero(replicas *int32) bool { return replicas != nil && *replicas == 0 }

func listReplicationControllers(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.CoreV1().ReplicationControllers(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = corev1.ReplicationControllerStatus{}
		o.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ReplicationController"))
		out[i] = listed{o, willNotRunAgain(o)}
	}
	return out, l.Continue, nil
}

func listDeployments(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.AppsV1().Deployments(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.DeploymentStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
		out[i] = listed{obj: o}
	}
	return out, l.Continue, nil
}

func listReplicaSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.ReplicaSetStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
		out[i] = listed{o, willNotRunAgain(o)}
	}
	return out, l.Continue, nil
}

func listStatefulSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.AppsV1().StatefulSets(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.StatefulSetStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("StatefulSet"))
		out[i] = listed{obj: o}
	}
	return out, l.Continue, nil
}

func listDaemonSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.AppsV1().DaemonSets(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.DaemonSetStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
		out[i] = listed{obj: o}
	}
	return out, l.Continue, nil
}

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

func listJobs(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.BatchV1().Jobs(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		done := willNotRunAgain(o)
		o.Status = batchv1.JobStatus{}
		o.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("Job"))
		out[i] = listed{o, done}
	}
	return out, l.Continue, nil
}

func listCronJobs(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]listed, string, error) {
	l, err := cs.BatchV1().CronJobs(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]listed, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = batchv1.CronJobStatus{}
		o.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("CronJob"))
		out[i] = listed{obj: o}
	}
	return out, l.Continue, nil
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
