package deploy_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const networkPolicyComponent = "network-policy" // under components/

// fillInCIDR is what the README tells users to patch in: the API server's
// source range.
const fillInCIDR = `
- target: {group: networking.k8s.io, kind: NetworkPolicy, name: podguard}
  patch: |-
    - {op: replace, path: /spec/ingress/0/from/0/ipBlock/cidr, value: 10.0.0.0/28}
`

// renderWithComponent renders, from a temporary directory, a kustomization
// that adds a component and patches to an overlay, as a user's overlay would.
func renderWithComponent(t *testing.T, overlayDir, component, patches string) *render {
	t.Helper()
	r, err := decodeRender(kustomizeWithComponent(t, overlayDir, component, patches))
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return r
}

// kustomizeWithComponent is renderWithComponent's render, not decoded.
func kustomizeWithComponent(t *testing.T, overlayDir, component, patches string) []rawObject {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(filepath.FromSlash(p))
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(dir, abs)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.ToSlash(r)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel("overlays/"+overlayDir) +
		"\ncomponents:\n- " + rel("components/"+component) + "\n"
	if patches != "" {
		k += "patches:" + patches
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := kustomize(dir)
	if err != nil {
		t.Fatalf("%v\nkustomization:\n%s", err, k)
	}
	return objs
}

// checkNetworkPolicy checks the NetworkPolicy of components/network-policy
// against the render it is part of: it selects podguard's pods; the webhook
// port (the one the webhooks' Service leads to) is open only to IP blocks
// that are CIDRs and not everything; the metrics port only to namespaces a
// selector picks; no other port, and nothing from anywhere.
func checkNetworkPolicy(r *render, p *problems) {
	d := r.deployment(p)
	if d == nil {
		return
	}
	if len(r.networkPolicies) != 1 {
		p.add("render", "", "has %d NetworkPolicies, want 1", len(r.networkPolicies))
		return
	}
	np := r.networkPolicies[0]
	ref := describe("NetworkPolicy", np.Namespace, np.Name)
	podLabels := labels.Set(d.Spec.Template.Labels)
	if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || np.Namespace != d.Namespace || sel.Empty() || !sel.Matches(podLabels) {
		p.add(ref, "spec.podSelector", "%s in namespace %s does not select the pods of %s (labels %v) alone", mustJSON(np.Spec.PodSelector), np.Namespace, deploymentRef(d), podLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		p.add(ref, "spec.policyTypes", "%q, want Ingress", np.Spec.PolicyTypes)
	}

	webhookPort, metricsPort := servicePortTargets(r, d, p)
	for i, rule := range np.Spec.Ingress {
		where := fmt.Sprintf("spec.ingress[%d]", i)
		if len(rule.Ports) == 0 {
			p.add(ref, where+".ports", "empty: the rule opens every port")
		}
		if len(rule.From) == 0 {
			p.add(ref, where+".from", "empty: the rule opens its ports to every source")
		}
		for j, port := range rule.Ports {
			pwhere := fmt.Sprintf("%s.ports[%d]", where, j)
			if port.Port == nil {
				p.add(ref, pwhere+".port", "unset: every port")
				continue
			}
			if ptr.Deref(port.EndPort, 0) != 0 {
				p.add(ref, pwhere+".endPort", "a range; name the port")
			}
			target, ok := containerPort(d, *port.Port, 0)
			if port.Port.Type == intstr.Int {
				target, ok = int(port.Port.IntVal), slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool {
					return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return int(cp.ContainerPort) == int(port.Port.IntVal) })
				})
			}
			if !ok {
				p.add(ref, pwhere+".port", "%q is no containerPort of %s", port.Port.String(), deploymentRef(d))
				continue
			}
			switch target {
			case webhookPort:
				for k, peer := range rule.From {
					fwhere := fmt.Sprintf("%s.from[%d]", where, k)
					if peer.IPBlock == nil || peer.PodSelector != nil || peer.NamespaceSelector != nil {
						p.add(ref, fwhere, "%s opens the webhook port to pods; only the API server's source range may reach it", mustJSON(peer))
						continue
					}
					_, cidr, err := net.ParseCIDR(peer.IPBlock.CIDR)
					if err != nil {
						p.add(ref, fwhere+".ipBlock.cidr", "%q is not a CIDR: fill in the API server's source range", peer.IPBlock.CIDR)
						continue
					}
					if ones, _ := cidr.Mask.Size(); ones == 0 {
						p.add(ref, fwhere+".ipBlock.cidr", "%s is every address, pods included on most network plugins", cidr)
					}
				}
			case metricsPort:
				for k, peer := range rule.From {
					ns := peer.NamespaceSelector
					if peer.IPBlock != nil || ns == nil || (len(ns.MatchLabels) == 0 && len(ns.MatchExpressions) == 0) {
						p.add(ref, fmt.Sprintf("%s.from[%d]", where, k), "%s: the metrics port is for the monitoring namespace a namespaceSelector picks, no more", mustJSON(peer))
					}
				}
			default:
				p.add(ref, pwhere+".port", "%q is container port %d, neither the webhook's (%d) nor the metrics' (%d)", port.Port.String(), target, webhookPort, metricsPort)
			}
		}
	}
}

// servicePortTargets returns the container ports the webhooks' Service port
// and the Service's port named metrics lead to.
func servicePortTargets(r *render, d *appsv1.Deployment, p *problems) (webhook, metrics int) {
	for _, h := range r.hooks() {
		s := h.clientConfig.Service
		if s == nil {
			continue
		}
		for _, svc := range r.services {
			if svc.Name != s.Name || svc.Namespace != s.Namespace {
				continue
			}
			for _, sp := range svc.Spec.Ports {
				if sp.Port == ptr.Deref(s.Port, 443) {
					webhook, _ = containerPort(d, sp.TargetPort, sp.Port)
				}
				if sp.Name == "metrics" {
					metrics, _ = containerPort(d, sp.TargetPort, sp.Port)
				}
			}
		}
	}
	if webhook == 0 {
		p.add("render", "", "the webhooks' Service port leads to no container port")
	}
	return webhook, metrics
}

func TestNetworkPolicyComponent(t *testing.T) {
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			r := renderWithComponent(t, o.dir, networkPolicyComponent, fillInCIDR)
			var p problems
			checkNetworkPolicy(r, &p)
			// The component changes nothing else the checks look at.
			p = append(p, runChecks(r, o)...)
			for _, msg := range p {
				t.Errorf("overlay %s with components/%s: %s", o.dir, networkPolicyComponent, msg)
			}
		})
	}
}

// TestNetworkPolicyPlaceholder: as shipped, the component's ipBlock is not a
// CIDR, so the API server refuses it until it is filled in (e2e's
// TestNetworkPolicyComponentApplies shows the refusal).
func TestNetworkPolicyPlaceholder(t *testing.T) {
	r := renderWithComponent(t, "opt-in", networkPolicyComponent, "")
	var p problems
	checkNetworkPolicy(r, &p)
	want := `NetworkPolicy podguard-system/podguard: spec.ingress[0].from[0].ipBlock.cidr: "FILL-IN-THE-API-SERVER-SOURCE-CIDR" is not a CIDR`
	if !slices.ContainsFunc(p, func(msg string) bool { return strings.Contains(msg, want) }) {
		t.Errorf("no problem contains %q; got:\n%s", want, strings.Join(p, "\n"))
	}
}

func TestNetworkPolicyChecksCatchBreakage(t *testing.T) {
	const ref = "NetworkPolicy podguard-system/podguard: "
	tests := []struct {
		name   string
		breaks func(np *networkingv1.NetworkPolicy, d *appsv1.Deployment)
		want   string
	}{
		{"webhook port open to every address", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.Ingress[0].From[0].IPBlock.CIDR = "0.0.0.0/0"
		}, ref + "spec.ingress[0].from[0].ipBlock.cidr: 0.0.0.0/0 is every address"},
		{"webhook port open to a namespace", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}})
		}, ref + "spec.ingress[0].from[1]: {\"namespaceSelector\":{}} opens the webhook port to pods"},
		{"metrics open to an IP block", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.Ingress[1].From = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}}
		}, ref + "spec.ingress[1].from[0]"},
		{"metrics open to every namespace", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.Ingress[1].From[0].NamespaceSelector = &metav1.LabelSelector{}
		}, "the metrics port is for the monitoring namespace"},
		{"a rule from anywhere", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.Ingress[1].From = nil
		}, ref + "spec.ingress[1].from: empty"},
		{"a rule on every port", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.Ingress[0].Ports = nil
		}, ref + "spec.ingress[0].ports: empty"},
		{"the health port opened", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.Ingress[1].Ports = append(np.Spec.Ingress[1].Ports, networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromString("health"))})
		}, `spec.ingress[1].ports[1].port: "health" is container port 8081`},
		{"the metrics port renamed in the Deployment", func(_ *networkingv1.NetworkPolicy, d *appsv1.Deployment) {
			ports := d.Spec.Template.Spec.Containers[0].Ports
			for i := range ports {
				if ports[i].Name == "metrics" {
					ports[i].Name = "https-metrics"
				}
			}
		}, ref + `spec.ingress[1].ports[0].port: "metrics" is no containerPort`},
		{"other pods selected", func(np *networkingv1.NetworkPolicy, _ *appsv1.Deployment) {
			np.Spec.PodSelector = metav1.LabelSelector{}
		}, ref + "spec.podSelector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			intact := renderWithComponent(t, "self-managed/cluster-wide", networkPolicyComponent, fillInCIDR)
			var p problems
			checkNetworkPolicy(intact, &p)
			if len(p) > 0 {
				t.Fatalf("the intact render already has problems:\n%s", strings.Join(p, "\n"))
			}
			broken := renderWithComponent(t, "self-managed/cluster-wide", networkPolicyComponent, fillInCIDR)
			tt.breaks(broken.networkPolicies[0], deploymentOf(t, broken))
			checkNetworkPolicy(broken, &p)
			if !slices.ContainsFunc(p, func(msg string) bool { return strings.Contains(msg, tt.want) }) {
				t.Errorf("no problem contains %q; got:\n%s", tt.want, strings.Join(p, "\n"))
			}
		})
	}
}
