package audit

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/check"
)

func dependentNames(d Dependents) []string {
	items := make([]check.Item, len(d.Items))
	for i, o := range d.Items {
		items[i] = check.Item{Object: o}
	}
	return names(items)
}

func TestListDependentsNamesTheWorkloadsThatReadAConfigMapOnce(t *testing.T) {
	stopped := &appsv1.ReplicaSet{ObjectMeta: meta("shop", "old-1", "rs-old"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Template: template("app-config")}}
	other := &appsv1.StatefulSet{ObjectMeta: meta("shop", "db", "ss-db"), Spec: appsv1.StatefulSetSpec{Template: template("db-config")}}
	elsewhere := &appsv1.Deployment{ObjectMeta: meta("other", "web", "d-other"), Spec: appsv1.DeploymentSpec{Template: template("app-config")}}
	cs := cluster(t, stopped, other, elsewhere)
	got, err := ListDependents(context.Background(), cs, "shop", Ref{"ConfigMap", "app-config"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The Deployment stands for its ReplicaSet and pods; the ReplicaSet
	// scaled to 0, the StatefulSet that reads another ConfigMap and the
	// Deployment of another namespace are not dependents.
	if want := []string{"Deployment shop/web"}; !slices.Equal(dependentNames(got), want) || got.Incomplete {
		t.Errorf("dependents = %q (incomplete %v), want %q, complete", dependentNames(got), got.Incomplete, want)
	}

	got, err = ListDependents(context.Background(), cs, "shop", Ref{"ConfigMap", "nginx"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Pod shop/hand-made"}; !slices.Equal(dependentNames(got), want) {
		t.Errorf("dependents of the nginx ConfigMap = %q, want %q (a volume counts)", dependentNames(got), want)
	}
	if got, _ := ListDependents(context.Background(), cs, "shop", Ref{"Secret", "app-config"}, 0); len(got.Items) != 0 {
		t.Errorf("a Secret named like the ConfigMap has dependents %q, want none", dependentNames(got))
	}
}

func TestListDependentsSaysItIsIncompleteWhenCutShort(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := ListDependents(ctx, cluster(t), "shop", Ref{"ConfigMap", "app-config"}, 0)
	if err != nil {
		t.Fatalf("want no error, only Incomplete: %v", err)
	}
	if !got.Incomplete {
		t.Errorf("Incomplete = false after the context ended")
	}
}

func TestListDependentsReportsTheAPIServersErrors(t *testing.T) {
	cs := cluster(t)
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", nil)
	})
	if _, err := ListDependents(context.Background(), cs, "shop", Ref{"ConfigMap", "app-config"}, 0); err == nil {
		t.Error("want the list error")
	}
}
