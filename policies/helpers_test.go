package policies

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
)

// testPod builds a Pod view in namespace "team-a" with one container per
// image.
func testPod(images ...string) *Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a"}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: img})
	}
	return NewPod(p)
}

func kubelet(v string) *version.Version {
	if v == "" {
		return nil
	}
	return version.MustParseGeneric(v)
}

func defaultSettings() *Settings {
	s := &Settings{}
	s.Default()
	return s
}
