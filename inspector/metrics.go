package inspector

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics carry no registry or image label: image names are chosen by
// whoever creates pods, and each label value would be a new series.
type metrics struct {
	hits, misses  prometheus.Counter
	fetchDuration *prometheus.HistogramVec
	fetchBytes    prometheus.Counter
	indexBytes    prometheus.Gauge
	inFlight      prometheus.Gauge
	dialsRefused  prometheus.Counter
	budgetExceed  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podguard_image_cache_hits_total",
			Help: "Image references answered from the cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podguard_image_cache_misses_total",
			Help: "Image references that needed a registry fetch.",
		}),
		fetchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podguard_image_fetch_duration_seconds",
			Help:    "Time to resolve, fetch and index one image.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"result"}),
		fetchBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podguard_image_fetch_bytes_total",
			Help: "Compressed layer bytes read from registries.",
		}),
		indexBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podguard_image_index_bytes",
			Help: "Bytes of layer indexes held in memory.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podguard_image_fetches_in_flight",
			Help: "Image fetches running now.",
		}),
		dialsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podguard_image_dials_refused_total",
			Help: "Connections refused because their address is not in images.registries.",
		}),
		budgetExceed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podguard_image_budget_exceeded_total",
			Help: "Images not indexed because they exceeded maxImageBytes, maxEntries or a size bound.",
		}),
	}
	if reg != nil {
		// A config reload that changes the images settings builds a new
		// Inspector: it takes over the series the previous one registered.
		err := errors.Join(register(reg, &m.hits), register(reg, &m.misses), register(reg, &m.fetchDuration),
			register(reg, &m.fetchBytes), register(reg, &m.indexBytes), register(reg, &m.inFlight),
			register(reg, &m.dialsRefused), register(reg, &m.budgetExceed))
		if err != nil {
			return nil, err
		}
	}
	// Both results at 0 from the start, so that an error ratio is defined
	// before the first fetch.
	for _, result := range []string{"ok", "error"} {
		m.fetchDuration.WithLabelValues(result)
	}
	return m, nil
}

// RegisterMetrics registers the inspector's metrics with reg, each at 0,
// as an Inspector does when it is built (which it is only when the config
// turns image inspection on). It is for tests and tools that need every
// podguard metric name.
func RegisterMetrics(reg prometheus.Registerer) error {
	_, err := newMetrics(reg)
	return err
}

// register registers *c, or, when a collector of that name and type is
// registered already, points *c at it.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	err := reg.Register(*c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return nil
		}
	}
	return err
}
