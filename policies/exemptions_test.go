package policies

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func TestExemptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		ex   Exemptions
		want []string // every error, as field path: detail fragments
	}{
		{name: "accepts the defaults", ex: Exemptions{}},
		{name: "accepts every kind of rule", ex: Exemptions{PodSkippable: []string{"all"}, Rules: []ExemptionRule{
			{Policies: []string{"all"}, Namespaces: []string{"legacy"}},
			{Policies: []string{SecurityContextName}, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"podguard.io/exempt": "true"}}},
			{Policies: []string{EnvFromKeysName}, ServiceAccounts: []string{"ci/builder"}},
			{Policies: []string{SecurityContextName, ResourcesName}, Images: []string{"busybox", "registry.example.com/debug/*", "ghcr.io/*", "localhost:5000/tools"}},
		}}},
		{name: "rejects an unknown policy in podSkippable", ex: Exemptions{PodSkippable: []string{"security-contxt"}},
			want: []string{`exemptions.podSkippable[0]: Unsupported value: "security-contxt"`}},
		{name: "rejects a policy named twice", ex: Exemptions{PodSkippable: []string{ResourcesName, ResourcesName}},
			want: []string{`exemptions.podSkippable[1]: Duplicate value: "resources"`}},
		{name: "rejects a rule without policies", ex: Exemptions{Rules: []ExemptionRule{{Namespaces: []string{"a"}}}},
			want: []string{`exemptions.rules[0].policies: Required value`}},
		{name: "rejects a rule that would match every pod", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}}}},
			want: []string{`exemptions.rules[0]: Required value: set at least one of namespaces`}},
		{name: "rejects a namespace that is not a DNS label", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}, Namespaces: []string{"Team_A"}}}},
			want: []string{`exemptions.rules[0].namespaces[0]: Invalid value: "Team_A"`}},
		{name: "rejects a selector with a bad operator", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Equals", Values: []string{"x"}}}}}}},
			want: []string{`exemptions.rules[0].namespaceSelector.matchExpressions[0].operator: Invalid value: "Equals"`}},
		{name: "rejects a selector with a bad label key", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key": "x"}}}}},
			want: []string{`exemptions.rules[0].namespaceSelector.matchLabels: Invalid value: "bad key"`}},
		{name: "rejects an empty selector, which matches every namespace", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}, NamespaceSelector: &metav1.LabelSelector{}}}},
			want: []string{`exemptions.rules[0].namespaceSelector: Invalid value: "{}": an empty selector matches every namespace`}},
		{name: "rejects a service account without its namespace", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}, ServiceAccounts: []string{"builder"}}}},
			want: []string{`exemptions.rules[0].serviceAccounts[0]: Invalid value: "builder": must be namespace/name`}},
		{name: "rejects an image with a tag", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{SecurityContextName}, Images: []string{"busybox:1.36"}}}},
			want: []string{`exemptions.rules[0].images[0]: Invalid value: "busybox:1.36": must name a repository without a tag or digest`}},
		{name: "rejects a wildcard inside a pattern", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{SecurityContextName}, Images: []string{"registry.example.com/*/debug"}}}},
			want: []string{`exemptions.rules[0].images[0]: Invalid value: "registry.example.com/*/debug": "*" is allowed only as the whole last path element`}},
		{name: "rejects a pattern for everything below a path that starts without a registry", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{SecurityContextName}, Images: []string{"acme/*"}}}},
			want: []string{`exemptions.rules[0].images[0]: Invalid value: "acme/*": a pattern ending in /* must start with a registry host`}},
		{name: "rejects an image exemption from a policy that acts on the whole pod", ex: Exemptions{Rules: []ExemptionRule{{Policies: []string{LogSidecarName}, Images: []string{"busybox"}}}},
			want: []string{`exemptions.rules[0].policies[0]: Invalid value: "log-sidecar": acts on the pod as a whole`}},
		{name: "reports every problem at once", ex: Exemptions{PodSkippable: []string{"x"}, Rules: []ExemptionRule{{Policies: []string{"y"}, Namespaces: []string{"ok"}}, {Policies: []string{"all"}, ServiceAccounts: []string{"a/"}}}},
			want: []string{`exemptions.podSkippable[0]`, `exemptions.rules[0].policies[0]`, `exemptions.rules[1].serviceAccounts[0]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ex.Default()
			errs := tt.ex.Validate(field.NewPath("exemptions"))
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), errs.ToAggregate())
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestImagePatternMatches(t *testing.T) {
	tests := []struct {
		pattern, image string
		want           bool
	}{
		{"busybox", "busybox:1.36", true},
		{"busybox", "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64), true},
		{"docker.io/library/busybox", "busybox", true},
		{"busybox", "busybox-extras", false},
		{"busybox", "ghcr.io/busybox", false},
		{"registry.example.com/debug/*", "registry.example.com/debug/netshoot:v1", true},
		{"registry.example.com/debug/*", "registry.example.com/debug/tools/strace", true},
		{"registry.example.com/debug/*", "registry.example.com/debugger/x", false},
		{"registry.example.com/debug/*", "registry.example.com/debug", false},
		{"ghcr.io/*", "ghcr.io/acme/app", true},
		{"docker.io/*", "nginx", true},
		{"docker.io/acme/*", "acme/app", true},
		{"localhost:5000/tools", "localhost:5000/tools:latest", true},
	}
	for _, tt := range tests {
		r := exemptionRule{}
		p, err := parseImagePattern(tt.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tt.pattern, err)
		}
		r.images = []imagePattern{p}
		if got := r.matchesImage(tt.image); got != tt.want {
			t.Errorf("pattern %q on image %q = %v, want %v", tt.pattern, tt.image, got, tt.want)
		}
	}
}

func TestEngineExemptions(t *testing.T) {
	world := NewSnapshot()
	world.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"podguard.io/exempt": "true"}}})
	world.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}})
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-keys"}, Data: map[string]string{"1st.key": "v"}})
	}
	byLabel := &metav1.LabelSelector{MatchLabels: map[string]string{"podguard.io/exempt": "true"}}

	// hardened reports which containers the security context policy hardened.
	hardened := func(p *Pod) string {
		var out []string
		for _, c := range p.Containers() {
			if c.Container.SecurityContext != nil && c.Container.SecurityContext.AllowPrivilegeEscalation != nil {
				out = append(out, c.Container.Name)
			}
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name        string
		ex          Exemptions
		namespace   string
		skip        string
		account     string
		images      []string
		wantHarden  string // containers hardened
		wantDenied  []string
		wantOutcome map[string]Outcome
		wantWarning string
	}{
		{name: "hardens and validates every container of an ordinary pod",
			images: []string{"nginx", "busybox"}, wantHarden: "c0,c1",
			wantDenied: []string{"spec.containers[0].envFrom[0]", "spec.containers[1].envFrom[0]"}},
		{name: "does not skip the hardening for skip: all by default, and says so",
			skip: "all", images: []string{"nginx"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"},
			wantOutcome: map[string]Outcome{ImagePullSecretsName: OutcomeSkipped, LogSidecarName: OutcomeSkipped, SecurityContextName: OutcomeMutated},
			wantWarning: `[podguard] metadata.annotations[podguard.io/skip]: does not skip "security-context", "resources": pods may skip only "image-pull-secrets", "log-sidecar" (exemptions.podSkippable in podguard's config)`},
		{name: "ignores skip: security-context by default, with a warning naming the setting",
			skip: SecurityContextName, images: []string{"nginx"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"},
			wantWarning: `does not skip "security-context": pods may skip only "image-pull-secrets", "log-sidecar" (exemptions.podSkippable`},
		{name: "ignores skip: envfrom-keys by default",
			skip: EnvFromKeysName, images: []string{"nginx"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"},
			wantWarning: `does not skip "envfrom-keys"`},
		{name: "skips a policy the admin lets pods skip",
			ex: Exemptions{PodSkippable: []string{SecurityContextName}}, skip: SecurityContextName, images: []string{"nginx"},
			wantDenied: []string{"spec.containers[0].envFrom[0]"}, wantOutcome: map[string]Outcome{SecurityContextName: OutcomeSkipped}},
		{name: "skips everything for skip: all when the admin lets pods skip all",
			ex: Exemptions{PodSkippable: []string{"all"}}, skip: "all", images: []string{"nginx"},
			wantOutcome: map[string]Outcome{SecurityContextName: OutcomeSkipped}},
		{name: "lets pods skip nothing when podSkippable is empty",
			ex: Exemptions{PodSkippable: []string{}}, skip: ImagePullSecretsName, images: []string{"nginx"}, wantHarden: "c0",
			wantDenied: []string{"spec.containers[0].envFrom[0]"}, wantWarning: `pods may skip only none`},
		{name: "exempts a namespace named in a rule from the policies it names",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{SecurityContextName, EnvFromKeysName}, Namespaces: []string{"team-b"}}}},
			namespace: "team-b", images: []string{"nginx"},
			wantOutcome: map[string]Outcome{SecurityContextName: OutcomeExempted, EnvFromKeysName: OutcomeExempted, MountShadowingName: OutcomePassed}},
		{name: "does not exempt another namespace",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}, Namespaces: []string{"team-b"}}}},
			namespace: "team-c", images: []string{"nginx"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"}},
		{name: "exempts a namespace by its labels",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}, NamespaceSelector: byLabel}}},
			namespace: "team-a", images: []string{"nginx"},
			wantOutcome: map[string]Outcome{SecurityContextName: OutcomeExempted, EnvFromKeysName: OutcomeExempted}},
		{name: "does not exempt a namespace whose labels podguard does not know",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}, NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "podguard.io/exempt", Operator: metav1.LabelSelectorOpDoesNotExist}}}}}},
			namespace: "team-c", images: []string{"nginx"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"}},
		{name: "does not warn about a skip the admin's rule already grants",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{SecurityContextName}, Namespaces: []string{"team-b"}}}},
			namespace: "team-b", skip: SecurityContextName, images: []string{"nginx"}, wantDenied: []string{"spec.containers[0].envFrom[0]"},
			wantOutcome: map[string]Outcome{SecurityContextName: OutcomeExempted}},
		{name: "exempts a service account by namespace/name",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{EnvFromKeysName}, ServiceAccounts: []string{"team-b/builder"}}}},
			namespace: "team-b", account: "builder", images: []string{"nginx"}, wantHarden: "c0",
			wantOutcome: map[string]Outcome{EnvFromKeysName: OutcomeExempted}},
		{name: "takes a pod without a service account as the default one",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{EnvFromKeysName}, ServiceAccounts: []string{"team-b/default"}}}},
			namespace: "team-b", images: []string{"nginx"}, wantHarden: "c0",
			wantOutcome: map[string]Outcome{EnvFromKeysName: OutcomeExempted}},
		{name: "does not exempt the same account name in another namespace",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{EnvFromKeysName}, ServiceAccounts: []string{"team-b/builder"}}}},
			namespace: "team-c", account: "builder", images: []string{"nginx"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"}},
		{name: "exempts only the containers whose image a rule names",
			ex:     Exemptions{Rules: []ExemptionRule{{Policies: []string{"all"}, Images: []string{"busybox"}}}},
			images: []string{"nginx", "busybox:1.36"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"},
			wantOutcome: map[string]Outcome{SecurityContextName: OutcomeMutated, EnvFromKeysName: OutcomeDenied}},
		{name: "leaves a pod whose every container is exempt by image unchanged",
			ex:     Exemptions{Rules: []ExemptionRule{{Policies: []string{SecurityContextName}, Images: []string{"registry.example.com/debug/*"}}}},
			images: []string{"registry.example.com/debug/netshoot:v1"}, wantDenied: []string{"spec.containers[0].envFrom[0]"},
			// Not even the pod-level seccompProfile, which the container would inherit.
			wantOutcome: map[string]Outcome{SecurityContextName: OutcomeUnchanged}},
		{name: "exempts an image only in the namespaces the same rule names",
			ex:        Exemptions{Rules: []ExemptionRule{{Policies: []string{EnvFromKeysName}, Namespaces: []string{"team-b"}, Images: []string{"busybox"}}}},
			namespace: "team-c", images: []string{"busybox"}, wantHarden: "c0", wantDenied: []string{"spec.containers[0].envFrom[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := tt.ex
			ex.Default()
			if errs := ex.Validate(field.NewPath("exemptions")); len(errs) > 0 {
				t.Fatalf("invalid exemptions: %v", errs.ToAggregate())
			}
			engine := NewEngine(defaultSettings(), WithExemptions(&ex))
			pod := testPod(tt.images...)
			pod.Namespace = "team-a"
			if tt.namespace != "" {
				pod.Namespace = tt.namespace
			}
			pod.Spec.ServiceAccountName = tt.account
			for i := range pod.Spec.Containers {
				pod.Spec.Containers[i].EnvFrom = []corev1.EnvFromSource{cmRef("bad-keys", "")}
			}
			if tt.skip != "" {
				pod.Meta.Annotations = map[string]string{SkipAnnotation: tt.skip}
			}
			res, err := engine.Check(pod, world)
			if err != nil {
				t.Fatal(err)
			}
			if got := hardened(res.Pod); got != tt.wantHarden {
				t.Errorf("hardened containers = %q, want %q", got, tt.wantHarden)
			}
			var denied []string
			for _, v := range res.Violations {
				denied = append(denied, v.Field)
			}
			if strings.Join(denied, " ") != strings.Join(tt.wantDenied, " ") {
				t.Errorf("violations at %q, want %q", denied, tt.wantDenied)
			}
			for policy, want := range tt.wantOutcome {
				if got := res.Outcomes[policy]; got != want {
					t.Errorf("outcome of %s = %q, want %q", policy, got, want)
				}
			}
			var warnings []string
			for _, w := range res.Warnings {
				if w.Policy == "podguard" {
					warnings = append(warnings, w.String())
				}
			}
			got := strings.Join(warnings, "\n")
			if tt.wantWarning == "" && got != "" || !strings.Contains(got, tt.wantWarning) {
				t.Errorf("podguard warnings = %q, want one containing %q", got, tt.wantWarning)
			}
		})
	}
}

// The findings budget applies to the findings left once the containers an
// image exemption lifts are dropped: an exempt container's findings cannot
// crowd out the non-exempt ones.
func TestImageExemptionBeforeFindingsBudget(t *testing.T) {
	world := NewSnapshot()
	world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "bad-keys"}, Data: map[string]string{"1st.key": "v"}})
	ex := Exemptions{Rules: []ExemptionRule{{Policies: []string{EnvFromKeysName}, Images: []string{"busybox"}}}}
	ex.Default()
	engine := NewEngine(defaultSettings(), WithExemptions(&ex))
	for _, exemptFirst := range []bool{true, false} {
		pod := testPod("busybox", "nginx")
		exempt, judged := &pod.Spec.Containers[0], &pod.Spec.Containers[1]
		judgedPath := "spec.containers[1].envFrom[0]"
		if !exemptFirst {
			pod = testPod("nginx", "busybox")
			exempt, judged = &pod.Spec.Containers[1], &pod.Spec.Containers[0]
			judgedPath = "spec.containers[0].envFrom[0]"
		}
		for range 10 {
			exempt.EnvFrom = append(exempt.EnvFrom, cmRef("bad-keys", ""))
		}
		judged.EnvFrom = []corev1.EnvFromSource{cmRef("bad-keys", "")}
		res, err := engine.Validate(pod, world)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Violations) != 1 || res.Violations[0].Field != judgedPath || strings.Contains(res.Violations[0].Message, "more violation") {
			t.Errorf("exempt container first=%v: violations = %v, want the one at %s, with its reason", exemptFirst, res.Violations, judgedPath)
		}
	}
	// Beyond the budget, the count is of the non-exempt findings only.
	pod := testPod("busybox", "nginx")
	for range 12 {
		pod.Spec.Containers[0].EnvFrom = append(pod.Spec.Containers[0].EnvFrom, cmRef("bad-keys", ""))
		pod.Spec.Containers[1].EnvFrom = append(pod.Spec.Containers[1].EnvFrom, cmRef("bad-keys", ""))
	}
	res, err := engine.Validate(pod, world)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) != MaxFindingsPerPolicy+1 {
		t.Fatalf("got %d violations, want %d: %v", len(res.Violations), MaxFindingsPerPolicy+1, res.Violations)
	}
	for _, v := range res.Violations {
		if strings.HasPrefix(v.Field, "spec.containers[0]") {
			t.Errorf("a finding in the exempt container: %v", v)
		}
	}
	if last := res.Violations[MaxFindingsPerPolicy]; last.Field != "spec.containers[1].envFrom[10]" || !strings.Contains(last.Message, "and 2 more violations") {
		t.Errorf("last = %v, want 2 more from spec.containers[1].envFrom[10]", last)
	}
}

// An image exemption from security-context keeps the exempt container's
// effective security context as it was: podguard sets no pod-level field
// that it would inherit, and sets it on the other containers instead.
func TestImageExemptionFromSecurityContextCoversPodLevelFields(t *testing.T) {
	ex := Exemptions{Rules: []ExemptionRule{{Policies: []string{SecurityContextName}, Images: []string{"busybox"}}}}
	ex.Default()
	// Images that run as a non-root uid, which restricted may set
	// runAsNonRoot for.
	world := imagesRunningAs(NewSnapshot(), "1000", "busybox", "nginx")
	for _, profile := range []string{ProfileBaseline, ProfileRestricted} {
		s := defaultSettings()
		s.SecurityContext.Profile = profile
		engine := NewEngine(s, WithExemptions(&ex))
		pod := testPod("busybox", "nginx")
		res, err := engine.Mutate(pod, world)
		if err != nil {
			t.Fatal(err)
		}
		out := res.Pod
		if psc := out.Spec.SecurityContext; psc != nil && (psc.SeccompProfile != nil || psc.RunAsNonRoot != nil) {
			t.Errorf("%s: pod-level fields the exempt container inherits: %+v", profile, psc)
		}
		if sc := out.Spec.Containers[0].SecurityContext; sc != nil {
			t.Errorf("%s: the exempt container was changed: %+v", profile, sc)
		}
		sc := out.Spec.Containers[1].SecurityContext
		if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || sc.AllowPrivilegeEscalation == nil {
			t.Fatalf("%s: the other container is not hardened: %+v", profile, sc)
		}
		if (profile == ProfileRestricted) != (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) {
			t.Errorf("%s: runAsNonRoot = %v", profile, sc.RunAsNonRoot)
		}
		again, err := engine.Mutate(out, world)
		if err != nil {
			t.Fatal(err)
		}
		if again.Pod != out {
			t.Errorf("%s: a second pass changed the pod", profile)
		}
		// An exempt container that runs as root does not keep the others
		// from getting runAsNonRoot.
		root := testPod("busybox", "nginx")
		root.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)}
		if res, _ := engine.Mutate(root, world); profile == ProfileRestricted {
			if sc := res.Pod.Spec.Containers[1].SecurityContext; sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) {
				t.Errorf("%s: the non-exempt container did not get runAsNonRoot next to an exempt root container: %+v", profile, sc)
			}
			if sc := res.Pod.Spec.Containers[0].SecurityContext; sc.RunAsNonRoot != nil || sc.SeccompProfile != nil {
				t.Errorf("%s: the exempt root container was changed: %+v", profile, sc)
			}
		}
		// A pod whose only container is exempt is returned as it came.
		only := testPod("busybox")
		if res, _ := engine.Mutate(only, world); res.Pod != only {
			t.Errorf("%s: a pod with only an exempt container was changed: %+v", profile, res.Pod.Spec)
		}
	}
}
