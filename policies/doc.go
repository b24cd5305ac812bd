// Package policies holds podguard's admission policies as pure code.
//
// A policy sees a pod (or a pod template) and a read-only World: namespace
// labels, ConfigMap and Secret key names, and what the cluster's kubelets
// support. It never talks to an API server and never sees an HTTP request, so
// the same code serves the admission webhook (whose World is backed by
// informers) and `podguard check` (whose World is the manifests it was given).
//
// Mutating policies return a mutated copy of the pod; the webhook computes the
// JSON patch once, at the edge. Validating policies return violations, each
// with the policy name, a field path, what would go wrong at run time and how
// to fix it. Warnings are a separate channel.
//
// Policies run in the fixed order of Registry. Each one can be disabled in
// config and skipped per pod with the annotation podguard.io/skip.
package policies
