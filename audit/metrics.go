package audit

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The background audit's metrics. Series labelled by namespace exist only
// for namespaces with something to count, so that their number follows the
// namespaces with violations, not every namespace of the cluster.
var (
	violations = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "podguard_audit_violations",
		Help: "Current violations found by the background audit, per namespace and policy (all modes: a violation in warn or audit mode breaks the pod all the same).",
	}, []string{"namespace", "policy"})
	auditedObjects = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "podguard_audit_objects",
		Help: "Workloads and bare Pods the background audit judges, per namespace and result (pass or fail).",
	}, []string{"namespace", "result"})
	leading = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podguard_audit_leader",
		Help: "1 while this replica holds the audit lease and writes the reports.",
	})
	lastPass = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podguard_audit_last_pass_timestamp_seconds",
		Help: "When the background audit last started judging every object again (Unix time): a term's first pass, or an interval's.",
	})
	passDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "podguard_audit_first_pass_duration_seconds",
		Help:    "How long the first pass over every object took after this replica began to write.",
		Buckets: prometheus.ExponentialBuckets(0.1, 4, 8),
	})
	judgeDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "podguard_audit_judge_duration_seconds",
		Help:    "How long judging one object took in the background audit.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 4, 8),
	})
	turnedToFail = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "podguard_audit_turned_to_fail_total",
		Help: "Objects whose verdict turned from pass to fail (each got a Warning event).",
	})
	reportWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podguard_audit_report_writes_total",
		Help: "Namespaces whose policy reports were written, by result (success or failure).",
	}, []string{"result"})
)

var registerOnce sync.Once

// RegisterMetrics registers the audit's metrics with controller-runtime's
// registry, every unlabelled series and every result at zero.
func RegisterMetrics() {
	registerOnce.Do(func() {
		crmetrics.Registry.MustRegister(violations, auditedObjects, leading, lastPass, passDuration, judgeDuration, turnedToFail, reportWrites)
		for _, r := range []string{"success", "failure"} {
			reportWrites.WithLabelValues(r)
		}
	})
}

// gaugeMu guards gaugeSeries: the policies each namespace has a violations
// series for, so that a policy that stops failing loses its series.
var (
	gaugeMu     sync.Mutex
	gaugeSeries = map[string][]string{}
)

// resetGauges drops every namespace's series, when a term ends: the next
// writer, on this replica or another, exports its own.
func resetGauges() {
	gaugeMu.Lock()
	defer gaugeMu.Unlock()
	violations.Reset()
	auditedObjects.Reset()
	clear(gaugeSeries)
}

// setViolationGauges sets one namespace's series from its verdicts.
func setViolationGauges(ns string, items []Audited) {
	counts := map[string]int{}
	pass, fail := 0, 0
	for _, it := range items {
		if it.Verdict.Fails() {
			fail++
		} else {
			pass++
		}
		for _, f := range it.Verdict.Failed {
			counts[f.Policy]++
		}
	}
	gaugeMu.Lock()
	defer gaugeMu.Unlock()
	for _, p := range gaugeSeries[ns] {
		if counts[p] == 0 {
			violations.DeleteLabelValues(ns, p)
		}
	}
	var series []string
	for p, n := range counts {
		violations.WithLabelValues(ns, p).Set(float64(n))
		series = append(series, p)
	}
	if len(series) == 0 {
		delete(gaugeSeries, ns)
	} else {
		gaugeSeries[ns] = series
	}
	if len(items) == 0 {
		auditedObjects.DeleteLabelValues(ns, "pass")
		auditedObjects.DeleteLabelValues(ns, "fail")
		return
	}
	auditedObjects.WithLabelValues(ns, "pass").Set(float64(pass))
	auditedObjects.WithLabelValues(ns, "fail").Set(float64(fail))
}
