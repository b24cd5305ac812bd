//go:build e2e

package e2e

import (
	"context"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// modesConfig sets the modes in config; the namespaces' labels override
// them.
const modesConfig = `
policies:
  envFromKeys: {mode: enforce}
  mountShadowing: {mode: warn}
`

// TestModes creates the same bad pod (an envFrom ConfigMap with the key
// 1st.key, which 1.29 kubelets drop) in namespaces labelled enforce, warn
// and audit, and checks what its author sees, and what podguard records.
func TestModes(t *testing.T) {
	setKubelets(t, "v1.29.3")
	pg := runPodguard(t, "opt-in", modesConfig)
	labelled := func(labels map[string]string) map[string]string {
		out := maps.Clone(optIn)
		maps.Copy(out, labels)
		return out
	}
	enforce := newNamespace(t, "mode-enforce", labelled(map[string]string{"podguard.io/mode": "enforce"}))
	warn := newNamespace(t, "mode-warn", labelled(map[string]string{"podguard.io/mode": "warn"}))
	audit := newNamespace(t, "mode-audit", labelled(map[string]string{"podguard.io/mode": "audit"}))
	perPolicy := newNamespace(t, "mode-perpolicy", labelled(map[string]string{"podguard.io/mode": "audit", "podguard.io/mode.envfrom-keys": "enforce"}))
	typo := newNamespace(t, "mode-typo", labelled(map[string]string{"podguard.io/mode": "audits"}))
	for _, ns := range []string{enforce, warn, audit, perPolicy, typo} {
		createConfigMap(t, ns, "settings", "1st.key", "ok")
	}
	cs, warnings := clientWithWarnings(t)
	ctx := testContext(t, 3*time.Minute)
	badPod := func(ns, name string) *corev1.Pod { return pod(ns, name, "nginx:1.27", "settings") }
	envfromWarnings := func() string {
		var out []string
		for _, w := range warnings.take() {
			if strings.Contains(w, "[envfrom-keys]") {
				out = append(out, w)
			}
		}
		return strings.Join(out, "\n")
	}
	audited := `podguard_policy_outcomes_total{outcome="audited",policy="envfrom-keys",webhook="validate"}`

	t.Run("denies the pod in a namespace labelled enforce", func(t *testing.T) {
		_, err := cs.CoreV1().Pods(enforce).Create(ctx, badPod(enforce, "web"), metav1.CreateOptions{})
		deniedBy(t, err, "envfrom-keys", `"1st.key"`)
		warnings.take()
	})

	t.Run("admits the pod in a namespace labelled warn, with a warning that it would be denied under enforce", func(t *testing.T) {
		warnings.take()
		if _, err := cs.CoreV1().Pods(warn).Create(ctx, badPod(warn, "web"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("want the pod admitted: %v", err)
		}
		got := envfromWarnings()
		want := `podguard [envfrom-keys] spec.containers[0].envFrom[0]: would be denied under mode enforce (mode warn, from namespace label podguard.io/mode): ConfigMap "settings" key "1st.key"`
		if !strings.Contains(got, want) {
			t.Errorf("warnings do not contain %q:\n%s", want, got)
		}
	})

	t.Run("admits the pod silently in a namespace labelled audit, and records it in the metrics and the log", func(t *testing.T) {
		before := metricInt(t, pg.MetricsURL, audited)
		warnings.take()
		if _, err := cs.CoreV1().Pods(audit).Create(ctx, badPod(audit, "web"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("want the pod admitted: %v", err)
		}
		if got := envfromWarnings(); got != "" {
			t.Errorf("audit mode warned the pod's author:\n%s", got)
		}
		if got := metricInt(t, pg.MetricsURL, audited); got != before+1 {
			t.Errorf("%s went from %d to %d, want one more", audited, before, got)
		}
		eventually(t, 10*time.Second, "the decision line lists the audited finding", func() (bool, error) {
			log, err := os.ReadFile(pg.LogPath)
			if err != nil {
				return false, err
			}
			for _, line := range strings.Split(string(log), "\n") {
				if strings.Contains(line, audit) && strings.Contains(line, "audited") && strings.Contains(line, `{"policy":"envfrom-keys","field":"spec.containers[0].envFrom[0]"}`) {
					return true, nil
				}
			}
			return false, nil
		})
	})

	t.Run("lets the per-policy label win over the all-policies label", func(t *testing.T) {
		_, err := cs.CoreV1().Pods(perPolicy).Create(ctx, badPod(perPolicy, "web"), metav1.CreateOptions{})
		deniedBy(t, err, "envfrom-keys", `"1st.key"`)
		warnings.take()
	})

	t.Run("ignores an invalid label, keeps the config's mode, and warns naming the label", func(t *testing.T) {
		_, err := cs.CoreV1().Pods(typo).Create(ctx, badPod(typo, "web"), metav1.CreateOptions{})
		deniedBy(t, err, "envfrom-keys", `"1st.key"`) // the config's enforce
		warnings.take()
		// Warnings are never attached to a denial: a pod that passes shows it.
		if _, err := cs.CoreV1().Pods(typo).Create(ctx, pod(typo, "good", "nginx:1.27"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(warnings.take(), "\n")
		want := `podguard [podguard] namespace "` + typo + `" has label podguard.io/mode="audits", which is not a mode ("enforce", "warn", "audit"): the label is ignored`
		if !strings.Contains(got, want) {
			t.Errorf("warnings do not contain %q:\n%s", want, got)
		}
	})

	t.Run("applies a namespace label change without a restart", func(t *testing.T) {
		relabel(t, ctx, warn, "podguard.io/mode", "enforce")
		eventually(t, 20*time.Second, "the pod is denied once the namespace is labelled enforce", func() (bool, error) {
			err := cluster.Client.Create(ctx, badPod(warn, "again"), client.DryRunAll)
			return err != nil && strings.Contains(err.Error(), `admission webhook "validate.podguard.io" denied the request`), nil
		})
		relabel(t, ctx, enforce, "podguard.io/mode", "audit")
		eventually(t, 20*time.Second, "the pod is admitted once the namespace is labelled audit", func() (bool, error) {
			return cluster.Client.Create(ctx, badPod(enforce, "again"), client.DryRunAll) == nil, nil
		})
	})
}

// relabel sets one label of a namespace.
func relabel(t *testing.T, ctx context.Context, name, key, value string) {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels[key] = value
	if err := cluster.Client.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
}
