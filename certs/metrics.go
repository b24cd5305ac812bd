package certs

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	certificateChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podguard_certificate_changes_total",
		Help: "Changes this replica made to the self-managed certificate Secret, by kind: ca-created, next-ca-created, next-ca-trusted, ca-promoted, bundle-updated, serving-issued, repaired.",
	}, []string{"kind"})

	servingNotAfter = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podguard_serving_certificate_expiry_timestamp_seconds",
		Help: "When the serving certificate this replica serves expires (its notAfter), in Unix seconds, in every certificate mode.",
	})

	caNotAfter = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podguard_ca_certificate_expiry_timestamp_seconds",
		Help: "When the CA of the serving certificate expires (its notAfter), in Unix seconds: the self-managed signer, or ca.crt in the cert dir. Absent when podguard does not know the CA.",
	})
)

// certificateChangeKinds are the kinds of podguard_certificate_changes_total.
var certificateChangeKinds = []string{"ca-created", "next-ca-created", "next-ca-trusted", "ca-promoted", "bundle-updated", "serving-issued", "repaired"}

var registerOnce sync.Once

// RegisterMetrics adds the certificate metrics to controller-runtime's
// registry. It is safe to call more than once.
func RegisterMetrics() {
	registerOnce.Do(func() {
		crmetrics.Registry.MustRegister(certificateChanges, servingNotAfter, caNotAfter)
		// Every kind at 0 from the start, so that increase() over any of
		// them is defined before the first change. The expiry gauges stay
		// 0 until the first certificate is loaded; alerts on them must
		// require a value above 0.
		for _, kind := range certificateChangeKinds {
			certificateChanges.WithLabelValues(kind)
		}
	})
}
