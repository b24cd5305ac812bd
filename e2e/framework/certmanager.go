package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	cmcontroller "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	cmutil "github.com/cert-manager/cert-manager/pkg/util"

	// The Issuer implementations the issuers controller sets up: they
	// register themselves with cert-manager's issuer factory.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// CertManagerLog is the file that receives the log of the cert-manager
// started by StartCertManager, in the directory of the kubeconfig it is
// given: the WorkDir of a Cluster.
const CertManagerLog = "cert-manager.log"

// CertManagerControllers are the controllers of cert-manager's controller
// manager that StartCertManager runs: enough for namespaced Issuers of the
// selfSigned and ca types to issue Certificates, renew them and keep their
// status. ClusterIssuers, ACME, Vault, Venafi, CertificateSigningRequests
// and the ingress and Gateway shims are left out.
var CertManagerControllers = []string{
	issuers.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	crapprover.ControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

const (
	// certManagerLogVerbosity is the verbosity of the cert-manager log:
	// cert-manager's debug level, which shows every sync.
	certManagerLogVerbosity = 4
	// cluster resource namespace, QPS, burst and backoffs: cert-manager's
	// defaults.
	certManagerClusterResourceNamespace = "kube-system"
	certManagerQPS                      = 20
	certManagerBurst                    = 50
	certManagerMinBackoff               = time.Hour
	certManagerMaxBackoff               = 32 * time.Hour
)

// StartCertManager runs cert-manager in this process, against the cluster
// that cfg and kubeconfigPath (which must describe the same admin user)
// point to:
//
//   - its CA injector, a controller-runtime manager that fills the caBundle
//     of MutatingWebhookConfigurations and ValidatingWebhookConfigurations
//     annotated cert-manager.io/inject-ca-from (or inject-ca-from-secret),
//     with no metrics or health endpoint and no leader election;
//   - the controllers of its controller manager listed in
//     CertManagerControllers, one worker each.
//
// cert-manager's webhook does not run: cert-manager objects are checked by
// the OpenAPI schemas of its CRDs only, and are not defaulted beyond them.
// The cert-manager CRDs must be installed first (InstallCertManagerCRDs).
//
// StartCertManager returns once the informer caches of both have synced; ctx
// bounds that wait, not the run. cert-manager runs until stop, which cancels
// it, waits for its goroutines and returns the errors that made any part of
// it exit early. stop may be called more than once.
//
// cert-manager, and client-go code of this process, log through klog: klog's
// global logger is set to write, like cert-manager, to CertManagerLog until
// stop. So only one cert-manager may run in a process at a time.
func StartCertManager(ctx context.Context, cfg *rest.Config, kubeconfigPath string) (stop func() error, err error) {
	logPath := filepath.Join(filepath.Dir(kubeconfigPath), CertManagerLog)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening cert-manager log: %w", err)
	}
	logger := fileLogger(logFile)
	klog.SetLogger(logger)

	// The run outlives ctx, which only bounds the start, but keeps its
	// values; the logger in it is the one cert-manager's code looks for.
	runCtx, cancel := context.WithCancel(logr.NewContext(context.WithoutCancel(ctx), logger))
	cm := &certManager{ctx: runCtx, cancel: cancel, logFile: logFile, failed: make(chan struct{})}
	defer func() {
		if err != nil {
			// stop's errors include those of the parts that failed.
			if stopErr := cm.stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
			err = fmt.Errorf("%w\n(cert-manager log: %s)", err, logPath)
		}
	}()

	mgr, err := startCAInjector(runCtx, cm, cfg, logger.WithName("cainjector"))
	if err != nil {
		return nil, err
	}
	cmctx, err := startControllers(runCtx, cm, kubeconfigPath)
	if err != nil {
		return nil, err
	}

	// Wait for the caches, unless a part of cert-manager fails first.
	waitCtx, waitDone := context.WithCancel(ctx)
	defer waitDone()
	go func() {
		select {
		case <-cm.failed:
			waitDone()
		case <-waitCtx.Done():
		}
	}()
	var unsynced []string
	if !mgr.GetCache().WaitForCacheSync(waitCtx) {
		unsynced = append(unsynced, "CA injector")
	}
	unsynced = append(unsynced, unsyncedOf(cmctx.KubeSharedInformerFactory.WaitForCacheSync(waitCtx.Done()))...)
	unsynced = append(unsynced, unsyncedOf(cmctx.SharedInformerFactory.WaitForCacheSync(waitCtx.Done()))...)
	unsynced = append(unsynced, unsyncedOf(cmctx.HTTP01ResourceMetadataInformersFactory.WaitForCacheSync(waitCtx.Done()))...)
	if cm.err() != nil {
		// The errors are stop's, which the deferred cleanup adds.
		return nil, errors.New("cert-manager failed while starting")
	}
	if len(unsynced) > 0 {
		sort.Strings(unsynced)
		return nil, fmt.Errorf("waiting for cert-manager's informer caches (%s): %w", strings.Join(unsynced, ", "), context.Cause(waitCtx))
	}
	return cm.stop, nil
}

// startCAInjector starts cert-manager's CA injector for webhook
// configurations in a controller-runtime manager.
func startCAInjector(ctx context.Context, cm *certManager, cfg *rest.Config, logger logr.Logger) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building CA injector scheme: %w", err)
	}
	if err := cmscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building CA injector scheme: %w", err)
	}
	// As cert-manager's cainjector command sets it up: it watches only the
	// metadata of Secrets, so Secrets are read from the API server; and
	// the user agent is the field manager of the injected caBundle.
	mgr, err := ctrl.NewManager(cmutil.RestConfigWithUserAgent(cfg, "cainjector"), ctrl.Options{
		Scheme: scheme,
		Logger: logger,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true},
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		// Tests may start a CA injector more than once in a process.
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
	})
	if err != nil {
		return nil, fmt.Errorf("creating CA injector manager: %w", err)
	}
	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("registering CA injector controllers: %w", err)
	}
	cm.goRun("CA injector", true, func() error { return mgr.Start(ctx) })
	return mgr, nil
}

// startControllers starts the controllers of CertManagerControllers and the
// informer factories they share, and returns the controller context that
// holds those factories.
func startControllers(ctx context.Context, cm *certManager, kubeconfigPath string) (*cmcontroller.Context, error) {
	factory, err := cmcontroller.NewContextFactory(ctx, cmcontroller.ContextOptions{
		Kubeconfig:         kubeconfigPath,
		KubernetesAPIQPS:   certManagerQPS,
		KubernetesAPIBurst: certManagerBurst,
		IssuerOptions: cmcontroller.IssuerOptions{
			ClusterResourceNamespace: certManagerClusterResourceNamespace,
		},
		CertificateOptions: cmcontroller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: certManagerMinBackoff,
			CertificateRequestMaximumBackoffDuration: certManagerMaxBackoff,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating cert-manager controller context: %w", err)
	}

	known := cmcontroller.Known()
	for _, name := range CertManagerControllers {
		construct, ok := known[name]
		if !ok {
			return nil, fmt.Errorf("cert-manager has no controller %q", name)
		}
		// Constructing a controller registers the informers it needs with
		// the shared factories, so all are constructed before those start.
		c, err := construct(factory)
		if err != nil {
			return nil, fmt.Errorf("creating cert-manager controller %s: %w", name, err)
		}
		cm.goRun("controller "+name, false, func() error { return c.Run(1, ctx) })
	}

	cmctx, err := factory.Build()
	if err != nil {
		return nil, fmt.Errorf("building cert-manager controller context: %w", err)
	}
	for _, f := range []interface {
		Start(<-chan struct{})
		Shutdown()
	}{cmctx.KubeSharedInformerFactory, cmctx.SharedInformerFactory, cmctx.HTTP01ResourceMetadataInformersFactory} {
		f.Start(ctx.Done())
		cm.shutdowns = append(cm.shutdowns, f.Shutdown)
	}
	return cmctx, nil
}

// unsyncedOf lists the informers a WaitForCacheSync result reports unsynced.
func unsyncedOf[K comparable](synced map[K]bool) []string {
	var out []string
	for k, ok := range synced {
		if !ok {
			out = append(out, fmt.Sprint(k))
		}
	}
	return out
}

// certManager tracks the goroutines of a running cert-manager.
type certManager struct {
	ctx       context.Context // canceled by stop
	cancel    context.CancelFunc
	logFile   *os.File
	shutdowns []func() // informer factory shutdowns, after cancel

	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     []error
	failed   chan struct{} // closed when a part of cert-manager fails
	failOnce sync.Once

	stopOnce sync.Once
	stopErr  error
}

// goRun runs a part of cert-manager in a goroutine. An error it returns
// while cert-manager runs is recorded and fails the start; after cancel, it
// is recorded only if always is set: controllers' Run returns an error when
// canceled before its caches synced.
func (cm *certManager) goRun(name string, always bool, run func() error) {
	cm.wg.Go(func() {
		err := run()
		if err == nil {
			return
		}
		cm.mu.Lock()
		canceled := cm.ctx.Err() != nil
		if !canceled || always {
			cm.errs = append(cm.errs, fmt.Errorf("%s: %w", name, err))
		}
		cm.mu.Unlock()
		if !canceled {
			cm.failOnce.Do(func() { close(cm.failed) })
		}
	})
}

func (cm *certManager) err() error {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	return errors.Join(cm.errs...)
}

// stop cancels cert-manager, waits for its goroutines and informers, gives
// klog its default output back and closes the log.
func (cm *certManager) stop() error {
	cm.stopOnce.Do(func() {
		cm.cancel()
		cm.wg.Wait()
		for _, shutdown := range cm.shutdowns {
			shutdown()
		}
		klog.ClearLogger()
		var errs []error
		if err := cm.err(); err != nil {
			errs = append(errs, err)
		}
		if err := cm.logFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing cert-manager log: %w", err))
		}
		cm.stopErr = errors.Join(errs...)
	})
	return cm.stopErr
}

// fileLogger returns a logger that writes one line per entry to f, up to
// certManagerLogVerbosity.
func fileLogger(f *os.File) logr.Logger {
	var mu sync.Mutex
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		if prefix != "" {
			fmt.Fprintf(f, "%s %s\n", prefix, args)
			return
		}
		fmt.Fprintln(f, args)
	}, funcr.Options{LogTimestamp: true, Verbosity: certManagerLogVerbosity})
}
