package webhook

import (
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/podguard/podguard/policies"
)

// seriesAtStartEnv marks the child process in which
// TestEverySeriesAnAlertNeedsExistsFromStart scrapes a registry that has
// seen no request: the other tests of this package count requests in the
// same global metrics.
const seriesAtStartEnv = "PODGUARD_TEST_SERIES_AT_START"

// alertSeries are series that deploy/components/monitoring's alerts and
// dashboard read with increase() or rate() (or as a denominator), so they
// must exist, at 0, before their first event: an alert over a series that
// does not exist yet never fires. (The monitoring component's own test
// checks every selector of every rule against the whole scrape.)
func alertSeries() []string {
	s := []string{
		`podguard_admission_bad_requests_total{reason="malformed",webhook="mutate"}`,
		`podguard_admission_bad_requests_total{reason="too_large",webhook="validate"}`,
		`podguard_admission_bad_requests_total{reason="busy",webhook="validate-state"}`,
		`podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",result="error",webhook="mutate"}`,
		`podguard_admission_duration_seconds_count{kind="Pod",operation="CREATE",result="timeout",webhook="validate"}`,
		`podguard_admission_duration_seconds_bucket{kind="Pod",le="1",operation="CREATE",result="patched",webhook="mutate"}`,
		`podguard_config_reloads_total{result="failure"}`,
		`podguard_config_reloads_total{result="success"}`,
		`podguard_config_last_reload_successful`,
		`podguard_denial_events_total{result="dropped"}`,
		`podguard_state_guard_requests_total{result="incomplete"}`,
		`podguard_policy_panics_total{policy="unknown"}`,
	}
	for _, p := range policies.Names() {
		s = append(s, `podguard_policy_panics_total{policy="`+p+`"}`,
			`podguard_policy_outcomes_total{outcome="error",policy="`+p+`",webhook="validate"}`)
	}
	for _, p := range policies.ValidatingNames() {
		s = append(s, `podguard_policy_outcomes_total{outcome="denied",policy="`+p+`",webhook="validate"}`)
	}
	return s
}

func TestEverySeriesAnAlertNeedsExistsFromStart(t *testing.T) {
	if os.Getenv(seriesAtStartEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEverySeriesAnAlertNeedsExistsFromStart$", "-test.v")
		cmd.Env = append(os.Environ(), seriesAtStartEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the scrape right after registration:\n%s", out)
		}
		return
	}
	RegisterMetrics()
	got := scrape(t)
	for _, want := range alertSeries() {
		v, ok := got[want]
		switch {
		case !ok:
			t.Errorf("%s does not exist right after registration", want)
		case v != 0:
			t.Errorf("%s = %v right after registration, want 0", want, v)
		}
	}
}

// scrape gathers controller-runtime's registry into a map from each
// podguard series, written as in the exposition format with its labels
// sorted, to its value (a histogram's _bucket and _count series included).
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "podguard_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			series := func(suffix string, extra ...string) string {
				ls := append(slices.Clone(labels), extra...)
				sort.Strings(ls)
				if len(ls) == 0 {
					return mf.GetName() + suffix
				}
				return mf.GetName() + suffix + "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[series("")] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[series("")] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[series("_count")] = float64(m.Histogram.GetSampleCount())
				out[series("_sum")] = m.Histogram.GetSampleSum()
				for _, b := range m.Histogram.GetBucket() {
					out[series("_bucket", `le="`+strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)+`"`)] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}
