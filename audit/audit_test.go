package audit

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kversion "k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/check"
	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

func meta(ns, name, uid string, owner ...metav1.OwnerReference) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: map[string]string{"app": name}, OwnerReferences: owner}
}

func controlledBy(kind, name, uid string) metav1.OwnerReference {
	apiVersion := "apps/v1"
	if kind == "Job" || kind == "CronJob" {
		apiVersion = "batch/v1"
	}
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: ptr.To(true)}
}

func template(envFrom string) corev1.PodTemplateSpec {
	c := corev1.Container{Name: "app", Image: "nginx:1.27"}
	if envFrom != "" {
		c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: envFrom}}}}
	}
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

func podOf(m metav1.ObjectMeta, t corev1.PodTemplateSpec) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: m, Spec: t.Spec}
}

// cluster is a shop namespace where a Deployment with a bad envFrom runs
// through its ReplicaSet and pods, a CronJob through a Job and its pod, a
// bare Pod hides /etc/nginx, and a ReplicaSet and a Pod belong to owners
// podguard does not audit (or that are gone).
func cluster(t *testing.T, extra ...runtime.Object) *fake.Clientset {
	t.Helper()
	bad := template("app-config")
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "old"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.29.4", Architecture: "amd64"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.31.0", Architecture: "arm64"}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-config"}, Data: map[string]string{"1st.key": "x", "keyinfo": "y"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nginx"}, Data: map[string]string{"nginx.conf": "x"}},
		&appsv1.Deployment{ObjectMeta: meta("shop", "web", "d-web"), Spec: appsv1.DeploymentSpec{Template: bad}},
		&appsv1.ReplicaSet{ObjectMeta: meta("shop", "web-5d9f", "rs-web", controlledBy("Deployment", "web", "d-web")), Spec: appsv1.ReplicaSetSpec{Template: bad}},
		podOf(meta("shop", "web-5d9f-a", "p-web-a", controlledBy("ReplicaSet", "web-5d9f", "rs-web")), bad),
		podOf(meta("shop", "web-5d9f-b", "p-web-b", controlledBy("ReplicaSet", "web-5d9f", "rs-web")), bad),
		&batchv1.CronJob{ObjectMeta: meta("shop", "nightly", "cj"), Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template("")}}}},
		&batchv1.Job{ObjectMeta: meta("shop", "nightly-29", "job", controlledBy("CronJob", "nightly", "cj")), Spec: batchv1.JobSpec{Template: template("")}},
		podOf(meta("shop", "nightly-29-x", "p-job", controlledBy("Job", "nightly-29", "job")), template("")),
		&appsv1.ReplicaSet{ObjectMeta: meta("shop", "canary-7c", "rs-canary", metav1.OwnerReference{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "canary", UID: "ro", Controller: ptr.To(true)}), Spec: appsv1.ReplicaSetSpec{Template: template("")}},
		podOf(meta("shop", "orphan", "p-orphan", controlledBy("ReplicaSet", "gone", "rs-gone")), template("")),
		&corev1.Pod{ObjectMeta: meta("shop", "hand-made", "p-bare"), Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27", VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/nginx"}}}},
			Volumes:    []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nginx"}}}}},
		}},
		podOf(meta("kube-system", "coredns-x", "p-dns"), template("")),
	}
	cs := fake.NewClientset(append(objs, extra...)...)
	cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &kversion.Info{GitVersion: "v1.31.0"}
	return cs
}

func names(items []check.Item) []string {
	var out []string
	for _, it := range items {
		m, _ := metaOf(it.Object)
		out = append(out, it.Object.GetObjectKind().GroupVersionKind().Kind+" "+m.Namespace+"/"+m.Name)
	}
	return out
}

func defaultOptions() Options {
	return Options{Exclude: config.Default().Namespaces.Exclude}
}

func TestCollectCollapsesOwnedObjectsIntoTheirWorkload(t *testing.T) {
	inv, err := Collect(context.Background(), cluster(t), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Deployment shop/web",
		"ReplicaSet shop/canary-7c", // its Rollout is not an audited kind
		"CronJob shop/nightly",
		"Pod shop/hand-made",
		"Pod shop/orphan", // its ReplicaSet is gone
	}
	if got := names(inv.Items); !slices.Equal(got, want) {
		t.Errorf("items:\n got %q\nwant %q", got, want)
	}
	for _, it := range inv.Items {
		if isPod := it.Object.GetObjectKind().GroupVersionKind().Kind == "Pod"; it.Admitted != isPod {
			t.Errorf("%s: Admitted = %v, want %v (a Pod was mutated at admission, a workload's pods are not yet)", names([]check.Item{it}), it.Admitted, isPod)
		}
	}
	if inv.Namespaces != 1 {
		t.Errorf("namespaces = %d, want 1 (kube-system is excluded)", inv.Namespaces)
	}
	c := inv.World.Cluster()
	slices.Sort(c.NodeArches)
	if c.KubeletVersion.String() != "1.29.4" || c.ServerVersion.String() != "1.31.0" || !slices.Equal(c.NodeArches, []string{"amd64", "arm64"}) {
		t.Errorf("cluster = kubelet %v, server %v, arches %v; want the oldest kubelet 1.29.4, server 1.31.0, [amd64 arm64]", c.KubeletVersion, c.ServerVersion, c.NodeArches)
	}
	if got := inv.World.ConfigMap("shop", "app-config"); got.Presence != policies.Found || !slices.Equal(got.Keys, []string{"1st.key", "keyinfo"}) {
		t.Errorf("ConfigMap app-config = %+v, want found with its key names", got)
	}
}

func TestCollectNarrowsToANamespaceAndASelector(t *testing.T) {
	opts := defaultOptions()
	opts.Namespace, opts.Selector = "shop", "app in (web, web-5d9f, web-5d9f-a, hand-made)"
	inv, err := Collect(context.Background(), cluster(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Deployment shop/web", "Pod shop/hand-made"}
	if got := names(inv.Items); !slices.Equal(got, want) {
		t.Errorf("items = %q, want %q", got, want)
	}
}

func TestCollectKeepsTheLastAppliedConfigurationOut(t *testing.T) {
	m := meta("shop", "applied", "p-applied")
	m.Annotations = map[string]string{lastApplied: `{"apiVersion":"v1","kind":"Pod"}`, "team": "shop"}
	m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1"}}
	inv, err := Collect(context.Background(), cluster(t, podOf(m, template(""))), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range inv.Items {
		m, _ := metaOf(it.Object)
		if _, ok := m.Annotations[lastApplied]; ok || m.ManagedFields != nil {
			t.Errorf("%s keeps what no policy reads", m.Name)
		}
		if m.Name == "applied" {
			found = true
			if m.Annotations["team"] != "shop" {
				t.Errorf("annotations = %v, want the others kept", m.Annotations)
			}
		}
	}
	if !found {
		t.Errorf("items = %q, want Pod shop/applied among them", names(inv.Items))
	}
}

func TestCollectScopesNamespacesAsTheWebhook(t *testing.T) {
	extra := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "off", Labels: map[string]string{EnabledLabel: "false"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "on", Labels: map[string]string{EnabledLabel: "true"}}},
		podOf(meta("off", "skipped", "p-off"), template("")),
		podOf(meta("on", "opted", "p-on"), template("")),
	}
	namespacesOf := func(items []check.Item) []string {
		set := map[string]bool{}
		for _, it := range items {
			m, _ := metaOf(it.Object)
			set[m.Namespace] = true
		}
		var out []string
		for ns := range set {
			out = append(out, ns)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name      string
		namespace string
		optIn     bool
		want      []string
		note      string
	}{
		{"cluster-wide skips namespaces labelled enabled=false", "", false, []string{"on", "shop"}, ""},
		{"--opt-in audits only namespaces labelled enabled=true", "", true, []string{"on"}, ""},
		{"-n audits a namespace labelled enabled=false, with a note", "off", false, []string{"off"}, "podguard.io/enabled=false"},
		{"-n with --opt-in audits an unlabelled namespace, with a note", "shop", true, []string{"shop"}, "no podguard.io/enabled=true"},
		{"-n with --opt-in audits a labelled namespace without a note", "on", true, []string{"on"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := defaultOptions()
			opts.Namespace, opts.OptIn = tc.namespace, tc.optIn
			inv, err := Collect(context.Background(), cluster(t, extra...), opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := namespacesOf(inv.Items); !slices.Equal(got, tc.want) {
				t.Errorf("namespaces audited = %q, want %q", got, tc.want)
			}
			if inv.Namespaces != len(tc.want) {
				t.Errorf("namespaces = %d, want %d", inv.Namespaces, len(tc.want))
			}
			switch {
			case tc.note == "" && len(inv.Notes) != 0:
				t.Errorf("notes = %q, want none", inv.Notes)
			case tc.note != "" && (len(inv.Notes) != 1 || !strings.Contains(inv.Notes[0], tc.note) || !strings.Contains(inv.Notes[0], "audited anyway")):
				t.Errorf("notes = %q, want one that says %q and audited anyway", inv.Notes, tc.note)
			}
		})
	}
}

func TestCollectDoesNotJudgeWhatWillNotRunAgain(t *testing.T) {
	rollout := metav1.OwnerReference{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "canary", UID: "ro", Controller: ptr.To(true)}
	now := metav1.Now()
	deleting := meta("shop", "deleting", "p-deleting")
	deleting.DeletionTimestamp = &now
	finished := func(name string, cond batchv1.JobConditionType) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: meta("shop", name, "job-"+name), Spec: batchv1.JobSpec{Template: template("")},
			Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue}}}}
	}
	extra := []runtime.Object{
		// An old revision of the Rollout, scaled to 0.
		&appsv1.ReplicaSet{ObjectMeta: meta("shop", "canary-6b", "rs-canary-old", rollout), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Template: template("app-config")}},
		&corev1.ReplicationController{ObjectMeta: meta("shop", "legacy", "rc-legacy"), Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](0), Template: &corev1.PodTemplateSpec{Spec: template("app-config").Spec}}},
		&corev1.Pod{ObjectMeta: meta("shop", "done", "p-done"), Spec: template("app-config").Spec, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
		&corev1.Pod{ObjectMeta: meta("shop", "crashed", "p-crashed"), Spec: template("app-config").Spec, Status: corev1.PodStatus{Phase: corev1.PodFailed}},
		podOf(deleting, template("app-config")),
		finished("migrate", batchv1.JobComplete),
		finished("backfill", batchv1.JobFailed),
		// A Job still running, and a Pod still running, are judged.
		&batchv1.Job{ObjectMeta: meta("shop", "reindex", "job-reindex"), Spec: batchv1.JobSpec{Template: template("")},
			Status: batchv1.JobStatus{Active: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionFalse}}}},
		&corev1.Pod{ObjectMeta: meta("shop", "busy", "p-busy"), Spec: template("").Spec, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
	}
	inv, err := Collect(context.Background(), cluster(t, extra...), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Deployment shop/web",
		"ReplicaSet shop/canary-7c",
		"CronJob shop/nightly",
		"Job shop/reindex",
		"Pod shop/busy",
		"Pod shop/hand-made",
		"Pod shop/orphan",
	}
	if got := names(inv.Items); !slices.Equal(got, want) {
		t.Errorf("items:\n got %q\nwant %q", got, want)
	}
	if inv.Skipped != 7 {
		t.Errorf("skipped = %d, want 7", inv.Skipped)
	}
	if len(inv.Notes) != 1 || !strings.Contains(inv.Notes[0], "7 objects that will not run again were not judged") {
		t.Errorf("notes = %q, want one that says 7 objects were not judged", inv.Notes)
	}
}

func TestCollectCountsOnlyWhatWouldHaveBeenReported(t *testing.T) {
	// A Deployment's old ReplicaSet scaled to 0 and a finished pod of the
	// CronJob's Job are owned: never reported, so not counted as skipped.
	extra := []runtime.Object{
		&appsv1.ReplicaSet{ObjectMeta: meta("shop", "web-4a", "rs-web-old", controlledBy("Deployment", "web", "d-web")), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Template: template("")}},
		&corev1.Pod{ObjectMeta: meta("shop", "nightly-29-y", "p-job-y", controlledBy("Job", "nightly-29", "job")), Spec: template("").Spec, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
	}
	inv, err := Collect(context.Background(), cluster(t, extra...), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if inv.Skipped != 0 || len(inv.Notes) != 0 {
		t.Errorf("skipped = %d, notes %q; want none", inv.Skipped, inv.Notes)
	}
}

func TestRunGivesTheWebhooksVerdicts(t *testing.T) {
	s := config.Default()
	engine := policies.NewEngine(&s.Policies, policies.WithExemptions(&s.Exemptions))
	rep, notes, err := Run(context.Background(), cluster(t), engine, defaultOptions(), check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 {
		t.Errorf("notes = %q, want none", notes)
	}
	denied := map[string][]string{}
	for _, r := range rep.Results {
		if r.File != "" || r.Line != 0 {
			t.Errorf("%s %s: file %q line %d, want none", r.Kind, r.Name, r.File, r.Line)
		}
		for _, v := range r.Violations {
			denied[r.Kind+" "+r.Namespace+"/"+r.Name] = append(denied[r.Kind+" "+r.Namespace+"/"+r.Name], v.Policy)
		}
	}
	want := map[string][]string{
		"Deployment shop/web": {policies.EnvFromKeysName},
		"Pod shop/hand-made":  {policies.MountShadowingName},
	}
	if len(denied) != len(want) {
		t.Errorf("denied = %v, want %v", denied, want)
	}
	for k, v := range want {
		if !slices.Equal(denied[k], v) {
			t.Errorf("%s: violations %v, want %v", k, denied[k], v)
		}
	}
	if rep.ExitCode() != 1 || rep.Summary.Checked != 5 || rep.Summary.Namespaces != 1 {
		t.Errorf("exit %d, summary %+v; want exit 1, 5 checked in 1 namespace", rep.ExitCode(), rep.Summary)
	}
}

func TestCollectWithoutSecretAccessSaysSoOnceAndKnowsNoSecrets(t *testing.T) {
	cs := cluster(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "creds"}, Data: map[string][]byte{"1st": nil}})
	lists := 0
	cs.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists++
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "", nil)
	})
	opts := defaultOptions()
	opts.SecretKeys = true
	inv, err := Collect(context.Background(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Notes) != 1 || !strings.Contains(inv.Notes[0], "Secrets are unknown") {
		t.Errorf("notes = %q, want one that says Secrets are unknown", inv.Notes)
	}
	if got := inv.World.Secret("shop", "creds"); got.Presence != policies.Unknown {
		t.Errorf("Secret = %+v, want Unknown", got)
	}
	if lists != 1 {
		t.Errorf("Secrets listed %d times, want 1", lists)
	}
}

func TestCollectReadsSecretsOnlyAsTheWebhookWould(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "creds"}, Data: map[string][]byte{"1st": []byte("v")}}
	for _, tc := range []struct {
		name           string
		keys, metadata bool
		want           policies.Object
	}{
		{"knows nothing of Secrets when the config has the webhook read none", false, false, policies.Object{Presence: policies.Unknown}},
		{"knows only which Secrets exist when the config asks for metadata", false, true, policies.Object{Presence: policies.Found}},
		{"knows key names when the config asks for Secret keys", true, false, policies.Object{Presence: policies.Found, Keys: []string{"1st"}, EnvKeys: []string{"1st"}, KeysKnown: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := defaultOptions()
			opts.SecretKeys, opts.SecretMetadata = tc.keys, tc.metadata
			inv, err := Collect(context.Background(), cluster(t, secret), opts)
			if err != nil {
				t.Fatal(err)
			}
			got := inv.World.Secret("shop", "creds")
			if got.Presence != tc.want.Presence || got.KeysKnown != tc.want.KeysKnown || !slices.Equal(got.Keys, tc.want.Keys) {
				t.Errorf("Secret = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCollectListsSecretsAsMetadataWhenOnlyWhichExistIsNeeded(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	secretMeta := func(ns, name string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	mc := metadatafake.NewSimpleMetadataClient(scheme, secretMeta("shop", "creds"), secretMeta("kube-system", "hidden"))
	cs := cluster(t)
	cs.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		t.Error("full Secrets listed, want metadata only")
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "", nil)
	})
	opts := defaultOptions()
	opts.SecretMetadata, opts.Metadata = true, mc
	inv, err := Collect(context.Background(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.World.Secret("shop", "creds"); got.Presence != policies.Found || got.KeysKnown {
		t.Errorf("Secret creds = %+v, want found, keys unknown", got)
	}
	if got := inv.World.Secret("shop", "gone"); got.Presence != policies.NotFound {
		t.Errorf("Secret gone = %+v, want not found", got)
	}
	if got := inv.World.Secret("kube-system", "hidden"); got.Presence != policies.NotFound {
		t.Errorf("Secret in an excluded namespace = %+v, want not kept", got)
	}

	// Forbidden through the metadata client too: unknown, with a note.
	mc.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "", nil)
	})
	inv, err = Collect(context.Background(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.World.Secret("shop", "creds"); got.Presence != policies.Unknown || len(inv.Notes) != 1 {
		t.Errorf("Secret = %+v, notes %q; want Unknown and one note", got, inv.Notes)
	}
}

func TestCollectFailsWhenARequiredListIsForbidden(t *testing.T) {
	cs := cluster(t)
	cs.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(appsv1.Resource("deployments"), "", nil)
	})
	_, err := Collect(context.Background(), cs, defaultOptions())
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "listing Deployments") {
		t.Errorf("err = %v, want a forbidden error naming Deployments", err)
	}
}

func TestCollectNeedsNodesUnlessTheKubeletVersionIsGiven(t *testing.T) {
	cs := cluster(t)
	cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("nodes"), "", nil)
	})
	if _, err := Collect(context.Background(), cs, defaultOptions()); !apierrors.IsForbidden(err) {
		t.Errorf("err = %v, want forbidden", err)
	}
	opts := defaultOptions()
	opts.KubeletVersion, _ = policies.ParseKubeVersion("1.30")
	inv, err := Collect(context.Background(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if v := inv.World.Cluster().KubeletVersion; v.String() != "1.30" {
		t.Errorf("kubelet = %v, want the given 1.30", v)
	}
}

func TestCollectPaginates(t *testing.T) {
	cs := cluster(t)
	var limits []int64
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		limits = append(limits, a.(k8stesting.ListActionImpl).ListOptions.Limit)
		return false, nil, nil
	})
	opts := defaultOptions()
	opts.PageSize = 7
	if _, err := Collect(context.Background(), cs, opts); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(limits, []int64{7}) {
		t.Errorf("pod list limits = %v, want [7]", limits)
	}
}

func TestPaginateFollowsContinueUntilTheLastPage(t *testing.T) {
	pages := map[string]string{"": "a", "a": "b", "b": ""}
	var seen []string
	err := paginate(context.Background(), 500, func(lo metav1.ListOptions) (string, error) {
		if lo.Limit != 500 {
			t.Errorf("limit = %d, want 500", lo.Limit)
		}
		seen = append(seen, lo.Continue)
		return pages[lo.Continue], nil
	})
	if err != nil || !slices.Equal(seen, []string{"", "a", "b"}) {
		t.Errorf("pages asked = %q, err %v; want \"\", a, b", seen, err)
	}
}
