package policies

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
)

// OldestKubelet returns the oldest kubelet version among nodes
// (status.nodeInfo.kubeletVersion), or nil when no node reports a parsable
// one. unparsable, when not nil, is told of each node whose non-empty
// version could not be parsed; that node is ignored.
func OldestKubelet(nodes []corev1.Node, unparsable func(node, version string)) *version.Version {
	var oldest *version.Version
	for _, n := range nodes {
		v, err := ParseKubeVersion(n.Status.NodeInfo.KubeletVersion)
		if err != nil {
			if n.Status.NodeInfo.KubeletVersion != "" && unparsable != nil {
				unparsable(n.Name, n.Status.NodeInfo.KubeletVersion)
			}
			continue
		}
		if oldest == nil || v.LessThan(oldest) {
			oldest = v
		}
	}
	return oldest
}

// NodeArches returns the CPU architectures of nodes, one entry per node that
// reports one, sorted, as Cluster.NodeArches holds them: sorted once here,
// so that ImagePlatform only counts them on each request.
func NodeArches(nodes []corev1.Node) []string {
	arches := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if a := n.Status.NodeInfo.Architecture; a != "" {
			arches = append(arches, a)
		}
	}
	slices.Sort(arches)
	return arches
}
