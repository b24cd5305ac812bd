package webhook

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/audit"
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
	// MetricsInsecure serves /metrics over plain HTTP to anyone who can
	// connect, for a loopback address (the e2e tests). Otherwise metrics are
	// served over HTTPS, to clients the API server authenticates
	// (TokenReview) and authorises (SubjectAccessReview: get on the
	// non-resource URL /metrics).
	MetricsInsecure bool
	// PprofAddr, when set, serves Go's net/http/pprof profiles there, over
	// plain HTTP without authentication: serve accepts only a loopback
	// address (kubectl port-forward, or the perf harness).
	PprofAddr string
	// Limits are the webhook port's timeouts and limits; zero fields take
	// the defaults.
	Limits ServerLimits
	// ClientCAFile, when set, admits to the webhook port only clients with
	// a certificate signed by a CA of this bundle: kube-apiserver, given a
	// webhook client certificate (see ClientAuth).
	ClientCAFile string
	// ExpiryCheckInterval is how often the serving certificate's validity
	// is checked and logged (default: a minute).
	ExpiryCheckInterval time.Duration
	// MaxRequestBytes caps the AdmissionReview body; larger requests get
	// HTTP 413.
	MaxRequestBytes int64
	// ShutdownDelay is how long podguard keeps serving, while /readyz fails,
	// after it is told to stop, so that endpoints stop routing to it before
	// it closes its listener.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish.
	ShutdownTimeout time.Duration
	// Namespace is podguard's own, where the audit Lease is.
	Namespace string
	// WebhookConfigurationName names the ValidatingWebhookConfiguration
	// whose pod webhook's namespaceSelector scopes the background audit.
	WebhookConfigurationName string
	RestConfig               *rest.Config
	Log                      logr.Logger
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
	certs.RegisterMetrics()
	tlsOpts := []func(*tls.Config){ServingTLS}
	var selfManaged *certs.SelfManaged
	var getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	caOf := certs.CAFromFile(filepath.Join(o.CertDir, certs.CAFile))
	var certWatcher *certwatcher.CertWatcher
	if o.SelfManaged != nil {
		sm := *o.SelfManaged
		sm.Client = clientset
		sm.Log = log.WithName("certs")
		if selfManaged, err = certs.NewSelfManaged(sm); err != nil {
			return err
		}
		// The webhook server serves what the Secret holds, from memory.
		getCertificate, caOf = selfManaged.GetCertificate, selfManaged.SigningCA
	} else {
		// Files (cert-manager's mounted Secret): reloaded when they change.
		certWatcher, err = certwatcher.New(filepath.Join(o.CertDir, certs.CertFile), filepath.Join(o.CertDir, certs.KeyFile))
		if err != nil {
			return fmt.Errorf("loading the serving certificate from %s: %w", o.CertDir, err)
		}
		getCertificate = certWatcher.GetCertificate
	}
	tlsOpts = append(tlsOpts, func(c *tls.Config) { c.GetCertificate = getCertificate })
	metricsOpts := metricsserver.Options{BindAddress: o.MetricsAddr}
	if !o.MetricsInsecure {
		// The same certificate and TLS policy as the webhook port.
		metricsOpts.SecureServing = true
		metricsOpts.FilterProvider = MetricsAuth
		metricsOpts.TLSOpts = tlsOpts
	}
	// Client authentication is for the webhook port only: scrapers of the
	// metrics port authenticate with a token.
	webhookTLSOpts := tlsOpts
	var clientAuth *ClientAuth
	if o.ClientCAFile != "" {
		if clientAuth, err = NewClientAuth(o.ClientCAFile); err != nil {
			return err
		}
		webhookTLSOpts = append(slices.Clone(tlsOpts), clientAuth.TLS)
	}
	webhookServer := &Server{
		Host:            o.Host,
		Port:            o.Port,
		TLSOpts:         webhookTLSOpts,
		Limits:          o.Limits,
		ShutdownTimeout: o.ShutdownTimeout,
		Log:             log.WithName("server"),
	}
	// Every runnable gets the drain's time and a margin: the webhook server
	// closes what is left at ShutdownTimeout, so the manager never gives up
	// on it.
	gracePeriod := o.ShutdownTimeout + 5*time.Second

	mgr, err := manager.New(o.RestConfig, manager.Options{
		Scheme:                  clientgoscheme.Scheme,
		Cache:                   CacheOptions(),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.HealthAddr,
		PprofBindAddress:        o.PprofAddr,
		GracefulShutdownTimeout: &gracePeriod,
		Logger:                  log,
		WebhookServer:           webhookServer,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if selfManaged != nil {
		if err := mgr.Add(selfManaged); err != nil {
			return err
		}
	}
	if certWatcher != nil {
		if err := mgr.Add(certWatcher); err != nil {
			return err
		}
	}
	expiry := certs.NewExpiryMonitor(certs.ExpiryOptions{
		GetCertificate: getCertificate,
		CA:             caOf,
		Interval:       o.ExpiryCheckInterval,
		Log:            log.WithName("certs"),
	})
	if err := mgr.Add(expiry); err != nil {
		return err
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

	images := &imageInspectors{secrets: mgr.GetAPIReader(), log: log.WithName("images")}
	if err := images.attach(state); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	defer images.close()

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
	// The background audit: every replica campaigns for the audit lease
	// while the config turns it on; the holder audits and writes.
	audit.RegisterMetrics()
	auditBroadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer auditBroadcaster.Shutdown()
	auditBroadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: clientset.CoreV1().Events("")})
	publisher, err := newReportPublisher(o.RestConfig, func() string { return adm.State().Config.Audit.Reports }, log.WithName("reports"))
	if err != nil {
		return err
	}
	// The audit's informers list and watch every Pod and workload: in
	// protobuf, what the API server sends is smaller than the JSON and
	// decodes with less garbage (make perf phase C measures both).
	auditClient, err := kubernetes.NewForConfig(protobufConfig(o.RestConfig))
	if err != nil {
		return fmt.Errorf("creating the audit's client: %w", err)
	}
	background := audit.NewBackground(audit.BackgroundOptions{
		Publisher: publisher,
		Client:    auditClient,
		Env:       adm.auditEnv,
		Scope:     webhookScope(clientset, cmp.Or(o.WebhookConfigurationName, "podguard"), log.WithName("audit")),
		Namespace: world.Namespace,
		Ready:     func() bool { return world.Synced(nil) == nil },
		Events:    auditEvents{auditBroadcaster.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: "podguard-audit", Host: host})},
		Log:       log.WithName("audit"),
	})
	world.SetNotify(func(kind, namespace, name string) {
		background.Notify(audit.Change{Kind: kind, Namespace: namespace, Name: name})
	})
	leaseOpts := audit.LeaseOptions{
		Namespace: cmp.Or(o.Namespace, "podguard-system"),
		Identity:  host + "_" + string(uuid.NewUUID()),
		Enabled:   func() bool { return adm.State().Config.Audit.BackgroundEnabled() },
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return background.Start(ctx, leaseOpts) })); err != nil {
		return err
	}

	// The state guard judges ConfigMap and Secret writes against the
	// workloads that read them, listed from the API server on the requests
	// that change key names: it runs on every replica, the background
	// audit's informers only on the leader.
	guardClient, err := stateGuardClient(o.RestConfig)
	if err != nil {
		return fmt.Errorf("creating the state guard's client: %w", err)
	}
	guard := NewStateGuard(adm, guardClient, log.WithName("state-guard"))
	srv := mgr.GetWebhookServer()
	for path, handle := range map[string]admission.HandlerFunc{"/mutate": adm.Mutate, "/validate": adm.Validate, "/validate-state": guard.Handle} {
		var h http.Handler = &reviewServer{
			name:     path[1:],
			handler:  handle,
			maxBytes: o.MaxRequestBytes,
			budget:   webhookServer.bodyBudget(),
			log:      log.WithName("http"),
		}
		if clientAuth != nil {
			h = clientAuth.Require(h)
		}
		srv.Register(path, h)
	}

	var draining atomic.Bool
	checks := map[string]healthz.Checker{
		"webhook-tls": srv.StartedChecker(),
		// A certificate the API server would refuse: every call would fail.
		"serving-certificate": expiry.Ready,
		"caches":              world.Synced,
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
			reload(ctx, adm, world, images, log, c, err)
			if err == nil {
				background.Reconfigure(ctx)
			}
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
func reload(ctx context.Context, adm *Admission, world *ClusterWorld, images *imageInspectors, log logr.Logger, cfg *config.Config, err error) {
	var st *State
	if err == nil {
		st, err = NewState(cfg)
	}
	if err == nil {
		err = images.attach(st)
	}
	if err != nil {
		ConfigReloads.WithLabelValues("failure").Inc()
		ConfigLastReloadSuccessful.Set(0)
		log.Error(oneLine{err}, "config reload failed; keeping the last good config")
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

// oneLine shows an error, such as a config error that lists each problem
// with its field path on a line of its own, on one line.
type oneLine struct{ err error }

func (e oneLine) Error() string {
	lines := strings.Split(e.err.Error(), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	if len(lines) > 1 && strings.HasSuffix(lines[0], ":") {
		return lines[0] + " " + strings.Join(lines[1:], "; ")
	}
	return strings.Join(lines, "; ")
}

func (e oneLine) Unwrap() error { return e.err }

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
