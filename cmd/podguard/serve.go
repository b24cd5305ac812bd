package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/podguard/podguard/certs"
	"github.com/podguard/podguard/internal/memlimit"
	"github.com/podguard/podguard/webhook"
)

// serve runs `podguard serve`.
func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o webhook.Options
	var kubeconfig string
	fs.StringVar(&o.ConfigPath, "config", "", "config file (YAML); hot-reloaded on change. Default: built-in defaults")
	fs.StringVar(&o.CertDir, "cert-dir", "/tls", "directory holding tls.crt and tls.key; renewed files are picked up without a restart")
	fs.StringVar(&o.Host, "host", "", "address to serve the webhook on (default: all addresses)")
	fs.IntVar(&o.Port, "port", 9443, "port to serve the webhook on")
	fs.StringVar(&o.HealthAddr, "health-addr", ":8081", "address for /healthz and /readyz")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8443", "address for Prometheus /metrics over HTTPS, for clients the API server authenticates and authorises (get on /metrics) (\"0\" disables)")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "serve Go's pprof profiles (/debug/pprof/) over plain HTTP at this loopback address, e.g. 127.0.0.1:6060; off when empty")
	fs.BoolVar(&o.MetricsInsecure, "metrics-insecure-loopback", false, "serve /metrics over plain HTTP without authentication; only with a loopback --metrics-addr (tests, a local scraper)")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", "", "admit to the webhook port only clients with a certificate signed by a CA in this PEM bundle (the API server's webhook client certificate); re-read when it changes. Default: any client")
	fs.IntVar(&o.Limits.MaxConnections, "max-connections", webhook.DefaultMaxConnections, "most connections open at once on the webhook port; more wait in the accept queue")
	fs.DurationVar(&o.Limits.ReadTimeout, "read-timeout", webhook.DefaultReadTimeout, "longest time to receive a whole request, body included; slower requests get HTTP 408 or are cut")
	fs.DurationVar(&o.ExpiryCheckInterval, "cert-check-interval", certs.DefaultExpiryCheckInterval, "how often the serving certificate's validity is checked, exported and logged")
	fs.Int64Var(&o.MaxRequestBytes, "max-request-bytes", webhook.DefaultMaxRequestBytes, "largest AdmissionReview accepted; larger requests get HTTP 413")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep serving this long with /readyz failing, so endpoints stop routing here first")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on shutdown")
	memoryRatio := fs.Float64("memory-limit-ratio", memlimit.DefaultRatio, "give the Go runtime this share of the container's memory limit (cgroup) as its soft limit, so that the garbage collector works harder near it instead of the container being killed; 0 turns it off; GOMEMLIMIT, when set, wins")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG or ~/.kube/config)")
	certMode := fs.String("cert-mode", "files", "where the serving certificate comes from: \"files\" (--cert-dir, e.g. from cert-manager) or \"self-managed\" (podguard issues and rotates its own, in --cert-secret)")
	sm := certs.SelfManagedOptions{}
	namespace := os.Getenv("POD_NAMESPACE")
	if namespace == "" {
		namespace = "podguard-system"
	}
	fs.StringVar(&sm.Namespace, "namespace", namespace, "podguard's namespace: of the audit Lease, and (self-managed) of its Service and Secret (default: $POD_NAMESPACE, else podguard-system)")
	fs.StringVar(&sm.SecretName, "cert-secret", "podguard-tls", "self-managed: the Secret holding the CA and the serving certificate")
	service := fs.String("service-name", "podguard", "self-managed: the Service the API server calls; the certificate is for its DNS names")
	hosts := fs.String("cert-hosts", "", "self-managed: comma-separated DNS names and IPs for the certificate, instead of the Service's names")
	fs.StringVar(&sm.WebhookConfigurationName, "webhook-configuration-name", "podguard", "the Mutating- and ValidatingWebhookConfiguration podguard serves: the background audit judges the namespaces its pod webhook selects, and (self-managed) podguard keeps their caBundle current")
	fs.DurationVar(&sm.CAValidity, "ca-validity", certs.DefaultCAValidity, "self-managed: lifetime of a new CA; a new one is trusted with a third of it left")
	fs.DurationVar(&sm.CertValidity, "cert-validity", certs.DefaultCertValidity, "self-managed: lifetime of a serving certificate; renewed with a third of it left")
	fs.DurationVar(&sm.RolloverDelay, "ca-rollover-delay", certs.DefaultRolloverDelay, "self-managed: how long a new CA is in the webhook configurations before it signs")
	// Errors are logged as one line: a stack trace belongs to a bug (a
	// panic logs its own), not to a bad config or a failed API call.
	// --zap-stacktrace-level brings them back.
	zapOpts := zap.Options{StacktraceLevel: zapcore.DPanicLevel}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("serve takes no arguments, got %q", fs.Args())
	}
	if o.PprofAddr != "" && !isLoopback(o.PprofAddr) {
		return usageError("--pprof-addr serves profiles without authentication: it needs a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT), got %q", o.PprofAddr)
	}
	if !(*memoryRatio >= 0 && *memoryRatio <= 1) { // NaN too
		return usageError("--memory-limit-ratio must be between 0 and 1, got %v", *memoryRatio)
	}
	if o.MetricsInsecure && !isLoopback(o.MetricsAddr) {
		return usageError("--metrics-insecure-loopback needs a loopback --metrics-addr (127.0.0.1:PORT, [::1]:PORT or localhost:PORT), got %q", o.MetricsAddr)
	}
	switch *certMode {
	case "files":
	case "self-managed":
		sm.Hosts = serviceHosts(*service, sm.Namespace)
		if *hosts != "" {
			parsed, err := parseCertHosts(*hosts)
			if err != nil {
				return usageError("--cert-hosts: %v", err)
			}
			sm.Hosts = parsed
		}
		for name, d := range map[string]time.Duration{"--ca-validity": sm.CAValidity, "--cert-validity": sm.CertValidity, "--ca-rollover-delay": sm.RolloverDelay} {
			if d <= 0 {
				return usageError("%s must be positive, got %s", name, d)
			}
		}
		o.SelfManaged = &sm
	default:
		return usageError("--cert-mode must be \"files\" or \"self-managed\", got %q", *certMode)
	}

	log := newLogger(&zapOpts)
	ctrl.SetLogger(log)
	if limit, why, err := memlimit.Apply(memlimit.CgroupRoot, *memoryRatio, os.Getenv); err != nil {
		log.Error(err, "reading the container's memory limit; the Go runtime has none")
	} else if limit == math.MaxInt64 {
		log.Info("Go runtime memory limit: none", "from", why)
	} else {
		log.Info("Go runtime memory limit", "bytes", limit, "from", why)
	}
	restConfig, err := loadRestConfig(kubeconfig)
	if err != nil {
		return err
	}
	o.RestConfig = restConfig
	o.Namespace, o.WebhookConfigurationName = sm.Namespace, sm.WebhookConfigurationName
	o.Log = log.WithName("podguard")

	// SIGTERM or SIGINT starts a graceful shutdown; a second one exits at once.
	return webhook.Run(ctrl.SetupSignalHandler(), o)
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseCertHosts splits a comma-separated list of DNS names and IP
// addresses, and checks each.
func parseCertHosts(list string) ([]string, error) {
	var hosts []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if net.ParseIP(h) == nil {
			if errs := validation.IsDNS1123Subdomain(h); len(errs) > 0 {
				return nil, fmt.Errorf("%q is neither an IP address nor a DNS name: %s", h, strings.Join(errs, "; "))
			}
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, errors.New("no host names")
	}
	return hosts, nil
}

// serviceHosts are the DNS names by which the API server calls a Service.
func serviceHosts(service, namespace string) []string {
	svc := service + "." + namespace + ".svc"
	return []string{svc, svc + ".cluster.local"}
}

// loadRestConfig finds the API server: an explicit kubeconfig, else the
// in-cluster config, else $KUBECONFIG or ~/.kube/config.
func loadRestConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	} else if c, err := rest.InClusterConfig(); err == nil {
		return c, nil
	}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return c, nil
}
