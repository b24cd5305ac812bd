package policies

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestMutationsPassTheirOwnAdmission is the property behind reinvocation
// and behind `podguard mutate | podguard check`: for generated pods, under
// every config variant and cluster version,
//
//   - mutating adds no violation: whatever the validators say about the
//     mutated pod, they already said about the pod as written;
//   - podguard accepts its own output: mutating the mutated pod again, after
//     a JSON round trip as through the API server, denies nothing and
//     changes nothing (the mutators return their input, the Mutator
//     contract).
//
// PODGUARD_PROPERTY_PODS sets how many pods are generated (default 100; 4,800 cases),
// PODGUARD_PROPERTY_SEED the seed (default: fixed, so a failure reproduces).
func TestMutationsPassTheirOwnAdmission(t *testing.T) {
	pods, seed := 100, uint64(20261201)
	if v, err := strconv.Atoi(os.Getenv("PODGUARD_PROPERTY_PODS")); err == nil {
		pods = v
	}
	if v, err := strconv.ParseUint(os.Getenv("PODGUARD_PROPERTY_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	variants := settingsVariants()
	worlds := propertyWorlds()
	checked := 0
	for i := 0; i < pods; i++ {
		pod := randomPod(rng)
		for vi, s := range variants {
			engine := NewEngine(s)
			for wi, world := range worlds {
				name := fmt.Sprintf("seed %d pod %d settings %d world %d", seed, i, vi, wi)
				if checkMutationProperty(t, name, engine, pod, world) {
					checked++
				}
			}
		}
	}
	// The generator must produce pods the mutators act on; a generator that
	// drifted into denying everything would make the property vacuous.
	if checked < pods*len(variants)*len(worlds)/2 {
		t.Errorf("only %d of %d cases were admitted and mutated: the generator no longer exercises the mutators", checked, pods*len(variants)*len(worlds))
	}
}

// checkMutationProperty checks one case and reports whether the pod was
// admitted and changed by the first pass.
func checkMutationProperty(t *testing.T, name string, engine *Engine, pod *Pod, world World) bool {
	t.Helper()
	first, err := engine.Mutate(pod, world)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if first.Denied() || first.Skipped != "" {
		return false
	}
	before, err := engine.Validate(pod, world)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	after, err := engine.Validate(first.Pod, world)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	had := map[string]bool{}
	for _, v := range before.Violations {
		had[v.String()] = true
	}
	for _, v := range after.Violations {
		if !had[v.String()] {
			t.Errorf("%s: mutating (%v) introduced a violation: %s\npod: %s", name, first.Mutated, v, podJSON(first.Pod))
		}
	}

	again := roundTrip(t, first.Pod)
	second, err := engine.Mutate(again, world)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if second.Denied() {
		t.Errorf("%s: podguard denied its own output: %v\npod: %s", name, second.Violations, podJSON(again))
	}
	if second.Pod != again || len(second.Mutated) > 0 {
		t.Errorf("%s: mutating the mutated pod changed it again (%v)\nonce:  %s\ntwice: %s", name, second.Mutated, podJSON(again), podJSON(second.Pod))
	}
	return len(first.Mutated) > 0
}

// roundTrip returns the pod as the API server hands it to the webhook
// again: marshalled to JSON and read back.
func roundTrip(t *testing.T, p *Pod) *Pod {
	t.Helper()
	raw, err := json.Marshal(&corev1.Pod{ObjectMeta: p.Meta, Spec: p.Spec})
	if err != nil {
		t.Fatal(err)
	}
	var back corev1.Pod
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	out := NewPod(&back)
	out.Namespace = p.Namespace
	return out
}

func podJSON(p *Pod) string {
	raw, _ := json.Marshal(&corev1.Pod{ObjectMeta: p.Meta, Spec: p.Spec})
	return string(raw)
}

// settingsVariants are the config combinations the property runs under:
// both security profiles (restricted with both rootImages modes), every sidecar placement, resources with and
// without defaults and a namespace rule, a private registry or none, and
// both POSIX modes.
func settingsVariants() []*Settings {
	var out []*Settings
	for _, profile := range []string{ProfileBaseline, ProfileRestricted} {
		for _, native := range []string{NativeAuto, NativeAlways, NativeNever} {
			for _, variant := range []int{0, 1} {
				s := &Settings{}
				s.SecurityContext.Profile = profile
				s.LogSidecar.Native = native
				if variant == 1 {
					s.Resources.Defaults = ResourceDefaults{
						Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100Mi"), corev1.ResourceCPU: resource.MustParse("500m")},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("200Mi"), corev1.ResourceCPU: resource.MustParse("1")},
					}
					s.Resources.Namespaces = []NamespaceResourceRule{{
						Selector: metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "team-a"}},
						Defaults: ResourceDefaults{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("129M")}},
					}}
					s.ImagePullSecrets.Registries = []RegistryRule{{Registry: "10.0.0.130:5000", Secrets: []string{"myregistrykey"}}}
					s.EnvFromKeys.POSIX = POSIXDeny
					if profile == ProfileRestricted {
						s.SecurityContext.RootImages = RootImagesRunAsUser
						s.SecurityContext.RunAsUser = ptr.To[int64](10001)
					}
				}
				s.Default()
				out = append(out, s)
			}
		}
	}
	return out
}

// propertyImages is what an image inspector knows of randomPod's images:
// one that runs as root and ships tomcat's conf directory, one with a
// numeric USER, one whose USER is a name, one still pending, one whose
// inspection failed; busybox is not inspected.
func propertyImages() map[string]ImageFacts {
	images := map[string]ImageFacts{}
	for _, f := range []ImageFacts{
		{Ref: "tomcat:10", Status: ImageKnown, User: "", FS: newTestFS(
			"/usr/local/tomcat/conf/server.xml", "/usr/local/tomcat/conf/web.xml", "/usr/local/tomcat/logs/", "/tmp/")},
		{Ref: "nginx", Status: ImageKnown, User: "101:101", FS: newTestFS("/etc/nginx/nginx.conf", "/var/log/app -> /dev/stdout", "/data/")},
		{Ref: "10.0.0.130:5000/team/api@sha256:" + fmt.Sprintf("%064x", 7), Status: ImageKnown, User: "app", FS: newTestFS("/etc/app/config.yaml", "/tmp/server.xml")},
		{Ref: "10.0.0.130:5000/nginx:latest", Status: ImagePending, Why: "the fetch was still running after 1.5s"},
		{Ref: "registry.example.com/app:v1", Status: ImageFailed, Why: "401 Unauthorized"},
	} {
		images[f.Ref] = f
	}
	return images
}

// propertyWorlds are the clusters the property runs in: kubelet versions
// on both sides of the envFrom and native sidecar cut-offs, and unknown;
// the last two inspect images (propertyImages).
func propertyWorlds() []World {
	var out []World
	for i, v := range [][2]string{{"", ""}, {"v1.28.5", "v1.28.5"}, {"v1.33.0", "v1.28.9"}, {"v1.33.0", "v1.33.2"}} {
		w := NewSnapshot()
		w.Versions = Cluster{ServerVersion: kubelet(v[0]), KubeletVersion: kubelet(v[1])}
		w.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "clean"}, Data: map[string]string{"LOG_LEVEL": "info"}})
		w.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "bad"}, Data: map[string]string{"1st.key": "x", "log.level": "y"}})
		w.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tomcat-server-config"}, Data: map[string]string{"server.xml": "<Server/>"}})
		w.AddSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "myregistrykey"}, Type: corev1.SecretTypeDockerConfigJson})
		w.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"kubernetes.io/metadata.name": "team-a"}}})
		if i >= 2 {
			out = append(out, WithImages(w, propertyImages()))
			continue
		}
		out = append(out, w)
	}
	return out
}

// randomPod generates a pod from the shapes users write: several
// containers and init containers (some native sidecars), images from public
// and private registries, partial resources, security contexts at both
// levels (root, non-root, privileged, Windows), configMap and emptyDir
// volumes with and without subPath, envFrom references, and the logs and
// skip annotations in their valid forms.
func randomPod(rng *rand.Rand) *Pod {
	pick := func(options ...string) string { return options[rng.IntN(len(options))] }
	coin := func() bool { return rng.IntN(2) == 0 }
	images := []string{"tomcat:10", "nginx", "10.0.0.130:5000/nginx:latest", "10.0.0.130:5000/team/api@sha256:" + fmt.Sprintf("%064x", 7), "docker.io/library/busybox:1.37", "registry.example.com/app:v1"}

	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gen", Namespace: "team-a", Annotations: map[string]string{}}}
	if coin() {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: pick("tomcat-server-config", "clean", "missing")}}}})
	}
	if coin() {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	container := func(name string) corev1.Container {
		c := corev1.Container{Name: name, Image: images[rng.IntN(len(images))]}
		switch rng.IntN(4) {
		case 1:
			c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(pick("100m", "0.5", "1"))}
		case 2:
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(pick("128974848", "129e6", "129M", "123Mi", "50Mi"))}
		case 3:
			c.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(pick("64Mi", "1Gi"))}
		}
		switch rng.IntN(6) {
		case 1:
			c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)}
		case 2:
			c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)}
		case 3:
			c.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		case 4:
			c.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
		case 5:
			c.SecurityContext = &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
		}
		if coin() {
			c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{Prefix: pick("", "CFG_"),
				ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: pick("clean", "bad", "missing")}}})
		}
		if len(p.Spec.Volumes) > 0 && coin() {
			v := p.Spec.Volumes[rng.IntN(len(p.Spec.Volumes))]
			m := corev1.VolumeMount{Name: v.Name, MountPath: pick("/usr/local/tomcat/conf", "/tmp/server.xml", "/etc/app", "/var/log/app", "/data")}
			if coin() {
				m.SubPath = "server.xml"
			}
			c.VolumeMounts = append(c.VolumeMounts, m)
		}
		return c
	}
	for i := range 1 + rng.IntN(3) {
		p.Spec.Containers = append(p.Spec.Containers, container(fmt.Sprintf("app%d", i)))
	}
	for i := range rng.IntN(3) {
		c := container(fmt.Sprintf("init%d", i))
		if coin() {
			c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	switch rng.IntN(5) {
	case 1:
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000)}
	case 2:
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1001)}
	case 3:
		p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](3000), FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeAlways)}
	case 4:
		p.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	}
	p.Spec.RestartPolicy = corev1.RestartPolicy(pick("", "Always", "Never", "OnFailure"))
	if coin() {
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: pick("myregistrykey", "other")}}
	}

	// The logs annotation, in every valid form.
	apps := containerNames(p.Spec.Containers)
	var entries []string
	switch rng.IntN(4) {
	case 1:
		if len(apps) == 1 {
			entries = append(entries, pick("/usr/local/tomcat/logs", "/var/log/app", "/data"))
		} else {
			entries = append(entries, apps[0]+"=/usr/local/tomcat/logs")
		}
	case 2:
		for _, a := range apps {
			entries = append(entries, a+"=/var/log/"+a)
		}
	case 3:
		entries = append(entries, apps[0]+"=/logs/one", apps[0]+"=/logs/two", " "+apps[len(apps)-1]+" = /logs/three/ ")
	}
	if len(entries) > 0 {
		p.Annotations[LogsAnnotation] = joinComma(entries)
	}
	if rng.IntN(8) == 0 {
		p.Annotations[SkipAnnotation] = pick(ResourcesName, SecurityContextName+","+ImagePullSecretsName, "no-such-policy")
	}
	return NewPod(p)
}

func joinComma(s []string) string { return strings.Join(s, ",") }
