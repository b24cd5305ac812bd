package policies

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func securityContextPolicy(profile string) *securityContext {
	c := SecurityContextConfig{Profile: profile}
	c.defaults()
	return newSecurityContext(c)
}

// scPod builds a pod with one container "app" running tomcat, changed by
// mods.
func scPod(mods ...func(*corev1.Pod)) *Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "tomcat:10"}}},
	}
	for _, mod := range mods {
		mod(p)
	}
	return NewPod(p)
}

// Pod and spec edits, for inputs and for expected outputs.

func withInitAndSidecar(p *corev1.Pod) {
	p.Spec.InitContainers = []corev1.Container{
		{Name: "migrate", Image: "flyway"},
		{Name: "proxy", Image: "envoy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)},
	}
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "worker", Image: "tomcat:10"})
}

func podSC(p *corev1.Pod) *corev1.PodSecurityContext {
	if p.Spec.SecurityContext == nil {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	return p.Spec.SecurityContext
}

func ctrSC(c *corev1.Container) *corev1.SecurityContext {
	if c.SecurityContext == nil {
		c.SecurityContext = &corev1.SecurityContext{}
	}
	return c.SecurityContext
}

func firstContainer(edit func(*corev1.SecurityContext)) func(*corev1.Pod) {
	return func(p *corev1.Pod) { edit(ctrSC(&p.Spec.Containers[0])) }
}

func runtimeDefault(p *corev1.Pod) {
	podSC(p).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
}

func nonRoot(p *corev1.Pod) { podSC(p).RunAsNonRoot = ptr.To(true) }

// noEscalation sets allowPrivilegeEscalation: false on every container that
// does not set it.
func noEscalation(p *corev1.Pod) {
	eachContainerSC(p, func(sc *corev1.SecurityContext) {
		if sc.AllowPrivilegeEscalation == nil {
			sc.AllowPrivilegeEscalation = ptr.To(false)
		}
	})
}

// dropAll drops ALL on every container that drops nothing.
func dropAll(p *corev1.Pod) {
	eachContainerSC(p, func(sc *corev1.SecurityContext) {
		if sc.Capabilities == nil {
			sc.Capabilities = &corev1.Capabilities{}
		}
		if len(sc.Capabilities.Drop) == 0 {
			sc.Capabilities.Drop = []corev1.Capability{"ALL"}
		}
	})
}

func eachContainerSC(p *corev1.Pod, edit func(*corev1.SecurityContext)) {
	for i := range p.Spec.InitContainers {
		edit(ctrSC(&p.Spec.InitContainers[i]))
	}
	for i := range p.Spec.Containers {
		edit(ctrSC(&p.Spec.Containers[i]))
	}
}

func onWindows(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }

var podSecurity = func() psapolicy.Evaluator {
	e, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

// passesPodSecurity fails the test unless pod passes every check of level at
// the latest Pod Security Standards version.
func passesPodSecurity(t *testing.T, level api.Level, pod *Pod) {
	t.Helper()
	lv := api.LevelVersion{Level: level, Version: api.LatestVersion()}
	for _, r := range podSecurity.EvaluatePod(lv, &pod.Meta, &pod.Spec) {
		if !r.Allowed {
			t.Errorf("fails Pod Security %s: %s: %s", level, r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}

func TestSecurityContext(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		in      []func(*corev1.Pod)
		// want lists the edits that turn the input into the expected
		// output; none means the pod is returned unchanged.
		want []func(*corev1.Pod)
		// pss is the Pod Security level the output must pass, if any.
		pss api.Level
	}{
		{name: "restricted fills in an empty pod so that it passes Pod Security restricted",
			profile: ProfileRestricted,
			want:    []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation, dropAll}, pss: api.LevelRestricted},
		{name: "restricted makes init containers and a native sidecar pass Pod Security restricted",
			profile: ProfileRestricted, in: []func(*corev1.Pod){withInitAndSidecar},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation, dropAll}, pss: api.LevelRestricted},
		{name: "baseline keeps an empty pod passing Pod Security baseline and sets neither runAsNonRoot nor capabilities",
			profile: ProfileBaseline,
			want:    []func(*corev1.Pod){runtimeDefault, noEscalation}, pss: api.LevelBaseline},
		{name: "baseline hardens init containers and a native sidecar",
			profile: ProfileBaseline, in: []func(*corev1.Pod){withInitAndSidecar},
			want: []func(*corev1.Pod){runtimeDefault, noEscalation}, pss: api.LevelBaseline},
		{name: "restricted keeps the user's runAsUser, fsGroup and allowPrivilegeEscalation",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){
				func(p *corev1.Pod) { podSC(p).RunAsUser, podSC(p).FSGroup = ptr.To[int64](1000), ptr.To[int64](2000) },
				firstContainer(func(sc *corev1.SecurityContext) { sc.AllowPrivilegeEscalation = ptr.To(false) }),
			},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, dropAll}, pss: api.LevelRestricted},
		{name: "baseline keeps the user's runAsUser, fsGroup and allowPrivilegeEscalation",
			profile: ProfileBaseline,
			in: []func(*corev1.Pod){
				func(p *corev1.Pod) { podSC(p).RunAsUser, podSC(p).FSGroup = ptr.To[int64](1000), ptr.To[int64](2000) },
				firstContainer(func(sc *corev1.SecurityContext) { sc.AllowPrivilegeEscalation = ptr.To(false) }),
			},
			want: []func(*corev1.Pod){runtimeDefault}, pss: api.LevelBaseline},
		{name: "keeps a container's explicit runAsNonRoot: false while the pod-level default covers the others",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){withInitAndSidecar,
				firstContainer(func(sc *corev1.SecurityContext) { sc.RunAsNonRoot = ptr.To(false) })},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation, dropAll}},
		{name: "does not set the pod's runAsNonRoot when every container sets its own",
			profile: ProfileRestricted,
			in:      []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) { sc.RunAsNonRoot = ptr.To(false) })},
			want:    []func(*corev1.Pod){runtimeDefault, noEscalation, dropAll}},
		{name: "keeps the pod's explicit runAsNonRoot: false",
			profile: ProfileRestricted,
			in:      []func(*corev1.Pod){func(p *corev1.Pod) { podSC(p).RunAsNonRoot = ptr.To(false) }},
			want:    []func(*corev1.Pod){runtimeDefault, noEscalation, dropAll}},
		{name: "does not set runAsNonRoot when a container explicitly runs as root",
			profile: ProfileRestricted,
			in:      []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) { sc.RunAsUser = ptr.To[int64](0) })},
			want:    []func(*corev1.Pod){runtimeDefault, noEscalation, dropAll}},
		{name: "sets runAsNonRoot only on the container that overrides the pod's root user",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){withInitAndSidecar,
				func(p *corev1.Pod) { podSC(p).RunAsUser = ptr.To[int64](0) },
				func(p *corev1.Pod) { ctrSC(&p.Spec.Containers[0]).RunAsUser = ptr.To[int64](1000) }},
			want: []func(*corev1.Pod){runtimeDefault, noEscalation, dropAll,
				firstContainer(func(sc *corev1.SecurityContext) { sc.RunAsNonRoot = ptr.To(true) })}},
		{name: "sets runAsNonRoot when only a container that overrides the pod's root user would be root",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){
				func(p *corev1.Pod) { podSC(p).RunAsUser = ptr.To[int64](0) },
				firstContainer(func(sc *corev1.SecurityContext) { sc.RunAsUser = ptr.To[int64](1000) })},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation, dropAll}},
		{name: "leaves runAsNonRoot to the user in a user namespace, which Pod Security restricted allows",
			profile: ProfileRestricted,
			in:      []func(*corev1.Pod){func(p *corev1.Pod) { p.Spec.HostUsers = ptr.To(false) }},
			want:    []func(*corev1.Pod){runtimeDefault, noEscalation, dropAll}, pss: api.LevelRestricted},
		{name: "keeps capabilities the user adds and drops ALL",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) {
				sc.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}}
			})},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation, dropAll}, pss: api.LevelRestricted},
		{name: "keeps a drop list the user wrote",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) {
				sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}}
			})},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation}},
		{name: "does not set allowPrivilegeEscalation or drop capabilities on a privileged container",
			profile: ProfileRestricted,
			in:      []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) { sc.Privileged = ptr.To(true) })},
			want:    []func(*corev1.Pod){runtimeDefault, nonRoot}},
		{name: "baseline does not set allowPrivilegeEscalation on a privileged container",
			profile: ProfileBaseline,
			in:      []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) { sc.Privileged = ptr.To(true) })},
			want:    []func(*corev1.Pod){runtimeDefault}},
		{name: "sets allowPrivilegeEscalation on a container that writes privileged: false",
			profile: ProfileBaseline,
			in:      []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) { sc.Privileged = ptr.To(false) })},
			want:    []func(*corev1.Pod){runtimeDefault, noEscalation}, pss: api.LevelBaseline},
		{name: "does not set allowPrivilegeEscalation on a container that adds CAP_SYS_ADMIN",
			profile: ProfileBaseline,
			in: []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) {
				sc.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"CAP_SYS_ADMIN"}}
			})},
			want: []func(*corev1.Pod){runtimeDefault}},
		{name: "does not set allowPrivilegeEscalation on a container that adds SYS_ADMIN without the prefix",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) {
				sc.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "sys_admin"}}
			})},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, dropAll}},
		{name: "keeps allowPrivilegeEscalation: true written by the user",
			profile: ProfileRestricted,
			in:      []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) { sc.AllowPrivilegeEscalation = ptr.To(true) })},
			want:    []func(*corev1.Pod){runtimeDefault, nonRoot, dropAll}},
		{name: "keeps the pod's own seccomp profile",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){func(p *corev1.Pod) {
				podSC(p).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("app.json")}
			}},
			want: []func(*corev1.Pod){nonRoot, noEscalation, dropAll}, pss: api.LevelRestricted},
		{name: "sets the pod's seccomp profile next to a container that chose Unconfined, which keeps it",
			profile: ProfileBaseline,
			in: []func(*corev1.Pod){withInitAndSidecar, firstContainer(func(sc *corev1.SecurityContext) {
				sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
			})},
			want: []func(*corev1.Pod){runtimeDefault, noEscalation}},
		{name: "does not set the pod's seccomp profile when every container has its own",
			profile: ProfileBaseline,
			in: []func(*corev1.Pod){firstContainer(func(sc *corev1.SecurityContext) {
				sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
			})},
			want: []func(*corev1.Pod){noEscalation}},
		{name: "keeps a legacy seccomp annotation that asks for unconfined, which the field must not contradict",
			profile: ProfileBaseline,
			in: []func(*corev1.Pod){func(p *corev1.Pod) {
				p.Annotations = map[string]string{"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
			}},
			want: []func(*corev1.Pod){noEscalation}},
		{name: "makes a legacy runtime/default seccomp annotation effective with the field that matches it",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){func(p *corev1.Pod) {
				p.Annotations = map[string]string{"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}
			}},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation, dropAll}, pss: api.LevelRestricted},
		{name: "sets only runAsNonRoot on a Windows pod, which passes Pod Security restricted",
			profile: ProfileRestricted, in: []func(*corev1.Pod){onWindows, withInitAndSidecar},
			want: []func(*corev1.Pod){nonRoot}, pss: api.LevelRestricted},
		{name: "leaves a Windows pod alone under baseline",
			profile: ProfileBaseline, in: []func(*corev1.Pod){onWindows}, pss: api.LevelBaseline},
		{name: "does not set runAsNonRoot on a Windows pod that runs as ContainerAdministrator",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){onWindows, func(p *corev1.Pod) {
				podSC(p).WindowsOptions = &corev1.WindowsSecurityContextOptions{RunAsUserName: ptr.To("containeradministrator")}
			}}},
		{name: "leaves ephemeral containers alone",
			profile: ProfileRestricted,
			in: []func(*corev1.Pod){func(p *corev1.Pod) {
				p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
			}},
			want: []func(*corev1.Pod){runtimeDefault, nonRoot, noEscalation, dropAll}},
		{name: "leaves a pod that already passes restricted unchanged",
			profile: ProfileRestricted, in: []func(*corev1.Pod){withInitAndSidecar, runtimeDefault, nonRoot, noEscalation, dropAll},
			pss: api.LevelRestricted},
	}
	// Every image of these pods is known to run as a non-root uid, so that
	// restricted may set runAsNonRoot: TestSecurityContextWithImages covers
	// the others.
	world := imagesRunningAs(NewSnapshot(), "1000", "tomcat:10", "flyway", "envoy", "busybox")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := securityContextPolicy(tt.profile)
			pod := scPod(tt.in...)
			before := pod.DeepCopy()

			out, rep := p.Mutate(Input{Pod: pod, World: world})

			if len(rep.Violations)+len(rep.Warnings) > 0 {
				t.Errorf("findings = %+v, want none", rep)
			}
			if !apiequality.Semantic.DeepEqual(pod, before) {
				t.Error("the input pod was modified")
			}
			if len(tt.want) == 0 {
				if out != pod {
					t.Errorf("changed a pod that needs nothing:\n%s", specYAML(t, out))
				}
			} else {
				want := scPod(append(append([]func(*corev1.Pod){}, tt.in...), tt.want...)...)
				if !apiequality.Semantic.DeepEqual(out.Spec, want.Spec) || !apiequality.Semantic.DeepEqual(out.Meta, want.Meta) {
					t.Errorf("got:\n%s\nwant:\n%s", specYAML(t, out), specYAML(t, want))
				}
			}
			if tt.pss != "" {
				passesPodSecurity(t, tt.pss, out)
			}
			again, _ := p.Mutate(Input{Pod: out, World: world})
			if again != out {
				t.Errorf("mutating the mutated pod changed it again:\n%s", specYAML(t, again))
			}
		})
	}
}

// TestSecurityContextNeverProducesAnInvalidCombination checks, over every
// combination of the fields that constrain it, that the output never has
// allowPrivilegeEscalation: false with privileged: true or with CAP_SYS_ADMIN
// (the API server rejects both), never sets a field the user set, and never
// sets a Linux-only field on a Windows pod.
func TestSecurityContextNeverProducesAnInvalidCombination(t *testing.T) {
	bools := []*bool{nil, ptr.To(false), ptr.To(true)}
	adds := [][]corev1.Capability{nil, {"NET_BIND_SERVICE"}, {"CAP_SYS_ADMIN"}, {"SYS_ADMIN"}}
	for _, profile := range []string{ProfileBaseline, ProfileRestricted} {
		p := securityContextPolicy(profile)
		for _, win := range []bool{false, true} {
			for _, privileged := range bools {
				for _, ape := range bools {
					for _, add := range adds {
						pod := scPod(withInitAndSidecar, func(pod *corev1.Pod) {
							if win {
								onWindows(pod)
							}
							eachContainerSC(pod, func(sc *corev1.SecurityContext) {
								sc.Privileged, sc.AllowPrivilegeEscalation = privileged, ape
								if add != nil {
									sc.Capabilities = &corev1.Capabilities{Add: add}
								}
							})
						})
						out, _ := p.Mutate(Input{Pod: pod})
						for i, c := range out.Containers() {
							sc, orig := c.Container.SecurityContext, pod.Containers()[i].Container.SecurityContext
							if orig.AllowPrivilegeEscalation == nil && sc.AllowPrivilegeEscalation != nil && (ptr.Deref(sc.Privileged, false) || addsSysAdmin(sc)) {
								t.Errorf("%s: %s gets allowPrivilegeEscalation set with privileged %v and add %v", profile, c.Path, ptr.Deref(privileged, false), add)
							}
							if orig.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation != *orig.AllowPrivilegeEscalation {
								t.Errorf("%s: %s: the user's allowPrivilegeEscalation was changed", profile, c.Path)
							}
							if win && (!apiequality.Semantic.DeepEqual(sc, orig) || (out.Spec.SecurityContext != nil && out.Spec.SecurityContext.SeccompProfile != nil)) {
								t.Errorf("%s: %s: a Windows pod got Linux-only fields", profile, c.Path)
							}
						}
						if again, _ := p.Mutate(Input{Pod: out}); again != out {
							t.Errorf("%s: not idempotent for privileged %v, allowPrivilegeEscalation %v, add %v", profile, privileged, ape, add)
						}
					}
				}
			}
		}
	}
}

func TestSecurityContextConfig(t *testing.T) {
	var c SecurityContextConfig
	c.defaults()
	if !ptr.Deref(c.Enabled, false) || c.Profile != ProfileBaseline {
		t.Errorf("defaults = enabled %v, profile %q; want enabled, baseline", c.Enabled, c.Profile)
	}
	if errs := c.validate(field.NewPath("policies", "securityContext")); len(errs) > 0 {
		t.Errorf("the defaults do not validate: %v", errs)
	}
	c.Profile = "strict"
	errs := c.validate(field.NewPath("policies", "securityContext"))
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `policies.securityContext.profile: Unsupported value: "strict": supported values: "baseline", "restricted"`) {
		t.Errorf("errors = %v", errs)
	}
}

func specYAML(t *testing.T, p *Pod) string {
	t.Helper()
	b, err := yaml.Marshal(map[string]any{"metadata": p.Meta, "spec": p.Spec})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
