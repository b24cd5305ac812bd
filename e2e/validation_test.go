//go:build e2e

package e2e

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestMountShadowing is the tomcat server.xml scenario through the API
// server: a ConfigMap mounted without subPath hides a directory or turns a
// file into a directory; with subPath it is accepted.
func TestMountShadowing(t *testing.T) {
	runPodguard(t, "opt-in", "")
	ns := newNamespace(t, "mounts", optIn)
	createConfigMap(t, ns, "tomcat-server-config", "server.xml")
	ctx := testContext(t, time.Minute)

	tomcat := func(name, mountPath, subPath string) *corev1.Pod {
		p := pod(ns, name, "tomcat:10")
		p.Spec.Volumes = []corev1.Volume{{Name: "server-config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "tomcat-server-config"}}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "server-config", MountPath: mountPath, SubPath: subPath}}
		return p
	}

	t.Run("rejects the ConfigMap over the whole conf dir", func(t *testing.T) {
		_, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, tomcat("over-conf", "/usr/local/tomcat/conf", ""), metav1.CreateOptions{})
		deniedBy(t, err, "[mount-shadowing] spec.containers[0].volumeMounts[0]", `ConfigMap "tomcat-server-config"`, "/usr/local/tomcat/conf", "subPath")
	})
	t.Run("rejects server.xml mounted as a directory", func(t *testing.T) {
		_, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, tomcat("as-dir", "/usr/local/tomcat/conf/server.xml", ""), metav1.CreateOptions{})
		deniedBy(t, err, "[mount-shadowing] spec.containers[0].volumeMounts[0]", `ConfigMap "tomcat-server-config"`, "server.xml", "subPath")
	})
	t.Run("accepts server.xml mounted with subPath", func(t *testing.T) {
		if _, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, tomcat("with-subpath", "/usr/local/tomcat/conf/server.xml", "server.xml"), metav1.CreateOptions{}); err != nil {
			t.Errorf("the correct mount was rejected: %v", err)
		}
	})
	t.Run("accepts the ConfigMap at a directory of its own", func(t *testing.T) {
		if _, err := cluster.Clientset.CoreV1().Pods(ns).Create(ctx, tomcat("own-dir", "/tmp/server-config", ""), metav1.CreateOptions{}); err != nil {
			t.Errorf("a mount at a directory of its own was rejected: %v", err)
		}
	})
	t.Run("rejects the same mistake in a Deployment's template", func(t *testing.T) {
		d := deployment(ns, "tomcat", "tomcat:10")
		p := tomcat("", "/usr/local/tomcat/conf", "")
		d.Spec.Template.Spec.Volumes, d.Spec.Template.Spec.Containers[0].VolumeMounts = p.Spec.Volumes, p.Spec.Containers[0].VolumeMounts
		_, err := cluster.Clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		deniedBy(t, err, "podguard rejected this Deployment", "[mount-shadowing] spec.template.spec.containers[0].volumeMounts[0]")
	})
}
