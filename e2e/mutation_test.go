//go:build e2e

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/certs"
)

// allMutations configures every mutating policy.
const allMutations = registryRule + `
  securityContext:
    profile: restricted
  resources:
    defaults:
      requests: {cpu: 100m, memory: 128Mi}
      limits: {memory: 256Mi}
`

// TestMutations creates pods directly and through a Deployment in an
// opted-in namespace, and checks the stored objects.
func TestMutations(t *testing.T) {
	setKubelets(t, "v1.33.1")
	runPodguard(t, "opt-in", allMutations)
	ns := newNamespace(t, "mutate", optIn)
	plain := newNamespace(t, "plain", nil)
	ctx := testContext(t, 2*time.Minute)

	tomcat := func(ns string) *corev1.Pod {
		p := pod(ns, "tomcat", "tomcat:10")
		p.Annotations = map[string]string{"podguard.io/logs": "/usr/local/tomcat/logs"}
		return p
	}

	t.Run("a pod gets every mutation", func(t *testing.T) {
		p := tomcat(ns)
		if err := cluster.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		stored := &corev1.Pod{}
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(p), stored); err != nil {
			t.Fatal(err)
		}
		checkMutated(t, stored)
		if len(stored.Spec.InitContainers) != 1 || stored.Spec.InitContainers[0].Name != "app-logs" ||
			ptr.Deref(stored.Spec.InitContainers[0].RestartPolicy, "") != corev1.ContainerRestartPolicyAlways {
			t.Errorf("want the native log sidecar app-logs, got init containers %v", containerNames(stored.Spec.InitContainers))
		}
	})

	t.Run("a Deployment's pods get every mutation", func(t *testing.T) {
		d := deployment(ns, "tomcat", "tomcat:10")
		d.Spec.Template.Annotations = map[string]string{"podguard.io/logs": "/usr/local/tomcat/logs"}
		if err := cluster.Client.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		var pods corev1.PodList
		eventually(t, time.Minute, "the ReplicaSet's pods", func() (bool, error) {
			err := cluster.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": "tomcat"})
			return err == nil && len(pods.Items) == 2, err
		})
		for i := range pods.Items {
			checkMutated(t, &pods.Items[i])
		}
	})

	t.Run("nothing happens in a namespace that did not opt in", func(t *testing.T) {
		p := tomcat(plain)
		if err := cluster.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		c := p.Spec.Containers[0]
		if len(p.Spec.InitContainers)+len(p.Spec.ImagePullSecrets) > 0 || c.Resources.Requests != nil || c.SecurityContext != nil ||
			(p.Spec.SecurityContext != nil && p.Spec.SecurityContext.RunAsNonRoot != nil) {
			t.Errorf("a pod in a namespace that did not opt in was mutated: %+v", p.Spec)
		}
	})

	t.Run("a malformed logs annotation is rejected", func(t *testing.T) {
		p := pod(ns, "bad-logs", "tomcat:10")
		p.Annotations = map[string]string{"podguard.io/logs": "logs"}
		err := cluster.Client.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), `admission webhook "mutate.podguard.io" denied the request`) ||
			!strings.Contains(err.Error(), `metadata.annotations[podguard.io/logs]: "logs" is not an absolute path`) {
			t.Errorf("want a denial naming the annotation, got %v", err)
		}
	})
}

// checkMutated checks what allMutations does to the tomcat pod.
func checkMutated(t *testing.T, p *corev1.Pod) {
	t.Helper()
	app := p.Spec.Containers[0]
	if got := app.Resources.Requests.Memory().String(); got != "128Mi" {
		t.Errorf("pod %s: memory request = %s, want 128Mi", p.Name, got)
	}
	if got := app.Resources.Limits.Memory().String(); got != "256Mi" {
		t.Errorf("pod %s: memory limit = %s, want 256Mi", p.Name, got)
	}
	// tomcat runs as root, and without the image inspector podguard cannot
	// know its USER: restricted must not set runAsNonRoot, which the kubelet
	// would answer with CreateContainerConfigError. It still drops every
	// capability.
	if (app.SecurityContext != nil && app.SecurityContext.RunAsNonRoot != nil) || (p.Spec.SecurityContext != nil && p.Spec.SecurityContext.RunAsNonRoot != nil) {
		t.Errorf("pod %s: runAsNonRoot set on an image whose user podguard does not know", p.Name)
	}
	if app.SecurityContext == nil || app.SecurityContext.Capabilities == nil || len(app.SecurityContext.Capabilities.Drop) != 1 || app.SecurityContext.Capabilities.Drop[0] != "ALL" {
		t.Errorf("pod %s: capabilities not dropped: %+v", p.Name, app.SecurityContext)
	}
	if app.SecurityContext == nil || ptr.Deref(app.SecurityContext.AllowPrivilegeEscalation, true) {
		t.Errorf("pod %s: allowPrivilegeEscalation not false", p.Name)
	}
	var logMount bool
	for _, m := range app.VolumeMounts {
		logMount = logMount || m.MountPath == "/usr/local/tomcat/logs"
	}
	if !logMount {
		t.Errorf("pod %s: the app has no log volume at /usr/local/tomcat/logs: %+v", p.Name, app.VolumeMounts)
	}
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// TestReinvocation registers a second mutating webhook that runs after
// podguard and adds a container. With reinvocationPolicy: IfNeeded, the API
// server calls podguard again, and the added container gets podguard's
// defaults too.
func TestReinvocation(t *testing.T) {
	runPodguard(t, "opt-in", allMutations)
	ns := newNamespace(t, "reinvoke", optIn)
	ctx := testContext(t, time.Minute)
	startLateAdder(t)

	p := pod(ns, "web", "nginx:1.27")
	if err := cluster.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Name != "late-added" {
		t.Fatalf("the second webhook did not run: containers %v", containerNames(p.Spec.Containers))
	}
	late := p.Spec.Containers[1]
	if got := late.Resources.Requests.Cpu().String(); got != "100m" {
		t.Errorf("the late container's cpu request = %s, want podguard's 100m: podguard was not reinvoked", got)
	}
	if late.SecurityContext == nil || ptr.Deref(late.SecurityContext.AllowPrivilegeEscalation, true) {
		t.Errorf("the late container has no hardened security context: %+v", late.SecurityContext)
	}
}

// startLateAdder serves a mutating webhook that adds a container named
// late-added to every pod, and registers it under a name that sorts after
// podguard's, so the API server calls it after podguard.
func startLateAdder(t *testing.T) {
	t.Helper()
	startLateMutator(t, func(p *corev1.Pod) string {
		if len(p.Spec.Containers) != 1 {
			return ""
		}
		return `[{"op":"add","path":"/spec/containers/-","value":{"name":"late-added","image":"busybox:1.37"}}]`
	}, func(p *corev1.Pod) bool { return len(p.Spec.Containers) == 2 })
}

// lateAnnotation is what startLateAnnotator adds to every pod.
const lateAnnotation = "e2e.podguard.io/late"

// startLateAnnotator serves a mutating webhook, called after podguard, that
// adds an annotation to every pod that lacks it: a change that makes the API
// server call podguard again (reinvocationPolicy: IfNeeded), whatever
// podguard did to the pod.
func startLateAnnotator(t *testing.T) {
	t.Helper()
	startLateMutator(t, func(p *corev1.Pod) string {
		if _, ok := p.Annotations[lateAnnotation]; ok {
			return ""
		}
		if p.Annotations == nil {
			return `[{"op":"add","path":"/metadata/annotations","value":{"e2e.podguard.io/late":"yes"}}]`
		}
		return `[{"op":"add","path":"/metadata/annotations/e2e.podguard.io~1late","value":"yes"}]`
	}, func(p *corev1.Pod) bool { return p.Annotations[lateAnnotation] == "yes" })
}

// startLateMutator serves a mutating webhook that patches every pod with
// patch (nothing when it returns ""), registered under a name that sorts
// after podguard's, so that the API server calls it after podguard. It
// returns once called reports a dry-run probe pod as patched.
func startLateMutator(t *testing.T, patch func(*corev1.Pod) string, called func(*corev1.Pod) bool) {
	t.Helper()
	ca, err := certs.NewCA("late-adder-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing(nil, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		var p corev1.Pod
		if err := json.Unmarshal(review.Request.Object.Raw, &p); err == nil {
			if ops := patch(&p); ops != "" {
				resp.Patch = []byte(ops)
				resp.PatchType = ptr.To(admissionv1.PatchTypeJSONPatch)
			}
		}
		review.Response = resp
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	}))
	if srv.TLS, err = tlsConfig(serving); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-late-adder"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "late-adder.e2e.podguard.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(srv.URL), CABundle: ca.CertPEM},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: optIn},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
		}},
	}
	ctx := testContext(t, time.Minute)
	if err := cluster.Client.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_ = cluster.Client.Delete(ctx, cfg)
	})
	// Wait until the API server calls it.
	probeNS := newNamespace(t, "late-probe", optIn)
	eventually(t, 30*time.Second, "the second webhook is called", func() (bool, error) {
		probe := pod(probeNS, "", "nginx:1.27")
		probe.GenerateName = "probe-"
		p, err := cluster.Clientset.CoreV1().Pods(probeNS).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, nil
		}
		return called(p), nil
	})
}

// tlsConfig serves one certificate.
func tlsConfig(s *certs.Serving) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// TestReinvocationKeepsTheLogSidecar: another mutating webhook runs after
// podguard and changes every pod, so the API server calls podguard again
// with podguard's own output (reinvocationPolicy: IfNeeded). In both sidecar
// modes, podguard must accept its own output: on kubelets older than 1.29
// the sidecar is a regular container, which once counted as a second app
// container and got `podguard.io/logs: /dir` denied ("names no container"),
// for Pods and for every pod of a Deployment (FailedCreate).
func TestReinvocationKeepsTheLogSidecar(t *testing.T) {
	for _, mode := range []struct {
		name, kubelet string
		native        bool
	}{
		{"native sidecar", "v1.33.1", true},
		{"regular sidecar", "v1.28.5", false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			setKubelets(t, mode.kubelet)
			pg := runPodguard(t, "opt-in", allMutations)
			ns := newNamespace(t, "reinvoke-logs", optIn)
			startLateAnnotator(t)
			ctx := testContext(t, 2*time.Minute)

			tomcat := pod(ns, "tomcat", "tomcat:10")
			tomcat.Annotations = map[string]string{"podguard.io/logs": "/usr/local/tomcat/logs"}
			before := mutateCalls(t, pg)
			if err := cluster.Client.Create(ctx, tomcat); err != nil {
				t.Fatalf("podguard denied its own output on reinvocation: %v", err)
			}
			if calls := mutateCalls(t, pg) - before; calls < 2 {
				t.Fatalf("podguard's mutating webhook was called %d times for one pod; the test needs a reinvocation", calls)
			}
			checkLogSidecar(t, tomcat, mode.native)

			// The same template in a Deployment: kube-controller-manager
			// creates the pod, through both webhooks.
			d := deployment(ns, "tomcat", "tomcat:10")
			d.Spec.Template.Annotations = map[string]string{"podguard.io/logs": "/usr/local/tomcat/logs"}
			if err := cluster.Client.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
			var made corev1.Pod
			eventually(t, time.Minute, "the Deployment's pod is created", func() (bool, error) {
				var pods corev1.PodList
				if err := cluster.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
					return false, err
				}
				if len(pods.Items) == 0 {
					return false, nil
				}
				made = pods.Items[0]
				return true, nil
			})
			checkLogSidecar(t, &made, mode.native)
		})
	}
}

// checkLogSidecar asserts that p has exactly one log sidecar, in the place
// the mode calls for, and the later webhook's annotation.
func checkLogSidecar(t *testing.T, p *corev1.Pod, native bool) {
	t.Helper()
	apps, inits := containerNames(p.Spec.Containers), containerNames(p.Spec.InitContainers)
	want, wantInit := []string{"app", "app-logs"}, []string(nil)
	if native {
		want, wantInit = []string{"app"}, []string{"app-logs"}
	}
	if !slices.Equal(apps, want) || !slices.Equal(inits, wantInit) {
		t.Errorf("pod %s: containers %v, init containers %v; want %v and %v", p.Name, apps, inits, want, wantInit)
	}
	if p.Annotations[lateAnnotation] != "yes" {
		t.Errorf("pod %s: the later webhook did not run", p.Name)
	}
	if p.Spec.SecurityContext == nil || p.Spec.SecurityContext.FSGroup == nil {
		t.Errorf("pod %s: no fsGroup for the log volume", p.Name)
	}
}

// mutateCalls is how many Pod CREATEs podguard's mutating webhook answered.
func mutateCalls(t *testing.T, pg *podguard) int {
	t.Helper()
	total := 0
	for _, line := range strings.Split(get(t, pg.MetricsURL), "\n") {
		if strings.HasPrefix(line, `podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",`) && strings.Contains(line, `webhook="mutate"}`) {
			fields := strings.Fields(line)
			n, err := strconv.Atoi(fields[len(fields)-1])
			if err != nil {
				t.Fatalf("reading %q: %v", line, err)
			}
			total += n
		}
	}
	return total
}
