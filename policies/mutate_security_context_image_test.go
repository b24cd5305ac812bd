package policies

import (
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/pod-security-admission/api"
	"k8s.io/utils/ptr"
)

// Images the security-context tests run, by what their USER is.
var (
	scNumericImage = ImageFacts{Ref: "registry.local/app:numeric", Status: ImageKnown, User: "1000:1000", FS: newTestFS()}
	scRootImage    = ImageFacts{Ref: "tomcat:10", Status: ImageKnown, User: "", FS: newTestFS("/usr/local/tomcat/conf/server.xml")}
	scUIDZeroImage = ImageFacts{Ref: "registry.local/app:uid0", Status: ImageKnown, User: "0:0", FS: newTestFS()}
	scNamedImage   = ImageFacts{Ref: "node:22", Status: ImageKnown, User: "node", FS: newTestFS()}
	scMinusOne     = ImageFacts{Ref: "registry.local/app:minus-one", Status: ImageKnown, User: "-1", FS: newTestFS()}
	scWinAdmin     = ImageFacts{Ref: "mcr.microsoft.com/windows/servercore:ltsc2022", Status: ImageKnown, User: "ContainerAdministrator", FS: newTestFS()}
	scWinUser      = ImageFacts{Ref: "mcr.microsoft.com/windows/nanoserver:ltsc2022", Status: ImageKnown, User: "ContainerUser", FS: newTestFS()}
)

// scImagePod builds a pod whose containers "app", "worker", ... run images.
func scImagePod(images []string, mods ...func(*corev1.Pod)) *Pod {
	return scPod(append([]func(*corev1.Pod){func(p *corev1.Pod) {
		p.Spec.Containers = nil
		for i, img := range images {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: []string{"app", "worker", "helper"}[i], Image: img})
		}
	}}, mods...)...)
}

func containerAt(i int, edit func(*corev1.SecurityContext)) func(*corev1.Pod) {
	return func(p *corev1.Pod) { edit(ctrSC(&p.Spec.Containers[i])) }
}

func TestSecurityContextWithImages(t *testing.T) {
	runAsUserCfg := SecurityContextConfig{Profile: ProfileRestricted, RootImages: RootImagesRunAsUser, RunAsUser: ptr.To[int64](10001)}
	restricted := SecurityContextConfig{Profile: ProfileRestricted}
	nonRootOn := func(i int) func(*corev1.Pod) {
		return containerAt(i, func(sc *corev1.SecurityContext) { sc.RunAsNonRoot = ptr.To(true) })
	}
	runAs := func(i int, uid int64) func(*corev1.Pod) {
		return containerAt(i, func(sc *corev1.SecurityContext) { sc.RunAsUser = ptr.To(uid) })
	}
	tests := []struct {
		name   string
		cfg    SecurityContextConfig
		images []ImageFacts
		pod    []string
		in     []func(*corev1.Pod)
		// want are the edits that turn the input into the expected output,
		// beyond seccomp, allowPrivilegeEscalation and capabilities.
		want           []func(*corev1.Pod)
		wantWarnings   []string
		wantViolations []string
		pss            api.Level
	}{
		{name: "sets runAsNonRoot at pod level for an image whose USER is a non-root uid",
			cfg: restricted, images: []ImageFacts{scNumericImage}, pod: []string{scNumericImage.Ref},
			want: []func(*corev1.Pod){nonRoot}, pss: api.LevelRestricted},
		{name: "leaves runAsNonRoot unset for an image that sets no USER, and says what the kubelet would do",
			cfg: restricted, images: []ImageFacts{scRootImage}, pod: []string{scRootImage.Ref},
			wantWarnings: []string{`spec.containers[0].image: runAsNonRoot was left unset for container "app": its image "tomcat:10" runs as root (it sets no USER), ` +
				`and with runAsNonRoot: true the kubelet would refuse to start it ("container has runAsNonRoot and image will run as root"). ` +
				`Fix: use an image whose USER is a non-root uid, or set runAsUser to a non-zero uid the image can run as (securityContext.rootImages: runAsUser in podguard's config does so)`}},
		{name: "leaves runAsNonRoot unset for an image whose USER is uid 0",
			cfg: restricted, images: []ImageFacts{scUIDZeroImage}, pod: []string{scUIDZeroImage.Ref},
			wantWarnings: []string{`its image "registry.local/app:uid0" runs as root (USER "0:0")`}},
		{name: "sets runAsNonRoot for an image whose USER is -1, which the runtimes report as a uid, not a name",
			cfg: restricted, images: []ImageFacts{scMinusOne}, pod: []string{scMinusOne.Ref},
			want: []func(*corev1.Pod){nonRoot}, pss: api.LevelRestricted},
		{name: "admits runAsNonRoot: true with an image whose USER is -1",
			cfg: restricted, images: []ImageFacts{scMinusOne}, pod: []string{scMinusOne.Ref}, in: []func(*corev1.Pod){nonRoot},
			want: []func(*corev1.Pod){nonRoot}, pss: api.LevelRestricted},
		{name: "leaves runAsNonRoot unset for an image whose USER is a name",
			cfg: restricted, images: []ImageFacts{scNamedImage}, pod: []string{scNamedImage.Ref},
			wantWarnings: []string{`runAsNonRoot was left unset for container "app": its image "node:22" runs as the user name "node" (USER "node"), which the kubelet cannot verify: ` +
				`with runAsNonRoot: true it would refuse to start it ("container has runAsNonRoot and image has non-numeric user (node), cannot verify user is non-root"). Fix: set runAsUser to that user's uid, or`}},
		{name: "does not suggest the uid of a user named root, which is 0",
			cfg: restricted, images: []ImageFacts{{Ref: "registry.local/app:named-root", Status: ImageKnown, User: "root", FS: newTestFS()}}, pod: []string{"registry.local/app:named-root"},
			wantWarnings: []string{`runs as the user name "root" (USER "root"), which the kubelet cannot verify: with runAsNonRoot: true it would refuse to start it ("container has runAsNonRoot and image has non-numeric user (root), cannot verify user is non-root"). Fix: use an image whose USER is a non-root uid`}},
		{name: "gives root and named-user images the configured runAsUser with rootImages: runAsUser, and then runAsNonRoot",
			cfg: runAsUserCfg, images: []ImageFacts{scRootImage, scNamedImage, scNumericImage}, pod: []string{scRootImage.Ref, scNamedImage.Ref, scNumericImage.Ref},
			want: []func(*corev1.Pod){nonRoot, runAs(0, 10001), runAs(1, 10001)}, pss: api.LevelRestricted},
		{name: "gives the configured runAsUser to a root image in a pod that already asks for runAsNonRoot",
			cfg: runAsUserCfg, images: []ImageFacts{scRootImage}, pod: []string{scRootImage.Ref}, in: []func(*corev1.Pod){nonRoot},
			want: []func(*corev1.Pod){runAs(0, 10001)}},
		{name: "never sets runAsUser on a container that has one",
			cfg: runAsUserCfg, images: []ImageFacts{scRootImage}, pod: []string{scRootImage.Ref}, in: []func(*corev1.Pod){runAs(0, 0)}},
		{name: "sets runAsNonRoot only on the container whose user is known when another one's image runs as root",
			cfg: restricted, images: []ImageFacts{scNumericImage, scRootImage}, pod: []string{scNumericImage.Ref, scRootImage.Ref},
			want:         []func(*corev1.Pod){nonRootOn(0)},
			wantWarnings: []string{`spec.containers[1].image: runAsNonRoot was left unset for container "worker": its image "tomcat:10" runs as root`}},
		{name: "leaves runAsNonRoot unset for an image that was not inspected, because inspection is off",
			cfg: restricted, pod: []string{"registry.local/app:v1"},
			wantWarnings: []string{`spec.containers[0].image: runAsNonRoot was left unset for container "app": the user its image "registry.local/app:v1" runs as is unknown (image inspection is off), ` +
				`and with runAsNonRoot: true the kubelet refuses to start an image that runs as root or as a user name. Fix: set runAsUser to a non-zero uid, or runAsNonRoot: true yourself if the image's USER is a non-root uid`}},
		{name: "says why an image of a registry podguard may not contact is not inspected",
			cfg: restricted, images: []ImageFacts{{Ref: "docker.io/library/nginx", Status: ImageNotInspected, Why: "registry docker.io is not in the inspector's allow-list"}}, pod: []string{"docker.io/library/nginx"},
			wantWarnings: []string{`is unknown (registry docker.io is not in the inspector's allow-list)`}},
		{name: "leaves runAsNonRoot unset for a pending image and says it was not inspected yet",
			cfg: restricted, images: []ImageFacts{pendingImage("tomcat:10")}, pod: []string{"tomcat:10"},
			wantWarnings: []string{`the user its image "tomcat:10" runs as is unknown (image "tomcat:10" was not inspected yet: the fetch was still running after 1.5s)`}},
		{name: "leaves runAsNonRoot unset for an image whose inspection failed and says why",
			cfg: restricted, images: []ImageFacts{failedImage("tomcat:10")}, pod: []string{"tomcat:10"},
			wantWarnings: []string{`(image "tomcat:10" was not inspected yet: registry.local answered 500 Internal Server Error)`}},
		{name: "warns once per image, naming every container that runs it",
			cfg: restricted, pod: []string{"tomcat:10", "tomcat:10", "busybox"},
			wantWarnings: []string{
				`spec.containers[0].image: runAsNonRoot was left unset for containers "app", "worker": the user its image "tomcat:10" runs as is unknown`,
				`spec.containers[2].image: runAsNonRoot was left unset for container "helper": the user its image "busybox" runs as is unknown`,
			}},
		{name: "sets runAsNonRoot without asking the image when the pod sets a non-root runAsUser",
			cfg: restricted, images: []ImageFacts{scRootImage}, pod: []string{scRootImage.Ref, "unknown:1"},
			in:   []func(*corev1.Pod){func(p *corev1.Pod) { podSC(p).RunAsUser = ptr.To[int64](1000) }},
			want: []func(*corev1.Pod){nonRoot}, pss: api.LevelRestricted},
		{name: "says nothing of explicit root users",
			cfg: restricted, pod: []string{"tomcat:10"}, in: []func(*corev1.Pod){runAs(0, 0)}},
		{name: "baseline neither sets runAsNonRoot nor warns about unknown images",
			cfg: SecurityContextConfig{Profile: ProfileBaseline}, pod: []string{"tomcat:10"}, images: []ImageFacts{pendingImage("tomcat:10")}},
		{name: "sets runAsNonRoot on a Windows pod whose image runs as ContainerUser",
			cfg: restricted, images: []ImageFacts{scWinUser}, pod: []string{scWinUser.Ref}, in: []func(*corev1.Pod){onWindows},
			want: []func(*corev1.Pod){nonRoot}, pss: api.LevelRestricted},
		{name: "leaves runAsNonRoot unset on a Windows pod whose image runs as ContainerAdministrator, even with rootImages: runAsUser",
			cfg: runAsUserCfg, images: []ImageFacts{scWinAdmin}, pod: []string{scWinAdmin.Ref}, in: []func(*corev1.Pod){onWindows},
			wantWarnings: []string{`its image "mcr.microsoft.com/windows/servercore:ltsc2022" runs as ContainerAdministrator … Fix: set securityContext.windowsOptions.runAsUserName`}},
		// Pods the kubelet would refuse, whatever the profile.
		{name: "denies runAsNonRoot: true with an image that runs as root and no runAsUser",
			cfg: SecurityContextConfig{Profile: ProfileBaseline}, images: []ImageFacts{scRootImage}, pod: []string{scRootImage.Ref}, in: []func(*corev1.Pod){nonRoot},
			wantViolations: []string{`spec.containers[0].image: container "app" has runAsNonRoot: true (from the pod's securityContext) and no runAsUser, and its image "tomcat:10" runs as root (it sets no USER): ` +
				`the kubelet refuses to start it ("container has runAsNonRoot and image will run as root") and the pod sits in CreateContainerConfigError. ` +
				`Fix: set runAsUser to a non-zero uid the image can run as, or use an image whose USER is a non-root uid`}},
		{name: "denies runAsNonRoot: true with an image whose USER is a name",
			cfg: restricted, images: []ImageFacts{scNamedImage}, pod: []string{scNamedImage.Ref}, in: []func(*corev1.Pod){nonRootOn(0)},
			wantViolations: []string{`container "app" has runAsNonRoot: true (from its own securityContext) and no runAsUser, and its image "node:22" runs as the user name "node" (USER "node"), which the kubelet cannot verify: ` +
				`the kubelet refuses to start it ("container has runAsNonRoot and image has non-numeric user (node), cannot verify user is non-root")`}},
		{name: "denies runAsNonRoot: true with runAsUser: 0",
			cfg: SecurityContextConfig{Profile: ProfileBaseline}, pod: []string{"tomcat:10", "tomcat:10"},
			in: []func(*corev1.Pod){nonRoot, runAs(0, 0), func(p *corev1.Pod) { podSC(p).RunAsUser = ptr.To[int64](0) }},
			wantViolations: []string{
				`spec.containers[0].securityContext.runAsUser: container "app" has runAsNonRoot: true (from the pod's securityContext) and runAsUser: 0 (from its own securityContext): the kubelet refuses to start it ("container's runAsUser breaks non-root policy")`,
				`spec.containers[1]: container "worker" has runAsNonRoot: true (from the pod's securityContext) and runAsUser: 0 (from the pod's securityContext)`,
			}},
		{name: "denies an ephemeral container whose image runs as root under the pod's runAsNonRoot",
			cfg: SecurityContextConfig{Profile: ProfileBaseline}, images: []ImageFacts{scNumericImage, scRootImage}, pod: []string{scNumericImage.Ref},
			in: []func(*corev1.Pod){nonRoot, func(p *corev1.Pod) {
				p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: scRootImage.Ref}}}
			}},
			wantViolations: []string{`spec.ephemeralContainers[0].image: container "debug" has runAsNonRoot: true (from the pod's securityContext) and no runAsUser, and its image "tomcat:10" runs as root`}},
		{name: "admits runAsNonRoot: true with a root image when runAsUser is set, or when the image is not known",
			cfg: SecurityContextConfig{Profile: ProfileBaseline}, images: []ImageFacts{scRootImage, pendingImage("other:1")}, pod: []string{scRootImage.Ref, "other:1"},
			in: []func(*corev1.Pod){nonRoot, runAs(0, 1000)}},
		{name: "does not set a pod-level runAsNonRoot that an ephemeral container with a root image would inherit",
			cfg: restricted, images: []ImageFacts{scNumericImage, scRootImage}, pod: []string{scNumericImage.Ref},
			in: []func(*corev1.Pod){func(p *corev1.Pod) {
				p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: scRootImage.Ref}}}
			}},
			want: []func(*corev1.Pod){nonRootOn(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.defaults()
			if errs := cfg.validate(field.NewPath("securityContext")); len(errs) > 0 {
				t.Fatal(errs)
			}
			p := newSecurityContext(cfg)
			world := withImages(NewSnapshot(), tt.images...)
			pod := scImagePod(tt.pod, tt.in...)
			before := pod.DeepCopy()

			out, rep := p.Mutate(Input{Pod: pod, World: world})

			msAssertFindings(t, "violation", rep.Violations, tt.wantViolations)
			msAssertFindings(t, "warning", rep.Warnings, tt.wantWarnings)
			if !apiequality.Semantic.DeepEqual(pod, before) {
				t.Error("the input pod was modified")
			}
			// The fields outside the user's are what TestSecurityContext
			// covers: compare runAsUser and runAsNonRoot only.
			want := scImagePod(tt.pod, append(append([]func(*corev1.Pod){}, tt.in...), tt.want...)...)
			if got, want := userFields(out), userFields(want); got != want {
				t.Errorf("runAsUser/runAsNonRoot:\ngot  %s\nwant %s", got, want)
			}
			if tt.pss != "" {
				passesPodSecurity(t, tt.pss, out)
			}
			again, rep2 := p.Mutate(Input{Pod: out, World: world})
			if again != out {
				t.Errorf("mutating the mutated pod changed it again:\n%s", specYAML(t, again))
			}
			if len(rep2.Violations) > len(rep.Violations) {
				t.Errorf("the mutated pod is denied: %v", rep2.Violations)
			}
		})
	}
}

// userFields renders the runAsUser and runAsNonRoot of a pod and each of its
// containers.
func userFields(p *Pod) string {
	var b strings.Builder
	show := func(who string, uid *int64, nonRoot *bool) {
		b.WriteString(who + ":")
		if uid != nil {
			b.WriteString(" runAsUser=" + strconv.FormatInt(*uid, 10))
		}
		if nonRoot != nil {
			b.WriteString(" runAsNonRoot=" + map[bool]string{true: "true", false: "false"}[*nonRoot])
		}
		b.WriteString("; ")
	}
	if sc := p.Spec.SecurityContext; sc != nil {
		show("pod", sc.RunAsUser, sc.RunAsNonRoot)
	} else {
		show("pod", nil, nil)
	}
	for _, c := range p.Containers() {
		if sc := c.Container.SecurityContext; sc != nil {
			show(c.Container.Name, sc.RunAsUser, sc.RunAsNonRoot)
		} else {
			show(c.Container.Name, nil, nil)
		}
	}
	return b.String()
}

func TestSecurityContextConfigRootImages(t *testing.T) {
	tests := []struct {
		name string
		cfg  SecurityContextConfig
		want []string
	}{
		{name: "defaults rootImages to warn", cfg: SecurityContextConfig{}},
		{name: "accepts rootImages: runAsUser with a non-root uid",
			cfg: SecurityContextConfig{RootImages: RootImagesRunAsUser, RunAsUser: ptr.To[int64](10001)}},
		{name: "rejects an unknown rootImages mode",
			cfg:  SecurityContextConfig{RootImages: "deny"},
			want: []string{`policies.securityContext.rootImages: Unsupported value: "deny": supported values: "warn", "runAsUser"`}},
		{name: "requires runAsUser with rootImages: runAsUser",
			cfg:  SecurityContextConfig{RootImages: RootImagesRunAsUser},
			want: []string{`policies.securityContext.runAsUser: Required value: the uid to run root and named-user images as, with rootImages: runAsUser`}},
		{name: "rejects runAsUser: 0",
			cfg:  SecurityContextConfig{RootImages: RootImagesRunAsUser, RunAsUser: ptr.To[int64](0)},
			want: []string{`policies.securityContext.runAsUser: Invalid value: 0: must be a non-root user ID (> 0)`}},
		{name: "rejects a runAsUser that rootImages: warn would ignore",
			cfg:  SecurityContextConfig{RunAsUser: ptr.To[int64](1000)},
			want: []string{`policies.securityContext.runAsUser: Invalid value: 1000: is used only with rootImages: runAsUser`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.defaults()
			if c.RootImages == "" {
				t.Fatal("rootImages was not defaulted")
			}
			errs := c.validate(field.NewPath("policies", "securityContext"))
			if len(errs) != len(tt.want) {
				t.Fatalf("errors = %v, want %d", errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

// TestSecurityContextNeverDeniesItsOwnOutput checks, over every combination
// of image users and of the fields that decide the kubelet's runAsNonRoot
// check, that mutating denies nothing the pod as written was not already
// denied for (the policy never sets runAsNonRoot where the kubelet would
// refuse it), and that the output is stable.
func TestSecurityContextNeverDeniesItsOwnOutput(t *testing.T) {
	images := []ImageFacts{scNumericImage, scRootImage, scNamedImage, pendingImage("pending:1"), {Ref: "off:1"}}
	world := withImages(NewSnapshot(), images...)
	bools := []*bool{nil, ptr.To(false), ptr.To(true)}
	uids := []*int64{nil, ptr.To[int64](0), ptr.To[int64](1000)}
	configs := []SecurityContextConfig{
		{Profile: ProfileBaseline},
		{Profile: ProfileRestricted},
		{Profile: ProfileRestricted, RootImages: RootImagesRunAsUser, RunAsUser: ptr.To[int64](10001)},
	}
	cases := 0
	for _, cfg := range configs {
		cfg.defaults()
		p := newSecurityContext(cfg)
		for _, a := range images {
			for _, b := range images {
				for _, podNonRoot := range bools {
					for _, podUID := range uids {
						for _, ctrNonRoot := range bools {
							for _, ctrUID := range uids {
								pod := scImagePod([]string{a.Ref, b.Ref}, func(pod *corev1.Pod) {
									podSC(pod).RunAsNonRoot, podSC(pod).RunAsUser = podNonRoot, podUID
									sc := ctrSC(&pod.Spec.Containers[1])
									sc.RunAsNonRoot, sc.RunAsUser = ctrNonRoot, ctrUID
								})
								cases++
								var asWritten Report
								verifyRunAsNonRoot(pod, newPodImages(Input{World: world}), &asWritten)
								out, rep := p.Mutate(Input{Pod: pod, World: world})
								had := map[string]bool{}
								for _, v := range asWritten.Violations {
									had[v.Field] = true
								}
								for _, v := range rep.Violations {
									if !had[v.Field] {
										t.Errorf("%s/%s: images %s, %s: mutating added a denial: %s: %s\n%s", cfg.Profile, cfg.RootImages, a.Ref, b.Ref, v.Field, v.Message, userFields(out))
									}
								}
								if again, _ := p.Mutate(Input{Pod: out, World: world}); again != out {
									t.Errorf("%s/%s: images %s, %s: not idempotent:\n%s\n%s", cfg.Profile, cfg.RootImages, a.Ref, b.Ref, userFields(out), userFields(again))
								}
							}
						}
					}
				}
			}
		}
	}
	if cases != 3*5*5*3*3*3*3 {
		t.Fatalf("%d cases", cases)
	}
}
