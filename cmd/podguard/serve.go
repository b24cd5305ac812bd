package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", "address for Prometheus /metrics (\"0\" disables)")
	fs.Int64Var(&o.MaxRequestBytes, "max-request-bytes", webhook.DefaultMaxRequestBytes, "largest AdmissionReview accepted; larger requests get HTTP 413")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep serving this long with /readyz failing, so endpoints stop routing here first")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on shutdown")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG or ~/.kube/config)")
	zapOpts := zap.Options{}
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

	log := zap.New(zap.UseFlagOptions(&zapOpts))
	ctrl.SetLogger(log)
	restConfig, err := loadRestConfig(kubeconfig)
	if err != nil {
		return err
	}
	o.RestConfig = restConfig
	o.Log = log.WithName("podguard")

	// SIGTERM or SIGINT starts a graceful shutdown; a second one exits at once.
	return webhook.Run(ctrl.SetupSignalHandler(), o)
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
