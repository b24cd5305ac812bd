package webhook

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/podguard/podguard/policies"
)

// Metrics are registered with controller-runtime's registry, which the
// manager serves on --metrics-addr at /metrics.
var (
	admissionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "podguard_admission_duration_seconds",
		Help:    "Time to answer an admission request, by webhook, kind, operation and result (allowed, patched, denied, error, timeout).",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}, []string{"webhook", "kind", "operation", "result"})

	policyOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podguard_policy_outcomes_total",
		Help: "What each policy did to each admitted pod or template, by webhook: mutated, unchanged, passed, warned, denied, audited (a validating policy in audit mode found violations and the object was admitted), skipped, exempted or error. /validate runs the mutating policies too, on a copy, to validate what the pods will look like.",
	}, []string{"webhook", "policy", "outcome"})

	policyPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podguard_policy_panics_total",
		Help: "Panics recovered while running a policy (\"unknown\" when outside any policy). Each one answered its request with an error.",
	}, []string{"policy"})

	badRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podguard_admission_bad_requests_total",
		Help: "Requests rejected before admission: malformed review, wrong content type or method, body over the size limit (too_large), body not received within the read timeout (timeout), too many bodies being read at once (busy).",
	}, []string{"webhook", "reason"})

	// ConfigReloads counts config reloads by result (success or failure).
	ConfigReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podguard_config_reloads_total",
		Help: "Config file reloads by result. After a failure the last good config stays in force.",
	}, []string{"result"})

	// ConfigLastReloadSuccessful is 1 when the config file on disk is the one
	// in force, 0 when the last reload failed.
	ConfigLastReloadSuccessful = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podguard_config_last_reload_successful",
		Help: "1 if the last config reload succeeded, 0 if the config file on disk is invalid and the last good one is in force.",
	})
)

// secretAccessDenied is 1 while the config needs Secrets but RBAC does not
// let podguard list and watch them.
var secretAccessDenied = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "podguard_secret_access_denied",
	Help: "1 if the config needs to read Secrets (envFromKeys.secrets, imagePullSecrets.registries) but podguard may not list and watch them, so policies treat Secrets as unknown; add deploy/components/secret-access.",
})

// denialEvents counts what became of each denial of a controller's pod:
// recorded as an event on its workload, rate_limited, dropped (the queue
// was full), owner_gone, or lookup_failed.
var denialEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podguard_denial_events_total",
	Help: "Denied pods of a workload, by what became of their PodDenied event on the workload: recorded, rate_limited (the workload had its share), dropped (the queue was full), owner_gone (the pod's controller no longer exists), lookup_failed (reading it failed).",
}, []string{"result"})

// openConnections is the number of connections open on the webhook port.
var openConnections = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "podguard_webhook_open_connections",
	Help: "Connections open on the webhook port, TLS handshakes included; at most --max-connections.",
})

var registerOnce sync.Once

// RegisterMetrics adds podguard's metrics to controller-runtime's registry.
// It is safe to call more than once.
func RegisterMetrics() {
	registerOnce.Do(func() {
		crmetrics.Registry.MustRegister(admissionDuration, policyOutcomes, policyPanics, badRequests, ConfigReloads, ConfigLastReloadSuccessful, secretAccessDenied, denialEvents, openConnections, admissionUndelivered, stateGuardRequests)
		initSeries()
	})
}

// The label values podguard's series are created with at registration.
var (
	// reviewWebhooks are the webhooks that answer pod admission; stateWebhook
	// is the ConfigMap and Secret guard, which shares their HTTP front.
	reviewWebhooks = []string{"mutate", "validate"}
	stateWebhook   = "validate-state"
	// badRequestReasons are the reasons reviewServer.reject is called with.
	badRequestReasons = []string{"malformed", "too_large", "content_type", "method", "timeout", "busy", "unreadable"}
	// mutatorOutcomes and validatorOutcomes are what each kind of policy
	// can do to a pod.
	mutatorOutcomes    = []policies.Outcome{policies.OutcomeMutated, policies.OutcomeUnchanged, policies.OutcomeWarned, policies.OutcomeDenied, policies.OutcomeSkipped, policies.OutcomeExempted, policies.OutcomeError}
	validatorOutcomes  = []policies.Outcome{policies.OutcomePassed, policies.OutcomeWarned, policies.OutcomeDenied, policies.OutcomeAudited, policies.OutcomeSkipped, policies.OutcomeExempted, policies.OutcomeError}
	denialEventResults = []string{"recorded", "rate_limited", "dropped", "owner_gone", "lookup_failed"}
)

// initSeries creates every series whose label values are known in advance,
// at 0, so that they exist from the start: an alert on increase() or rate()
// over a counter that does not exist yet never fires, and a ratio over a
// missing series is empty rather than 0. Series labelled by what requests
// carry (the kind and operation of podguard_admission_duration_seconds
// beyond a Pod CREATE) appear with their first request. The histograms are
// created only for the pod CREATEs the alerts and dashboard read, each
// result a webhook can give: 9 label sets of 15 series each.
func initSeries() {
	for _, wh := range reviewWebhooks {
		for _, r := range policies.Registry {
			outcomes := mutatorOutcomes
			if r.Mode != nil {
				if wh == "mutate" {
					continue // /mutate runs the mutating policies only
				}
				outcomes = validatorOutcomes
			}
			for _, o := range outcomes {
				policyOutcomes.WithLabelValues(wh, r.Name, string(o))
			}
		}
		results := []string{"allowed", "denied", "error", "timeout"}
		if wh == "mutate" {
			results = append(results, "patched")
		}
		for _, result := range results {
			admissionDuration.WithLabelValues(wh, "Pod", "CREATE", result)
			if result != "timeout" {
				admissionUndelivered.WithLabelValues(wh, result)
			}
		}
	}
	for _, wh := range append(slices.Clone(reviewWebhooks), stateWebhook) {
		for _, reason := range badRequestReasons {
			badRequests.WithLabelValues(wh, reason)
		}
	}
	for _, name := range append(policies.Names(), "unknown") {
		policyPanics.WithLabelValues(name)
	}
	for _, result := range []string{"success", "failure"} {
		ConfigReloads.WithLabelValues(result)
	}
	for _, result := range denialEventResults {
		denialEvents.WithLabelValues(result)
	}
	for _, result := range []string{guardAllowed, guardWarned, guardDenied, guardIncomplete} {
		stateGuardRequests.WithLabelValues(result)
	}
}

// stateGuardRequests counts the ConfigMap and Secret writes the state guard
// answered (/validate-state), by result.
var stateGuardRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podguard_state_guard_requests_total",
	Help: "ConfigMap and Secret writes answered by the state guard (/validate-state), by result: allowed (nothing the write breaks, or nothing to check), warned (allowed with a warning naming the workloads it breaks), denied (audit.guard: deny), incomplete (not every workload that reads the object could be checked in time; allowed, with a warning that says so).",
}, []string{"result"})
