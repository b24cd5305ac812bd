package reports

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
	wgv1alpha2 "github.com/podguard/podguard/reports/wgpolicy/v1alpha2"
)

// The report APIs podguard writes, as audit.reports names them.
const (
	APIOpenReports = config.ReportsOpenReports // openreports.io/v1alpha1 Report
	APIWGPolicy    = config.ReportsWGPolicy    // wgpolicyk8s.io/v1alpha2 PolicyReport
)

// What marks podguard's reports.
const (
	// Source is the source of every result (and of a Report).
	Source = "podguard"
	// ManagedByLabel, set to ManagedBy, labels every report podguard writes;
	// Sync and Load find them by it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "podguard"
	// Name is the name of a namespace's first report; the next ones are
	// Name-2, Name-3, ...
	Name = "podguard"
)

// Bounds of one report object. etcd takes requests of at most 1.5 MiB; a
// report stays well under it.
const (
	MaxResultsPerReport     = 1000
	MaxResultBytesPerReport = 700 << 10
	// MaxMessageBytes bounds a result's message (the policies already cut
	// theirs to this length).
	MaxMessageBytes = policies.MaxMessageBytes
	// maxFieldBytes bounds a result's field path.
	maxFieldBytes = 1024
)

// Property names of a result.
const (
	PropertyField    = "field"
	PropertyMode     = "mode"
	PropertyResultID = "resultID" // Policy Reporter's name for a result's own ID
)

// Status of a result.
type Status string

// Statuses, as both APIs define them.
const (
	StatusPass  Status = "pass"  // the policy ran and found nothing
	StatusFail  Status = "fail"  // the policy found a violation
	StatusWarn  Status = "warn"  // the policy found something that is not scored
	StatusError Status = "error" // the policy could not judge the object
	StatusSkip  Status = "skip"  // the policy did not apply
)

var statuses = []Status{StatusPass, StatusFail, StatusWarn, StatusError, StatusSkip}

// Severities, as both APIs define them.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityInfo     = "info"
)

var severities = []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo}

// SeverityFor is the severity of a policy's results: high for the
// validating policies, whose violations break a pod at run time without
// anything failing at admission (environment variables dropped, a directory
// of the image hidden); medium for the others, whose denials stop a pod
// that would not work as asked (a log sidecar annotation that cannot be
// honoured, an image that runs as root under runAsNonRoot).
func SeverityFor(policy string) string {
	if slices.Contains(policies.ValidatingNames(), policy) {
		return SeverityHigh
	}
	return SeverityMedium
}

// Result is what one policy found about one object.
type Result struct {
	Policy string // e.g. "envfrom-keys"
	// Rule names the rule within the policy; podguard's policies have none,
	// so "" means the policy's name again.
	Rule   string
	Status Status
	// Severity is one of critical, high, medium, low, info; "" means
	// SeverityFor(Policy).
	Severity string
	Field    string // field path, e.g. spec.template.spec.containers[0].envFrom[0]
	Message  string
	// Mode is how admission treats a violation in the object's namespace:
	// enforce, warn or audit ("" for a pass).
	Mode string
}

// Entry is an object and what the policies found about it.
type Entry struct {
	// Resource is the workload (or bare Pod): APIVersion, Kind, Namespace,
	// Name and UID.
	Resource corev1.ObjectReference
	Results  []Result
}

// FailResult is the result of a violation found in the given mode.
func FailResult(f policies.Finding, mode policies.Mode) Result {
	return Result{Policy: f.Policy, Status: StatusFail, Field: f.Field, Message: f.Message, Mode: string(mode)}
}

// PassResult is the result of a validating policy that found nothing.
func PassResult(policy string) Result {
	return Result{Policy: policy, Status: StatusPass}
}

// item is a result in the form both APIs share.
type item struct {
	Source     string
	Policy     string
	Rule       string
	Category   string
	Severity   string
	Result     string
	Scored     bool
	Resources  []corev1.ObjectReference
	Message    string
	Properties map[string]string
	Timestamp  metav1.Timestamp
}

// contentKey identifies an item's content, its timestamp aside.
func (it item) contentKey() string {
	it.Timestamp = metav1.Timestamp{}
	b, _ := json.Marshal(it) // a struct of strings, maps and slices: no error
	return string(b)
}

// summary counts items by status.
type summary struct{ Pass, Fail, Warn, Error, Skip int }

func summarize(items []item) summary {
	var s summary
	for _, it := range items {
		switch Status(it.Result) {
		case StatusPass:
			s.Pass++
		case StatusFail:
			s.Fail++
		case StatusWarn:
			s.Warn++
		case StatusError:
			s.Error++
		case StatusSkip:
			s.Skip++
		}
	}
	return s
}

// Build turns one namespace's entries into the report objects to write, in
// api (APIOpenReports or APIWGPolicy): *v1alpha1.Report of
// github.com/openreports/reports-api, or *v1alpha2.PolicyReport of
// reports/wgpolicy. The output depends on nothing but the arguments: entries
// are sorted by kind, name (then API version and UID), each entry's results
// by policy, field (then status, rule, message, mode), and exact duplicates
// dropped. Every result gets the timestamp now; Writer.Sync keeps the
// timestamps of results it finds unchanged. Entries without results, and so
// no entries at all, give no objects.
func Build(api, namespace string, entries []Entry, now time.Time) ([]client.Object, error) {
	if api != APIOpenReports && api != APIWGPolicy {
		return nil, fmt.Errorf("unknown report API %q: want %s or %s", api, APIOpenReports, APIWGPolicy)
	}
	if namespace == "" {
		return nil, fmt.Errorf("no namespace: podguard's reports are namespaced")
	}
	ts := metav1.Timestamp{Seconds: now.Unix()}

	entries = slices.Clone(entries)
	slices.SortStableFunc(entries, func(a, b Entry) int {
		return cmp.Or(
			cmp.Compare(a.Resource.Kind, b.Resource.Kind),
			cmp.Compare(a.Resource.Name, b.Resource.Name),
			cmp.Compare(a.Resource.APIVersion, b.Resource.APIVersion),
			cmp.Compare(a.Resource.UID, b.Resource.UID),
		)
	})

	var groups [][]item // one per entry with results
	for i, e := range entries {
		ref, err := resourceRef(e.Resource, namespace)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		results := make([]Result, 0, len(e.Results))
		for j, r := range e.Results {
			r, err := normalize(r)
			if err != nil {
				return nil, fmt.Errorf("entry %d (%s %s): result %d: %w", i, ref.Kind, ref.Name, j, err)
			}
			results = append(results, r)
		}
		slices.SortFunc(results, func(a, b Result) int {
			return cmp.Or(
				cmp.Compare(a.Policy, b.Policy),
				cmp.Compare(a.Field, b.Field),
				cmp.Compare(a.Status, b.Status),
				cmp.Compare(a.Rule, b.Rule),
				cmp.Compare(a.Message, b.Message),
				cmp.Compare(a.Mode, b.Mode),
				cmp.Compare(a.Severity, b.Severity),
			)
		})
		results = slices.Compact(results)
		if len(results) == 0 {
			continue
		}
		group := make([]item, len(results))
		for j, r := range results {
			group[j] = toItem(ref, r, ts)
		}
		groups = append(groups, group)
	}

	var objs []client.Object
	for i, chunk := range chunk(api, groups) {
		if len(chunk) == 0 {
			continue // a hash bucket nothing fell in
		}
		name := Name
		if i > 0 {
			name = Name + "-" + strconv.Itoa(i+1)
		}
		objs = append(objs, encode(api, namespace, name, chunk))
	}
	return objs, nil
}

// resourceRef checks an entry's object reference and fills in its namespace.
func resourceRef(ref corev1.ObjectReference, namespace string) (corev1.ObjectReference, error) {
	if ref.Kind == "" || ref.Name == "" {
		return ref, fmt.Errorf("resource %q of kind %q: kind and name are required", ref.Name, ref.Kind)
	}
	switch ref.Namespace {
	case "":
		ref.Namespace = namespace
	case namespace:
	default:
		return ref, fmt.Errorf("%s %s/%s is not in namespace %s, whose reports are being built", ref.Kind, ref.Namespace, ref.Name, namespace)
	}
	// Only what identifies the object: a resourceVersion or field path
	// would make the report change whenever the object does.
	return corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID}, nil
}

// normalize checks a result, fills in its defaults and cuts its strings to
// valid UTF-8 of bounded length (what the API server would store anyway, so
// that what Sync compares is what it reads back).
func normalize(r Result) (Result, error) {
	r.Policy = strings.ToValidUTF8(r.Policy, "\uFFFD")
	if r.Policy == "" {
		return r, fmt.Errorf("no policy")
	}
	if !slices.Contains(statuses, r.Status) {
		return r, fmt.Errorf("policy %s: status %q is not one of %v", r.Policy, r.Status, statuses)
	}
	if r.Rule == "" {
		r.Rule = r.Policy
	}
	r.Rule = strings.ToValidUTF8(r.Rule, "\uFFFD")
	if r.Severity == "" {
		r.Severity = SeverityFor(r.Policy)
	}
	if !slices.Contains(severities, r.Severity) {
		return r, fmt.Errorf("policy %s: severity %q is not one of %v", r.Policy, r.Severity, severities)
	}
	r.Field = cut(r.Field, maxFieldBytes)
	r.Message = cut(r.Message, MaxMessageBytes)
	r.Mode = strings.ToValidUTF8(r.Mode, "\uFFFD")
	return r, nil
}

// cut makes s valid UTF-8 of at most max bytes, cut on a rune boundary with
// a marker.
func cut(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	const marker = "…(truncated)"
	n := max - len(marker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}

func toItem(ref corev1.ObjectReference, r Result, ts metav1.Timestamp) item {
	props := map[string]string{PropertyResultID: resultID(ref, r)}
	if r.Field != "" {
		props[PropertyField] = r.Field
	}
	if r.Mode != "" {
		props[PropertyMode] = r.Mode
	}
	return item{
		Source:     Source,
		Policy:     r.Policy,
		Rule:       r.Rule,
		Severity:   r.Severity,
		Result:     string(r.Status),
		Scored:     r.Status != StatusWarn,
		Resources:  []corev1.ObjectReference{ref},
		Message:    r.Message,
		Properties: props,
		Timestamp:  ts,
	}
}

// resultID identifies a finding: the object, the policy and rule, the field,
// the status and the message. Neither the mode nor the severity is part of
// it: a finding whose mode changes from audit to enforce is still the same
// finding.
func resultID(ref corev1.ObjectReference, r Result) string {
	h := sha256.New()
	for _, s := range []string{string(ref.UID), ref.APIVersion, ref.Kind, ref.Namespace, ref.Name, r.Policy, r.Rule, r.Field, string(r.Status), r.Message} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// chunk packs groups (an entry's results each) into reports of at most
// MaxResultsPerReport results and MaxResultBytesPerReport bytes of results.
// An entry's results stay in one report unless they alone overflow one.
//
// What fits one report is one report. Beyond that, each entry goes to the
// report its object's UID hashes to, among a power of two of them, doubled
// until none overflows: an entry that comes or goes, or whose results
// change, rewrites its own report only, not every report after it in sort
// order (a namespace of thousands of workloads under churn would otherwise
// rewrite them all every few seconds). Reports may be empty, and so absent,
// and the count grows by doubling only. The index of a report is its name's
// (Build). An entry that alone overflows a report makes the whole namespace
// fall back to packing in order.
func chunk(api string, groups [][]item) [][]item {
	sizes := make([][]int, len(groups))
	count, bytes := 0, 0
	oversized := false
	for i, g := range groups {
		sizes[i] = make([]int, len(g))
		gBytes := 0
		for j, it := range g {
			sizes[i][j] = itemBytes(api, it)
			gBytes += sizes[i][j]
		}
		count += len(g)
		bytes += gBytes
		oversized = oversized || len(g) > MaxResultsPerReport || gBytes > MaxResultBytesPerReport
	}
	if count <= MaxResultsPerReport && bytes <= MaxResultBytesPerReport {
		if count == 0 {
			return nil
		}
		return [][]item{slices.Concat(groups...)}
	}
	if !oversized {
		need := max((count+MaxResultsPerReport-1)/MaxResultsPerReport, (bytes+MaxResultBytesPerReport-1)/MaxResultBytesPerReport)
		for n := 2; n <= maxReports; n *= 2 {
			if n < 2*need {
				continue
			}
			if out, ok := bucketed(groups, sizes, n); ok {
				return out
			}
		}
	}
	return packed(groups, sizes)
}

// maxReports bounds the reports of one namespace when hashing.
const maxReports = 4096

// bucketed puts each group in the report its object hashes to, among n, or
// reports that one would overflow.
func bucketed(groups [][]item, sizes [][]int, n int) ([][]item, bool) {
	out := make([][]item, n)
	counts, bytes := make([]int, n), make([]int, n)
	for i, g := range groups {
		h := fnv.New32a()
		ref := g[0].Resources[0]
		h.Write([]byte(cmp.Or(string(ref.UID), ref.Kind+"/"+ref.Name)))
		b := int(h.Sum32() % uint32(n))
		gBytes := 0
		for _, s := range sizes[i] {
			gBytes += s
		}
		if counts[b]+len(g) > MaxResultsPerReport || bytes[b]+gBytes > MaxResultBytesPerReport {
			return nil, false
		}
		out[b] = append(out[b], g...)
		counts[b] += len(g)
		bytes[b] += gBytes
	}
	return out, true
}

// packed fills reports in order, splitting an entry only when it alone
// overflows one.
func packed(groups [][]item, sizes [][]int) [][]item {
	var out [][]item
	var cur []item
	curBytes := 0
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
			cur, curBytes = nil, 0
		}
	}
	for gi, g := range groups {
		total := 0
		for _, s := range sizes[gi] {
			total += s
		}
		if len(cur)+len(g) > MaxResultsPerReport || curBytes+total > MaxResultBytesPerReport {
			flush()
		}
		for i, it := range g {
			if len(cur)+1 > MaxResultsPerReport || curBytes+sizes[gi][i] > MaxResultBytesPerReport {
				flush()
			}
			cur = append(cur, it)
			curBytes += sizes[gi][i]
		}
	}
	flush()
	return out
}

// itemBytes is the length of an item's JSON in api, and a comma.
func itemBytes(api string, it item) int {
	var b []byte
	if api == APIOpenReports {
		b, _ = json.Marshal(toOR(it))
	} else {
		b, _ = json.Marshal(toWG(it))
	}
	return len(b) + 1
}

// encode makes one report object of items.
func encode(api, namespace, name string, items []item) client.Object {
	meta := metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{ManagedByLabel: ManagedBy}}
	s := summarize(items)
	if api == APIOpenReports {
		r := &orv1alpha1.Report{
			TypeMeta:   metav1.TypeMeta{APIVersion: orv1alpha1.SchemeGroupVersion.String(), Kind: "Report"},
			ObjectMeta: meta,
			Source:     Source,
			Summary:    orv1alpha1.ReportSummary{Pass: s.Pass, Fail: s.Fail, Warn: s.Warn, Error: s.Error, Skip: s.Skip},
		}
		for _, it := range items {
			r.Results = append(r.Results, toOR(it))
		}
		return r
	}
	r := &wgv1alpha2.PolicyReport{
		TypeMeta:   metav1.TypeMeta{APIVersion: wgv1alpha2.GroupVersion.String(), Kind: "PolicyReport"},
		ObjectMeta: meta,
		Summary:    wgv1alpha2.PolicyReportSummary{Pass: s.Pass, Fail: s.Fail, Warn: s.Warn, Error: s.Error, Skip: s.Skip},
	}
	for _, it := range items {
		r.Results = append(r.Results, toWG(it))
	}
	return r
}

func toOR(it item) orv1alpha1.ReportResult {
	return orv1alpha1.ReportResult{
		Source:      it.Source,
		Policy:      it.Policy,
		Rule:        it.Rule,
		Category:    it.Category,
		Severity:    orv1alpha1.ResultSeverity(it.Severity),
		Timestamp:   it.Timestamp,
		Result:      orv1alpha1.Result(it.Result),
		Scored:      it.Scored,
		Subjects:    it.Resources,
		Description: it.Message,
		Properties:  it.Properties,
	}
}

func fromOR(r orv1alpha1.ReportResult) item {
	return item{
		Source:     r.Source,
		Policy:     r.Policy,
		Rule:       r.Rule,
		Category:   r.Category,
		Severity:   string(r.Severity),
		Result:     string(r.Result),
		Scored:     r.Scored,
		Resources:  r.Subjects,
		Message:    r.Description,
		Properties: r.Properties,
		Timestamp:  r.Timestamp,
	}
}

func toWG(it item) wgv1alpha2.PolicyReportResult {
	return wgv1alpha2.PolicyReportResult{
		Source:     it.Source,
		Policy:     it.Policy,
		Rule:       it.Rule,
		Category:   it.Category,
		Severity:   wgv1alpha2.PolicySeverity(it.Severity),
		Timestamp:  it.Timestamp,
		Result:     wgv1alpha2.PolicyResult(it.Result),
		Scored:     it.Scored,
		Resources:  it.Resources,
		Message:    it.Message,
		Properties: it.Properties,
	}
}

func fromWG(r wgv1alpha2.PolicyReportResult) item {
	return item{
		Source:     r.Source,
		Policy:     r.Policy,
		Rule:       r.Rule,
		Category:   r.Category,
		Severity:   string(r.Severity),
		Result:     string(r.Result),
		Scored:     r.Scored,
		Resources:  r.Resources,
		Message:    r.Message,
		Properties: r.Properties,
		Timestamp:  r.Timestamp,
	}
}

// itemsOf reads a report's results.
func itemsOf(obj client.Object) []item {
	var out []item
	switch r := obj.(type) {
	case *orv1alpha1.Report:
		for _, res := range r.Results {
			out = append(out, fromOR(res))
		}
	case *wgv1alpha2.PolicyReport:
		for _, res := range r.Results {
			out = append(out, fromWG(res))
		}
	}
	return out
}
