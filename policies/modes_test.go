package policies

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// modesWorld has namespace "ns" with the given labels, and a ConfigMap
// whose key envFrom drops on a 1.29 kubelet.
func modesWorld(labels map[string]string) *Snapshot {
	w := NewSnapshot()
	w.Versions = Cluster{KubeletVersion: kubelet("1.29")}
	w.AddNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: labels}})
	w.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bad-keys"}, Data: map[string]string{"1st.key": "v"}})
	return w
}

// badPod breaks both validating policies: an envFrom key the kubelet drops
// (envfrom-keys) and a volume over /etc (mount-shadowing).
func badPod() *Pod {
	pod := testPod("nginx")
	pod.Namespace = "ns"
	pod.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "bad-keys"}}}}}
	c := &pod.Spec.Containers[0]
	c.EnvFrom = []corev1.EnvFromSource{cmRef("bad-keys", "")}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/etc"}}
	return pod
}

func TestModes(t *testing.T) {
	type verdict struct{ denied, warned, audited []string } // policies, in order
	tests := []struct {
		name        string
		config      map[string]Mode // by policy; unset is the default
		labels      map[string]string
		want        verdict
		wantOutcome map[string]Outcome
		wantWarning string // a podguard warning containing this
	}{
		{name: "denies by default (enforce)",
			want:        verdict{denied: []string{EnvFromKeysName, MountShadowingName}},
			wantOutcome: map[string]Outcome{EnvFromKeysName: OutcomeDenied, MountShadowingName: OutcomeDenied}},
		{name: "warns for a policy the config puts in warn mode, and still denies for the other",
			config:      map[string]Mode{EnvFromKeysName: ModeWarn},
			want:        verdict{denied: []string{MountShadowingName}, warned: []string{EnvFromKeysName}},
			wantOutcome: map[string]Outcome{EnvFromKeysName: OutcomeWarned, MountShadowingName: OutcomeDenied}},
		{name: "admits silently and records the violations in audit mode",
			config:      map[string]Mode{EnvFromKeysName: ModeAudit, MountShadowingName: ModeAudit},
			want:        verdict{audited: []string{EnvFromKeysName, MountShadowingName}},
			wantOutcome: map[string]Outcome{EnvFromKeysName: OutcomeAudited, MountShadowingName: OutcomeAudited}},
		{name: "lets the namespace's mode label override the config",
			config: map[string]Mode{EnvFromKeysName: ModeAudit},
			labels: map[string]string{ModeLabel: "warn"},
			want:   verdict{warned: []string{EnvFromKeysName, MountShadowingName}}},
		{name: "lets the per-policy label win over the all-policies label",
			labels: map[string]string{ModeLabel: "audit", ModeLabelPrefix + MountShadowingName: "enforce"},
			want:   verdict{denied: []string{MountShadowingName}, audited: []string{EnvFromKeysName}}},
		{name: "lets the per-policy label override the config when there is no all-policies label",
			config: map[string]Mode{MountShadowingName: ModeAudit},
			labels: map[string]string{ModeLabelPrefix + MountShadowingName: "warn"},
			want:   verdict{denied: []string{EnvFromKeysName}, warned: []string{MountShadowingName}}},
		{name: "ignores an invalid mode label, keeps the config's mode and warns naming the label",
			config:      map[string]Mode{EnvFromKeysName: ModeWarn},
			labels:      map[string]string{ModeLabel: "enforcing"},
			want:        verdict{denied: []string{MountShadowingName}, warned: []string{EnvFromKeysName}},
			wantWarning: `namespace "ns" has label podguard.io/mode="enforcing", which is not a mode ("enforce", "warn", "audit"): the label is ignored`},
		{name: "ignores an invalid per-policy label but keeps a valid all-policies label",
			labels:      map[string]string{ModeLabel: "audit", ModeLabelPrefix + EnvFromKeysName: "off"},
			want:        verdict{audited: []string{EnvFromKeysName, MountShadowingName}},
			wantWarning: `label podguard.io/mode.envfrom-keys="off", which is not a mode`},
		{name: "warns of a per-policy label that names a mutating policy, whose denials are always enforced",
			labels:      map[string]string{ModeLabelPrefix + LogSidecarName: "audit"},
			want:        verdict{denied: []string{EnvFromKeysName, MountShadowingName}},
			wantWarning: `label podguard.io/mode.log-sidecar="audit", which names a mutating policy`},
		{name: "warns of a per-policy label that names no policy",
			labels:      map[string]string{ModeLabelPrefix + "envfrom-key": "warn"},
			want:        verdict{denied: []string{EnvFromKeysName, MountShadowingName}},
			wantWarning: `label podguard.io/mode.envfrom-key="warn", which names no policy`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Settings{EnvFromKeys: EnvFromKeysConfig{Mode: tt.config[EnvFromKeysName]}, MountShadowing: MountShadowingConfig{Mode: tt.config[MountShadowingName]}}
			s.Default()
			if errs := s.Validate(field.NewPath("policies")); len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			res, err := NewEngine(s).Check(badPod(), modesWorld(tt.labels))
			if err != nil {
				t.Fatal(err)
			}
			policiesOf := func(fs []Finding) string {
				var out []string
				for _, f := range fs {
					if f.Policy != "podguard" && f.Policy != SecurityContextName && (len(out) == 0 || out[len(out)-1] != f.Policy) {
						out = append(out, f.Policy)
					}
				}
				return strings.Join(out, ",")
			}
			for _, c := range []struct {
				what      string
				got, want string
			}{
				{"denied by", policiesOf(res.Violations), strings.Join(tt.want.denied, ",")},
				{"warned by", policiesOf(res.Warnings), strings.Join(tt.want.warned, ",")},
				{"audited by", policiesOf(res.Audited), strings.Join(tt.want.audited, ",")},
				// Warned keeps the violations warn mode let through, for the
				// background audit's reports.
				{"warned (as violations) by", policiesOf(res.Warned), strings.Join(tt.want.warned, ",")},
			} {
				if c.got != c.want {
					t.Errorf("%s %q, want %q", c.what, c.got, c.want)
				}
			}
			if res.Denied() != (len(tt.want.denied) > 0) {
				t.Errorf("Denied() = %v", res.Denied())
			}
			for _, w := range res.Warned {
				if strings.Contains(w.Message, "would be denied under mode enforce") {
					t.Errorf("Warned keeps the policy's own message, got %q", w.Message)
				}
			}
			for _, w := range res.Warnings {
				if w.Policy != "podguard" && w.Policy != SecurityContextName && !strings.Contains(w.Message, "would be denied under mode enforce (mode warn, from ") {
					t.Errorf("warning %q does not say it would be denied under enforce", w)
				}
			}
			for policy, want := range tt.wantOutcome {
				if got := res.Outcomes[policy]; got != want {
					t.Errorf("outcome of %s = %q, want %q", policy, got, want)
				}
			}
			var podguard []string
			for _, w := range res.Warnings {
				if w.Policy == "podguard" {
					podguard = append(podguard, w.String())
				}
			}
			got := strings.Join(podguard, "\n")
			if tt.wantWarning == "" && got != "" || !strings.Contains(got, tt.wantWarning) {
				t.Errorf("podguard warnings = %q, want one containing %q", got, tt.wantWarning)
			}
		})
	}
}

func TestWarnModeNamesWhereTheModeComesFrom(t *testing.T) {
	res, err := NewEngine(defaultSettings()).Validate(badPod(), modesWorld(map[string]string{ModeLabelPrefix + EnvFromKeysName: "warn"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		if w.Policy == EnvFromKeysName {
			if want := "would be denied under mode enforce (mode warn, from namespace label podguard.io/mode.envfrom-keys): "; !strings.HasPrefix(w.Message, want) {
				t.Errorf("warning %q, want it to start with %q", w.Message, want)
			}
			return
		}
	}
	t.Fatalf("no envfrom-keys warning in %v", res.Warnings)
}

func TestModeConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		s       Settings
		wantErr string
	}{
		{name: "defaults an unset mode to enforce"},
		{name: "accepts audit", s: Settings{MountShadowing: MountShadowingConfig{Mode: ModeAudit}}},
		{name: "rejects an unknown mode with its field path",
			s:       Settings{EnvFromKeys: EnvFromKeysConfig{Mode: "dryrun"}},
			wantErr: `policies.envFromKeys.mode: Unsupported value: "dryrun": supported values: "enforce", "warn", "audit"`},
		{name: "rejects an unknown mountShadowing mode with its field path",
			s:       Settings{MountShadowing: MountShadowingConfig{Mode: "Warn"}},
			wantErr: `policies.mountShadowing.mode: Unsupported value: "Warn"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			s.Default()
			errs := s.Validate(field.NewPath("policies"))
			got := ""
			if len(errs) > 0 {
				got = errs.ToAggregate().Error()
			}
			if tt.wantErr == "" && got != "" || !strings.Contains(got, tt.wantErr) {
				t.Fatalf("errors = %q, want %q", got, tt.wantErr)
			}
			if tt.wantErr == "" && (s.EnvFromKeys.Mode == "" || s.MountShadowing.Mode == "") {
				t.Errorf("modes not defaulted: %q, %q", s.EnvFromKeys.Mode, s.MountShadowing.Mode)
			}
		})
	}
}

func TestSecurityContextProfileLabel(t *testing.T) {
	dropsAll := func(p *Pod) bool {
		sc := p.Spec.Containers[0].SecurityContext
		return sc != nil && sc.Capabilities != nil && len(sc.Capabilities.Drop) > 0
	}
	tests := []struct {
		name           string
		configured     string
		label          string // "" for no label
		wantRestricted bool
		wantWarning    string
	}{
		{name: "applies the configured profile without a label", configured: ProfileBaseline},
		{name: "lets the label choose restricted over a baseline config", configured: ProfileBaseline, label: "restricted", wantRestricted: true},
		{name: "lets the label choose baseline over a restricted config", configured: ProfileRestricted, label: "baseline"},
		{name: "ignores an invalid label, keeps the configured profile and warns naming the label",
			configured: ProfileRestricted, label: "strict", wantRestricted: true,
			wantWarning: `namespace "ns" has label podguard.io/security-context-profile="strict", which is not a profile ("baseline", "restricted"): the label is ignored and the configured profile "restricted" applies`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Settings{SecurityContext: SecurityContextConfig{Profile: tt.configured}}
			s.Default()
			labels := map[string]string{}
			if tt.label != "" {
				labels[ProfileLabel] = tt.label
			}
			pod := testPod("nginx")
			pod.Namespace = "ns"
			res, err := NewEngine(s).Mutate(pod, modesWorld(labels))
			if err != nil {
				t.Fatal(err)
			}
			if got := dropsAll(res.Pod); got != tt.wantRestricted {
				t.Errorf("restricted applied = %v, want %v", got, tt.wantRestricted)
			}
			var warnings []string
			for _, w := range res.Warnings {
				if strings.Contains(w.Message, ProfileLabel) {
					warnings = append(warnings, w.String())
				}
			}
			got := strings.Join(warnings, "\n")
			if tt.wantWarning == "" && got != "" || !strings.Contains(got, tt.wantWarning) {
				t.Errorf("warnings = %q, want one containing %q", got, tt.wantWarning)
			}
		})
	}
}
