package webhook

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

// recordingImages is an ImageSource that records what it is asked and knows
// nothing.
type recordingImages struct {
	mu    sync.Mutex
	calls []imageCall
}

type imageCall struct {
	namespace   string
	refs        []string
	platform    string
	pullSecrets []string
	wait        time.Duration
}

func (r *recordingImages) InspectPod(_ context.Context, pod *policies.Pod, platform string, pullSecrets []string, wait time.Duration) map[string]policies.ImageFacts {
	r.mu.Lock()
	defer r.mu.Unlock()
	call := imageCall{namespace: pod.Namespace, platform: platform, pullSecrets: pullSecrets, wait: wait}
	for _, img := range pod.Images() {
		call.refs = append(call.refs, img.Ref)
	}
	r.calls = append(r.calls, call)
	return nil
}

func TestAdmissionAsksTheInspectorWithThePodsPlatformSecretsAndBudget(t *testing.T) {
	s := newTestServer(t, registryConfig+"images: {inspect: true, registries: [\"127.0.0.1:*\"], budget: 700ms}\n")
	src := &recordingImages{}
	st := s.adm.State()
	st.Images = src

	pod := podJSON(t, func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "mine"}}
	})
	if code, resp, raw := s.post(t, "/mutate", review(t, podKind, admissionv1.Create, pod)); code != http.StatusOK || !resp.Allowed {
		t.Fatalf("mutate: status %d: %s", code, raw)
	}
	deploy := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"}}
	deploy.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "127.0.0.1:5000/app:1"}, {Name: "side", Image: "10.0.0.130:5000/side"}}
	if code, resp, raw := s.post(t, "/validate", review(t, deploymentKind, admissionv1.Create, mustJSON(t, deploy))); code != http.StatusOK || !resp.Allowed {
		t.Fatalf("validate: status %d: %s", code, raw)
	}

	if len(src.calls) != 2 {
		t.Fatalf("the inspector was asked %d times, want once per request: %+v", len(src.calls), src.calls)
	}
	mutate, validate := src.calls[0], src.calls[1]
	if mutate.platform != "linux/arm64" || mutate.wait != 700*time.Millisecond || !slices.Equal(mutate.pullSecrets, []string{"mine", "myregistrykey"}) || mutate.namespace != "team-a" {
		t.Errorf("mutate asked %+v, want linux/arm64, 700ms, the pod's secret then the registry rule's, in team-a", mutate)
	}
	if validate.platform != "linux/amd64" || !slices.Equal(validate.refs, []string{"127.0.0.1:5000/app:1", "10.0.0.130:5000/side"}) || !slices.Equal(validate.pullSecrets, []string{"myregistrykey"}) {
		t.Errorf("validate asked %+v", validate)
	}
}

func TestReloadKeepsTheInspectorUnlessItsSettingsChange(t *testing.T) {
	x := &imageInspectors{log: logr.Discard()}
	t.Cleanup(x.close)
	state := func(images string) *State {
		t.Helper()
		cfg, err := config.Parse("test", []byte("apiVersion: podguard.io/v1alpha1\nkind: Config\nimages: "+images+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := NewState(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.attach(st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	first := state(`{inspect: true, registries: ["127.0.0.1:*"], budget: 1s}`)
	if first.Images == nil {
		t.Fatal("inspect: true gave no inspector")
	}
	if again := state(`{inspect: true, registries: ["127.0.0.1:*"], budget: 2s}`); again.Images != first.Images {
		t.Error("a budget change replaced the inspector (and dropped its cache)")
	}
	changed := state(`{inspect: true, registries: ["127.0.0.1:5000"], budget: 2s}`)
	if changed.Images == nil || changed.Images == first.Images {
		t.Error("a registries change kept the old inspector")
	}
	if off := state(`{inspect: false}`); off.Images != nil {
		t.Error("inspect: false kept an inspector")
	}
}
