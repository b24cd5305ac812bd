// Package framework runs podguard against a real Kubernetes control plane on
// the local machine, for the end-to-end tests in package e2e and for
// `make run`.
//
// A [Cluster] is etcd and kube-apiserver, started through controller-runtime's
// envtest, plus kube-controller-manager with the controllers that turn
// Deployments, ReplicaSets and Jobs into Pods and give every namespace its
// default ServiceAccount. There is no scheduler and no kubelet: Pods are
// admitted and stored, and stay Pending.
//
// The binaries come from the repository's bin directory (`make tools` builds
// them); nothing is ever downloaded.
//
// [StartPodguard] runs the podguard binary as a subprocess serving on
// 127.0.0.1, and [InstallWebhooks] registers the webhook configurations that
// a kustomize overlay ships, pointed at that process by URL instead of the
// in-cluster Service.
//
// Every process the package starts writes its output to a log file, never to
// the caller's stdout or stderr, and is stopped by the Stop method of the
// value that started it.
package framework
