package main

import (
	"bufio"
	"os"
	"strings"
	"testing"

	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// TestServeExportsTheRuntimeSeries: the series of the Go runtime and the
// process that the shipped rules may select (deploy/testdata/
// runtime-series.txt, which hack/monitoring checks the rules against) are
// in the registry podguard serve exposes, as this binary registers it.
func TestServeExportsTheRuntimeSeries(t *testing.T) {
	f, err := os.Open("../../deploy/testdata/runtime-series.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = len(mf.GetMetric()) > 0 && len(mf.GetMetric()[0].GetLabel()) == 0
	}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		n++
		if unlabelled, ok := exported[name]; !ok || !unlabelled {
			t.Errorf("%s: serve's registry has it %v, without labels %v", name, ok, unlabelled)
		}
	}
	if n == 0 {
		t.Error("runtime-series.txt lists no series")
	}
}
