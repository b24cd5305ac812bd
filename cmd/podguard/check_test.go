package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const goodPod = `apiVersion: v1
kind: Pod
metadata: {name: good, namespace: shop}
spec:
  containers:
  - {name: app, image: nginx:1.27}
`

const badDeployment = `# a ConfigMap whose key 1st.key a 1.29 kubelet drops
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {1st.key: x, ok: fine}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        envFrom: [{configMapRef: {name: settings}}]
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckCommand(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"good.yaml":        goodPod,
		"bad/deploy.yaml":  badDeployment,
		"list.json":        `{"apiVersion":"v1","kind":"List","items":[` + mustYAMLToJSON(t, goodPod) + `]}`,
		"broken.yaml":      "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n",
		"binary.yaml":      "\x00\x01\x02binary",
		"twice.yaml":       strings.Replace(goodPod, "metadata: {name: good, namespace: shop}", "metadata:\n  name: first\n  namespace: shop\n  name: good", 1),
		"empty.yaml":       "",
		"notes.txt":        "not a manifest",
		"typo/deploy.yaml": strings.Replace(badDeployment, "containers:", "contaners:", 1),
		// A manifest is not a kubelet: the mirror annotation exempts nothing
		// offline, and skip: all skips only what pods may skip.
		"bypass/deploy.yaml": strings.Replace(badDeployment, "metadata: {labels: {app: web}}",
			"metadata: {labels: {app: web}, annotations: {kubernetes.io/config.mirror: x, podguard.io/skip: all}}", 1),
		"exempt.yaml": "apiVersion: podguard.io/v1alpha1\nkind: Config\nexemptions:\n  rules:\n  - {policies: [envfrom-keys], namespaces: [shop]}\n",
	})
	in := func(names ...string) []string {
		var args []string
		for _, n := range names {
			args = append(args, "-f", filepath.Join(dir, n))
		}
		return args
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "admits a good pod with exit 0", args: in("good.yaml"), wantCode: 0, wantStdout: []string{"checked 1 object in 1 file: all admitted"}},
		{name: "rejects a Deployment that 1.29 kubelets would break, with exit 1", args: append(in("bad"), "--kubelet-version", "1.29"), wantCode: 1,
			wantStdout: []string{"deploy.yaml:7: Deployment shop/web", `DENY  [envfrom-keys] spec.template.spec.containers[0].envFrom[0] (line 18): ConfigMap "settings" key "1st.key" would be skipped by the target kubelet v1.29`}},
		{name: "admits the same Deployment on 1.30 with a warning", args: append(in("bad"), "--kubelet-version", "v1.30.2"), wantCode: 0,
			wantStdout: []string{`WARN  [envfrom-keys] spec.template.spec.containers[0].envFrom[0] (line 18): ConfigMap "settings" key "1st.key" is not a POSIX`}},
		{name: "checks a template with a mirror annotation and skip: all, and says what the skip does not skip", args: append(in("bypass"), "--kubelet-version", "1.29"), wantCode: 1,
			wantStdout: []string{`DENY  [envfrom-keys] spec.template.spec.containers[0].envFrom[0]`, `does not skip "envfrom-keys", "mount-shadowing": pods may skip only "image-pull-secrets", "log-sidecar" (exemptions.podSkippable`}},
		{name: "applies the config's exemption rules", args: append(in("bad"), "--kubelet-version", "1.29", "--config", filepath.Join(dir, "exempt.yaml")), wantCode: 0,
			wantStdout: []string{"checked 1 object in 1 file"}},
		{name: "reads a List in JSON", args: in("list.json"), wantCode: 0, wantStdout: []string{"checked 1 object in 1 file"}},
		{name: "reads stdin", args: []string{"-f", "-"}, stdin: badDeployment, wantCode: 1, wantStdout: []string{"stdin:7: Deployment shop/web"}},
		{name: "reports broken YAML with its file and line, exit 2, and still checks the rest", args: in("broken.yaml", "bad"), wantCode: 2,
			wantStdout: []string{"broken.yaml:3: error:", "Deployment shop/web", "1 input error"}},
		{name: "reports a binary file on its line", args: in("binary.yaml"), wantCode: 2, wantStdout: []string{"binary.yaml:1: error: document 0: invalid YAML: control characters are not allowed (U+0000); is this a binary file?"}},
		{name: "reads a key set twice as kubectl does, the last value winning, with a warning and exit 0", args: in("twice.yaml"), wantCode: 0,
			wantStdout: []string{`twice.yaml:6: warning: document 0 (Pod "good"): duplicate key "metadata.name" (first on line 4): the last value is used, as kubectl uses it`, "checked 1 object in 1 file: all admitted, 1 warning"}},
		{name: "reports a typo in a field with its path", args: in("typo"), wantCode: 2, wantStdout: []string{`unknown field "spec.template.spec.contaners"`}},
		{name: "fails on an input with no objects at all", args: in("empty.yaml"), wantCode: 2, wantStderr: []string{"no Kubernetes objects in"}},
		{name: "fails on a path that does not exist", args: in("missing.yaml"), wantCode: 2, wantStdout: []string{"missing.yaml"}},
		{name: "needs -f", args: nil, wantCode: 2, wantStderr: []string{"at least one -f PATH is required"}},
		{name: "rejects an unknown output format", args: append(in("good.yaml"), "-o", "yaml"), wantCode: 2, wantStderr: []string{`unknown output format "yaml"`}},
		{name: "rejects a bad kubelet version", args: append(in("good.yaml"), "--kubelet-version", "latest"), wantCode: 2, wantStderr: []string{`--kubelet-version "latest"`}},
		{name: "rejects an invalid config", args: append(in("good.yaml"), "--config", filepath.Join(dir, "notes.txt")), wantCode: 2, wantStderr: []string{"invalid config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"check"}, tt.args...), strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stdout.String()+stderr.String(), "goroutine ") {
				t.Error("a stack trace was printed")
			}
		})
	}
}

func TestCheckOutputFormats(t *testing.T) {
	dir := writeFiles(t, map[string]string{"bad.yaml": badDeployment, "good.yaml": goodPod})
	args := func(format string) []string {
		return []string{"check", "-f", filepath.Join(dir, "bad.yaml"), "-f", filepath.Join(dir, "good.yaml"), "-o", format}
	}
	var out bytes.Buffer
	if code := run(args("json"), nil, &out, &bytes.Buffer{}); code != 1 {
		t.Fatalf("json: exit %d", code)
	}
	var report struct {
		Results []struct {
			File, Kind, Namespace, Name string
			Violations                  []struct{ Policy, Field, Message string }
			Warnings                    []string
			Mutations                   []string
			FieldLines                  map[string]int
		}
		Summary map[string]int
	}
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, out.String())
	}
	if len(report.Results) != 2 || report.Results[0].Kind != "Deployment" || report.Results[0].Violations[0].Policy != "envfrom-keys" ||
		report.Results[0].Violations[0].Field != "spec.template.spec.containers[0].envFrom[0]" || report.Summary["violations"] != 1 ||
		report.Results[0].FieldLines["spec.template.spec.containers[0].envFrom[0]"] != 18 {
		t.Errorf("json report = %+v (want envfrom-keys at spec.template.spec.containers[0].envFrom[0], line 18)", report)
	}

	out.Reset()
	if code := run(args("sarif"), nil, &out, &bytes.Buffer{}); code != 1 {
		t.Fatalf("sarif: exit %d", code)
	}
	var sarif struct {
		Version string
		Runs    []struct {
			Results []struct {
				RuleID    string
				Level     string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &sarif); err != nil || sarif.Version != "2.1.0" {
		t.Fatalf("sarif: %v %s", err, out.String())
	}
	// The region is the envFrom entry's line, not the Deployment's first.
	r := sarif.Runs[0].Results[0]
	if r.RuleID != "envfrom-keys" || r.Level != "error" || r.Locations[0].PhysicalLocation.Region.StartLine != 18 ||
		!strings.HasSuffix(r.Locations[0].PhysicalLocation.ArtifactLocation.URI, "bad.yaml") {
		t.Errorf("sarif result = %+v", r)
	}

	out.Reset()
	if code := run(args("junit"), nil, &out, &bytes.Buffer{}); code != 1 {
		t.Fatalf("junit: exit %d", code)
	}
	var junit struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(out.Bytes(), &junit); err != nil || junit.Tests != 2 || junit.Failures != 1 {
		t.Errorf("junit: %v %+v\n%s", err, junit, out.String())
	}
}

func TestMutateCommand(t *testing.T) {
	tomcat := `apiVersion: apps/v1
kind: Deployment
metadata: {name: tomcat, namespace: shop}
spec:
  selector: {matchLabels: {app: tomcat}}
  template:
    metadata:
      labels: {app: tomcat}
      annotations: {podguard.io/logs: /usr/local/tomcat/logs}
    spec:
      containers:
      - {name: tomcat, image: tomcat:10}
`
	service := "# a Service comes out as it went in\napiVersion: v1\nkind: Service\nmetadata: {name: tomcat}\nspec:\n  ports: [{port: 80}]\n"
	dir := writeFiles(t, map[string]string{"app.yaml": tomcat + "---\n" + service})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"mutate", "-f", filepath.Join(dir, "app.yaml"), "--kubelet-version", "1.31"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	docs := strings.Split(stdout.String(), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("want 2 documents, got %d:\n%s", len(docs), stdout.String())
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					InitContainers []struct{ Name string }
					Containers     []struct{ Name string }
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(docs[0]), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Spec.Template.Spec.InitContainers) != 1 || d.Spec.Template.Spec.InitContainers[0].Name != "tomcat-logs" {
		t.Errorf("the template did not get the native log sidecar:\n%s", docs[0])
	}
	if !strings.Contains(docs[1], "kind: Service") || !strings.Contains(docs[1], "port: 80") {
		t.Errorf("the Service changed:\n%s", docs[1])
	}

	stdout.Reset()
	if code := run([]string{"mutate", "-f", filepath.Join(dir, "app.yaml"), "--diff"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("--diff: exit %d: %s", code, stderr.String())
	}
	diff := stdout.String()
	for _, want := range []string{"--- " + filepath.Join(dir, "app.yaml") + " (document 0, line 1)", "+++ ", "+        name: tomcat-logs", "+          allowPrivilegeEscalation: false"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff does not contain %q:\n%s", want, diff)
		}
	}
	if strings.Contains(diff, "Service") {
		t.Errorf("the diff shows the unchanged Service:\n%s", diff)
	}

	bad := strings.Replace(tomcat, "/usr/local/tomcat/logs", "logs", 1)
	dir = writeFiles(t, map[string]string{"bad.yaml": bad})
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"mutate", "-f", filepath.Join(dir, "bad.yaml")}, nil, &stdout, &stderr); code != 1 {
		t.Errorf("a mutation the webhook would reject: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), `"logs" is not an absolute path`) || !strings.Contains(stdout.String(), "podguard.io/logs: logs") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}

func mustYAMLToJSON(t *testing.T, y string) string {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

// The document lacks the empty structs the typed round trip has
// (resources: {}); the changes must still apply to it.
func TestMutateAddsBelowFieldsTheDocumentLacks(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"pod.yaml": goodPod,
		"podguard.yaml": "apiVersion: podguard.io/v1alpha1\nkind: Config\npolicies:\n  resources:\n    defaults:\n" +
			"      requests: {memory: 100Mi, cpu: \"0.5\"}\n      limits: {memory: 200Mi, cpu: \"1\"}\n",
	})
	var stdout, stderr bytes.Buffer
	code := run([]string{"mutate", "-f", filepath.Join(dir, "pod.yaml"), "--config", filepath.Join(dir, "podguard.yaml")}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var p struct {
		Spec struct {
			Containers []struct {
				Resources struct{ Requests, Limits map[string]string }
			}
		}
	}
	if err := yaml.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if r := p.Spec.Containers[0].Resources; r.Requests["memory"] != "100Mi" || r.Limits["cpu"] != "1" {
		t.Errorf("resources = %+v\n%s", r, stdout.String())
	}
}

func TestCheckReportsAnUnservedAPIVersion(t *testing.T) {
	old := "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: old}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: nginx}]\n"
	dir := writeFiles(t, map[string]string{"old.yaml": old})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-f", filepath.Join(dir, "old.yaml")}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stdout.String(), "extensions/v1beta1 Deployment is not served by current Kubernetes versions; use apps/v1") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestMutateWarnsAboutTheInput(t *testing.T) {
	dir := writeFiles(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"mutate", "-f", filepath.Join(dir, "cm.yaml")}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := `cm.yaml:5: warning: document 0 (ConfigMap "b"): duplicate key "metadata.name" (first on line 4): the last value is used, as kubectl uses it`
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
	if !strings.Contains(stdout.String(), "name: b") {
		t.Errorf("the ConfigMap is not printed with its last name:\n%s", stdout.String())
	}
}

// What podguard mutate prints must pass podguard check, for every kubelet
// (native sidecar or a regular container) and with or without the config's
// policies: on kubelets older than 1.29, check once denied mutate's output
// because podguard's own sidecar counted as a second app container.
func TestMutateOutputPassesCheck(t *testing.T) {
	app := `apiVersion: apps/v1
kind: Deployment
metadata: {name: tomcat, namespace: shop}
spec:
  selector: {matchLabels: {app: tomcat}}
  template:
    metadata:
      labels: {app: tomcat}
      annotations: {podguard.io/logs: "/usr/local/tomcat/logs,/usr/local/tomcat/temp"}
    spec:
      containers:
      - {name: tomcat, image: "10.0.0.130:5000/tomcat:10"}
---
apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: shop, annotations: {podguard.io/logs: /var/log/worker}}
spec:
  restartPolicy: Never
  containers:
  - {name: worker, image: busybox:1.37}
`
	dir := writeFiles(t, map[string]string{"app.yaml": app})
	for _, kubelet := range []string{"1.28", "1.29", "1.33"} {
		for _, cfg := range []string{"", filepath.Join(repoRoot(t), "examples", "podguard.yaml")} {
			t.Run(kubelet+" "+filepath.Base(cfg), func(t *testing.T) {
				args := []string{"--kubelet-version", kubelet}
				if cfg != "" {
					args = append(args, "--config", cfg)
				}
				var mutated, stderr bytes.Buffer
				if code := run(append([]string{"mutate", "-f", filepath.Join(dir, "app.yaml")}, args...), nil, &mutated, &stderr); code != 0 {
					t.Fatalf("mutate: exit %d: %s", code, stderr.String())
				}
				if !strings.Contains(mutated.String(), "tomcat-logs-2") {
					t.Fatalf("mutate added no second log sidecar:\n%s", mutated.String())
				}
				var out bytes.Buffer
				stderr.Reset()
				if code := run(append([]string{"check", "-f", "-"}, args...), bytes.NewReader(mutated.Bytes()), &out, &stderr); code != 0 {
					t.Errorf("check of mutate's output: exit %d\n%s%s\ninput:\n%s", code, out.String(), stderr.String(), mutated.String())
				}
			})
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// podguard check reads the modes as the webhook does: from the config and
// from the labels of the Namespace manifests it is given.
func TestCheckHonoursModes(t *testing.T) {
	ns := func(labels string) string {
		return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {" + labels + "}\n---\n"
	}
	dir := writeFiles(t, map[string]string{
		"enforce/all.yaml":   ns(`podguard.io/mode: enforce`) + badDeployment,
		"warn/all.yaml":      ns(`podguard.io/mode: warn`) + badDeployment,
		"audit/all.yaml":     ns(`podguard.io/mode: audit`) + badDeployment,
		"perpolicy/all.yaml": ns(`podguard.io/mode: audit, podguard.io/mode.envfrom-keys: enforce`) + badDeployment,
		"typo/all.yaml":      ns(`podguard.io/mode: audits`) + badDeployment,
		"unlabelled.yaml":    badDeployment,
		"audit-config.yaml":  "apiVersion: podguard.io/v1alpha1\nkind: Config\npolicies:\n  envFromKeys: {mode: audit}\n",
		"bad-config.yaml":    "apiVersion: podguard.io/v1alpha1\nkind: Config\npolicies:\n  envFromKeys: {mode: dryrun}\n",
	})
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
	}{
		{name: "denies in a namespace labelled enforce", args: []string{"-f", filepath.Join(dir, "enforce")}, wantCode: 1,
			wantStdout: []string{`DENY  [envfrom-keys] spec.template.spec.containers[0].envFrom[0]`}},
		{name: "admits with a warning that says it would be denied in a namespace labelled warn", args: []string{"-f", filepath.Join(dir, "warn")}, wantCode: 0,
			wantStdout: []string{`WARN  [envfrom-keys] spec.template.spec.containers[0].envFrom[0] (line 24): would be denied under mode enforce (mode warn, from namespace label podguard.io/mode): ConfigMap "settings" key "1st.key"`}},
		{name: "admits in a namespace labelled audit, and shows what was recorded", args: []string{"-f", filepath.Join(dir, "audit")}, wantCode: 0,
			wantStdout: []string{`WARN  [envfrom-keys] spec.template.spec.containers[0].envFrom[0] (line 24): audited (mode audit, not denied): `}},
		{name: "gives an audited finding its policy as SARIF rule", args: []string{"-f", filepath.Join(dir, "audit"), "-o", "sarif"}, wantCode: 0,
			wantStdout: []string{`"ruleId": "envfrom-keys"`, `"level": "warning"`, `spec.template.spec.containers[0].envFrom[0]: audited (mode audit, not denied): `}},
		{name: "lets a per-policy label win over the all-policies label", args: []string{"-f", filepath.Join(dir, "perpolicy")}, wantCode: 1,
			wantStdout: []string{`DENY  [envfrom-keys]`}},
		{name: "ignores an invalid label, denies as configured and names the label", args: []string{"-f", filepath.Join(dir, "typo")}, wantCode: 1,
			wantStdout: []string{`DENY  [envfrom-keys]`, `namespace "shop" has label podguard.io/mode="audits", which is not a mode`}},
		{name: "applies the config's mode where no label overrides it", args: []string{"-f", filepath.Join(dir, "unlabelled.yaml"), "--config", filepath.Join(dir, "audit-config.yaml")}, wantCode: 0,
			wantStdout: []string{`WARN  [envfrom-keys] `, `audited (mode audit, not denied)`}},
		{name: "lets a namespace label override the config's mode", args: []string{"-f", filepath.Join(dir, "enforce"), "--config", filepath.Join(dir, "audit-config.yaml")}, wantCode: 1,
			wantStdout: []string{`DENY  [envfrom-keys]`}},
		{name: "rejects a config with an unknown mode, naming its field", args: []string{"-f", filepath.Join(dir, "unlabelled.yaml"), "--config", filepath.Join(dir, "bad-config.yaml")}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"check", "--kubelet-version", "1.29"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			if tt.wantCode == 2 && !strings.Contains(stderr.String(), "policies.envFromKeys.mode") {
				t.Errorf("stderr does not name policies.envFromKeys.mode:\n%s", stderr.String())
			}
		})
	}
}
