package webhook

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCacheTransformsKeepKeyNamesAndDropValues(t *testing.T) {
	lastApplied := map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"hunter2"}}`}
	tests := []struct {
		name string
		in   any
		keys []string
	}{
		{"a ConfigMap", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", Annotations: lastApplied, Labels: map[string]string{"a": "b"}},
			Data: map[string]string{"LOG_LEVEL": "hunter2"}, BinaryData: map[string][]byte{"blob.bin": []byte("hunter2")}}, []string{"LOG_LEVEL", "blob.bin"}},
		{"a Secret", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", Annotations: lastApplied},
			Data: map[string][]byte{"password": []byte("hunter2")}, StringData: map[string]string{"token": "hunter2"}}, []string{"password", "token"}},
		{"Secret metadata", &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", Annotations: lastApplied}}, nil},
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
			var got []string
			switch o := out.(type) {
			case *corev1.ConfigMap:
				got = cachedKeys(&o.ObjectMeta)
				if o.Data != nil || o.BinaryData != nil {
					t.Error("data survived the transform")
				}
			case *corev1.Secret:
				got = cachedKeys(&o.ObjectMeta)
				if o.Data != nil || o.StringData != nil {
					t.Error("data survived the transform")
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.keys, ",") {
				t.Errorf("keys = %v, want %v", got, tt.keys)
			}
		})
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
