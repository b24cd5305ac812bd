package reports

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// crdSchema is a CRD version's schema, as kube-apiserver uses it to validate
// and prune a custom resource.
type crdSchema struct {
	validator  apiservervalidation.SchemaValidator
	structural *structuralschema.Structural
}

// reportSchema is the schema of the report kind podguard writes in api.
func reportSchema(t *testing.T, api string) crdSchema {
	t.Helper()
	crds, err := CRDs(api)
	if err != nil {
		t.Fatal(err)
	}
	group, version, _ := strings.Cut(api, "/")
	for _, crd := range crds {
		if crd.Spec.Group != group || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Name != version || !v.Served || v.Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				t.Fatal(err)
			}
			structural, err := structuralschema.NewStructural(&internal)
			if err != nil {
				t.Fatal(err)
			}
			if errs := structuralschema.ValidateStructural(field.NewPath("schema"), structural); len(errs) > 0 {
				t.Fatalf("%s: not a structural schema: %v", crd.Name, errs.ToAggregate())
			}
			validator, _, err := apiservervalidation.NewSchemaValidator(&internal)
			if err != nil {
				t.Fatal(err)
			}
			return crdSchema{validator, structural}
		}
	}
	t.Fatalf("no served namespaced CRD version %s in the CRDs of %s", version, api)
	return crdSchema{}
}

// check returns what kube-apiserver would say of obj: schema violations, and
// the fields it would prune (which would make every Sync an update, since
// what it reads back would never be what it wrote).
func (s crdSchema) check(t *testing.T, obj any) (errs field.ErrorList, pruned []string) {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var u map[string]any
	if err := utiljson.Unmarshal(b, &u); err != nil { // numbers as int64, as the API server decodes them
		t.Fatal(err)
	}
	errs = apiservervalidation.ValidateCustomResource(nil, u, s.validator)
	pruned = pruning.PruneWithOptions(u, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	return errs, pruned
}

func TestReportsValidateAgainstTheCRDs(t *testing.T) {
	inputs := map[string][]Entry{
		"sample":          sampleEntries(),
		"chunked by size": manyEntries(300, 2, MaxMessageBytes),
	}
	for _, a := range api {
		s := reportSchema(t, a)
		for name, entries := range inputs {
			objs, err := Build(a, "shop", entries, t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, obj := range objs {
				errs, pruned := s.check(t, obj)
				if len(errs) > 0 {
					t.Errorf("%s, %s, %s: the CRD's schema rejects it: %v", a, name, obj.GetName(), errs.ToAggregate())
				}
				if len(pruned) > 0 {
					t.Errorf("%s, %s, %s: the API server would drop %v", a, name, obj.GetName(), pruned)
				}
			}
		}
	}
}

// TestSchemaCheckCatchesBrokenReports shows that the check above can fail.
func TestSchemaCheckCatchesBrokenReports(t *testing.T) {
	objs, err := Build(APIOpenReports, "shop", sampleEntries(), t0)
	if err != nil {
		t.Fatal(err)
	}
	r := objs[0].(*orv1alpha1.Report).DeepCopy()
	r.Results[0].Result = "failed"
	r.Results[1].Severity = "urgent"
	errs, _ := reportSchema(t, APIOpenReports).check(t, r)
	var got []string
	for _, e := range errs {
		got = append(got, e.Field+": "+string(e.Type))
	}
	want := []string{"results[0].result: FieldValueNotSupported", "results[1].severity: FieldValueNotSupported"}
	if !slices.Equal(got, want) {
		t.Errorf("errors %v, want %v", got, want)
	}

	// A field the CRD does not know is pruned.
	wg, err := Build(APIWGPolicy, "shop", sampleEntries(), t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(wg[0])
	var u map[string]any
	_ = json.Unmarshal(b, &u)
	u["source"] = "podguard" // a Report field, not a PolicyReport one
	u["results"].([]any)[0].(map[string]any)["resourceUID"] = "x"
	_, pruned := reportSchema(t, APIWGPolicy).check(t, u)
	if want := []string{"results[0].resourceUID", "source"}; !slices.Equal(pruned, want) {
		t.Errorf("pruned %v, want %v", pruned, want)
	}
}

func TestCRDs(t *testing.T) {
	for a, want := range map[string][]string{
		APIOpenReports: {"reports.openreports.io", "clusterreports.openreports.io"},
		APIWGPolicy:    {"policyreports.wgpolicyk8s.io"},
	} {
		crds, err := CRDs(a)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range crds {
			names = append(names, c.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("CRDs(%s) = %v, want %v", a, names, want)
		}
	}
	if _, err := CRDs("none"); err == nil {
		t.Error("CRDs(none) gives no error")
	}
}

const componentDir = "../deploy/components/policy-reports"

// TestVendoredCRDs: the openreports.io CRDs are the module's, unchanged but
// for the header, and the deploy component installs the same bytes.
func TestVendoredCRDs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("finding the reports-api module: %v", err)
	}
	modDir := strings.TrimSpace(string(out))
	for _, f := range crdFiles[APIOpenReports] {
		vendored, err := CRDFiles.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		deployed, err := os.ReadFile(filepath.Join(componentDir, filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(vendored, deployed) {
			t.Errorf("%s differs from reports/%s: copy it over", filepath.Join(componentDir, filepath.Base(f)), f)
		}
		original, err := os.ReadFile(filepath.Join(modDir, "config", "crd", filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(vendored, original) || !strings.Contains(string(vendored[:len(vendored)-len(original)]), "reports-api@v0.2.1") {
			t.Errorf("reports/%s is not the module's file below a header naming its version", f)
		}
	}
	for _, f := range crdFiles[APIWGPolicy] {
		if _, err := os.Stat(filepath.Join(componentDir, filepath.Base(f))); err == nil {
			t.Errorf("the component installs %s, which Kyverno owns", filepath.Base(f))
		}
	}
}

// TestComponent renders the component on an overlay: it adds the
// openreports.io CRDs and lets podguard's ServiceAccount write both APIs'
// reports, and nothing else.
func TestComponent(t *testing.T) {
	dir := t.TempDir()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(dir, a)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.ToSlash(r)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + abs("../deploy/overlays/opt-in") +
		"\ncomponents:\n- " + abs(componentDir) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, err := filepath.Abs("../deploy/overlays/opt-in")
	if err != nil {
		t.Fatal(err)
	}
	base, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), overlay)
	if err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(res.Resources()), len(base.Resources())+2; got != want {
		t.Errorf("%d objects with the component, want %d (the overlay's and 2 CRDs; the RBAC to write reports is the base's)", got, want)
	}
	var crds []string
	var role *rbacv1.ClusterRole
	var binding *rbacv1.ClusterRoleBinding
	for _, r := range res.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.GetKind() == "CustomResourceDefinition":
			crds = append(crds, r.GetName())
		case r.GetKind() == "ClusterRole" && r.GetName() == "podguard-policy-reports":
			role = &rbacv1.ClusterRole{}
			if err := yaml.UnmarshalStrict(y, role); err != nil {
				t.Fatal(err)
			}
		case r.GetKind() == "ClusterRoleBinding" && r.GetName() == "podguard-policy-reports":
			binding = &rbacv1.ClusterRoleBinding{}
			if err := yaml.UnmarshalStrict(y, binding); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(crds)
	if want := []string{"clusterreports.openreports.io", "reports.openreports.io"}; !slices.Equal(crds, want) {
		t.Errorf("CRDs %v, want %v", crds, want)
	}
	if role == nil || binding == nil {
		t.Fatal("no ClusterRole or ClusterRoleBinding podguard-policy-reports")
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{"openreports.io"}, Resources: []string{"reports"}, Verbs: verbs},
		{APIGroups: []string{"wgpolicyk8s.io"}, Resources: []string{"policyreports"}, Verbs: verbs},
	}
	if !slices.EqualFunc(role.Rules, want, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs) && len(a.ResourceNames) == 0 && len(a.NonResourceURLs) == 0
	}) {
		t.Errorf("rules %+v, want %+v", role.Rules, want)
	}
	if binding.RoleRef.Name != role.Name || binding.RoleRef.Kind != "ClusterRole" || len(binding.Subjects) != 1 ||
		binding.Subjects[0] != (rbacv1.Subject{Kind: "ServiceAccount", Name: "podguard", Namespace: "podguard-system"}) {
		t.Errorf("binding %+v", binding)
	}
}
