// Package v1alpha2 holds the Go types of the namespaced PolicyReport of
// wgpolicyk8s.io/v1alpha2, the policy-report API Kyverno writes by default
// and Policy Reporter reads.
//
// No Go module that podguard can depend on serves these types: the Policy
// Working Group's prototypes (sigs.k8s.io/wg-policy-prototypes) are not on
// the Go module proxy, and Kyverno and Policy Reporter keep their copies in
// their main modules, with all of their dependencies. So this package
// defines them, field for field from the CRD schema podguard vendors
// (reports/crds/wgpolicyk8s.io_policyreports.yaml, from Kyverno v1.19.1),
// which the tests of package reports validate every report against.
// ClusterPolicyReport is left out: podguard writes namespaced reports only.
//
// +k8s:deepcopy-gen=package
// +groupName=wgpolicyk8s.io
package v1alpha2
