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
		Help: "When the self-managed serving certificate this replica serves expires, in Unix seconds.",
	})
)

var registerOnce sync.Once

// RegisterMetrics adds the certificate metrics to controller-runtime's
// registry. It is safe to call more than once.
func RegisterMetrics() {
	registerOnce.Do(func() {
		crmetrics.Registry.MustRegister(certificateChanges, servingNotAfter)
	})
}
