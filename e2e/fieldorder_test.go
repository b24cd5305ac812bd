//go:build e2e

package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// fieldOrderConfig turns on every policy, Secret key checks included.
const fieldOrderConfig = allMutations + `  envFromKeys:
    secrets: true
`

// TestVerdictsSurviveRestarts runs podguard the way a real install meets a
// cluster: the Nodes, namespaces, ConfigMaps and Secrets exist before
// podguard starts; then podguard restarts (a rollout), then kube-apiserver
// restarts (an upgrade), and every verdict must be the same each time. Both
// sidecar modes run: native (kubelets 1.33) and a regular container
// (kubelets 1.28, which also drop envFrom keys that start with a digit).
//
// Every verdict below depends on what podguard's caches hold about objects
// that existed before it started: an informer transform that lost key names
// on its second pass over the initial list once made the envFrom and
// key-name checks pass everything after each start or relist.
func TestVerdictsSurviveRestarts(t *testing.T) {
	for _, mode := range []struct {
		name, kubelet string
		native        bool
	}{
		{"native sidecars", "v1.33.1", true},
		{"regular sidecars", "v1.28.5", false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			// State first.
			setKubelets(t, mode.kubelet, mode.kubelet)
			ns := newNamespace(t, "field", optIn)
			createFieldState(t, ns)

			pg := runPodguard(t, "opt-in", fieldOrderConfig)
			want := expectedVerdicts(mode.native)
			first := verdicts(t, ns)
			assertVerdicts(t, "after podguard started", first, want)

			pg.restart(t)
			waitForWebhooks(t, pg)
			assertVerdicts(t, "after podguard restarted", verdicts(t, ns), first)

			if err := cluster.RestartAPIServer(); err != nil {
				t.Fatal(err)
			}
			// podguard's watches broke; once it sees an object created after
			// the restart, its informers are back, having listed again.
			createConfigMap(t, ns, "sentinel", "sentinel.properties")
			sentinel := pod(ns, "sentinel", "nginx:1.27")
			sentinel.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "sentinel"}}}}}
			sentinel.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "s", MountPath: "/opt/app/sentinel.properties"}}
			eventually(t, 90*time.Second, "podguard sees a ConfigMap created after kube-apiserver restarted", func() (bool, error) {
				_, err := dryRun(t, ns, sentinel)
				return err != nil && strings.Contains(err.Error(), `key "sentinel.properties"`), nil
			})
			assertVerdicts(t, "after kube-apiserver restarted", verdicts(t, ns), first)
		})
	}
}

// createFieldState creates what the verdicts depend on.
func createFieldState(t *testing.T, ns string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	objs := []any{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "abcdocker-configmap"},
			Data: map[string]string{"keyinfo": "x", "abcdockerDir": "/x", "1st.key": "dropped on old kubelets"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "binary-only-bad"},
			Data: map[string]string{"MODE": "strict"}, BinaryData: map[string][]byte{"2fa.bin": {1, 2}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-settings"},
			Data: map[string]string{"settings": "a=b"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
			Data: map[string][]byte{"0token": []byte("never-cached")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "myregistrykey"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}},
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			if err := cluster.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		case *corev1.Secret:
			if err := cluster.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fieldProbes are the pods whose verdicts are compared: one per policy, and
// for the checks that read the caches, one that must pass beside one that
// must fail.
func fieldProbes(ns string) map[string]*corev1.Pod {
	tomcat := pod(ns, "tomcat", "tomcat:10")
	tomcat.Annotations = map[string]string{"podguard.io/logs": "/usr/local/tomcat/logs"}

	keyAsDir := pod(ns, "settings-as-dir", "nginx:1.27")
	keyAsDir.Spec.Volumes = []corev1.Volume{{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "app-settings"}}}}}
	keyAsDir.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "settings", MountPath: "/opt/app/settings"}}
	keyWithSubPath := keyAsDir.DeepCopy()
	keyWithSubPath.Name = "settings-subpath"
	keyWithSubPath.Spec.Containers[0].VolumeMounts[0].SubPath = "settings"

	secretEnv := pod(ns, "secret-env", "nginx:1.27")
	secretEnv.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}

	return map[string]*corev1.Pod{
		"envfrom-digit-key":       withEnvFrom(pod(ns, "envfrom-bad", "nginx:1.27"), "abcdocker-configmap", false),
		"envfrom-binarydata-only": withEnvFrom(pod(ns, "envfrom-binary", "nginx:1.27"), "binary-only-bad", false),
		"envfrom-missing":         withEnvFrom(pod(ns, "envfrom-missing", "nginx:1.27"), "not-there", false),
		"envfrom-secret":          secretEnv,
		"mount-key-as-directory":  keyAsDir,
		"mount-key-with-subpath":  keyWithSubPath,
		"log-sidecar":             tomcat,
		"private-registry":        pod(ns, "private", "10.0.0.130:5000/nginx:latest"),
	}
}

func withEnvFrom(p *corev1.Pod, configMap string, optional bool) *corev1.Pod {
	p.Spec.Containers[0].EnvFrom = append(p.Spec.Containers[0].EnvFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: configMap}, Optional: ptr.To(optional)}})
	return p
}

// expectedVerdicts pins what the verdicts must be, so that a verdict that is
// wrong from the start cannot pass by staying wrong. Kubelets 1.28 skip keys
// that start with a digit (a denial); 1.33 passes them through, and a key
// that is not a POSIX name is a warning. Image inspection is off here, so
// restricted warns on every admitted pod that its image's user is unknown
// (runAsNonRoot left unset): the security-context warning.
func expectedVerdicts(native bool) map[string]string {
	const user = `"[security-context] spec.containers[0].image "`
	digitKey := `denied [envfrom-keys] spec.containers[0].envFrom[0] key "1st.key"`
	secretKey := `denied [envfrom-keys] spec.containers[0].envFrom[0] key "0token"`
	sidecar := "containers=app,app-logs init= fsGroup=65534 sidecarUser=65534:65534"
	if native {
		digitKey = `admitted containers=app init= pullSecrets= warnings=["[envfrom-keys] spec.containers[0].envFrom[0] key \"1st.key\"" ` + user + `]`
		secretKey = `admitted containers=app init= pullSecrets= warnings=["[envfrom-keys] spec.containers[0].envFrom[0] key \"0token\"" ` + user + `]`
		sidecar = "containers=app init=app-logs fsGroup=65534 sidecarUser=65534:65534"
	}
	return map[string]string{
		"envfrom-digit-key":       digitKey,
		"envfrom-binarydata-only": "admitted containers=app init= pullSecrets= warnings=[" + user + "]",
		"envfrom-missing":         `admitted containers=app init= pullSecrets= warnings=["[envfrom-keys] spec.containers[0].envFrom[0] " ` + user + `]`,
		"envfrom-secret":          secretKey,
		"mount-key-as-directory":  `denied [mount-shadowing] spec.containers[0].volumeMounts[0].mountPath key "settings"`,
		"mount-key-with-subpath":  "admitted containers=app init= pullSecrets= warnings=[" + user + "]",
		"log-sidecar":             "admitted " + sidecar,
		"private-registry":        "admitted containers=app init= pullSecrets=myregistrykey warnings=[" + user + "]",
	}
}

var (
	policyTag = regexp.MustCompile(`\[[a-z-]+\] [^:]+`)
	quotedKey = regexp.MustCompile(`key "[^"]+"`)
)

// verdicts creates every probe as a dry run and summarises what the API
// server answered: the denying policies, field paths and keys, or the
// mutated pod's shape.
func verdicts(t *testing.T, ns string) map[string]string {
	t.Helper()
	cs, warnings := clientWithWarnings(t)
	out := map[string]string{}
	for name, p := range fieldProbes(ns) {
		warnings.take()
		got, err := cs.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			msg := err.Error()
			out[name] = "denied " + strings.Join(policyTag.FindAllString(msg, -1), " ") + " " + strings.Join(quotedKey.FindAllString(msg, -1), " ")
			continue
		}
		if name == "log-sidecar" {
			out[name] = "admitted " + sidecarShape(got)
			continue
		}
		// The findings podguard warned about ("podguard [policy] field:
		// message"), less the summary of what it mutated.
		var warned []string
		for _, w := range warnings.take() {
			if strings.HasPrefix(w, "podguard [") {
				warned = append(warned, policyTag.FindString(w)+" "+strings.Join(quotedKey.FindAllString(w, -1), " "))
			}
		}
		slices.Sort(warned)
		out[name] = fmt.Sprintf("admitted containers=%s init=%s pullSecrets=%s warnings=%q",
			strings.Join(containerNames(got.Spec.Containers), ","), strings.Join(containerNames(got.Spec.InitContainers), ","), pullSecretNames(got), warned)
	}
	return out
}

// sidecarShape summarises where the log sidecar went and who it runs as.
func sidecarShape(p *corev1.Pod) string {
	var sc *corev1.Container
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		if strings.HasSuffix(c.Name, "-logs") {
			sc = &c
		}
	}
	user := "none"
	if sc != nil && sc.SecurityContext != nil {
		user = fmt.Sprintf("%d:%d", ptr.Deref(sc.SecurityContext.RunAsUser, -1), ptr.Deref(sc.SecurityContext.RunAsGroup, -1))
	}
	fsGroup := int64(-1)
	if p.Spec.SecurityContext != nil {
		fsGroup = ptr.Deref(p.Spec.SecurityContext.FSGroup, -1)
	}
	return fmt.Sprintf("containers=%s init=%s fsGroup=%d sidecarUser=%s",
		strings.Join(containerNames(p.Spec.Containers), ","), strings.Join(containerNames(p.Spec.InitContainers), ","), fsGroup, user)
}

func assertVerdicts(t *testing.T, when string, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %s:\n got  %s\n want %s", when, name, got[name], w)
		}
	}
}

// dryRun creates p as a dry run as the cluster admin.
func dryRun(t *testing.T, ns string, p *corev1.Pod) (*corev1.Pod, error) {
	return cluster.Clientset.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
}
