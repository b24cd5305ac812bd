package webhook

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
)

// BenchmarkConfigMapCacheMemory reports the heap an informer store retains
// for 100,000 ConfigMaps of 20 keys each (values of 200 bytes, plus the
// last-applied-configuration annotation kubectl apply adds and managed
// fields), with podguard's keys-only transform and, for comparison, without
// it. The figures are in the README.
func BenchmarkConfigMapCacheMemory(b *testing.B) {
	const configMaps, keys = 100_000, 20
	value := strings.Repeat("v", 200)
	newConfigMap := func(i int, distinctKeys bool) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("app-config-%06d", i), Namespace: fmt.Sprintf("team-%03d", i%500),
				UID: types.UID(fmt.Sprintf("6f1c1e7a-0000-4000-8000-%012d", i)), ResourceVersion: fmt.Sprint(100000 + i),
				Labels:      map[string]string{"app.kubernetes.io/name": "app", "app.kubernetes.io/instance": fmt.Sprint(i)},
				Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", keys*230)},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
					FieldsV1: &metav1.FieldsV1{Raw: []byte(strings.Repeat("f", keys*40))}}},
			},
			Data: make(map[string]string, keys),
		}
		for k := 0; k < keys; k++ {
			name := fmt.Sprintf("SETTING_%02d_NAME", k)
			if distinctKeys {
				name = fmt.Sprintf("SETTING_%02d_%06d", k, i)
			}
			cm.Data[name] = value
		}
		return cm
	}
	for _, tt := range []struct {
		name         string
		transform    toolscache.TransformFunc
		distinctKeys bool
	}{
		// The same key names in every ConfigMap: one chart installed in
		// many namespaces.
		{"keys-only/shared-key-names", keysOnly, false},
		// Key names unique to every ConfigMap: the worst case.
		{"keys-only/distinct-key-names", keysOnly, true},
		{"no-transform", nil, true},
	} {
		b.Run(tt.name, func(b *testing.B) {
			var perObject, total float64
			for b.Loop() {
				before := heapInUse()
				store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
				for i := 0; i < configMaps; i++ {
					var obj any = newConfigMap(i, tt.distinctKeys)
					if tt.transform != nil {
						var err error
						if obj, err = tt.transform(obj); err != nil {
							b.Fatal(err)
						}
					}
					if err := store.Add(obj); err != nil {
						b.Fatal(err)
					}
				}
				retained := heapInUse() - before
				total = float64(retained) / (1 << 20)
				perObject = float64(retained) / configMaps
				runtime.KeepAlive(store)
			}
			b.ReportMetric(total, "MiB/100k-configmaps")
			b.ReportMetric(perObject, "B/configmap")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
