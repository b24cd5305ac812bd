//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestAudit runs `podguard audit` against the suite's API server over
// objects created while no podguard runs, as on a cluster where podguard is
// new: a Deployment whose ConfigMap has a key the 1.29 kubelets skip, with
// the ReplicaSet and pods kube-controller-manager made for it; a bare Pod
// that hides /etc/nginx; a clean Deployment and a clean CronJob.
//
//   - the bad Deployment is reported once, with envfrom-keys, and neither
//     its ReplicaSet nor its pods are;
//   - the bare Pod is reported with mount-shadowing, the clean ones pass;
//   - the exit status is 1; --selector narrows; -o text names
//     "Deployment <ns>/web";
//   - --opt-in with -n and an unlabelled namespace audits it with a note;
//   - a Succeeded Pod and a ReplicaSet scaled to 0 are not judged, and
//     counted in a note;
//   - with a config that needs only which Secrets exist (image-pull-secrets
//     registries), a missing pull secret is warned of, an existing one is
//     not: Secrets are listed through the metadata client.
func TestAudit(t *testing.T) {
	setKubelets(t, "v1.29.3")
	ns := newNamespace(t, "audit", nil)
	ctx := testContext(t, 3*time.Minute)
	cs := cluster.Clientset
	createConfigMap(t, ns, "app-config", "keyinfo", "abcdockerDir", "1st.key")
	createConfigMap(t, ns, "nginx-conf", "nginx.conf")

	web := deployment(ns, "web", "nginx", "app-config")
	clean := deployment(ns, "clean", "nginx")
	clean.Spec.Replicas = ptr.To[int32](1)
	for _, d := range []*appsv1.Deployment{web, clean} {
		d.Labels = map[string]string{"app": d.Name}
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bare := pod(ns, "hand-made", "nginx")
	bare.Labels = map[string]string{"app": "hand-made"}
	bare.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/nginx"}}
	bare.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nginx-conf"}}}}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, bare, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nightly := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly", Labels: map[string]string{"app": "nightly"}},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 1 1 *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		}}}},
	}
	if _, err := cs.BatchV1().CronJobs(ns).Create(ctx, nightly, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// What kube-controller-manager makes of the Deployments: a ReplicaSet
	// each, and their pods, which audit must fold into the Deployments.
	eventually(t, 90*time.Second, "the Deployments' ReplicaSets and 3 pods", func() (bool, error) {
		rs, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(rs.Items) == 2 && len(pods.Items) == 4, nil
	})

	type result struct {
		File       *string `json:"file"`
		Kind       string  `json:"kind"`
		Namespace  string  `json:"namespace"`
		Name       string  `json:"name"`
		Violations []struct {
			Policy string `json:"policy"`
		} `json:"violations"`
	}
	// stderr is the last run's: its notes.
	var stderrText string
	audit := func(t *testing.T, args ...string) ([]byte, int) {
		t.Helper()
		args = append([]string{"audit", "--kubeconfig", cluster.KubeconfigPath, "-n", ns}, args...)
		cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "bin", "podguard"), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		stderrText = stderr.String()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != 0 && code != 1 {
			t.Fatalf("podguard %v: exit %d\n%s", args, code, stderr.String())
		}
		return out, code
	}
	verdicts := func(t *testing.T, out []byte) map[string][]string {
		t.Helper()
		var rep struct {
			Results []result `json:"results"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		got := map[string][]string{}
		for _, r := range rep.Results {
			if r.File != nil {
				t.Errorf("%s %s has a file %q", r.Kind, r.Name, *r.File)
			}
			key := r.Kind + " " + r.Namespace + "/" + r.Name
			if _, dup := got[key]; dup {
				t.Errorf("%s reported twice", key)
			}
			got[key] = []string{}
			for _, v := range r.Violations {
				got[key] = append(got[key], v.Policy)
			}
		}
		return got
	}

	t.Run("reports each workload once, with the webhook's verdicts, and exits 1", func(t *testing.T) {
		out, code := audit(t, "-o", "json")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		got := verdicts(t, out)
		want := map[string][]string{
			"Deployment " + ns + "/web":   {"envfrom-keys"},
			"Deployment " + ns + "/clean": {},
			"CronJob " + ns + "/nightly":  {},
			"Pod " + ns + "/hand-made":    {"mount-shadowing"},
		}
		if len(got) != len(want) {
			t.Errorf("reported %v, want exactly %v (no ReplicaSet, no Deployment's pod)", got, want)
		}
		for k, v := range want {
			if p, ok := got[k]; !ok || !slices.Equal(p, v) {
				t.Errorf("%s: violations %v (reported %v), want %v", k, p, ok, v)
			}
		}
	})

	t.Run("--selector narrows to the matching workloads and pods", func(t *testing.T) {
		out, code := audit(t, "-o", "json", "-l", "app in (web, clean)")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		got := verdicts(t, out)
		if len(got) != 2 || got["Deployment "+ns+"/web"] == nil || got["Deployment "+ns+"/clean"] == nil {
			t.Errorf("reported %v, want the two Deployments only", got)
		}
		out, code = audit(t, "-o", "json", "--selector", "app=nightly")
		if got := verdicts(t, out); code != 0 || len(got) != 1 || got["CronJob "+ns+"/nightly"] == nil {
			t.Errorf("exit %d, reported %v; want exit 0 and the CronJob only", code, got)
		}
	})

	t.Run("-o text names the objects by kind, namespace and name", func(t *testing.T) {
		out, code := audit(t)
		t.Logf("podguard audit -n %s:\n%s", ns, out)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, want := range []string{
			`(?m)^Deployment ` + regexp.QuoteMeta(ns) + `/web$`,
			`(?m)^  DENY  \[envfrom-keys\] spec\.template\.spec\.containers\[0\]\.envFrom\[0\]: ConfigMap "app-config" key "1st\.key"`,
			`(?m)^Pod ` + regexp.QuoteMeta(ns) + `/hand-made$`,
			`(?m)^checked 4 objects in 1 namespace: 2 denied`,
		} {
			if !regexp.MustCompile(want).Match(out) {
				t.Errorf("text does not match %s:\n%s", want, out)
			}
		}
	})

	t.Run("--opt-in audits an unlabelled namespace given with -n, with a note", func(t *testing.T) {
		if _, code := audit(t, "-o", "json", "--opt-in"); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if !strings.Contains(stderrText, "has no podguard.io/enabled=true (--opt-in)") {
			t.Errorf("stderr %q, want a note that the namespace is out of the opt-in scope", stderrText)
		}
	})

	t.Run("what will not run again is not judged, and counted on stderr", func(t *testing.T) {
		done := pod(ns, "done", "nginx")
		done.Spec.Containers[0].VolumeMounts = bare.Spec.Containers[0].VolumeMounts
		done.Spec.Volumes = bare.Spec.Volumes
		created, err := cs.CoreV1().Pods(ns).Create(ctx, done, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status.Phase = corev1.PodSucceeded
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		idle := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idle"},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "idle"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "idle"}}, Spec: pod(ns, "", "nginx", "app-config").Spec}},
		}
		if _, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, idle, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, _ := audit(t, "-o", "json")
		got := verdicts(t, out)
		if _, ok := got["Pod "+ns+"/done"]; ok {
			t.Errorf("the Succeeded Pod is reported: %v", got)
		}
		if _, ok := got["ReplicaSet "+ns+"/idle"]; ok {
			t.Errorf("the ReplicaSet scaled to 0 is reported: %v", got)
		}
		if len(got) != 4 {
			t.Errorf("reported %v, want the 4 objects that run", got)
		}
		if !strings.Contains(stderrText, "2 objects that will not run again were not judged") {
			t.Errorf("stderr %q, want a note that 2 objects were not judged", stderrText)
		}
	})

	t.Run("only which Secrets exist is read, through metadata, when image-pull-secrets needs it", func(t *testing.T) {
		configPath := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(configPath, []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\n"+registryRule), 0o644); err != nil {
			t.Fatal(err)
		}
		private := deployment(ns, "private", privateImage)
		private.Labels = map[string]string{"app": "private"}
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, private, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		missing := `needs pull secret "myregistrykey" (rule for 10.0.0.130:5000), which does not exist`
		out, code := audit(t, "--config", configPath, "-l", "app=private")
		if code != 0 || !strings.Contains(string(out), missing) {
			t.Errorf("exit %d, want 0 and a warning that the pull secret does not exist:\n%s\n%s", code, out, stderrText)
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "myregistrykey"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}}
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, code = audit(t, "--config", configPath, "-l", "app=private")
		if code != 0 || strings.Contains(string(out), "does not exist") {
			t.Errorf("exit %d, want 0 and no missing pull secret once it exists:\n%s\n%s", code, out, stderrText)
		}
	})
}
