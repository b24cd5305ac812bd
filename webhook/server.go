package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/config"
)

// Options configure `podguard serve`.
type Options struct {
	// ConfigPath is the config file; empty means the documented defaults.
	ConfigPath string
	// CertDir holds tls.crt and tls.key. Renewed files are picked up
	// without a restart. Unused with SelfManaged.
	CertDir string
	// SelfManaged, when set, makes podguard issue, rotate and serve its own
	// certificate (see certs.SelfManaged) instead of reading CertDir. Its
	// Client and Log are filled in by Run.
	SelfManaged *certs.SelfManagedOptions
	Host        string
	Port        int
	// HealthAddr serves /healthz and /readyz; MetricsAddr serves /metrics.
	// "0" disables either.
	HealthAddr  string
	MetricsAddr string
	// MaxRequestBytes caps the AdmissionReview body; larger requests get
	// HTTP 413.
	MaxRequestBytes int64
	// ShutdownDelay is how long podguard keeps serving, while /readyz fails,
	// after it is told to stop, so that endpoints stop routing to it before
	// it closes its listener.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish.
	ShutdownTimeout time.Duration
	RestConfig      *rest.Config
	Log             logr.Logger
}

// Run serves admission requests until ctx is done, then drains: /readyz
// fails, requests keep being served for ShutdownDelay, the listener closes,
// and in-flight requests finish before Run returns.
func Run(ctx context.Context, o Options) error {
	RegisterMetrics()
	log := o.Log
	cfg, raw, err := loadConfig(o.ConfigPath)
	if err != nil {
		return err
	}
	state, err := NewState(cfg)
	if err != nil {
		return err
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}

	clientset, err := kubernetes.NewForConfig(o.RestConfig)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	tlsOpts := []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }}
	var selfManaged *certs.SelfManaged
	if o.SelfManaged != nil {
		certs.RegisterMetrics()
		sm := *o.SelfManaged
		sm.Client = clientset
		sm.Log = log.WithName("certs")
		if selfManaged, err = certs.NewSelfManaged(sm); err != nil {
			return err
		}
		// The webhook server serves what the Secret holds, from memory.
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.GetCertificate = selfManaged.GetCertificate })
	}

	mgr, err := manager.New(o.RestConfig, manager.Options{
		Scheme:                  clientgoscheme.Scheme,
		Cache:                   CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.HealthAddr,
		GracefulShutdownTimeout: &o.ShutdownTimeout,
		Logger:                  log,
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host:    o.Host,
			Port:    o.Port,
			CertDir: o.CertDir,
			TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if selfManaged != nil {
		if err := mgr.Add(selfManaged); err != nil {
			return err
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(o.RestConfig)
	if err != nil {
		return fmt.Errorf("creating discovery client: %w", err)
	}
	world := NewClusterWorld(mgr.GetCache(), dc, SecretAccessChecker(clientset.AuthorizationV1()), log.WithName("world"))
	if err := world.SetSecretNeeds(ctx, cfg.SecretKeysEnabled(), cfg.SecretMetadataEnabled()); err != nil {
		return err
	}
	if err := mgr.Add(world); err != nil {
		return err
	}

	adm := NewAdmission(world, state, log.WithName("admission"))
	// Scale requests read their workload, and denial events their pods'
	// owners, straight from the API server: only on those requests, so
	// no informer holds every workload of the cluster.
	adm.workloads = mgr.GetAPIReader()
	host, _ := os.Hostname() // the pod's name, in a cluster
	adm.events = NewDenialEvents(mgr.GetAPIReader(), &typedcorev1.EventSinkImpl{Interface: clientset.CoreV1().Events("")}, host, log.WithName("events"))
	if err := mgr.Add(adm.events); err != nil {
		return err
	}
	srv := mgr.GetWebhookServer()
	for path, handle := range map[string]admission.HandlerFunc{"/mutate": adm.Mutate, "/validate": adm.Validate} {
		srv.Register(path, &reviewServer{
			name:     path[1:],
			webhook:  &admission.Webhook{Handler: handle},
			maxBytes: o.MaxRequestBytes,
			log:      log.WithName("http"),
		})
	}

	var draining atomic.Bool
	checks := map[string]healthz.Checker{
		"webhook-tls": srv.StartedChecker(),
		"caches":      world.Synced,
		"not-draining": func(*http.Request) error {
			if draining.Load() {
				return errors.New("shutting down")
			}
			return nil
		},
	}
	for name, check := range checks {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}

	if o.ConfigPath != "" {
		w := config.NewWatcher(o.ConfigPath, raw, func(c *config.Config, err error) {
			reload(ctx, adm, world, log, c, err)
		})
		if err := mgr.Add(manager.RunnableFunc(w.Start)); err != nil {
			return err
		}
	}
	ConfigLastReloadSuccessful.Set(1)

	mgrCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-mgrCtx.Done():
			return
		}
		draining.Store(true)
		log.Info("shutting down: draining before closing the listener", "delay", o.ShutdownDelay.String())
		time.Sleep(o.ShutdownDelay)
		stop()
	}()
	certSource := "dir " + o.CertDir
	if o.SelfManaged != nil {
		certSource = "self-managed Secret " + o.SelfManaged.Namespace + "/" + o.SelfManaged.SecretName
	}
	log.Info("starting podguard", "port", o.Port, "certificates", certSource, "config", configSource(o.ConfigPath))
	if err := mgr.Start(mgrCtx); err != nil {
		return fmt.Errorf("running: %w", err)
	}
	log.Info("stopped")
	return nil
}

// reload puts a new config in force, or keeps the last good one.
func reload(ctx context.Context, adm *Admission, world *ClusterWorld, log logr.Logger, cfg *config.Config, err error) {
	var st *State
	if err == nil {
		st, err = NewState(cfg)
	}
	if err != nil {
		ConfigReloads.WithLabelValues("failure").Inc()
		ConfigLastReloadSuccessful.Set(0)
		log.Error(err, "config reload failed; keeping the last good config")
		return
	}
	if err := world.SetSecretNeeds(ctx, cfg.SecretKeysEnabled(), cfg.SecretMetadataEnabled()); err != nil {
		log.Error(err, "changing the Secret caches")
	}
	adm.SetState(st)
	ConfigReloads.WithLabelValues("success").Inc()
	ConfigLastReloadSuccessful.Set(1)
	log.Info("config reloaded")
}

func loadConfig(path string) (*config.Config, []byte, error) {
	if path == "" {
		return config.Default(), nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := config.Parse(path, raw)
	if err != nil {
		return nil, nil, err
	}
	return cfg, raw, nil
}

func configSource(path string) string {
	if path == "" {
		return "(defaults)"
	}
	return path
}
