package reports

import (
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"

	"github.com/podguard/podguard/config"
)

// resourceOf is the resource each API's reports are, as discovery lists it.
var resourceOf = map[string]string{
	APIOpenReports: "reports",
	APIWGPolicy:    "policyreports",
}

// Detect picks the report API for audit.reports: the configured one as it
// is (openreports.io/v1alpha1 or wgpolicyk8s.io/v1alpha2), "" for none, and
// for auto (or ""): openreports.io/v1alpha1 when the API server serves its
// reports, else wgpolicyk8s.io/v1alpha2 when it serves its policyreports,
// else "". An error is an answer discovery could not give (the caller
// should try again), never "not served". Pass a discovery client that asks
// the server (or invalidate a cached one first): CRDs come and go.
func Detect(dc discovery.DiscoveryInterface, configured string) (string, error) {
	switch configured {
	case APIOpenReports, APIWGPolicy:
		return configured, nil
	case config.ReportsNone:
		return "", nil
	case config.ReportsAuto, "":
	default:
		return "", fmt.Errorf("unknown report API %q: want %s, %s, %s or %s", configured, config.ReportsAuto, APIOpenReports, APIWGPolicy, config.ReportsNone)
	}
	for _, api := range []string{APIOpenReports, APIWGPolicy} {
		served, err := serves(dc, api, resourceOf[api])
		if err != nil {
			return "", err
		}
		if served {
			return api, nil
		}
	}
	return "", nil
}

// serves reports whether discovery lists resource in groupVersion.
func serves(dc discovery.DiscoveryInterface, groupVersion, resource string) (bool, error) {
	list, err := dc.ServerResourcesForGroupVersion(groupVersion)
	switch {
	case apierrors.IsNotFound(err), errors.Is(err, memory.ErrCacheNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discovering %s: %w", groupVersion, err)
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == resource }), nil
}
