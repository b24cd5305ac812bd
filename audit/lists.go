package audit

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// Typed lists leave each item's TypeMeta empty: the verdict names its kind,
// so every item gets it back.

func listPods(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.CoreV1().Pods(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = corev1.PodStatus{}
		o.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
		out[i] = o
	}
	return out, l.Continue, nil
}

func listReplicationControllers(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.CoreV1().ReplicationControllers(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = corev1.ReplicationControllerStatus{}
		o.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ReplicationController"))
		out[i] = o
	}
	return out, l.Continue, nil
}

func listDeployments(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.AppsV1().Deployments(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.DeploymentStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
		out[i] = o
	}
	return out, l.Continue, nil
}

func listReplicaSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.ReplicaSetStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
		out[i] = o
	}
	return out, l.Continue, nil
}

func listStatefulSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.AppsV1().StatefulSets(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.StatefulSetStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("StatefulSet"))
		out[i] = o
	}
	return out, l.Continue, nil
}

func listDaemonSets(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.AppsV1().DaemonSets(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = appsv1.DaemonSetStatus{}
		o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
		out[i] = o
	}
	return out, l.Continue, nil
}

func listJobs(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.BatchV1().Jobs(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = batchv1.JobStatus{}
		o.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("Job"))
		out[i] = o
	}
	return out, l.Continue, nil
}

func listCronJobs(ctx context.Context, cs kubernetes.Interface, ns string, lo metav1.ListOptions) ([]runtime.Object, string, error) {
	l, err := cs.BatchV1().CronJobs(ns).List(ctx, lo)
	if err != nil {
		return nil, "", err
	}
	out := make([]runtime.Object, len(l.Items))
	for i := range l.Items {
		o := &l.Items[i]
		o.Status = batchv1.CronJobStatus{}
		o.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("CronJob"))
		out[i] = o
	}
	return out, l.Continue, nil
}
