package policies

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PodBearingKinds are the kinds whose pod (template) policies check, with
// a constructor for each typed object.
var PodBearingKinds = map[schema.GroupVersionKind]func() runtime.Object{
	corev1.SchemeGroupVersion.WithKind("Pod"):                   func() runtime.Object { return &corev1.Pod{} },
	corev1.SchemeGroupVersion.WithKind("PodTemplate"):           func() runtime.Object { return &corev1.PodTemplate{} },
	corev1.SchemeGroupVersion.WithKind("ReplicationController"): func() runtime.Object { return &corev1.ReplicationController{} },
	appsv1.SchemeGroupVersion.WithKind("Deployment"):            func() runtime.Object { return &appsv1.Deployment{} },
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"):            func() runtime.Object { return &appsv1.ReplicaSet{} },
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"):           func() runtime.Object { return &appsv1.StatefulSet{} },
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"):             func() runtime.Object { return &appsv1.DaemonSet{} },
	batchv1.SchemeGroupVersion.WithKind("Job"):                  func() runtime.Object { return &batchv1.Job{} },
	batchv1.SchemeGroupVersion.WithKind("CronJob"):              func() runtime.Object { return &batchv1.CronJob{} },
}

// PodOf returns the pod, or pod template, that obj carries, with the field
// paths of its metadata and spec inside obj. It returns nil for kinds that
// carry no pod, and for a ReplicationController without a template.
func PodOf(obj runtime.Object) *Pod {
	template := func(ns string, t *corev1.PodTemplateSpec, path *field.Path) *Pod {
		if t == nil {
			return nil
		}
		return &Pod{Namespace: ns, Meta: t.ObjectMeta, Spec: t.Spec, MetaPath: path.Child("metadata"), SpecPath: path.Child("spec")}
	}
	spec := field.NewPath("spec")
	switch o := obj.(type) {
	case *corev1.Pod:
		return NewPod(o)
	case *corev1.PodTemplate:
		return template(o.Namespace, &o.Template, field.NewPath("template"))
	case *corev1.ReplicationController:
		return template(o.Namespace, o.Spec.Template, spec.Child("template"))
	case *appsv1.Deployment:
		return template(o.Namespace, &o.Spec.Template, spec.Child("template"))
	case *appsv1.ReplicaSet:
		return template(o.Namespace, &o.Spec.Template, spec.Child("template"))
	case *appsv1.StatefulSet:
		return template(o.Namespace, &o.Spec.Template, spec.Child("template"))
	case *appsv1.DaemonSet:
		return template(o.Namespace, &o.Spec.Template, spec.Child("template"))
	case *batchv1.Job:
		return template(o.Namespace, &o.Spec.Template, spec.Child("template"))
	case *batchv1.CronJob:
		return template(o.Namespace, &o.Spec.JobTemplate.Spec.Template, spec.Child("jobTemplate", "spec", "template"))
	}
	return nil
}

// SetPod writes a (mutated) pod back into the object it came from.
func SetPod(obj runtime.Object, p *Pod) {
	set := func(t *corev1.PodTemplateSpec) {
		if t != nil {
			t.ObjectMeta, t.Spec = p.Meta, p.Spec
		}
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		o.ObjectMeta, o.Spec = p.Meta, p.Spec
	case *corev1.PodTemplate:
		set(&o.Template)
	case *corev1.ReplicationController:
		set(o.Spec.Template)
	case *appsv1.Deployment:
		set(&o.Spec.Template)
	case *appsv1.ReplicaSet:
		set(&o.Spec.Template)
	case *appsv1.StatefulSet:
		set(&o.Spec.Template)
	case *appsv1.DaemonSet:
		set(&o.Spec.Template)
	case *batchv1.Job:
		set(&o.Spec.Template)
	case *batchv1.CronJob:
		set(&o.Spec.JobTemplate.Spec.Template)
	}
}
