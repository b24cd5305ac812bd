package policies

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
)

func cmRef(name, prefix string, optional ...bool) corev1.EnvFromSource {
	src := corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
	if len(optional) > 0 {
		src.ConfigMapRef.Optional = ptr.To(optional[0])
	}
	return src
}

func secretRef(name string) corev1.EnvFromSource {
	return corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
}

func TestEnvFromKeys(t *testing.T) {
	configMaps := []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "abcdocker-configmap"}, Data: map[string]string{"keyinfo": "1", "abcdockerDir": "/x", "1st.key": "v"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "clean"}, Data: map[string]string{"LOG_LEVEL": "info", "_private": "x"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "dotted"}, Data: map[string]string{"log.level": "info", "app-name": "x"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "binary"}, BinaryData: map[string][]byte{"2fa.bin": {1}}, Data: map[string]string{"OK": "1"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "binary-and-data"}, BinaryData: map[string][]byte{"2fa.bin": {1}}, Data: map[string]string{"9lives": "1"}},
	}
	secrets := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"0token": []byte("s3cret")}},
	}
	type container struct {
		init    bool
		envFrom []corev1.EnvFromSource
	}
	tests := []struct {
		name           string
		kubelet        string
		posixDeny      bool
		secrets        bool
		containers     []container
		wantViolations []string
		wantWarnings   []string
	}{
		{name: "denies a key that starts with a digit on kubelet 1.29",
			kubelet:        "v1.29.3",
			containers:     []container{{envFrom: []corev1.EnvFromSource{cmRef("abcdocker-configmap", "")}}},
			wantViolations: []string{`spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" would be skipped by the target kubelet v1.29.3: kubelets up to v1.29 skip envFrom keys that are not valid environment variable names`},
			// 1st.key is dropped, so it is not also reported as non-POSIX.
		},
		{name: "assumes the strict behaviour when the kubelet version is unknown",
			containers:     []container{{envFrom: []corev1.EnvFromSource{cmRef("abcdocker-configmap", "")}}},
			wantViolations: []string{`key "1st.key" would be skipped by the kubelet (target version unknown, so the behaviour of v1.29 and older is assumed)`},
		},
		{name: "only warns on kubelet 1.30, which passes every key through",
			kubelet:      "1.30",
			containers:   []container{{envFrom: []corev1.EnvFromSource{cmRef("abcdocker-configmap", "")}}},
			wantWarnings: []string{`spec.containers[0].envFrom[0]: ConfigMap "abcdocker-configmap" key "1st.key" is not a POSIX environment variable name`},
		},
		{name: "denies non-POSIX keys on 1.30 with posix: deny",
			kubelet: "v1.31.0", posixDeny: true,
			containers:     []container{{envFrom: []corev1.EnvFromSource{cmRef("dotted", "")}}},
			wantViolations: []string{`ConfigMap "dotted" keys "app-name", "log.level" are not POSIX environment variable names`},
		},
		{name: "warns about dotted and dashed keys the old kubelet keeps",
			kubelet:      "v1.29.0",
			containers:   []container{{envFrom: []corev1.EnvFromSource{cmRef("dotted", "")}}},
			wantWarnings: []string{`ConfigMap "dotted" keys "app-name", "log.level" are not POSIX environment variable names`},
		},
		{name: "is fixed by a prefix that starts with a letter",
			kubelet:      "v1.29.0",
			containers:   []container{{envFrom: []corev1.EnvFromSource{cmRef("abcdocker-configmap", "CFG_")}}},
			wantWarnings: []string{`key "1st.key" (with prefix "CFG_") is not a POSIX environment variable name`},
		},
		{name: "is caused by a prefix that starts with a digit",
			kubelet:        "v1.29.0",
			containers:     []container{{envFrom: []corev1.EnvFromSource{cmRef("clean", "1_")}}},
			wantViolations: []string{`ConfigMap "clean" keys "LOG_LEVEL", "_private" (with prefix "1_") would be skipped`, `Fix: change the prefix "1_"`},
		},
		// pkg/kubelet/kubelet_pods.go builds envFrom variables from
		// configMap.Data alone: binaryData never reaches the environment.
		{name: "ignores binaryData keys, which the kubelet never exports",
			kubelet:    "v1.28.0",
			containers: []container{{envFrom: []corev1.EnvFromSource{cmRef("binary", "")}}},
		},
		{name: "checks the data keys of a ConfigMap that also has binaryData",
			kubelet:        "v1.28.0",
			containers:     []container{{envFrom: []corev1.EnvFromSource{cmRef("binary-and-data", "")}}},
			wantViolations: []string{`ConfigMap "binary-and-data" key "9lives" would be skipped`},
		},
		{name: "reports every container and init container with its own path",
			kubelet: "v1.29.0",
			containers: []container{
				{init: true, envFrom: []corev1.EnvFromSource{cmRef("clean", ""), cmRef("abcdocker-configmap", "")}},
				{envFrom: []corev1.EnvFromSource{cmRef("clean", "")}},
				{envFrom: []corev1.EnvFromSource{cmRef("binary-and-data", "")}},
			},
			wantViolations: []string{`spec.initContainers[0].envFrom[1]: ConfigMap "abcdocker-configmap"`, `spec.containers[1].envFrom[0]: ConfigMap "binary-and-data"`},
		},
		{name: "allows clean keys",
			kubelet:    "v1.29.0",
			containers: []container{{envFrom: []corev1.EnvFromSource{cmRef("clean", "")}}},
		},
		{name: "warns about a ConfigMap that does not exist",
			containers:   []container{{envFrom: []corev1.EnvFromSource{cmRef("nope", "")}}},
			wantWarnings: []string{`spec.containers[0].envFrom[0]: ConfigMap "nope" was not found in namespace "team-a": the pod will stay in CreateContainerConfigError until it exists`},
		},
		{name: "accepts a missing ConfigMap marked optional",
			containers: []container{{envFrom: []corev1.EnvFromSource{cmRef("nope", "", true)}}},
		},
		{name: "ignores secretRef unless Secret checks are on",
			containers: []container{{envFrom: []corev1.EnvFromSource{secretRef("creds"), secretRef("absent")}}},
		},
		{name: "checks secretRef keys when Secret checks are on",
			secrets:        true,
			containers:     []container{{envFrom: []corev1.EnvFromSource{secretRef("creds"), secretRef("absent")}}},
			wantViolations: []string{`spec.containers[0].envFrom[0]: Secret "creds" key "0token" would be skipped`},
			wantWarnings:   []string{`spec.containers[0].envFrom[1]: Secret "absent" was not found`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			world := NewSnapshot()
			for _, cm := range configMaps {
				cm := cm.DeepCopy()
				cm.Namespace = "team-a"
				world.AddConfigMap(cm)
			}
			for _, s := range secrets {
				s := s.DeepCopy()
				s.Namespace = "team-a"
				world.AddSecret(s)
			}
			world.Versions.KubeletVersion = kubelet(tt.kubelet)
			pod := testPod()
			for _, c := range tt.containers {
				ctr := corev1.Container{Name: "c", Image: "app", EnvFrom: c.envFrom}
				if c.init {
					pod.Spec.InitContainers = append(pod.Spec.InitContainers, ctr)
				} else {
					pod.Spec.Containers = append(pod.Spec.Containers, ctr)
				}
			}
			cfg := EnvFromKeysConfig{Secrets: ptr.To(tt.secrets)}
			if tt.posixDeny {
				cfg.POSIX = POSIXDeny
			}
			cfg.defaults()
			rep := newEnvFromKeys(cfg).Validate(Input{Pod: pod, World: world})
			assertFindings(t, "violation", rep.Violations, tt.wantViolations)
			assertFindings(t, "warning", rep.Warnings, tt.wantWarnings)
		})
	}
}

func TestEnvFromKeysDenialIsActionable(t *testing.T) {
	world := NewSnapshot()
	world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "cfg"}, Data: map[string]string{"1st.key": "v"}})
	pod := testPod("app")
	pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{cmRef("cfg", "")}
	rep := newEnvFromKeys(EnvFromKeysConfig{}).Validate(Input{Pod: pod, World: world})
	if len(rep.Violations) != 1 {
		t.Fatalf("violations = %v", rep.Violations)
	}
	msg := rep.Violations[0].Message
	for _, part := range []string{
		`ConfigMap "cfg"`, `key "1st.key"`, // what
		"the container starts without them", "InvalidEnvironmentVariableNames", // what happens at run time
		"Fix: rename the keys", "prefix: CFG_", // how to fix it
	} {
		if !strings.Contains(msg, part) {
			t.Errorf("denial %q does not say %q", msg, part)
		}
	}
}

func TestEnvFromKeysConfigValidation(t *testing.T) {
	c := EnvFromKeysConfig{POSIX: "strict"}
	errs := c.validate(nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `posix: Unsupported value: "strict": supported values: "warn", "deny"`) {
		t.Errorf("errors = %v", errs)
	}
}

// assertFindings checks that got has one finding per want, in order, each
// containing its want (Field + ": " + Message).
func assertFindings(t *testing.T, kind string, got []Finding, want []string) {
	t.Helper()
	// Several wants may describe one finding (its path and its fix).
	joined := make([]string, len(got))
	for i, f := range got {
		joined[i] = f.Field + ": " + f.Message
	}
	all := strings.Join(joined, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no %s contains %q; got:\n%s", kind, w, all)
		}
	}
	if len(want) == 0 && len(got) > 0 {
		t.Errorf("unexpected %ss:\n%s", kind, all)
	}
	if len(got) > len(want) {
		t.Errorf("%d %ss, want at most %d:\n%s", len(got), kind, len(want), all)
	}
}

// TestEnvFromKeysFindingsCarryEveryKey: a denial's message lists 10 keys,
// its Keys all of them (the state guard compares them); a warning carries
// none.
func TestEnvFromKeysFindingsCarryEveryKey(t *testing.T) {
	data := map[string]string{}
	for i := range 25 {
		data[fmt.Sprintf("%02d.dropped", i)] = ""
		data[fmt.Sprintf("k%02d.dotted", i)] = ""
	}
	world := NewSnapshot()
	world.AddConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "cfg"}, Data: data})
	world.Versions = Cluster{KubeletVersion: kubelet("1.29")}
	pod := testPod("app")
	pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{cmRef("cfg", "")}
	for _, posix := range []string{POSIXWarn, POSIXDeny} {
		cfg := EnvFromKeysConfig{POSIX: posix}
		cfg.defaults()
		rep := newEnvFromKeys(cfg).Validate(Input{Pod: pod, World: world})
		wantDenials := map[string]int{POSIXWarn: 1, POSIXDeny: 2}[posix]
		if len(rep.Violations) != wantDenials {
			t.Fatalf("posix %s: %d violations, want %d: %v", posix, len(rep.Violations), wantDenials, rep.Violations)
		}
		for _, v := range rep.Violations {
			if len(v.Keys) != 25 || !strings.Contains(v.Message, "and 15 more") {
				t.Errorf("posix %s: a denial with %d keys, message %q; want all 25, the message listing 10", posix, len(v.Keys), v.Message)
			}
		}
		for _, w := range rep.Warnings {
			if w.Keys != nil {
				t.Errorf("posix %s: a warning carries keys %q", posix, w.Keys)
			}
		}
		if posix == POSIXWarn && len(rep.Warnings) != 1 {
			t.Errorf("posix warn: warnings %v, want the non-POSIX one", rep.Warnings)
		}
	}
}

// FuzzEnvNamesAgreeWithTheKubelet holds envVarName to
// validation.IsEnvVarName and posixEnvName to posixName, for any prefix
// and key; `go test` runs the seeds, `go test -fuzz` searches further.
func FuzzEnvNamesAgreeWithTheKubelet(f *testing.F) {
	parts := []string{"", ".", "..", "...", ".a", "..a", "a..", "-", "_", "a", "A", "z", "Z", "0", "9", "1a", "a1", "a.b", "a-b", "a_b",
		"a b", "a=b", "$", "é", "\x00", "\xff", "a\n", "\t", "/", ":", "@", "[", "`", "{", "~", "CFG_", "1st.key", "..data"}
	for _, p := range parts {
		for _, k := range parts {
			f.Add(p, k)
		}
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		if got, want := envVarName(prefix, key), len(validation.IsEnvVarName(prefix+key)) == 0; got != want {
			t.Errorf("envVarName(%q, %q) = %v, validation.IsEnvVarName accepts it: %v", prefix, key, got, want)
		}
		if got, want := posixEnvName(prefix, key), posixName.MatchString(prefix+key); got != want {
			t.Errorf("posixEnvName(%q, %q) = %v, posixName matches it: %v", prefix, key, got, want)
		}
	})
}
