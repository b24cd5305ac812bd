package audit

import (
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podguard/podguard/policies"
)

func TestReferencesListsEachConfigMapAndSecretOnce(t *testing.T) {
	cm := func(n string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: n} }
	pod := &policies.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: cm("creds")}}}}},
		Containers: []corev1.Container{{
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: cm("app")}}},
			Env: []corev1.EnvVar{
				{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: cm("app"), Key: "a"}}},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: cm("token"), Key: "b"}}},
				{Name: "C", Value: "literal"},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: cm("conf")}}},
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}},
			{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: cm("conf")}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: cm("extra")}},
			}}}},
		},
	}}
	want := []Ref{{"Secret", "creds"}, {"ConfigMap", "app"}, {"Secret", "token"}, {"ConfigMap", "conf"}, {"Secret", "tls"}, {"Secret", "extra"}}
	if got := References(pod); !reflect.DeepEqual(got, want) {
		t.Errorf("References = %v\nwant         %v", got, want)
	}
}

// BenchmarkReferences shows the cost follows the number of references: a
// workload may name thousands (indexRefs runs on every informer update, the
// guard on every key-name write).
func BenchmarkReferences(b *testing.B) {
	for _, n := range []int{1_000, 20_000} {
		c := corev1.Container{}
		for i := range n {
			c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: fmt.Sprintf("cm-%d", i)}}})
		}
		pod := &policies.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				References(pod)
			}
		})
	}
}
