package manifests

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
)

// summary is what a test expects of a Document: "index line item
// Kind/name (Go type)".
func summary(d Document) string {
	return fmt.Sprintf("%d %d %d %s (%T)", d.Index, d.Line, d.Item, kindName(d), d.Object)
}

// kindName is "Kind/name".
func kindName(d Document) string {
	name := ""
	if m, err := meta.Accessor(d.Object); err == nil {
		name = m.GetName()
	}
	return d.Object.GetObjectKind().GroupVersionKind().Kind + "/" + name
}

func summaries(docs []Document) []string {
	var out []string
	for _, d := range docs {
		out = append(out, summary(d))
	}
	return out
}

func messages(errs []error) []string {
	var out []string
	for _, err := range errs {
		out = append(out, err.Error())
	}
	return out
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
`

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: "1"
`

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		wantDocs  []string
		wantWarns []string
		wantErrs  []string
	}{
		{
			name:     "reads a single document",
			input:    deployment,
			wantDocs: []string{"0 1 -1 Deployment/web (*v1.Deployment)"},
		},
		{
			name:  "reads multi-document YAML with a leading separator, comments and empty documents",
			input: "---\n# Source: chart/templates/deployment.yaml\n" + deployment + "---\n---\n# only a comment\n---\n" + configMap,
			wantDocs: []string{
				"0 3 -1 Deployment/web (*v1.Deployment)",
				"1 21 -1 ConfigMap/settings (*v1.ConfigMap)",
			},
		},
		{
			name:  "counts a document's start from its first line that is not a comment or blank",
			input: "# header\n\n   # indented comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---   # separator comment\n\n# x\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: b}\n",
			wantDocs: []string{
				"0 4 -1 ConfigMap/a (*v1.ConfigMap)",
				"1 10 -1 ConfigMap/b (*v1.ConfigMap)",
			},
		},
		{
			name:  "counts lines the same with CRLF line endings",
			input: strings.ReplaceAll("# header\n---\n"+configMap+"---\n\n"+deployment, "\n", "\r\n"),
			wantDocs: []string{
				"0 3 -1 ConfigMap/settings (*v1.ConfigMap)",
				"1 11 -1 Deployment/web (*v1.Deployment)",
			},
		},
		{
			name:     "rejects content on a separator line, as kubectl does, and reads on",
			input:    configMap + "--- {apiVersion: v1, kind: Namespace, metadata: {name: team}}\n" + "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---x\n",
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)", "1 8 -1 Namespace/b (*v1.Namespace)"},
			wantErrs: []string{
				`in.yaml:7: invalid document separator "--- {apiVersion: v1, kind: Namespace, me...": only white space or a comment may follow "---" on its line (kubectl rejects it too)`,
				`in.yaml:11: invalid document separator "---x": only white space or a comment may follow "---" on its line (kubectl rejects it too)`,
			},
		},
		{
			name:      "ignores what follows a document end marker, as kubectl does, with a warning",
			input:     configMap + "...\n# comment\n" + "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n" + configMap + "...\n\n",
			wantDocs:  []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)", "1 13 -1 ConfigMap/settings (*v1.ConfigMap)"},
			wantWarns: []string{`in.yaml:7: what follows the document end marker "..." (from line 9 on) is ignored, as kubectl ignores it: start a new document with "---" instead`},
		},
		{
			name:     "does not take a --- inside a line or a block scalar for a separator",
			input:    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  x: |\n    ---\n    y\n  z: a---b\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
		},
		{
			name:     "reads a byte order mark",
			input:    "\ufeff" + configMap,
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)"},
		},
		{
			name:     "reads a JSON object",
			input:    "\n  {\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",\n \"metadata\": {\"name\": \"a\"}}\n",
			wantDocs: []string{"0 2 -1 ConfigMap/a (*v1.ConfigMap)"},
		},
		{
			name:  "reads a stream of JSON objects",
			input: "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n\n{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\"name\": \"b\"}\n}{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"c\"}}",
			wantDocs: []string{
				"0 1 -1 ConfigMap/a (*v1.ConfigMap)",
				"1 3 -1 Pod/b (*v1.Pod)",
				"2 7 -1 Namespace/c (*v1.Namespace)",
			},
		},
		{
			name:     "reports invalid JSON on its line, after the objects before it",
			input:    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\": \"v1\",\n\"kind\": \"Pod\",,\n}\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
			wantErrs: []string{`in.json:3: document 1: invalid JSON: invalid character ',' looking for beginning of object key string`},
		},
		{
			name:     "reads YAML after a JSON object, as kubectl does",
			input:    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n# YAML from here on\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)", "1 4 -1 Namespace/b (*v1.Namespace)"},
		},
		{
			name:     "reads a JSON object and a comment",
			input:    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n# the end\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
		},
		{
			name:     "reports the JSON error when what follows a JSON object is not YAML either, as kubectl does",
			input:    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\": \"v1\",\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
			wantErrs: []string{`in.json:3: document 1: invalid JSON: unexpected end of input`},
		},
		{
			name:     "reads a YAML flow mapping that is not JSON, as kubectl does",
			input:    "{apiVersion: v1, kind: ConfigMap,\n metadata: {name: a}}\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
		},
		{
			name:     "reports JSON cut short",
			input:    "{\"apiVersion\": \"v1\",\n\"kind\": \"Pod\"",
			wantErrs: []string{`in.json:2: document 0: invalid JSON: unexpected end of input`},
		},
		{
			name:  "reads the items of a List, numbered",
			input: "# a list\napiVersion: v1\nkind: List\nitems:\n- " + indent(configMap) + "- " + indent(deployment),
			wantDocs: []string{
				"0 2 0 ConfigMap/settings (*v1.ConfigMap)",
				"0 2 1 Deployment/web (*v1.Deployment)",
			},
		},
		{
			name:     "reads the items of a typed list, which may leave out apiVersion and kind",
			input:    "apiVersion: v1\nkind: ConfigMapList\nitems:\n- metadata: {name: a}\n- {}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
			wantDocs: []string{"0 1 0 ConfigMap/a (*v1.ConfigMap)", "0 1 1 ConfigMap/ (*v1.ConfigMap)", "0 1 2 ConfigMap/c (*v1.ConfigMap)"},
		},
		{
			name:     "reads the items of a List in JSON",
			input:    `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]}`,
			wantDocs: []string{"0 1 0 ConfigMap/a (*v1.ConfigMap)"},
		},
		{
			name:  "reads an empty List as nothing",
			input: "apiVersion: v1\nkind: List\nitems: []\n---\napiVersion: v1\nkind: List\n",
		},
		{
			name:     "reads a kind that ends in List but has no items as an object",
			input:    "apiVersion: example.com/v1\nkind: AllowList\nspec: {}\n",
			wantDocs: []string{"0 1 -1 AllowList/ (*unstructured.Unstructured)"},
		},
		{
			name:     "reports each bad List item on its own line, and keeps the good ones",
			input:    "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  spec:\n    containerz: []\n- kind: ConfigMap\n- " + indent(configMap),
			wantDocs: []string{"0 1 2 ConfigMap/settings (*v1.ConfigMap)"},
			wantErrs: []string{
				`in.yaml:7: document 0, item 0 (Pod): unknown field "spec.containerz"`,
				`in.yaml:8: document 0, item 1: missing apiVersion`,
			},
		},
		{
			name:     "reports a List whose items are not a list",
			input:    "apiVersion: v1\nkind: List\nitems: {}\n",
			wantErrs: []string{`in.yaml:1: document 0: items: expected a list of objects`},
		},
		{
			name:     "reports a typo in a Deployment with its file and line",
			input:    configMap + "---\n" + strings.Replace(deployment, "containers:", "contaners:", 1),
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)"},
			wantErrs: []string{`in.yaml:19: document 1 (Deployment "web"): unknown field "spec.template.spec.contaners"`},
		},
		{
			name:     "reports every unknown field, in the order they appear",
			input:    strings.Replace(strings.Replace(deployment, "image:", "imagee:", 1), "selector:", "selectr:", 1),
			wantErrs: []string{`in.yaml:6: document 0 (Deployment "web"): unknown field "spec.selectr", unknown field "spec.template.spec.containers[0].imagee"`},
		},
		{
			name:     "lists ten unknown fields at most",
			input:    "apiVersion: v1\nkind: ConfigMap\nspec:\n  a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\nj: 10\nk: 11\nl: 12\n",
			wantErrs: []string{`in.yaml:3: document 0 (ConfigMap): unknown field "spec", unknown field "b", unknown field "c", unknown field "d", unknown field "e", unknown field "f", unknown field "g", unknown field "h", unknown field "i", unknown field "j", and 2 more`},
		},
		{
			name:     "reports a value of the wrong type with its field and line",
			input:    strings.Replace(deployment, "spec:\n  selector", "spec:\n  replicas: \"two\"\n  selector", 1),
			wantErrs: []string{`in.yaml:6: document 0 (Deployment "web"): spec.replicas: expected a 32-bit integer, got a string`},
		},
		{
			name:     "reports a wrong type inside a list",
			input:    deployment + "        ports:\n        - containerPort: http\n",
			wantErrs: []string{`in.yaml:16: document 0 (Deployment "web"): spec.template.spec.containers.ports.containerPort: expected a 32-bit integer, got a string`},
		},
		{
			name:     "reports Secret data that is not a string",
			input:    "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  password: 1234\n",
			wantErrs: []string{`in.yaml:4: document 0 (Secret "s"): data: expected a base64 string, got a number`},
		},
		{
			name:     "reports a value that does not parse",
			input:    deployment + "        resources:\n          limits: {cpu: lots}\n",
			wantErrs: []string{`in.yaml:1: document 0 (Deployment "web"): quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`},
		},
		{
			name:     "ignores a directive after a document end marker without a warning",
			input:    configMap + "...\n%YAML 1.1\n---\n" + configMap,
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)", "1 10 -1 ConfigMap/settings (*v1.ConfigMap)"},
		},
		{
			name:     "rejects directives with no document after them, as kubectl does",
			input:    "%YAML 1.2\n---\n" + configMap,
			wantDocs: []string{"1 3 -1 ConfigMap/settings (*v1.ConfigMap)"},
			wantErrs: []string{"in.yaml:1: document 0: invalid YAML: found incompatible YAML document"},
		},
		{
			name:     "reads a duplicate key in YAML as kubectl does, the last value winning, with a warning",
			input:    configMap + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: z, app.kubernetes.io/name: a, app.kubernetes.io/name: b}\n  name: b\n",
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)", "1 8 -1 ConfigMap/b (*v1.ConfigMap)"},
			wantWarns: []string{
				`in.yaml:12: document 1 (ConfigMap "b"): duplicate key "metadata.labels[app.kubernetes.io/name]" (first on line 12): the last value is used, as kubectl uses it`,
				`in.yaml:13: document 1 (ConfigMap "b"): duplicate key "metadata.name" (first on line 11): the last value is used, as kubectl uses it`,
			},
		},
		{
			name:      "reads a duplicate key in an unknown kind",
			input:     "apiVersion: example.com/v1\nkind: Widget\nspec:\n  size: 1\n  size: 2\n",
			wantDocs:  []string{"0 1 -1 Widget/ (*unstructured.Unstructured)"},
			wantWarns: []string{`in.yaml:5: document 0 (Widget): duplicate key "spec.size" (first on line 4): the last value is used, as kubectl uses it`},
		},
		{
			name:     "reads a merge key and a key that overrides it without a warning, as kubectl does",
			input:    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &base {app: web, tier: front}\n  annotations:\n    <<: *base\n    tier: back\ndata:\n  tier: z\n  <<: [*base]\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
		},
		{
			name:      "reads a duplicate field in JSON as kubectl does, the last value winning whole, with a warning",
			input:     "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",\n\"metadata\": {\"name\": \"a\", \"labels\": {\"x\": \"y\"}},\n\"metadata\": {\"name\": \"b\"}}",
			wantDocs:  []string{"0 1 -1 ConfigMap/b (*v1.ConfigMap)"},
			wantWarns: []string{`in.json:3: document 0 (ConfigMap "b"): duplicate field "metadata": the last value is used, as kubectl uses it`},
		},
		{
			name:     "reads unknown kinds as unstructured, without strictness",
			input:    "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: web-tls\nspec:\n  secretName: web-tls\n  anyField: [1, 2]\n",
			wantDocs: []string{"0 1 -1 Certificate/web-tls (*unstructured.Unstructured)"},
		},
		{
			name:     "reads a version of a kind client-go does not know as unstructured",
			input:    "apiVersion: apps/v2alpha9\nkind: Deployment\nmetadata: {name: old}\nspec: {contaners: []}\n",
			wantDocs: []string{"0 1 -1 Deployment/old (*unstructured.Unstructured)"},
		},
		{
			name:     "reports a document with no kind",
			input:    configMap + "---\n" + configMap + "---\n\n# comment\napiVersion: v1\nmetadata: {name: x}\n",
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)", "1 8 -1 ConfigMap/settings (*v1.ConfigMap)"},
			wantErrs: []string{`in.yaml:17: document 2: missing kind`},
		},
		{
			name:     "reports a document with no apiVersion",
			input:    "kind: Pod\n",
			wantErrs: []string{`in.yaml:1: document 0: missing apiVersion`},
		},
		{
			name:     "reports a document with neither",
			input:    "metadata: {name: x}\n",
			wantErrs: []string{`in.yaml:1: document 0: missing apiVersion and kind`},
		},
		{
			name:     "reports a kind that is not a string",
			input:    "apiVersion: v1\nkind: 5\n",
			wantErrs: []string{`in.yaml:1: document 0: kind: expected a string, got a number`},
		},
		{
			name:     "reports an invalid apiVersion",
			input:    "apiVersion: a/b/c\nkind: Pod\n",
			wantErrs: []string{`in.yaml:1: document 0 (Pod): invalid apiVersion "a/b/c"`},
		},
		{
			name:  "reports a document that is not a mapping",
			input: "- a\n- b\n---\njust text\n---\n42\n",
			wantErrs: []string{
				`in.yaml:1: document 0: expected a Kubernetes object (a mapping with apiVersion and kind), got a list`,
				`in.yaml:4: document 1: expected a Kubernetes object (a mapping with apiVersion and kind), got a string`,
				`in.yaml:6: document 2: expected a Kubernetes object (a mapping with apiVersion and kind), got a number`,
			},
		},
		{
			name:     "reports broken YAML on the line yaml names, and keeps reading",
			input:    configMap + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a: b\n---\n" + deployment,
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)", "2 13 -1 Deployment/web (*v1.Deployment)"},
			wantErrs: []string{`in.yaml:11: document 1: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name:     "reports an unclosed quote",
			input:    "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"x\n",
			wantErrs: []string{`in.yaml:4: document 0: invalid YAML: found unexpected end of stream`},
		},
		{
			name:     "reports a tab used for indentation",
			input:    "apiVersion: v1\nkind: ConfigMap\ndata:\n\ta: x\n",
			wantErrs: []string{`in.yaml:4: document 0: invalid YAML: found character that cannot start any token`},
		},
		{
			name:     "reports a value JSON cannot hold",
			input:    "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: .inf\n",
			wantErrs: []string{`in.yaml:1: document 0: invalid YAML: unsupported value: +Inf`},
		},
		{
			name:     "reports a key that is a mapping",
			input:    "apiVersion: v1\nkind: ConfigMap\n? {a: 1}\n: b\n",
			wantErrs: []string{`in.yaml:1: document 0: invalid YAML: a key must be a string, a number or a boolean`},
		},
		{
			name:     "reads YAML the fast path leaves to yaml: anchors, aliases and merge keys",
			input:    "apiVersion: v1\nkind: ConfigMap\nmetadata: &m\n  name: a\n  labels: &l {x: z}\ndata:\n  <<: *l\n  z: \"1\"\n",
			wantDocs: []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
		},
		{
			name:  "returns nothing for empty input",
			input: "",
		},
		{
			name:  "returns nothing for comments and separators only",
			input: "\n# nothing\n---\n---\n\n",
		},
		{
			name:     "reports a control character on its line, as a binary file has",
			input:    configMap + "---\napiVersion: v1\n# \x00\x01\n",
			wantDocs: []string{"0 1 -1 ConfigMap/settings (*v1.ConfigMap)"},
			wantErrs: []string{`in.yaml:9: document 1: invalid YAML: control characters are not allowed (U+0000); is this a binary file?`},
		},
		{
			name:      "reads bytes that are not UTF-8 as U+FFFD, as kubectl does, with a warning",
			input:     "apiVersion: v1\nkind: ConfigMap\n# caf\xe9\nmetadata: {name: a}\ndata: {a: \xff\xfe}\n",
			wantDocs:  []string{"0 1 -1 ConfigMap/a (*v1.ConfigMap)"},
			wantWarns: []string{`in.yaml:3: invalid UTF-8 on line 3 and 1 more line: each bad byte is read as U+FFFD, as kubectl reads it; save the file as UTF-8`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "in.yaml"
			if isJSON([]byte(tc.input)) {
				name = "in.json"
			}
			docs, warns, errs := Parse(name, []byte(tc.input))
			if diff := cmp.Diff(tc.wantDocs, summaries(docs)); diff != "" {
				t.Errorf("documents (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWarns, warnings(warns)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantErrs, messages(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			for _, d := range docs {
				if d.File != name {
					t.Errorf("document %d: File = %q, want %q", d.Index, d.File, name)
				}
			}
		})
	}
}

func warnings(warns []Warning) []string {
	var out []string
	for _, w := range warns {
		out = append(out, w.String())
	}
	return out
}

// indent indents a document by two spaces, after its first line, to make
// it an item of a YAML list.
func indent(doc string) string {
	return strings.ReplaceAll(strings.TrimSuffix(doc, "\n"), "\n", "\n  ") + "\n"
}

func TestParseDecodesIntoClientGoTypes(t *testing.T) {
	docs, _, errs := Parse("in.yaml", []byte(deployment+"---\n"+configMap))
	if len(errs) > 0 || len(docs) != 2 {
		t.Fatalf("got %d documents, errors %v", len(docs), errs)
	}
	d, ok := docs[0].Object.(*appsv1.Deployment)
	if !ok {
		t.Fatalf("got a %T, want a *appsv1.Deployment", docs[0].Object)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "nginx" {
		t.Errorf("image = %q, want nginx", got)
	}
	if got := d.GroupVersionKind(); got != appsv1.SchemeGroupVersion.WithKind("Deployment") {
		t.Errorf("kind = %v, want apps/v1 Deployment", got)
	}
	if cm := docs[1].Object.(*corev1.ConfigMap); cm.Data["a"] != "1" {
		t.Errorf("data = %v, want a: 1", cm.Data)
	}
}

func TestParseGivesRawJSON(t *testing.T) {
	input := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n  b: 1\n  a: [x, 2.5]\n---\n" +
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n---\n" +
		"apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: p}\n"
	docs, _, errs := Parse("in.yaml", []byte(input))
	if len(errs) > 0 || len(docs) != 3 {
		t.Fatalf("got %d documents, errors %v", len(docs), errs)
	}
	want := []string{
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"a":["x",2.5],"b":1}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`,
	}
	for i, d := range docs {
		if !json.Valid(d.Raw) {
			t.Errorf("document %d: Raw is not JSON: %s", i, d.Raw)
		}
		if string(d.Raw) != want[i] {
			t.Errorf("document %d: Raw = %s, want %s", i, d.Raw, want[i])
		}
	}
	u := docs[0].Object.(*unstructured.Unstructured)
	if got, _, _ := unstructured.NestedInt64(u.Object, "spec", "b"); got != 1 {
		t.Errorf("spec.b = %d, want the int64 1", got)
	}
}

// TestParseLineNumbers checks Line against the text itself, for a stream
// mixing every way a document can start.
func TestParseLineNumbers(t *testing.T) {
	parts := []string{
		"# leading comment\n",
		"---\n",
		configMap,
		"---\n\n\n# Source: x\n   # indented\n",
		deployment,
		"--- # comment\n",
		"---\n",
		"# only comments\n",
		"---\n",
		configMap,
		"---\n",
		"\n",
		deployment,
	}
	input := strings.Join(parts, "")
	for _, eol := range []string{"\n", "\r\n"} {
		t.Run(fmt.Sprintf("with %q line endings", eol), func(t *testing.T) {
			text := strings.ReplaceAll(input, "\n", eol)
			docs, _, errs := Parse("in.yaml", []byte(text))
			if len(errs) > 0 || len(docs) != 4 {
				t.Fatalf("got %d documents, errors %v", len(docs), errs)
			}
			lines := strings.Split(text, eol)
			for i, d := range docs {
				if d.Index != i {
					t.Errorf("document %d: Index = %d", i, d.Index)
				}
				if got := lines[d.Line-1]; got != "apiVersion: v1" && got != "apiVersion: apps/v1" {
					t.Errorf("document %d: line %d is %q, want its apiVersion", i, d.Line, got)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	_, _, errs := Parse("deploy/web.yaml", []byte("a: b: c\n"))
	if len(errs) != 1 {
		t.Fatalf("got errors %v, want one", errs)
	}
	var e *Error
	if !errors.As(errs[0], &e) {
		t.Fatalf("got a %T, want a *Error", errs[0])
	}
	if e.File != "deploy/web.yaml" || e.Line != 1 {
		t.Errorf("got file %q line %d, want deploy/web.yaml line 1", e.File, e.Line)
	}

	_, _, errs = Parse("deploy/web.yaml", []byte("apiVersion: v1\nkind: Pod\nspec: {containerz: []}\n"))
	if len(errs) != 1 || !k8sruntime.IsStrictDecodingError(errors.Unwrap(errors.Unwrap(errors.Unwrap(errs[0])))) {
		t.Errorf("got %v, want an error wrapping the strict decoding error", errs)
	}
}

func TestParseRefusesLargeInput(t *testing.T) {
	defer func(old int64) { maxFileSize = old }(maxFileSize)
	maxFileSize = 16
	docs, _, errs := Parse("big.yaml", []byte(configMap))
	want := []string{"big.yaml: file is larger than 16 bytes; refusing to read it"}
	if diff := cmp.Diff(want, messages(errs)); diff != "" || len(docs) > 0 {
		t.Errorf("got %d documents, errors (-want +got):\n%s", len(docs), diff)
	}
	if !errors.Is(errs[0], errTooBig) {
		t.Errorf("error does not wrap errTooBig")
	}
}

func TestErrorMessage(t *testing.T) {
	cause := fs.ErrNotExist
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"names the file and line", &Error{File: "a.yaml", Line: 3, Err: errors.New("document 1: missing kind")}, "a.yaml:3: document 1: missing kind"},
		{"names the file alone without a line", &Error{File: "a.yaml", Err: errTooBig}, "a.yaml: file is too large"},
		{"names stdin as -", &Error{File: "-", Line: 1, Err: errors.New("x")}, "-:1: x"},
		{"unwraps to its cause", &Error{File: "a.yaml", Err: cause}, "a.yaml: file does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if !errors.Is(tc.err, tc.err.Err) {
				t.Errorf("does not unwrap to %v", tc.err.Err)
			}
		})
	}
}

// TestFieldLines: a field path is found on its line of the file, in YAML
// after other documents, in a List item and in JSON; a field that is not
// written gets the line of its deepest part that is, and a bracketed key
// may hold dots.
func TestFieldLines(t *testing.T) {
	yamlSrc := "# leading comment\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    podguard.io/logs: /logs\nspec:\n  containers:\n  - name: a\n    image: nginx\n  - name: b\n    image: busybox\n    envFrom:\n    - configMapRef: {name: c}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: q}\n  spec:\n    containers:\n    - name: a\n      image: nginx\n"
	docs, _, errs := Parse("all.yaml", []byte(yamlSrc))
	if len(errs) > 0 || len(docs) != 4 {
		t.Fatalf("%d documents, errors %v", len(docs), errs)
	}
	pod, listPod := docs[1], docs[3]
	if got := pod.FieldLines("spec.containers[1].envFrom[0]", "spec.containers[1].image", "metadata.annotations[podguard.io/logs]", "spec.containers[2].image", "spec.initContainers[0]", "status.phase"); !slices.Equal(got, []int{19, 17, 11, 13, 12, 6}) {
		t.Errorf("pod field lines = %v, want [19 17 11 13 12 6]", got)
	}
	if got := listPod.FieldLines("spec.containers[0].image"); !slices.Equal(got, []int{33}) {
		t.Errorf("List item field lines = %v, want [33]", got)
	}
	jsonSrc := "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\"name\": \"p\"},\n  \"spec\": {\n    \"containers\": [\n      {\"name\": \"a\",\n       \"image\": \"x\"}\n    ]\n  }\n}\n"
	docs, _, errs = Parse("pod.json", []byte(jsonSrc))
	if len(errs) > 0 || len(docs) != 1 {
		t.Fatalf("%d documents, errors %v", len(docs), errs)
	}
	if got := docs[0].FieldLines("spec.containers[0].image"); !slices.Equal(got, []int{8}) {
		t.Errorf("JSON field lines = %v, want [8]", got)
	}
	if got := (&Document{Line: 4}).FieldLines("spec"); !slices.Equal(got, []int{4}) {
		t.Errorf("a document not read from text: %v, want its Line", got)
	}

	// A duplicate key: the decoder keeps the last, so does the lookup. An
	// alias: the line of its use, not of the anchor's fields.
	dupSrc := "apiVersion: v1\nkind: Pod\nmetadata: {name: d}\nspec:\n  containers:\n  - name: a\n    image: nginx\n  containers:\n  - name: b\n    image: busybox\n"
	docs, _, _ = Parse("dup.yaml", []byte(dupSrc))
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	if got := docs[0].FieldLines("spec.containers[0].image"); !slices.Equal(got, []int{10}) {
		t.Errorf("duplicate key: %v, want [10], the last one's", got)
	}
	aliasSrc := "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: one}\n  spec:\n    containers:\n    - &c\n      name: a\n      image: nginx\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: two}\n  spec:\n    containers:\n    - *c\n"
	docs, _, errs = Parse("alias.yaml", []byte(aliasSrc))
	if len(errs) > 0 || len(docs) != 2 {
		t.Fatalf("%d documents, errors %v", len(docs), errs)
	}
	if got := docs[1].FieldLines("spec.containers[0].image"); !slices.Equal(got, []int{17}) {
		t.Errorf("through an alias: %v, want [17], the alias's line", got)
	}
}
