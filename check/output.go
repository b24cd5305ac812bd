package check

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/podguard/podguard/policies"
)

// Format is an output format of podguard check.
type Format string

const (
	// FormatText is for people: a terminal or a CI log.
	FormatText Format = "text"
	// FormatJSON is the Report itself, for scripts.
	FormatJSON Format = "json"
	// FormatSARIF is SARIF 2.1.0, for GitHub code scanning.
	FormatSARIF Format = "sarif"
	// FormatJUnit is JUnit XML, for CI test dashboards.
	FormatJUnit Format = "junit"
)

// Formats lists them, for flag help and validation.
var Formats = []Format{FormatText, FormatJSON, FormatSARIF, FormatJUnit}

// Write renders the report in the format. version is podguard's version (for
// SARIF's tool.driver.version). The report is not modified.
func Write(w io.Writer, rep *Report, format Format, version string) error {
	if rep == nil {
		rep = &Report{}
	}
	var (
		out []byte
		err error
	)
	switch format {
	case FormatText:
		out = renderText(rep)
	case FormatJSON:
		out, err = renderJSON(rep)
	case FormatSARIF:
		out, err = renderSARIF(rep, version)
	case FormatJUnit:
		out, err = renderJUnit(rep)
	default:
		return fmt.Errorf("unknown output format %q: use %s", string(format), formatList())
	}
	if err != nil {
		return fmt.Errorf("rendering the %s report: %w", format, err)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("writing the %s report: %w", format, err)
	}
	return nil
}

// formatList is "text, json, sarif or junit".
func formatList() string {
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// displayFile is how a file is named outside JSON: stdin is "-" on the
// command line, which reads badly as "-:12:".
func displayFile(file string) string {
	if file == "-" || file == "" {
		return "stdin"
	}
	return file
}

// objectName is "KIND NAMESPACE/NAME", or "KIND NAME" for an object that
// does not set its namespace.
func objectName(r *Result) string {
	name := r.Name
	if name == "" {
		name = "(unnamed)"
	}
	if r.Namespace != "" {
		name = r.Namespace + "/" + name
	}
	if r.Kind == "" {
		return name
	}
	return r.Kind + " " + name
}

// position is "FILE:LINE", or "FILE" when the line is unknown.
func position(file string, line int) string {
	if line > 0 {
		return displayFile(file) + ":" + strconv.Itoa(line)
	}
	return displayFile(file)
}

// warningFinding recovers the policy, field and message of a warning, which
// the engine renders as "podguard [policy] field: message" (the form kubectl
// prints). A warning in another form is all message, from policy "podguard".
func warningFinding(w string) policies.Finding {
	rest := strings.TrimPrefix(w, "podguard ")
	if strings.HasPrefix(rest, "[") {
		if end := strings.Index(rest, "] "); end > 1 && !strings.ContainsAny(rest[1:end], " []") {
			f := policies.Finding{Policy: rest[1:end], Message: rest[end+2:]}
			// A field path has no spaces; a message without a field may
			// well contain ": " further on.
			if field, msg, ok := strings.Cut(f.Message, ": "); ok && field != "" && !strings.ContainsAny(field, " \t") {
				f.Field, f.Message = field, msg
			}
			return f
		}
	}
	return policies.Finding{Policy: engineRule, Message: w}
}

// ---- text ----

// renderText writes one block per object that has something to say, then
// input errors, then a summary line. Objects with neither violations nor
// warnings only count in the summary: with the security-context policy on
// by default nearly every pod would be mutated, and listing them all would
// bury the findings. An object that is listed also names the policies that
// would mutate it, because validations see the mutated pod and a finding
// can be about what a mutation added.
func renderText(rep *Report) []byte {
	var b bytes.Buffer
	for i := range rep.Results {
		r := &rep.Results[i]
		if len(r.Violations) == 0 && len(r.Warnings) == 0 {
			continue
		}
		marker := ""
		if r.ImageAware {
			marker = " (image-aware)"
		}
		if r.File == "" {
			// Read from a cluster: the object's name is where it is.
			fmt.Fprintf(&b, "%s%s\n", textName(objectName(r)), marker)
		} else {
			fmt.Fprintf(&b, "%s: %s%s\n", textName(position(r.File, r.Line)), textName(objectName(r)), marker)
		}
		for _, v := range r.Violations {
			fmt.Fprintf(&b, "  DENY  %s\n", indentLines(escapeControls(withLine(v, r.FieldLines).String()), 8))
		}
		for _, w := range r.Warnings {
			// "podguard " says who is speaking to kubectl users; here it
			// only pushes the policy name out of line with DENY's.
			text := strings.TrimPrefix(w, "podguard ")
			if f := warningFinding(w); f.Field != "" {
				text = withLine(f, r.FieldLines).String()
			}
			fmt.Fprintf(&b, "  WARN  %s\n", indentLines(escapeControls(text), 8))
		}
		if len(r.Mutations) > 0 {
			fmt.Fprintf(&b, "  MUTATE %s\n", strings.Join(r.Mutations, ", "))
		}
		for _, img := range r.Images {
			if img.Status != imageStatusNames[policies.ImageKnown] {
				fmt.Fprintf(&b, "  IMAGE %s %s: %s\n", textName(img.Ref), img.Status, indentLines(escapeControls(img.Reason), 8))
			}
		}
	}
	for _, w := range rep.InputWarnings {
		fmt.Fprintf(&b, "%s: warning: %s\n", textName(position(w.File, w.Line)), indentLines(escapeControls(w.Message), 4))
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(&b, "%s: error: %s\n", textName(position(e.File, e.Line)), indentLines(escapeControls(e.Message), 4))
	}
	b.WriteString(summaryLine(rep.Summary))
	b.WriteByte('\n')
	return b.Bytes()
}

// withLine adds to f's field the line of the file it is written on, when
// lines knows it: `spec.template.spec.containers[0].envFrom[0] (line 27)`.
func withLine(f policies.Finding, lines map[string]int) policies.Finding {
	if line := lines[f.Field]; line > 0 && f.Field != "" {
		f.Field += " (line " + strconv.Itoa(line) + ")"
	}
	return f
}

// textName is a file or object name as text output prints it: as it is,
// or, when it holds a control or format character (an escape sequence that
// would drive the CI log's terminal, a bidi override that reorders what it
// shows) or bytes that are not UTF-8, quoted as %q quotes it.
func textName(s string) string {
	if needsEscape(s, false) {
		return strconv.Quote(s)
	}
	return s
}

// escapeControls writes the control and format characters of a message,
// and bytes that are not UTF-8, as %q escapes them (\x1b, \u202e), keeping
// its newlines, which indentLines lays out.
func escapeControls(s string) string {
	if !needsEscape(s, true) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\n':
			b.WriteByte('\n')
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(s string, newlineOK bool) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) && !(newlineOK && r == '\n') {
			return true
		}
	}
	return false
}

// indentLines keeps a multi-line message (a YAML parser's, say) under the
// line it belongs to.
func indentLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}

// summaryLine is "checked 12 objects in 3 files: 2 denied (3 violations),
// 4 warnings, 5 would be mutated; 1 input error".
func summaryLine(s Summary) string {
	line := fmt.Sprintf("checked %s in %s", plural(s.Checked, "object"), plural(s.Files, "file"))
	if s.Files == 0 && s.Namespaces > 0 {
		line = fmt.Sprintf("checked %s in %s", plural(s.Checked, "object"), plural(s.Namespaces, "namespace"))
	}
	var parts []string
	switch {
	case s.Denied > 0:
		parts = append(parts, fmt.Sprintf("%d denied (%s)", s.Denied, plural(s.Violations, "violation")))
	case s.Checked > 0:
		parts = append(parts, "all admitted")
	}
	if s.Warnings > 0 {
		parts = append(parts, plural(s.Warnings, "warning"))
	}
	if s.Mutated > 0 {
		parts = append(parts, fmt.Sprintf("%d would be mutated", s.Mutated))
	}
	if s.ImageAware != nil {
		parts = append(parts, fmt.Sprintf("%d of %d image-aware", *s.ImageAware, s.Checked))
	}
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	if s.Errors > 0 {
		line += "; " + plural(s.Errors, "input error")
	}
	return line
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// ---- JSON ----

// renderJSON marshals the report as it is, except that absent lists are
// [] rather than null, so that consumers can iterate without a check.
// Errors keeps its omitempty: no "errors" key means no input error.
func renderJSON(rep *Report) ([]byte, error) {
	out := *rep
	out.Results = make([]Result, len(rep.Results))
	copy(out.Results, rep.Results)
	for i := range out.Results {
		r := &out.Results[i]
		if r.Violations == nil {
			r.Violations = []policies.Finding{}
		}
		if r.Warnings == nil {
			r.Warnings = []string{}
		}
		if r.Mutations == nil {
			r.Mutations = []string{}
		}
	}
	return marshalJSON(out)
}

// marshalJSON indents with two spaces, ends with a newline, and leaves <, >
// and & alone: this is a file, not HTML.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ---- SARIF ----

const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	projectURI   = "https://github.com/podguard/podguard"
	// fingerprintKey names podguard's partial fingerprint. Bump the version
	// if what is hashed changes: every alert would be new anyway.
	fingerprintKey = "podguard/v1"
	// maxSARIFResults is GitHub code scanning's hard limit on results per
	// run: above it, the whole upload is rejected.
	maxSARIFResults = 25000

	// engineRule is the rule of findings that come from podguard itself
	// rather than a policy (an unknown name in podguard.io/skip, or one
	// that pods may not skip).
	engineRule = "podguard"
	// inputRule is the rule of inputs that could not be read or parsed.
	inputRule = "input"
)

// ruleDoc describes a rule: a one-line description and the README section
// that documents it. A test checks that every registered policy has one, and
// that the anchors exist.
type ruleDoc struct {
	description string
	anchor      string
}

var ruleDocs = map[string]ruleDoc{
	policies.LogSidecarName: {
		"podguard.io/logs must name absolute log directories of existing containers, for the log sidecar that streams them",
		"log-sidecar-mutation",
	},
	policies.SecurityContextName: {
		"Security context fields the pod left unset are filled with hardened values",
		"security-context-mutation",
	},
	policies.ResourcesName: {
		"Containers without requests or limits get the configured defaults",
		"resources-mutation",
	},
	policies.ImagePullSecretsName: {
		"Images from a private registry need that registry's pull secrets",
		"image-pull-secrets-mutation",
	},
	policies.EnvFromKeysName: {
		"envFrom ConfigMap and Secret keys must be environment variable names the target kubelet keeps and a shell can read",
		"envfrom-keys-validation",
	},
	policies.MountShadowingName: {
		"configMap, secret, projected and downwardAPI volumes mounted without subPath must not turn a file's path into a directory or hide a directory the image needs",
		"mount-shadowing-validation",
	},
	engineRule: {
		"podguard's own annotations, such as podguard.io/skip, must name known policies that pods may skip",
		"the-policies",
	},
	inputRule: {
		"Every input must be a readable YAML or JSON Kubernetes manifest",
		"",
	},
}

func describeRule(id string) (description, helpURI string) {
	doc, ok := ruleDocs[id]
	if !ok {
		doc = ruleDoc{description: "podguard policy " + id, anchor: "the-policies"}
	}
	if doc.anchor == "" {
		return doc.description, projectURI
	}
	return doc.description, projectURI + "#" + doc.anchor
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations,omitempty"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
	HelpURI          string       `json:"helpUri"`
	Help             sarifMessage `json:"help"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level   string       `json:"level"`
	Message sarifMessage `json:"message"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifMessage      `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	// Properties is SARIF's property bag: with --images, whether the
	// verdict rests on the inspected images.
	Properties *sarifProperties `json:"properties,omitempty"`
}

type sarifProperties struct {
	ImageAware bool          `json:"imageAware"`
	Images     []ImageResult `json:"images,omitempty"`
}

// sarifLocation is a file and line (physicalLocation), or, for an object
// read from a cluster, the object (logicalLocations): never both.
type sarifLocation struct {
	PhysicalLocation *sarifPhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
}

// sarifLogicalLocation names a Kubernetes object: fullyQualifiedName is
// "Kind/namespace/name".
type sarifLogicalLocation struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
	Region           sarifRegion           `json:"region"`
}

type sarifArtifactLocation struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

func renderSARIF(rep *Report, version string) ([]byte, error) {
	results := sarifResults(rep)
	run := sarifRun{Results: []sarifResult{}}
	if len(results) > maxSARIFResults {
		var dropped int
		results, dropped = truncateSARIF(results, maxSARIFResults)
		run.Invocations = []sarifInvocation{{
			ExecutionSuccessful: true,
			Notifications: []sarifNotification{{
				Level: "warning",
				Message: sarifMessage{Text: fmt.Sprintf(
					"%d results left out, warnings first: GitHub code scanning rejects more than %d results per run; run podguard check with -o text to see them all",
					dropped, maxSARIFResults)},
			}},
		}}
	}
	// Rules are listed in the order they first appear, and only those that
	// appear, so that ruleIndex can be assigned in one pass.
	var rules []sarifRule
	index := map[string]int{}
	for i := range results {
		id := results[i].RuleID
		n, ok := index[id]
		if !ok {
			n = len(rules)
			index[id] = n
			desc, help := describeRule(id)
			rules = append(rules, sarifRule{
				ID:               id,
				ShortDescription: sarifMessage{Text: desc},
				HelpURI:          help,
				Help:             sarifMessage{Text: desc + ". Documentation: " + help},
			})
		}
		results[i].RuleIndex = n
		run.Results = append(run.Results, results[i])
	}
	if rules == nil {
		rules = []sarifRule{}
	}
	run.Tool.Driver = sarifDriver{
		Name:           "podguard",
		InformationURI: projectURI,
		Version:        version,
		Rules:          rules,
	}
	return marshalJSON(sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}})
}

// sarifResults has one result per violation, warning and input error, in
// input order, with RuleIndex still to be assigned.
func sarifResults(rep *Report) []sarifResult {
	var out []sarifResult
	fp := fingerprinter{}
	for i := range rep.Results {
		r := &rep.Results[i]
		uri := artifactURI(r.File)
		// Each finding points at the line of its field, or, when the
		// field is not written in the file (a mutation adds it), at its
		// deepest part that is, else at the document's start.
		lines := r.FieldLines
		locate := func(field string) []sarifLocation {
			if r.File == "" {
				return objectLocations(r)
			}
			if line, ok := lines[field]; ok {
				return sarifLocations(uri, line)
			}
			return sarifLocations(uri, r.Line)
		}
		if r.File == "" {
			uri = ""
		}
		add := func(level string, f policies.Finding) {
			text := f.Message
			if f.Field != "" {
				text = f.Field + ": " + f.Message
			}
			// The message is left out of the fingerprint: its details
			// (the offending keys, the kubelet version) may change while
			// the problem stays the same alert.
			var props *sarifProperties
			if r.Images != nil {
				props = &sarifProperties{ImageAware: r.ImageAware, Images: r.Images}
			}
			out = append(out, sarifResult{
				RuleID:              f.Policy,
				Level:               level,
				Message:             sarifMessage{Text: text},
				Locations:           locate(f.Field),
				PartialFingerprints: fp.next(uri, r.Kind, r.Namespace, r.Name, f.Policy, f.Field),
				Properties:          props,
			})
		}
		for _, v := range r.Violations {
			if v.Policy == "" {
				v.Policy = engineRule
			}
			add("error", v)
		}
		for _, w := range r.Warnings {
			add("warning", warningFinding(w))
		}
	}
	// What podguard says about reading the input itself, not about a pod.
	input := func(level, file string, line int, msg string) {
		uri := artifactURI(file)
		out = append(out, sarifResult{
			RuleID:              inputRule,
			Level:               level,
			Message:             sarifMessage{Text: msg},
			Locations:           sarifLocations(uri, line),
			PartialFingerprints: fp.next(uri, "", "", "", inputRule, msg),
		})
	}
	for _, w := range rep.InputWarnings {
		input("warning", w.File, w.Line, w.Message)
	}
	for _, e := range rep.Errors {
		input("error", e.File, e.Line, e.Message)
	}
	return out
}

// truncateSARIF keeps at most max results, errors before warnings, each in
// input order, and returns how many it dropped.
func truncateSARIF(results []sarifResult, max int) ([]sarifResult, int) {
	keepWarnings := max
	for _, r := range results {
		if r.Level == "error" {
			keepWarnings--
		}
	}
	kept := make([]sarifResult, 0, max)
	for _, r := range results {
		if len(kept) == max {
			break
		}
		if r.Level != "error" {
			if keepWarnings <= 0 {
				continue
			}
			keepWarnings--
		}
		kept = append(kept, r)
	}
	return kept, len(results) - len(kept)
}

// objectLocations locates a result read from a cluster by its object.
func objectLocations(r *Result) []sarifLocation {
	parts := []string{r.Kind, r.Namespace, r.Name}
	if r.Namespace == "" {
		parts = []string{r.Kind, r.Name}
	}
	return []sarifLocation{{LogicalLocations: []sarifLogicalLocation{{
		Name: r.Name, FullyQualifiedName: strings.Join(parts, "/"), Kind: "resource",
	}}}}
}

func sarifLocations(uri string, line int) []sarifLocation {
	return []sarifLocation{{PhysicalLocation: &sarifPhysicalLocation{
		ArtifactLocation: sarifArtifactLocation{URI: uri},
		Region:           sarifRegion{StartLine: max(line, 1)},
	}}}
}

// artifactURI is the file as a SARIF URI: the path as given, with forward
// slashes, without a leading "./", and percent-encoded where a URI needs it.
// An absolute path becomes a file:// URI, which GitHub resolves against the
// checkout.
func artifactURI(file string) string {
	if file == "-" || file == "" {
		return "stdin"
	}
	p := filepath.ToSlash(file)
	for strings.HasPrefix(p, "./") {
		p = strings.TrimLeft(p[2:], "/")
	}
	segments := strings.Split(p, "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	p = strings.Join(segments, "/")
	switch {
	case strings.HasPrefix(p, "/"):
		return "file://" + p
	case filepath.IsAbs(file): // C:/...
		return "file:///" + p
	}
	return p
}

// fingerprinter hashes what identifies a finding across runs. Two findings
// with the same identity in one run (two keys wrong at one envFrom) are
// told apart by their rank, as GitHub does in its own line hashes.
type fingerprinter map[string]int

func (fp fingerprinter) next(parts ...string) map[string]string {
	identity := strings.Join(parts, "\x00")
	fp[identity]++
	sum := sha256.Sum256([]byte(identity + "\x00" + strconv.Itoa(fp[identity])))
	return map[string]string{fingerprintKey: hex.EncodeToString(sum[:16])}
}

// ---- JUnit ----

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string `xml:"classname,attr"`
	Name      string `xml:"name,attr"`
	// Properties says, with --images, whether the verdict rests on the
	// inspected images (JUnit's test case properties, which Jenkins and
	// GitLab show).
	Properties *junitProperties `xml:"properties,omitempty"`
	Failure    *junitProblem    `xml:"failure,omitempty"`
	Error      *junitProblem    `xml:"error,omitempty"`
	SystemOut  string           `xml:"system-out,omitempty"`
}

type junitProperties struct {
	Property []junitProperty `xml:"property"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// renderJUnit has a test suite per input file (per namespace for objects
// read from a cluster), in the order they first appear, and a test case per
// object and per input error. A denied object
// has a single failure, because several per test case trip some parsers:
// its message is the first violation, its body lists them all.
func renderJUnit(rep *Report) ([]byte, error) {
	doc := junitSuites{Name: "podguard"}
	suiteOf := map[string]int{}
	suiteNamed := func(name string) *junitSuite {
		i, ok := suiteOf[name]
		if !ok {
			i = len(doc.Suites)
			suiteOf[name] = i
			doc.Suites = append(doc.Suites, junitSuite{Name: name})
		}
		return &doc.Suites[i]
	}
	suite := func(file string) *junitSuite { return suiteNamed(displayFile(file)) }
	for i := range rep.Results {
		r := &rep.Results[i]
		var s *junitSuite
		if r.File == "" {
			// Read from a cluster: a suite per namespace.
			s = suiteNamed(r.Namespace)
		} else {
			s = suite(r.File)
		}
		c := junitCase{Classname: s.Name, Name: objectName(r)}
		if len(r.Violations) > 0 {
			lines := make([]string, len(r.Violations))
			for j, v := range r.Violations {
				lines[j] = withLine(v, r.FieldLines).String()
			}
			msg := lines[0]
			if more := len(lines) - 1; more > 0 {
				msg += fmt.Sprintf(" (and %d more)", more)
			}
			c.Failure = &junitProblem{Message: msg, Type: "podguard", Body: strings.Join(lines, "\n")}
			s.Failures++
		}
		out := append([]string(nil), r.Warnings...)
		if len(r.Mutations) > 0 {
			out = append(out, "would be mutated by: "+strings.Join(r.Mutations, ", "))
		}
		if r.Images != nil {
			c.Properties = &junitProperties{Property: []junitProperty{{Name: "podguard.imageAware", Value: strconv.FormatBool(r.ImageAware)}}}
			for _, img := range r.Images {
				line := "image " + img.Ref + ": " + img.Status
				if img.Digest != "" {
					line += " " + img.Digest + " (" + img.Platform + ")"
				}
				if img.Reason != "" {
					line += ": " + img.Reason
				}
				out = append(out, line)
			}
		}
		c.SystemOut = strings.Join(out, "\n")
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, w := range rep.InputWarnings {
		// JUnit has no warnings: a passing test case that says it.
		s := suite(w.File)
		name := "input warning"
		if w.Line > 0 {
			name += " at line " + strconv.Itoa(w.Line)
		}
		s.Cases = append(s.Cases, junitCase{Classname: s.Name, Name: name, SystemOut: position(w.File, w.Line) + ": warning: " + w.Message})
		s.Tests++
	}
	for _, e := range rep.Errors {
		s := suite(e.File)
		name := "input error"
		if e.Line > 0 {
			name += " at line " + strconv.Itoa(e.Line)
		}
		s.Cases = append(s.Cases, junitCase{
			Classname: s.Name,
			Name:      name,
			Error:     &junitProblem{Message: e.Message, Type: inputRule, Body: position(e.File, e.Line) + ": " + e.Message},
		})
		s.Tests++
		s.Errors++
	}
	for _, s := range doc.Suites {
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
	}
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(append([]byte(xml.Header), b...), '\n'), nil
}
