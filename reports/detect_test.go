package reports

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	discoveryfake "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
)

func served(lists ...*metav1.APIResourceList) *discoveryfake.FakeDiscovery {
	return &discoveryfake.FakeDiscovery{Fake: &clienttesting.Fake{Resources: lists}}
}

var (
	openReports = &metav1.APIResourceList{GroupVersion: APIOpenReports, APIResources: []metav1.APIResource{{Name: "reports", Namespaced: true, Kind: "Report"}, {Name: "clusterreports", Kind: "ClusterReport"}}}
	onlyCluster = &metav1.APIResourceList{GroupVersion: APIOpenReports, APIResources: []metav1.APIResource{{Name: "clusterreports", Kind: "ClusterReport"}}}
	wgPolicy    = &metav1.APIResourceList{GroupVersion: APIWGPolicy, APIResources: []metav1.APIResource{{Name: "policyreports", Namespaced: true, Kind: "PolicyReport"}}}
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name       string
		configured string
		served     []*metav1.APIResourceList
		want       string
	}{
		{"auto prefers openreports.io", "auto", []*metav1.APIResourceList{wgPolicy, openReports}, APIOpenReports},
		{"auto takes wgpolicyk8s.io when it is all there is", "auto", []*metav1.APIResourceList{wgPolicy}, APIWGPolicy},
		{"auto needs the namespaced reports", "auto", []*metav1.APIResourceList{onlyCluster, wgPolicy}, APIWGPolicy},
		{"auto finds none", "auto", nil, ""},
		{"empty is auto", "", []*metav1.APIResourceList{openReports}, APIOpenReports},
		{"none", "none", []*metav1.APIResourceList{openReports}, ""},
		{"a configured API is taken as it is", APIWGPolicy, []*metav1.APIResourceList{openReports}, APIWGPolicy},
		{"even when not served", APIOpenReports, nil, APIOpenReports},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(served(tt.served...), tt.configured)
			if err != nil || got != tt.want {
				t.Errorf("Detect(%q) = %q, %v; want %q", tt.configured, got, err, tt.want)
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	if _, err := Detect(served(), "openreports.io/v1beta1"); err == nil || !strings.Contains(err.Error(), "unknown report API") {
		t.Errorf("an unknown API: %v", err)
	}
	down := served(openReports)
	boom := errors.New("connection refused")
	down.PrependReactor("get", "resource", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, boom })
	if got, err := Detect(down, "auto"); !errors.Is(err, boom) || got != "" {
		t.Errorf("discovery failing: %q, %v; want the error", got, err)
	}
}
