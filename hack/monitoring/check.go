// Package monitoring checks deploy/components/monitoring: that Prometheus
// would load its rules, that Grafana's schema accepts its dashboard, and
// that every series the rules and the dashboard select is one podguard
// exports, so that a misspelt metric, label or label value is an error
// here rather than an alert that never fires.
package monitoring

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// Series are podguard's series as deploy/testdata/series-at-start.txt
// lists them (every series that exists before the first request), by
// metric name, plus the metrics whose series appear only with their first
// label values.
type Series struct {
	byName map[string][]map[string]string
	// later are metrics without a series at start: their label values are
	// not known in advance (a namespace). Only their names and label names
	// are checked.
	later map[string][]string
	// runtime are the Go runtime's and the process's series podguard
	// exports besides its own (deploy/testdata/runtime-series.txt), with no
	// labels but the target's.
	runtime []string
}

// AddRuntime reads a list of runtime series names, one a line.
func (s *Series) AddRuntime(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := seriesLine.FindStringSubmatch(line); m == nil || m[2] != "" || strings.Contains(line, "{") {
			return fmt.Errorf("line %d: %q is not a metric name", n, line)
		}
		s.runtime = append(s.runtime, line)
	}
	return sc.Err()
}

// Later are podguard's metrics that have no series before their first
// event (they are labelled by namespace, and exist for the namespaces with
// something to count), with their label names. TestLaterMetricsExist
// checks them against podguard's code.
var Later = map[string][]string{
	"podguard_audit_violations": {"namespace", "policy"},
	"podguard_audit_objects":    {"namespace", "result"},
}

// targetLabels are the labels Prometheus adds to every series it scrapes:
// a selector may match on them, and an aggregation keep them.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "endpoint", "container"}

// prometheusSeries are series Prometheus itself makes for each target.
var prometheusSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"}

// seriesLine is one line of series-at-start.txt: name{label="value",...}.
var seriesLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$`)

// LoadSeries reads a series list.
func LoadSeries(r io.Reader) (*Series, error) {
	s := &Series{byName: map[string][]map[string]string{}, later: Later}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := seriesLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: %q is not name{labels}", n, line)
		}
		ls, err := parser.NewParser(parser.Options{}).ParseMetric(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		set := map[string]string{}
		ls.Range(func(l labels.Label) {
			if l.Name != labels.MetricName {
				set[l.Name] = l.Value
			}
		})
		s.byName[m[1]] = append(s.byName[m[1]], set)
	}
	if len(s.byName) == 0 {
		return nil, fmt.Errorf("no series")
	}
	return s, sc.Err()
}

// labelNames are the labels the series of metric carry.
func (s *Series) labelNames(metric string) []string {
	if ls, ok := s.later[metric]; ok {
		return ls
	}
	var out []string
	for _, set := range s.byName[metric] {
		for k := range set {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// grafanaVariables are Grafana's interval variables, which PromQL cannot
// parse: each is replaced with a duration before the expression is parsed.
var grafanaVariables = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)

// CheckExpr parses a PromQL expression and checks every series it selects
// and every label it groups by against s. where names it in problems.
func CheckExpr(where, expr string, s *Series) []string {
	expr = grafanaVariables.ReplaceAllString(expr, "5m")
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, where+": "+fmt.Sprintf(format, args...)) }
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			checkSelector(n, s, add)
		case *parser.AggregateExpr:
			var known []string
			parser.Inspect(n.Expr, func(inner parser.Node, _ []parser.Node) error {
				if vs, ok := inner.(*parser.VectorSelector); ok {
					known = append(known, s.labelNames(metricName(vs))...)
				}
				return nil
			})
			for _, l := range n.Grouping {
				if !slices.Contains(known, l) && !slices.Contains(targetLabels, l) {
					add("%s by %q: no series it aggregates has that label (they have %v)", n.Op, l, known)
				}
			}
		}
		return nil
	})
	return problems
}

func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func checkSelector(vs *parser.VectorSelector, s *Series, add func(string, ...any)) {
	name := metricName(vs)
	switch {
	case name == "":
		add("%s: select series by metric name", vs)
		return
	case slices.Contains(prometheusSeries, name), slices.Contains(s.runtime, name):
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName && !slices.Contains(targetLabels, m.Name) {
				add("%s: %s has no label %q (only the target's)", vs, name, m.Name)
			}
		}
		return
	case s.later[name] == nil && s.byName[name] == nil:
		add("%s: podguard exports no metric %s", vs, name)
		return
	}
	carried := s.labelNames(name)
	var matchers []*labels.Matcher
	for _, m := range vs.LabelMatchers {
		switch {
		case m.Name == labels.MetricName:
		case slices.Contains(carried, m.Name):
			matchers = append(matchers, m)
		case slices.Contains(targetLabels, m.Name):
		default:
			add("%s: %s has no label %q (it has %v)", vs, name, m.Name, carried)
			return
		}
	}
	if s.later[name] != nil {
		return // no series to match yet
	}
	for _, set := range s.byName[name] {
		if !slices.ContainsFunc(matchers, func(m *labels.Matcher) bool { return !m.Matches(set[m.Name]) }) {
			return
		}
	}
	add("%s: matches none of the series of %s podguard exports from the start", vs, name)
}

// CheckRules checks a monitoring.coreos.com/v1 PrometheusRule: its groups
// as Prometheus loads a rule file (rulefmt: structure, unknown fields,
// PromQL, templates, durations), then every expression against s.
func CheckRules(manifest []byte, s *Series) []string {
	var obj struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Spec       json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(manifest, &obj); err != nil {
		return []string{err.Error()}
	}
	if obj.APIVersion != "monitoring.coreos.com/v1" || obj.Kind != "PrometheusRule" {
		return []string{fmt.Sprintf("%s %s, want monitoring.coreos.com/v1 PrometheusRule", obj.APIVersion, obj.Kind)}
	}
	spec, err := yaml.JSONToYAML(obj.Spec)
	if err != nil {
		return []string{err.Error()}
	}
	groups, errs := rulefmt.Parse(spec, false, model.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	var problems []string
	for _, err := range errs {
		problems = append(problems, "spec: "+err.Error())
	}
	if groups == nil {
		return problems
	}
	if len(groups.Groups) == 0 {
		problems = append(problems, "spec.groups: no rule groups")
	}
	for i, g := range groups.Groups {
		for j, r := range g.Rules {
			where := fmt.Sprintf("spec.groups[%d].rules[%d] (%s)", i, j, r.Alert+r.Record)
			problems = append(problems, CheckExpr(where, r.Expr, s)...)
			if r.Alert != "" && (r.Labels["severity"] == "" || r.Annotations["summary"] == "") {
				problems = append(problems, where+": an alert needs a severity label and a summary annotation")
			}
		}
	}
	return problems
}

// CheckDashboard validates a Grafana dashboard against schema (a JSON
// schema document) and checks every Prometheus query of its panels (rows'
// panels included) against s.
func CheckDashboard(dashboard, schema []byte, s *Series) []string {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return []string{"the schema: " + err.Error()}
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("dashboard.jsonschema.json", doc); err != nil {
		return []string{"the schema: " + err.Error()}
	}
	sch, err := c.Compile("dashboard.jsonschema.json")
	if err != nil {
		return []string{"the schema: " + err.Error()}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(dashboard))
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if err := sch.Validate(inst); err != nil {
		problems = append(problems, "schema: "+err.Error())
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return append(problems, err.Error())
	}
	queries := 0
	ids := map[int]bool{}
	var walk func(prefix string, ps []panel)
	walk = func(prefix string, ps []panel) {
		for i, p := range ps {
			where := fmt.Sprintf("%s[%d] (%s)", prefix, i, p.Title)
			if ids[p.ID] {
				problems = append(problems, where+": duplicate id "+strconv.Itoa(p.ID))
			}
			ids[p.ID] = true
			for j, t := range p.Targets {
				if t.Expr == "" {
					problems = append(problems, fmt.Sprintf("%s.targets[%d]: no expr", where, j))
					continue
				}
				queries++
				problems = append(problems, CheckExpr(fmt.Sprintf("%s.targets[%d]", where, j), t.Expr, s)...)
			}
			walk(where+".panels", p.Panels)
		}
	}
	walk("panels", d.Panels)
	if queries == 0 {
		problems = append(problems, "panels: no Prometheus query")
	}
	return problems
}

type panel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}
