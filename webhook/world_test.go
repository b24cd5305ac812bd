package webhook

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podguard/podguard/policies"
)

func TestCacheTransformsKeepKeyNamesAndDropValues(t *testing.T) {
	lastApplied := map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"hunter2"}}`}
	tests := []struct {
		name          string
		in            any
		keys, envKeys []string
	}{
		{"a ConfigMap: binaryData is a file, never an env var", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", Annotations: lastApplied, Labels: map[string]string{"a": "b"}},
			Data: map[string]string{"LOG_LEVEL": "hunter2", "1st.key": "hunter2"}, BinaryData: map[string][]byte{"blob.bin": []byte("hunter2")}},
			[]string{"1st.key", "LOG_LEVEL", "blob.bin"}, []string{"1st.key", "LOG_LEVEL"}},
		{"a ConfigMap with only binaryData", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"},
			BinaryData: map[string][]byte{"2fa.bin": []byte("hunter2")}}, []string{"2fa.bin"}, nil},
		{"an empty ConfigMap", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"}}, nil, nil},
		{"a Secret", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", Annotations: lastApplied},
			Data: map[string][]byte{"password": []byte("hunter2")}, StringData: map[string]string{"token": "hunter2"}},
			[]string{"password", "token"}, []string{"password", "token"}},
		{"Secret metadata", &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", Annotations: lastApplied}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := keysOnly(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			dump := fmt.Sprintf("%#v", out)
			if strings.Contains(dump, "hunter2") {
				t.Errorf("a value survived the transform: %s", dump)
			}
			var got policies.Object
			switch o := out.(type) {
			case *corev1.ConfigMap:
				got = cachedKeys(o.Data)
				if o.BinaryData != nil || o.Annotations != nil || o.Labels != nil {
					t.Errorf("more than key names survived the transform: %s", dump)
				}
			case *corev1.Secret:
				got = cachedKeys(o.StringData)
				if o.Data != nil || o.Annotations != nil {
					t.Errorf("more than key names survived the transform: %s", dump)
				}
			default:
				return
			}
			if !got.KeysKnown || !slices.Equal(got.Keys, tt.keys) || !slices.Equal(got.EnvKeys, tt.envKeys) {
				t.Errorf("keys = %q, env keys = %q (known %v), want %q and %q", got.Keys, got.EnvKeys, got.KeysKnown, tt.keys, tt.envKeys)
			}
		})
	}
}

// client-go 0.36 applies an informer's transform twice to the objects of
// the initial list (WatchList's temporary store, then RealFIFO.Replace). A
// transform that is not idempotent loses what it kept on the second pass:
// that once made every check fail open for objects that existed before
// podguard started.
func TestCacheTransformsAreIdempotent(t *testing.T) {
	objects := []any{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", Annotations: map[string]string{"x": "y"}},
			Data: map[string]string{"1st.key": "v", "ok": "v"}, BinaryData: map[string][]byte{"b.bin": {1}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"}, Data: map[string]string{"1st.key": "v"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"}, BinaryData: map[string][]byte{"b.bin": {1}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: "n"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n"}, Data: map[string][]byte{"0token": {1}}, Type: corev1.SecretTypeOpaque},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n"}},
		&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", Labels: map[string]string{"a": "b"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"podguard.io/enabled": "true"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.28.5"}}},
	}
	for _, obj := range objects {
		once, err := keysOnly(obj)
		if err != nil {
			t.Fatal(err)
		}
		twice, err := keysOnly(once)
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(once, twice) {
			t.Errorf("%T: transform changed its own output:\nonce:  %#v\ntwice: %#v", obj, once, twice)
		}
	}
}

// The cached entry's key cannot come from the API server ("/" is not allowed
// in a ConfigMap key), but a manifest or a fake could carry it: an object
// that has it alongside real keys is transformed from its real keys.
func TestCacheTransformIgnoresAForgedEntry(t *testing.T) {
	forged := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"},
		Data: map[string]string{keyNamesField: "GOOD", "1st.key": "v"}}
	out, _ := keysOnly(forged)
	got := cachedKeys(out.(*corev1.ConfigMap).Data)
	if !slices.Contains(got.EnvKeys, "1st.key") {
		t.Errorf("env keys = %q: a forged entry hid the real keys", got.EnvKeys)
	}
}

func TestCacheTransformKeepsWhatPoliciesRead(t *testing.T) {
	ns, _ := keysOnly(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"podguard.io/enabled": "true"},
		Annotations: map[string]string{"x": "y"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}})
	if n := ns.(*corev1.Namespace); n.Labels["podguard.io/enabled"] != "true" || n.Annotations["x"] != "y" || n.ManagedFields != nil {
		t.Errorf("namespace = %+v", n)
	}
	node, _ := keysOnly(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"a": "b"}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.29.3", OSImage: "x"}, Images: []corev1.ContainerImage{{Names: []string{"big"}}}}})
	if n := node.(*corev1.Node); n.Status.NodeInfo.KubeletVersion != "v1.29.3" || n.Labels != nil || n.Status.Images != nil {
		t.Errorf("node = %+v", n)
	}
}

func TestOldestKubelet(t *testing.T) {
	node := func(v string) corev1.Node {
		return corev1.Node{Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: v}}}
	}
	tests := []struct {
		name  string
		nodes []corev1.Node
		want  string
	}{
		{"no nodes", nil, "<nil>"},
		{"picks the oldest", []corev1.Node{node("v1.31.2"), node("v1.29.10"), node("v1.30.0")}, "1.29.10"},
		{"reads vendor suffixes", []corev1.Node{node("v1.30.4-eks-a737599"), node("v1.31.1+k3s1")}, "1.30.4"},
		{"ignores unparsable versions", []corev1.Node{node("garbage"), node(""), node("v1.32.0")}, "1.32.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := "<nil>"
			if v := OldestKubelet(tt.nodes, logr.Discard()); v != nil {
				got = v.String()
			}
			if got != tt.want {
				t.Errorf("oldest = %s, want %s", got, tt.want)
			}
		})
	}
}
