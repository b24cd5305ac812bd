//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/podguard/podguard/check"
	"github.com/podguard/podguard/e2e/framework"
	"github.com/podguard/podguard/internal/registrytest"
)

// notInspected is what every warning of a policy that fell back to its
// heuristic because an image was not inspected says.
const notInspected = "was not inspected yet"

// imageVerdict is what one pod should get from podguard, through the API
// server and from `podguard check --images`.
type imageVerdict struct {
	denied   bool
	policies []string // the denying policies, with denied
	msg      []string // in the denial message
	notInMsg []string // never in the denial message
	warn     []string // each in some warning
	noWarn   []string // in no warning
	// fallback: the image cannot be inspected, the heuristic decides and a
	// warning says so; check reports it not image-aware.
	fallback bool
	stored   func(t *testing.T, p *corev1.Pod) // the pod as stored, when admitted
}

// imageEnv is what the image tests share: podguard, the namespace, the
// objects pods refer to (for check's manifests) and a client that collects
// warnings.
type imageEnv struct {
	pg       *podguard
	ns       string
	cs       kubernetes.Interface
	warnings *warningCollector
	objects  map[string]runtime.Object // "ConfigMap/name", "Secret/name"
	cliCache string
}

// admission is one create through the API server.
type admission struct {
	err      error
	warnings []string
	took     time.Duration
	stored   *corev1.Pod
}

func (a admission) says(s string) bool {
	if a.err != nil && strings.Contains(a.err.Error(), s) {
		return true
	}
	return slices.ContainsFunc(a.warnings, func(w string) bool { return strings.Contains(w, s) })
}

// create creates obj (a Pod or a Deployment) through the API server, with a
// server-side dry run when dryRun.
func (e *imageEnv) create(t *testing.T, obj client.Object, dryRun bool) admission {
	t.Helper()
	ctx := testContext(t, time.Minute)
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	e.warnings.take()
	var a admission
	start := time.Now()
	switch o := obj.(type) {
	case *corev1.Pod:
		a.stored, a.err = e.cs.CoreV1().Pods(e.ns).Create(ctx, o.DeepCopy(), opts)
	case *appsv1.Deployment:
		_, a.err = e.cs.AppsV1().Deployments(e.ns).Create(ctx, o.DeepCopy(), opts)
	default:
		t.Fatalf("create %T", obj)
	}
	a.took = time.Since(start)
	a.warnings = e.warnings.take()
	if a.err != nil && !apierrors.IsForbidden(a.err) {
		t.Fatalf("creating %s: %v", obj.GetName(), a.err)
	}
	return a
}

// warm dry-runs obj until podguard answers from the inspected images (no
// warning says an image was not inspected yet): the first request may have
// fallen back within the budget while the fetch went on.
func (e *imageEnv) warm(t *testing.T, obj client.Object) {
	t.Helper()
	eventually(t, 30*time.Second, "podguard inspects the images of "+obj.GetName(), func() (bool, error) {
		return !e.create(t, obj, true).says(notInspected), nil
	})
}

// assert checks a's verdict against want.
func (w imageVerdict) assert(t *testing.T, a admission) {
	t.Helper()
	if !w.denied {
		if a.err != nil {
			t.Fatalf("denied, want admitted: %v", a.err)
		}
	} else {
		// The mutating webhook denies what the pod as written already
		// breaks (runAsNonRoot with a root image); the validating one the rest.
		msg := a.err.Error()
		if !apierrors.IsForbidden(a.err) || !strings.Contains(msg, `admission webhook "validate.podguard.io" denied the request`) &&
			!strings.Contains(msg, `admission webhook "mutate.podguard.io" denied the request`) {
			t.Fatalf("want a denial by podguard, got: %v", a.err)
		}
		for _, s := range w.msg {
			if !strings.Contains(msg, s) {
				t.Errorf("denial does not contain %q:\n%s", s, msg)
			}
		}
		for _, p := range w.policies {
			if !strings.Contains(a.err.Error(), "["+p+"]") {
				t.Errorf("denial names no violation of %s:\n%v", p, a.err)
			}
		}
		for _, s := range w.notInMsg {
			if strings.Contains(a.err.Error(), s) {
				t.Errorf("denial mentions %q:\n%v", s, a.err)
			}
		}
	}
	for _, s := range w.warn {
		if !slices.ContainsFunc(a.warnings, func(x string) bool { return strings.Contains(x, s) }) {
			t.Errorf("no warning contains %q; warnings:\n%s", s, strings.Join(a.warnings, "\n"))
		}
	}
	noWarn := w.noWarn
	if !w.fallback {
		noWarn = append(slices.Clone(noWarn), notInspected)
	}
	for _, s := range noWarn {
		for _, x := range a.warnings {
			if strings.Contains(x, s) {
				t.Errorf("warning contains %q: %s", s, x)
			}
		}
	}
	if w.fallback && !a.says(notInspected) {
		t.Errorf("want a warning that the image %s; warnings:\n%s", notInspected, strings.Join(a.warnings, "\n"))
	}
	if a.stored != nil && w.stored != nil {
		w.stored(t, a.stored)
	}
}

// manifest writes obj and the ConfigMaps and Secrets it refers to as one
// YAML file for podguard check.
func (e *imageEnv) manifest(t *testing.T, obj client.Object) string {
	t.Helper()
	var spec *corev1.PodSpec
	switch o := obj.(type) {
	case *corev1.Pod:
		spec = &o.Spec
	case *appsv1.Deployment:
		spec = &o.Spec.Template.Spec
	}
	docs := []runtime.Object{}
	add := func(key string) {
		if o, ok := e.objects[key]; ok {
			docs = append(docs, o)
		}
	}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			add("ConfigMap/" + v.ConfigMap.Name)
		case v.Secret != nil:
			add("Secret/" + v.Secret.SecretName)
		}
	}
	for _, s := range spec.ImagePullSecrets {
		add("Secret/" + s.Name)
	}
	docs = append(docs, obj)
	var buf bytes.Buffer
	for _, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// podguardCheck runs bin/podguard check -o json on file with podguard's
// config, with --images (and the 127.0.0.1 allow-list) when images.
func (e *imageEnv) podguardCheck(t *testing.T, file string, images bool) check.Result {
	t.Helper()
	args := []string{"check", "-o", "json", "--config", e.pg.configPath, "--namespace", e.ns, "-f", file}
	if images {
		args = append(args, "--images", "--image-registries", "127.0.0.1:*", "--image-cache", e.cliCache, "--image-timeout", "20s")
	}
	ctx := testContext(t, time.Minute)
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "bin", "podguard"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) {
		t.Fatalf("podguard %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	var rep check.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("podguard check -o json: %v\n%s", err, out)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("podguard check reported %d objects, want 1:\n%s", len(rep.Results), out)
	}
	return rep.Results[0]
}

// assertCheck checks podguard check --images's verdict on obj against want.
func (e *imageEnv) assertCheck(t *testing.T, obj client.Object, want imageVerdict) {
	t.Helper()
	res := e.podguardCheck(t, e.manifest(t, obj), true)
	var pols, msgs []string
	for _, v := range res.Violations {
		pols = append(pols, v.Policy)
		msgs = append(msgs, v.Message)
	}
	slices.Sort(pols)
	pols = slices.Compact(pols)
	wantPols := slices.Clone(want.policies)
	slices.Sort(wantPols)
	if res.Denied() != want.denied || !slices.Equal(pols, wantPols) {
		t.Errorf("podguard check --images: denied=%v by %v, want denied=%v by %v\n%s", res.Denied(), pols, want.denied, wantPols, strings.Join(msgs, "\n"))
	}
	all := strings.Join(msgs, "\n")
	for _, s := range want.msg {
		if !strings.Contains(all, s) {
			t.Errorf("podguard check --images: no violation says %q:\n%s", s, all)
		}
	}
	if res.ImageAware == want.fallback {
		t.Errorf("podguard check --images: imageAware=%v, want %v (images %+v)", res.ImageAware, !want.fallback, res.Images)
	}
}

func configMapVolume(name string) corev1.Volume {
	return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}
}

func secretVolume(name string) corev1.Volume {
	return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}}
}

// mountPod is a pod whose one container runs image with v mounted at
// mountPath (no volume when mountPath is "").
func mountPod(ns, name, image string, v corev1.Volume, mountPath string) *corev1.Pod {
	p := pod(ns, name, image)
	p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	if mountPath != "" {
		p.Spec.Volumes = []corev1.Volume{v}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: v.Name, MountPath: mountPath}}
	}
	return p
}

func podDeployment(p *corev1.Pod) *appsv1.Deployment {
	d := deployment(p.Namespace, p.Name, p.Spec.Containers[0].Image)
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	d.Spec.Template.Spec = *p.Spec.DeepCopy()
	return d
}

// hasRunAsNonRoot reports whether p's (only) container runs with
// runAsNonRoot: true in effect.
func hasRunAsNonRoot(p *corev1.Pod) bool {
	c := p.Spec.Containers[0]
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	return p.Spec.SecurityContext != nil && ptr.Deref(p.Spec.SecurityContext.RunAsNonRoot, false)
}

func wantRunAsNonRoot(want bool) func(t *testing.T, p *corev1.Pod) {
	return func(t *testing.T, p *corev1.Pod) {
		t.Helper()
		if got := hasRunAsNonRoot(p); got != want {
			t.Errorf("stored pod %s: runAsNonRoot in effect = %v, want %v (pod securityContext %+v, container %+v)", p.Name, got, want, p.Spec.SecurityContext, p.Spec.Containers[0].SecurityContext)
		}
	}
}

// imageConfig is podguard's config for the image tests: restricted
// security contexts and the inspector on for 127.0.0.1 registries only.
func imageConfig(images string) string {
	return `policies:
  securityContext:
    profile: restricted
images:
  inspect: true
  registries: ["127.0.0.1:*"]
` + images
}

// TestImageAwareVerdicts runs pods on the synthetic images of an in-process
// registry through the real API server and through `podguard check
// --images`, and checks that each verdict comes from what the image ships.
func TestImageAwareVerdicts(t *testing.T) {
	start := time.Now()
	reg := registrytest.Start(t)
	imgs := registrytest.SeedWith(t, reg, registrytest.SeedOptions{ManyEntries: 20000})

	// State first: podguard reads pull secrets when it needs them.
	ns := newNamespace(t, "images", optIn)
	ctx := testContext(t, 3*time.Minute)
	objects := map[string]runtime.Object{}
	put := func(o client.Object) {
		gvk := o.GetObjectKind().GroupVersionKind()
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		o.GetObjectKind().SetGroupVersionKind(gvk)
		o.SetResourceVersion("")
		o.SetUID("")
		o.SetCreationTimestamp(metav1.Time{})
		o.SetManagedFields(nil)
		objects[gvk.Kind+"/"+o.GetName()] = o
	}
	put(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tomcat-conf"},
		Data: map[string]string{"server.xml": "<Server/>\n"}})
	put(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-config"},
		Data: map[string]string{"application.yaml": "server: {port: 9090}\n"}})
	put(&corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("crt"), "tls.key": []byte("key")}})
	put(&corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "regcred"},
		Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: reg.DockerConfigJSON(registrytest.PrivateUser, registrytest.PrivatePassword)}})

	cacheDir := t.TempDir()
	pg := runPodguard(t, "opt-in", imageConfig("  pullSecrets: true\n  cacheDir: "+cacheDir+"\n"))
	cs, w := clientWithWarnings(t)
	e := &imageEnv{pg: pg, ns: ns, cs: cs, warnings: w, objects: objects, cliCache: t.TempDir()}

	tomcatConf := configMapVolume("tomcat-conf")
	appConfig := configMapVolume("app-config")
	tls := secretVolume("tls")
	confFiles := slices.Sorted(slices.Values(registrytest.TomcatConfFiles))

	type tc struct {
		name string
		obj  client.Object
		// Every case whose image can be inspected is first dry-run until
		// podguard answers from the image (see imageEnv.warm).
		want imageVerdict
	}
	arm := func(p *corev1.Pod, arch string) *corev1.Pod {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": arch}
		return p
	}
	withPullSecret := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		return p
	}
	nonRoot := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
		return p
	}
	mount := []string{"mount-shadowing"}
	secctx := []string{"security-context"}
	kubeflow := mountPod(ns, "kubeflow", imgs.Ubuntu.Ref, tls, "/etc/pki/tls/certs")
	tomcatConfPod := mountPod(ns, "tomcat-conf", imgs.Tomcat.Ref, tomcatConf, "/usr/local/tomcat/conf")
	tomcatConfWant := imageVerdict{denied: true, policies: mount, msg: []string{
		fmt.Sprintf("hides %d files the image ships at /usr/local/tomcat/conf", len(confFiles)),
		"/usr/local/tomcat/conf/" + confFiles[0], confFiles[1], confFiles[2]}}
	kubeflowWant := imageVerdict{stored: func(t *testing.T, p *corev1.Pod) {
		if len(p.Spec.Containers[0].VolumeMounts) == 0 || p.Spec.Containers[0].VolumeMounts[0].MountPath != "/etc/pki/tls/certs" {
			t.Errorf("stored pod lost its mount: %+v", p.Spec.Containers[0].VolumeMounts)
		}
	}, warn: []string{"runs as root"}}
	users1000 := mountPod(ns, "users-1000", imgs.UsersNumber.Ref, corev1.Volume{}, "")
	cases := []tc{
		{"tomcat conf dir", tomcatConfPod, tomcatConfWant},
		{"tomcat conf dir, Deployment", podDeployment(mountPod(ns, "tomcat-conf-deploy", imgs.Tomcat.Ref, tomcatConf, "/usr/local/tomcat/conf")), tomcatConfWant},
		{"tomcat server.xml as a directory", mountPod(ns, "tomcat-server-xml", imgs.Tomcat.Ref, tomcatConf, "/usr/local/tomcat/conf/server.xml"),
			imageVerdict{denied: true, policies: mount, msg: []string{"creates a directory named server.xml instead of a file", "the image ships a file at /usr/local/tomcat/conf/server.xml", "not a directory"}}},
		{"kubeflow: TLS secret at /etc/pki/tls/certs on ubuntu", kubeflow, kubeflowWant},
		{"ubi /etc/pki/tls/certs", mountPod(ns, "ubi-pki", imgs.UBI.Ref, tls, "/etc/pki/tls/certs"),
			imageVerdict{denied: true, policies: mount, msg: []string{"hides 2 files the image ships at /etc/pki/tls/certs", "ca-bundle.crt"}}},
		{"ubi /etc/ssl/certs, a link to ../pki/tls/certs", mountPod(ns, "ubi-ssl", imgs.UBI.Ref, tls, "/etc/ssl/certs"),
			imageVerdict{denied: true, policies: mount, msg: []string{"/etc/pki/tls/certs", "ca-bundle.crt"}}},
		{"whiteout: /app/config was deleted", mountPod(ns, "whiteout-app-config", imgs.Whiteout.Ref, appConfig, "/app/config"),
			imageVerdict{warn: []string{"runs as root"}}},
		{"whiteout: /opt/data is opaque", mountPod(ns, "whiteout-opt-data", imgs.Whiteout.Ref, appConfig, "/opt/data"),
			imageVerdict{denied: true, policies: mount, msg: []string{"hides 1 file the image ships at /opt/data", "/opt/data/y"}, notInMsg: []string{"/opt/data/x", "data/x"}}},
		{"appconfig /app/config, on no list", mountPod(ns, "appconfig", imgs.AppConfig.Ref, appConfig, "/app/config"),
			imageVerdict{denied: true, policies: mount, msg: []string{"hides 2 files the image ships at /app/config", "application.yaml", "logback.xml"}}},
		{"multiarch arm64: /opt/amd64-only is absent", arm(mountPod(ns, "arm64-amd64-only", imgs.MultiArch.Ref, appConfig, "/opt/amd64-only"), "arm64"),
			imageVerdict{warn: []string{"runs as root"}}},
		{"multiarch amd64: /opt/amd64-only is a file", arm(mountPod(ns, "amd64-amd64-only", imgs.MultiArch.Ref, appConfig, "/opt/amd64-only"), "amd64"),
			imageVerdict{denied: true, policies: mount, msg: []string{"/opt/amd64-only, which is a file in the image", "not a directory"}}},
		{"multiarch arm64: /opt/arm64-only is a file", arm(mountPod(ns, "arm64-arm64-only", imgs.MultiArch.Ref, appConfig, "/opt/arm64-only"), "arm64"),
			imageVerdict{denied: true, policies: mount, msg: []string{"/opt/arm64-only, which is a file in the image"}}},
		{"multiarch amd64: /opt/arm64-only is absent", arm(mountPod(ns, "amd64-arm64-only", imgs.MultiArch.Ref, appConfig, "/opt/arm64-only"), "amd64"),
			imageVerdict{warn: []string{"runs as root"}}},
		{"private with its pull secret", withPullSecret(mountPod(ns, "private-secret", imgs.Private.Ref, appConfig, "/app/config")),
			imageVerdict{denied: true, policies: mount, msg: []string{"hides 2 files the image ships at /app/config", "application.yaml"}}},
		{"private without a pull secret", mountPod(ns, "private-anonymous", imgs.Private.Ref, appConfig, "/app/config"),
			imageVerdict{fallback: true, warn: []string{"refused anonymous access (HTTP 401", "the pod has no imagePullSecrets", "checked against podguard's list of protected directories"}}},
		{"users:1000 gets runAsNonRoot", users1000, imageVerdict{stored: wantRunAsNonRoot(true), noWarn: []string{"runAsNonRoot was left unset"}}},
		{"users:1000 Deployment's pods get runAsNonRoot", podDeployment(mountPod(ns, "users-1000-deploy", imgs.UsersNumber.Ref, corev1.Volume{}, "")), imageVerdict{}},
		// USER "root" is a name to the kubelet: "image has non-numeric user (root)".
		{"users:root gets a warning", mountPod(ns, "users-root", imgs.UsersRoot.Ref, corev1.Volume{}, ""),
			imageVerdict{stored: wantRunAsNonRoot(false), warn: []string{`runAsNonRoot was left unset for container "app"`, `runs as the user name "root"`, "non-numeric user (root)"}}},
		{"ubuntu, no USER, gets a warning", mountPod(ns, "ubuntu-root", imgs.Ubuntu.Ref, corev1.Volume{}, ""),
			imageVerdict{stored: wantRunAsNonRoot(false), warn: []string{`runAsNonRoot was left unset for container "app"`, "runs as root", "image will run as root"}}},
		{"users:named gets a warning", mountPod(ns, "users-named", imgs.UsersNamed.Ref, corev1.Volume{}, ""),
			imageVerdict{stored: wantRunAsNonRoot(false), warn: []string{`runAsNonRoot was left unset for container "app"`, `runs as the user name "app"`}}},
		{"runAsNonRoot with users:root", nonRoot(mountPod(ns, "nonroot-root", imgs.UsersRoot.Ref, corev1.Volume{}, "")),
			imageVerdict{denied: true, policies: secctx, msg: []string{"has runAsNonRoot: true", `runs as the user name "root"`, "Fix: set runAsUser to a non-zero uid"}}},
		{"runAsNonRoot with ubuntu, no USER", nonRoot(mountPod(ns, "nonroot-ubuntu", imgs.Ubuntu.Ref, corev1.Volume{}, "")),
			imageVerdict{denied: true, policies: secctx, msg: []string{"has runAsNonRoot: true", "runs as root", "image will run as root", "Fix: set runAsUser to a non-zero uid"}}},
		{"runAsNonRoot with users:named", nonRoot(mountPod(ns, "nonroot-named", imgs.UsersNamed.Ref, corev1.Volume{}, "")),
			imageVerdict{denied: true, policies: secctx, msg: []string{"has runAsNonRoot: true", `runs as the user name "app"`, "Fix: set runAsUser to a non-zero uid"}}},
		{"kubeflow Deployment's pods are admitted", podDeployment(mountPod(ns, "kubeflow-deploy", imgs.Ubuntu.Ref, tls, "/etc/pki/tls/certs")), imageVerdict{}},
	}
	var storedUsers1000 *corev1.Pod
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			caseStart := time.Now()
			// A Deployment is warmed up with its pod template: only Pods
			// go through the mutating webhook, which warns of a fallback
			// even when the validating one denies.
			_, isPod := c.obj.(*corev1.Pod)
			if !c.want.fallback {
				if d, ok := c.obj.(*appsv1.Deployment); ok {
					p := mountPod(ns, d.Name+"-warm", "", corev1.Volume{}, "")
					p.Spec = *d.Spec.Template.Spec.DeepCopy()
					e.warm(t, p)
				} else {
					e.warm(t, c.obj)
				}
			}
			// Denials and Deployments are dry runs; admitted pods are
			// created, to read them back as stored.
			a := e.create(t, c.obj, c.want.denied || !isPod)
			c.want.assert(t, a)
			if isPod && !c.want.denied && a.stored != nil {
				var stored corev1.Pod
				if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(a.stored), &stored); err != nil {
					t.Fatal(err)
				}
				if c.want.stored != nil {
					c.want.stored(t, &stored)
				}
				if c.obj == users1000 {
					storedUsers1000 = stored.DeepCopy()
				}
			}
			if d, ok := c.obj.(*appsv1.Deployment); ok && !c.want.denied {
				// The Deployment was a dry run: create it for real and
				// check the pods kube-controller-manager makes.
				if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d.DeepCopy(), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				var pods corev1.PodList
				eventually(t, time.Minute, "the ReplicaSet's pods", func() (bool, error) {
					err := cluster.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": d.Name})
					return err == nil && len(pods.Items) == int(*d.Spec.Replicas), err
				})
				for i := range pods.Items {
					p := &pods.Items[i]
					if d.Spec.Template.Spec.Containers[0].Image == imgs.UsersNumber.Ref {
						wantRunAsNonRoot(true)(t, p)
					}
					if len(d.Spec.Template.Spec.Volumes) > 0 && !slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "v" }) {
						t.Errorf("pod %s lost its volume", p.Name)
					}
				}
			}
			e.assertCheck(t, c.obj, c.want)
			t.Logf("%s in %s", c.name, time.Since(caseStart).Round(time.Millisecond))
		})
	}

	t.Run("without inspection the kubeflow pod is denied", func(t *testing.T) {
		res := e.podguardCheck(t, e.manifest(t, mountPod(ns, "kubeflow", imgs.Ubuntu.Ref, tls, "/etc/pki/tls/certs")), false)
		if !res.Denied() || len(res.Violations) == 0 || res.Violations[0].Policy != "mount-shadowing" || res.ImageAware {
			t.Errorf("podguard check without --images: want a mount-shadowing denial, not image-aware; got %+v", res)
		}
	})

	t.Run("the mutated users:1000 pod passes check --images", func(t *testing.T) {
		if storedUsers1000 == nil {
			t.Skip("the users:1000 pod was not stored")
		}
		p := storedUsers1000
		p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		p.ManagedFields = nil
		p.Status = corev1.PodStatus{}
		res := e.podguardCheck(t, e.manifest(t, p), true)
		if len(res.Violations) > 0 || !res.ImageAware {
			t.Errorf("the stored pod: violations %v, imageAware %v; want none, true", res.Violations, res.ImageAware)
		}
		if len(res.Mutations) > 0 {
			t.Errorf("the stored pod would be mutated again by %v", res.Mutations)
		}
	})

	t.Run("after a restart, indexes come from cacheDir", func(t *testing.T) {
		if n := reg.RepoHits("tomcat", "blobs") + reg.RepoHits("ubuntu", "blobs"); n == 0 {
			t.Fatal("podguard and check read no tomcat or ubuntu blob before the restart: nothing was inspected")
		}
		reg.ResetRequests()
		pg.restart(t)
		for _, c := range []tc{
			{"tomcat conf dir", tomcatConfPod, tomcatConfWant},
			{"kubeflow", func() *corev1.Pod { p := kubeflow.DeepCopy(); p.Name = "kubeflow-after-restart"; return p }(), kubeflowWant},
		} {
			e.warm(t, c.obj)
			c.want.assert(t, e.create(t, c.obj, c.want.denied))
		}
		var blobs []string
		for _, r := range reg.Requests() {
			if r.Kind == "blobs" && r.Method == "GET" {
				blobs = append(blobs, r.Repo+"@"+r.Ref)
			}
		}
		if len(blobs) > 0 {
			t.Errorf("after the restart podguard fetched %d blobs again: %v", len(blobs), blobs)
		}
		t.Logf("registry requests after the restart: %d (%v)", len(reg.Requests()), reg.Requests())
	})
	t.Logf("TestImageAwareVerdicts took %s", time.Since(start).Round(time.Millisecond))
}

// peakRSS is a process's peak resident set size (VmHWM), in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	status := readFile(t, fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// metricSum sums every series of name on a /metrics page.
func metricSum(t *testing.T, url, name string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(get(t, url), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += v
	}
	return sum
}

// tomcatLike is an image with Tomcat's conf files in a layer of its own,
// which tag makes unique: its manifest and layer digests are shared with no
// other image.
func tomcatLike(t *testing.T, tag string) v1.Image {
	t.Helper()
	es := []registrytest.Entry{registrytest.Dir("usr/"), registrytest.Dir("usr/local/"), registrytest.Dir("usr/local/tomcat/"), registrytest.Dir("usr/local/tomcat/conf/")}
	for _, f := range registrytest.TomcatConfFiles {
		es = append(es, registrytest.File("usr/local/tomcat/conf/"+f, "<!-- "+tag+" -->\n"))
	}
	l, err := registrytest.Layer(es...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := registrytest.NewImage(registrytest.ImageConfig{User: "1000", Env: []string{"TAG=" + tag}}, l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImageRegistryFaults gives podguard images whose registry is slow,
// fails, stalls, never ends a blob, serves hostile tars or refuses
// anonymous access: each pod is answered within the budget plus a margin,
// with the heuristic verdict and a warning that the image was not
// inspected, and podguard's memory stays bounded. Images from registries
// outside the allow-list are never fetched, and nothing is said about them.
func TestImageRegistryFaults(t *testing.T) {
	const (
		budget    = time.Second
		margin    = 1500 * time.Millisecond
		rssBound  = 300 << 20
		conf      = "/usr/local/tomcat/conf"
		heuristic = "replaces the whole directory /usr/local/tomcat/conf"
	)
	start := time.Now()
	reg := registrytest.Start(t)
	imgs := registrytest.SeedWith(t, reg, registrytest.SeedOptions{ManyEntries: 20000})
	// A registry that fails is backed off as a whole, so each registry-wide
	// fault gets a registry (a host) of its own, and an image of its own:
	// fetches of the same manifest or layer digest are shared, whatever
	// the registry (see the "shared fetch" subtest).
	faulty := func(repo string, img v1.Image, fault func(*registrytest.Registry)) string {
		r := registrytest.Start(t)
		r.Push(t, repo+":1", img)
		fault(r)
		return r.Ref(repo + ":1")
	}
	slow := faulty("slow/app", tomcatLike(t, "slow"), func(r *registrytest.Registry) { r.Slow("slow", registrytest.SlowDelay) })
	broken := faulty("broken/app", tomcatLike(t, "broken"), func(r *registrytest.Registry) { r.Status("broken", 500) })
	stall := faulty("stall/app", tomcatLike(t, "stall"), func(r *registrytest.Registry) { r.Stall("stall") })
	endless := faulty("endless/app", registrytest.Endless(), func(r *registrytest.Registry) { r.NeverEndingBlob("endless") })

	ns := newNamespace(t, "faults", optIn)
	createConfigMap(t, ns, "conf", "app.properties")
	pg := runPodguard(t, "opt-in", imageConfig(fmt.Sprintf("  budget: %s\n  fetchTimeout: 5s\n  maxEntries: 10000\n", budget)))
	cs, w := clientWithWarnings(t)
	e := &imageEnv{pg: pg, ns: ns, cs: cs, warnings: w}
	cm := configMapVolume("conf")

	fallback := imageVerdict{denied: true, policies: []string{"mount-shadowing"}, msg: []string{heuristic}, fallback: true}
	cases := []struct {
		name, ref string
		want      imageVerdict
		why       string // in the warning
	}{
		// traversal is indexed (names are cleaned as rooted paths): it ships
		// nothing at the conf dir, so the mount is admitted.
		{"traversal", imgs.MaliciousTraversal.Ref, imageVerdict{}, ""},
		{"pax header of 2 MiB", imgs.MaliciousPAX.Ref, fallback, ""},
		{"20000 entries, maxEntries 10000", imgs.MaliciousMany.Ref, fallback, ""},
		{"private, no pull secret", imgs.Private.Ref, fallback, "refused anonymous access (HTTP 401"},
		{"slow", slow, fallback, ""},
		{"500", broken, fallback, "HTTP 500"},
		{"stall", stall, fallback, ""},
		{"endless blob", endless, fallback, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := mountPod(ns, "fault", c.ref, cm, conf)
			for i := range 2 {
				a := e.create(t, p, true)
				t.Logf("create %d: %s; %v; warnings:\n%s", i+1, a.took.Round(time.Millisecond), a.err, strings.Join(a.warnings, "\n"))
				if a.took > budget+margin {
					t.Errorf("create %d took %s, more than the budget %s + %s", i+1, a.took.Round(time.Millisecond), budget, margin)
				}
				if c.want.fallback || i > 0 {
					want := c.want
					if c.why != "" && i > 0 {
						want.warn = []string{c.why}
					}
					want.assert(t, a)
				}
			}
		})
	}
	// The fetches that outlive their requests end within fetchTimeout.
	eventually(t, 15*time.Second, "no image fetch in flight", func() (bool, error) {
		return metricSum(t, pg.MetricsURL, "podguard_image_fetches_in_flight") == 0, nil
	})
	rss := vmHWM(t, pg.Pid())
	t.Logf("podguard peak RSS after the faults: %.1f MiB (bound %d MiB)", float64(rss)/(1<<20), rssBound>>20)
	if rss > rssBound {
		t.Errorf("podguard's peak RSS is %.1f MiB, more than %d MiB", float64(rss)/(1<<20), rssBound>>20)
	}

	// The same image on a stalled registry and a healthy one: fetches are
	// shared only within one repository, so the healthy copy is inspected
	// and its registry is not backed off.
	t.Run("a fetch shared with a stalled registry does not fail a healthy one", func(t *testing.T) {
		img := tomcatLike(t, "shared")
		stalled := registrytest.Start(t)
		stalled.Push(t, "shared:1", img)
		stalled.Stall("shared")
		healthy := registrytest.Start(t)
		healthy.Push(t, "shared:1", img)
		a := e.create(t, mountPod(ns, "shared", stalled.Ref("shared:1"), cm, conf), true)
		if !a.says(notInspected) {
			t.Fatalf("the stalled registry's image was inspected: %v %v", a.err, a.warnings)
		}
		p := mountPod(ns, "shared", healthy.Ref("shared:1"), cm, conf)
		var last admission
		ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
		defer cancel()
		err := framework.Eventually(ctx, 8*time.Second, 100*time.Millisecond, func() (bool, error) {
			last = e.create(t, p, true)
			return !last.says(notInspected), nil
		})
		if err != nil {
			t.Fatalf("the healthy registry's image was not inspected in 8s (fetchTimeout 5s); last answer: %v\n%s", last.err, strings.Join(last.warnings, "\n"))
		}
		tomcatConfDenied := imageVerdict{denied: true, policies: []string{"mount-shadowing"}, msg: []string{"hides 7 files the image ships at /usr/local/tomcat/conf"}}
		tomcatConfDenied.assert(t, last)
	})

	t.Run("registries outside the allow-list are never contacted", func(t *testing.T) {
		// The stalled fetch of the subtest before ends at fetchTimeout:
		// counted before the baseline, not in it.
		eventually(t, 10*time.Second, "no image fetch in flight", func() (bool, error) {
			return metricSum(t, pg.MetricsURL, "podguard_image_fetches_in_flight") == 0, nil
		})
		fetches := metricSum(t, pg.MetricsURL, "podguard_image_fetch_duration_seconds_count")
		misses := metricSum(t, pg.MetricsURL, "podguard_image_cache_misses_total")
		for _, ref := range []string{"nginx:1.27", "10.0.0.130:5000/app:1"} {
			// The heuristic denies the conf dir...
			a := e.create(t, mountPod(ns, "outside", ref, cm, conf), true)
			if a.took > budget {
				t.Errorf("%s: the create took %s; nothing should be waited for", ref, a.took)
			}
			imageVerdict{denied: true, policies: []string{"mount-shadowing"}, msg: []string{heuristic}}.assert(t, a)
			// ...and admits /app/config, silently: that is what the admin configured.
			a = e.create(t, mountPod(ns, "outside", ref, cm, "/app/config"), true)
			imageVerdict{noWarn: []string{"checked against podguard's list"}}.assert(t, a)
		}
		if n := metricSum(t, pg.MetricsURL, "podguard_image_dials_refused_total"); n != 0 {
			t.Errorf("podguard_image_dials_refused_total = %v, want 0: the inspector tried a registry outside the allow-list", n)
		}
		if n := metricSum(t, pg.MetricsURL, "podguard_image_fetch_duration_seconds_count"); n != fetches {
			t.Errorf("%v image fetches for refs outside the allow-list, want none", n-fetches)
		}
		if n := metricSum(t, pg.MetricsURL, "podguard_image_cache_misses_total"); n != misses {
			t.Logf("cache misses went from %v to %v", misses, n)
		}
	})
	t.Logf("TestImageRegistryFaults took %s", time.Since(start).Round(time.Millisecond))
}
