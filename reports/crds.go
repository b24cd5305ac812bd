package reports

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"path"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// CRDFiles holds the CRDs of both report APIs, vendored from the Go modules
// that define them (each file's header names its module and version):
// openreports.io's Report and ClusterReport from
// github.com/openreports/reports-api, wgpolicyk8s.io's PolicyReport from
// github.com/kyverno/kyverno. deploy/components/policy-reports installs
// byte-identical copies of the openreports.io ones (a test checks).
//
//go:embed crds/*.yaml
var CRDFiles embed.FS

// crdFiles are the files of each API's CRDs in CRDFiles.
var crdFiles = map[string][]string{
	APIOpenReports: {"crds/openreports.io_reports.yaml", "crds/openreports.io_clusterreports.yaml"},
	APIWGPolicy:    {"crds/wgpolicyk8s.io_policyreports.yaml"},
}

// CRDs returns the CRDs of api (APIOpenReports or APIWGPolicy), to install
// in a test or development cluster.
func CRDs(api string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, ok := crdFiles[api]
	if !ok {
		return nil, fmt.Errorf("unknown report API %q", api)
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		b, err := CRDFiles.ReadFile(f)
		if err != nil {
			return nil, err
		}
		crd, err := decodeCRD(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Base(f), err)
		}
		out = append(out, crd)
	}
	return out, nil
}

// decodeCRD decodes the one CRD of a YAML file.
func decodeCRD(b []byte) (*apiextensionsv1.CustomResourceDefinition, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var crd *apiextensionsv1.CustomResourceDefinition
	for {
		var c apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&c); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if c.Kind == "" {
			continue // an empty document
		}
		if crd != nil {
			return nil, fmt.Errorf("more than one document")
		}
		if c.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("a %s, not a CustomResourceDefinition", c.Kind)
		}
		crd = &c
	}
	if crd == nil {
		return nil, fmt.Errorf("no CustomResourceDefinition")
	}
	return crd, nil
}
