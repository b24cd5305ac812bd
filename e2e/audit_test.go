//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
//     "Deployment <ns>/web".
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
	audit := func(t *testing.T, args ...string) ([]byte, int) {
		t.Helper()
		args = append([]string{"audit", "--kubeconfig", cluster.KubeconfigPath, "-n", ns}, args...)
		cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "bin", "podguard"), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
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
}
