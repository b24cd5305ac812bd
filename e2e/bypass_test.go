//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// exemptLabel is the namespace label the admin's exemption rule selects.
const exemptLabel = "e2e.podguard.io/exempt"

// exemptionRule is podguard's config in TestPodAuthorsCannotBypassPodguard:
// the default podSkippable, and one admin exemption by namespace label.
const exemptionRule = `
exemptions:
  rules:
  - policies: [security-context, envfrom-keys]
    namespaceSelector: {matchLabels: {` + exemptLabel + `: "true"}}
`

// TestPodAuthorsCannotBypassPodguard tries every way a pod author had around
// podguard, as a user whose RBAC allows only creating and reading pods and
// adding ephemeral containers: podguard.io/skip, a self-set mirror
// annotation, and kubectl debug's pods/ephemeralcontainers. An admin's
// exemption does exempt, and a kubelet's real mirror pod is left alone.
func TestPodAuthorsCannotBypassPodguard(t *testing.T) {
	setKubelets(t, "v1.29.3") // Node e2e-node-a: a kubelet that drops 1st.key
	runPodguard(t, "opt-in", exemptionRule)
	ns := newNamespace(t, "bypass", optIn)
	exempt := newNamespace(t, "exempt", map[string]string{"podguard.io/enabled": "true", exemptLabel: "true"})
	for _, n := range []string{ns, exempt} {
		createConfigMap(t, n, "abcdocker-configmap", "keyinfo", "abcdockerDir", "1st.key")
		createConfigMap(t, n, "etc-files", "hosts", "resolv.conf")
	}
	author, _, warnings := userClient(t, "e2e-pod-author", []string{"system:authenticated"}, []string{ns, exempt},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"update"}})
	ctx := testContext(t, 3*time.Minute)

	hardened := func(t *testing.T, p *corev1.Pod) bool {
		t.Helper()
		sc := p.Spec.Containers[0].SecurityContext
		return sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation &&
			p.Spec.SecurityContext != nil && p.Spec.SecurityContext.SeccompProfile != nil
	}
	annotated := func(name string, annotations map[string]string, envFrom ...string) *corev1.Pod {
		p := pod(ns, name, "nginx", envFrom...)
		p.Annotations = annotations
		return p
	}

	for _, skip := range []string{"all", "security-context"} {
		t.Run("podguard.io/skip: "+skip+" does not skip the hardening", func(t *testing.T) {
			warnings.take()
			created, err := author.CoreV1().Pods(ns).Create(ctx, annotated("skip-"+strings.ReplaceAll(skip, "-", ""), map[string]string{"podguard.io/skip": skip}), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !hardened(t, created) {
				t.Errorf("the pod was not hardened: %+v", created.Spec.SecurityContext)
			}
			got := strings.Join(warnings.take(), "\n")
			for _, want := range []string{
				`podguard [podguard] metadata.annotations[podguard.io/skip]: does not skip "security-context"`,
				`pods may skip only "image-pull-secrets", "log-sidecar" (exemptions.podSkippable in podguard's config)`,
			} {
				if !strings.Contains(got, want) {
					t.Errorf("warnings do not contain %q:\n%s", want, got)
				}
			}
		})
	}

	t.Run("podguard.io/skip: all does not skip the validations", func(t *testing.T) {
		_, err := author.CoreV1().Pods(ns).Create(ctx, annotated("skip-bad", map[string]string{"podguard.io/skip": "all"}, "abcdocker-configmap"), metav1.CreateOptions{})
		deniedBy(t, err, `[envfrom-keys] spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" would be skipped by the target kubelet v1.29.3`)
	})

	t.Run("a self-set mirror annotation does not skip the webhooks", func(t *testing.T) {
		mirror := map[string]string{corev1.MirrorPodAnnotationKey: "made-up"}
		// The API server wants a mirror pod bound to a node; a pod author
		// may set spec.nodeName.
		fake := func(name string, envFrom ...string) *corev1.Pod {
			p := annotated(name, mirror, envFrom...)
			p.Spec.NodeName = "e2e-node-a"
			return p
		}
		created, err := author.CoreV1().Pods(ns).Create(ctx, fake("fake-mirror"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !hardened(t, created) {
			t.Errorf("a pod with a self-set mirror annotation was not mutated: %+v", created.Spec)
		}
		_, err = author.CoreV1().Pods(ns).Create(ctx, fake("fake-mirror-bad", "abcdocker-configmap"), metav1.CreateOptions{})
		deniedBy(t, err, `[envfrom-keys] spec.containers[0].envFrom[0]`)
	})

	t.Run("kubectl debug cannot add a container that the policies would deny", func(t *testing.T) {
		target := pod(ns, "debug-target", "nginx")
		target.Spec.Volumes = []corev1.Volume{{Name: "etc-files", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "etc-files"}}}}}
		target.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "etc-files", MountPath: "/etc/extra-files"}}
		if _, err := author.CoreV1().Pods(ns).Create(ctx, target, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		debug := func(ec corev1.EphemeralContainer) error {
			p, err := author.CoreV1().Pods(ns).Get(ctx, target.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, ec)
			_, err = author.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, target.Name, p, metav1.UpdateOptions{})
			return err
		}
		ephemeral := func(name string) corev1.EphemeralContainer {
			return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: name, Image: "busybox", Command: []string{"sh"}}}
		}

		dropsKeys := ephemeral("debugger-env")
		dropsKeys.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "abcdocker-configmap"}}}}
		deniedBy(t, debug(dropsKeys), "podguard rejected this Pod (1 problem):",
			`[envfrom-keys] spec.ephemeralContainers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" would be skipped by the target kubelet v1.29.3`, "Fix: ")

		hidesEtc := ephemeral("debugger-etc")
		hidesEtc.VolumeMounts = []corev1.VolumeMount{{Name: "etc-files", MountPath: "/etc"}}
		deniedBy(t, debug(hidesEtc), `[mount-shadowing] spec.ephemeralContainers[0].volumeMounts[0].mountPath: mounting volume "etc-files"`,
			"replaces the whole directory /etc", "(ephemeral containers cannot use subPath)")

		if err := debug(ephemeral("debugger")); err != nil {
			t.Fatalf("a harmless ephemeral container was refused: %v", err)
		}
		// The one admitted is not judged again when the next is added.
		if err := debug(ephemeral("debugger-2")); err != nil {
			t.Fatalf("a second harmless ephemeral container was refused: %v", err)
		}
	})

	t.Run("an admin's exemption by namespace label exempts", func(t *testing.T) {
		p := pod(exempt, "exempted", "nginx", "abcdocker-configmap")
		var created *corev1.Pod
		// podguard learns the namespace's labels from its informer.
		eventually(t, 15*time.Second, "podguard applies the exemption", func() (bool, error) {
			var err error
			created, err = author.CoreV1().Pods(exempt).Create(ctx, p, metav1.CreateOptions{})
			return err == nil, nil
		})
		if sc := created.Spec.Containers[0].SecurityContext; sc != nil && sc.AllowPrivilegeEscalation != nil {
			t.Errorf("an exempted pod was hardened: %+v", sc)
		}
	})

	t.Run("a kubelet's mirror pod is left alone", func(t *testing.T) {
		kubelet, _, _ := userClient(t, "system:node:e2e-node-a", []string{"system:nodes", "system:authenticated"}, []string{ns},
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get"}})
		mirror := pod(ns, "static-web-e2e-node-a", "nginx", "abcdocker-configmap")
		mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "5f1c0e4a"}
		mirror.Spec.NodeName = "e2e-node-a"
		created, err := kubelet.CoreV1().Pods(ns).Create(ctx, mirror, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("a kubelet's mirror pod was refused: %v", err)
		}
		stored := &corev1.Pod{}
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(created), stored); err != nil {
			t.Fatal(err)
		}
		if stored.Spec.SecurityContext != nil && stored.Spec.SecurityContext.SeccompProfile != nil || stored.Spec.Containers[0].SecurityContext != nil {
			t.Errorf("a kubelet's mirror pod was mutated: %+v %+v", stored.Spec.SecurityContext, stored.Spec.Containers[0].SecurityContext)
		}
	})
}
