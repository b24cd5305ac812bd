package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Names of the files a Cluster writes into its work directory.
const (
	KubeconfigFile = "kubeconfig"
	EtcdLog        = "etcd.log"
	APIServerLog   = "kube-apiserver.log"
	KCMLog         = "kube-controller-manager.log"

	kcmKubeconfigFile = "kube-controller-manager.kubeconfig"
)

// KCMControllers are the kube-controller-manager controllers a Cluster runs:
// enough for Deployments, ReplicaSets and Jobs to create Pods, for every
// namespace to get its default ServiceAccount (which the ServiceAccount
// admission plugin requires before it admits a Pod), for deleted
// namespaces and owned objects to be cleaned up, for
// ValidatingAdmissionPolicies to get the type checking in their status, and
// for ResourceQuotas to get their status, without which the API server
// refuses every pod a quota covers ("status unknown for quota"), such as
// podguard's own under deploy/base's quota for its priority class.
var KCMControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"job-controller",
	"serviceaccount-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"validatingadmissionpolicy-status-controller",
	"resourcequota-controller",
}

const (
	defaultStartTimeout = 60 * time.Second
	stopTimeout         = 20 * time.Second
	kcmStopTimeout      = 10 * time.Second
	pollInterval        = 50 * time.Millisecond
)

// ClusterOptions configures StartCluster. The zero value is ready to use.
type ClusterOptions struct {
	// WorkDir receives the admin kubeconfig and the log of every component.
	// It is created if missing and left in place by Stop, so that the logs
	// can be read after a failure. Default: a new temporary directory.
	WorkDir string
	// BinDir holds the etcd, kube-apiserver and kube-controller-manager
	// binaries. Default: the bin directory at the repository root.
	BinDir string
	// StartTimeout bounds the start of each component. Default: 60s.
	StartTimeout time.Duration
	// EtcdDataDir, when set, is etcd's data directory, for example one on
	// tmpfs so that fsync stalls do not show in measurements. It is created
	// if missing and left in place by Stop. Default: a temporary directory
	// that envtest creates and removes.
	EtcdDataDir string
}

// Cluster is a running control plane: etcd, kube-apiserver and
// kube-controller-manager.
//
// The API server runs with envtest's flags, except that the ServiceAccount
// admission plugin is enabled, as in any real cluster, and that it presents
// a client certificate (signed by WebhookClientCAFile) to every webhook
// that asks for one. A Pod is therefore
// admitted only once its namespace has its default ServiceAccount, and it
// reaches the admission webhooks with the service account token volume
// already added; use CreateNamespace to get a namespace that is ready.
type Cluster struct {
	// WorkDir holds the admin kubeconfig (KubeconfigFile) and the logs
	// (EtcdLog, APIServerLog, KCMLog).
	WorkDir string
	// KubeconfigPath is an admin (system:masters) kubeconfig for kubectl and
	// for podguard.
	KubeconfigPath string
	// Config is the admin REST config.
	Config *rest.Config
	// Client is a controller-runtime client with client-go's scheme.
	Client client.Client
	// Clientset is a client-go clientset.
	Clientset kubernetes.Interface
	// WebhookClientCAFile is the CA of the client certificate the API
	// server presents to every webhook that asks for one, for podguard's
	// --client-ca-file.
	WebhookClientCAFile string

	env      *envtest.Environment
	logFiles []*os.File
	kcm      *proc

	stopOnce sync.Once
	stopErr  error
}

// StartCluster starts etcd, kube-apiserver and kube-controller-manager, and
// returns once the controllers run. Nothing is downloaded: the binaries must
// be in opts.BinDir. The context bounds the wait for the controllers; the
// processes run until Stop.
func StartCluster(ctx context.Context, opts ClusterOptions) (_ *Cluster, retErr error) {
	binDir := opts.BinDir
	if binDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		binDir = filepath.Join(root, "bin")
	}
	etcdBin := filepath.Join(binDir, "etcd")
	apiserverBin := filepath.Join(binDir, "kube-apiserver")
	kcmBin := filepath.Join(binDir, "kube-controller-manager")
	if err := checkBinaries(etcdBin, apiserverBin, kcmBin); err != nil {
		return nil, err
	}

	startTimeout := opts.StartTimeout
	if startTimeout <= 0 {
		startTimeout = defaultStartTimeout
	}

	workDir := opts.WorkDir
	if workDir == "" {
		dir, err := os.MkdirTemp("", "podguard-cluster-")
		if err != nil {
			return nil, fmt.Errorf("creating work dir: %w", err)
		}
		workDir = dir
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating work dir: %w", err)
	}

	c := &Cluster{WorkDir: workDir, KubeconfigPath: filepath.Join(workDir, KubeconfigFile)}
	defer func() {
		if retErr != nil {
			if err := c.Stop(); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("cleaning up: %w", err))
			}
			retErr = fmt.Errorf("%w\n(cluster logs are in %s)", retErr, workDir)
		}
	}()

	etcdLog, err := c.openLog(EtcdLog)
	if err != nil {
		return nil, err
	}
	apiserverLog, err := c.openLog(APIServerLog)
	if err != nil {
		return nil, err
	}
	// A cert dir of its own, kept across restarts: envtest gives a
	// temporary one new certificates (a new serving CA) on every start,
	// which would lock out every client of a restarted API server.
	apiserverDir := filepath.Join(workDir, "kube-apiserver")
	if err := os.MkdirAll(apiserverDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating kube-apiserver dir: %w", err)
	}
	apiserver := &envtest.APIServer{Path: apiserverBin, Out: apiserverLog, Err: apiserverLog, CertDir: apiserverDir}
	// A client certificate for webhooks, as an administrator can give the
	// API server; a webhook that asks for none gets none.
	caFile, admissionConfig, err := writeWebhookClientConfig(apiserverDir)
	if err != nil {
		return nil, err
	}
	c.WebhookClientCAFile = caFile
	apiserver.Configure().Set("admission-control-config-file", admissionConfig)
	// envtest disables the ServiceAccount admission plugin because it runs no
	// controller to create default ServiceAccounts. This cluster runs one, so
	// it admits Pods as a real cluster does.
	apiserver.Configure().Disable("disable-admission-plugins")
	etcd := &envtest.Etcd{Path: etcdBin, Out: etcdLog, Err: etcdLog}
	if opts.EtcdDataDir != "" {
		if err := os.MkdirAll(opts.EtcdDataDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating etcd data dir: %w", err)
		}
		etcd.DataDir = opts.EtcdDataDir
	}
	c.env = &envtest.Environment{
		// Paths are set explicitly, so that neither KUBEBUILDER_ASSETS nor
		// TEST_ASSET_* can swap in other binaries, and nothing is downloaded.
		BinaryAssetsDirectory: binDir,
		ControlPlane: envtest.ControlPlane{
			Etcd:      etcd,
			APIServer: apiserver,
		},
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  stopTimeout,
	}
	cfg, err := c.env.Start()
	if err != nil {
		return nil, withLogTail(fmt.Errorf("starting etcd and kube-apiserver: %w", err), "kube-apiserver", apiserverLog.Name())
	}
	c.Config = cfg
	if err := os.WriteFile(c.KubeconfigPath, c.env.KubeConfig, 0o600); err != nil {
		return nil, fmt.Errorf("writing admin kubeconfig: %w", err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building scheme: %w", err)
	}
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	if c.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating clientset: %w", err)
	}

	if err := c.startKCM(ctx, kcmBin, startTimeout); err != nil {
		return nil, err
	}
	return c, nil
}

// checkBinaries reports every missing binary in one error.
func checkBinaries(paths ...string) error {
	var missing []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("control-plane binaries missing or not executable: %s; run `make tools` to build them",
			strings.Join(missing, ", "))
	}
	return nil
}

func (c *Cluster) openLog(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.WorkDir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	c.logFiles = append(c.logFiles, f)
	return f, nil
}

// startKCM runs kube-controller-manager as an admin and waits until its
// ServiceAccount controller has created the default namespace's default
// ServiceAccount: the sign that its controllers run.
func (c *Cluster) startKCM(ctx context.Context, bin string, timeout time.Duration) error {
	user, err := c.env.ControlPlane.AddUser(envtest.User{
		Name:   "kube-controller-manager",
		Groups: []string{"system:masters"},
	}, &rest.Config{QPS: 100, Burst: 200})
	if err != nil {
		return fmt.Errorf("provisioning kube-controller-manager user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("building kube-controller-manager kubeconfig: %w", err)
	}
	kubeconfigPath := filepath.Join(c.WorkDir, kcmKubeconfigFile)
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing kube-controller-manager kubeconfig: %w", err)
	}

	logPath := filepath.Join(c.WorkDir, KCMLog)
	c.kcm, err = startProc("kube-controller-manager", logPath, bin,
		"--kubeconfig="+kubeconfigPath,
		"--leader-elect=false",
		// No HTTPS endpoint: readiness is judged by the controllers' work.
		"--secure-port=0",
		// One admin identity for all controllers; there is no token
		// controller to mint per-controller credentials.
		"--use-service-account-credentials=false",
		"--controllers="+strings.Join(KCMControllers, ","),
	)
	if err != nil {
		return err
	}
	// kube-controller-manager does not trap SIGTERM; dying of it is normal.
	c.kcm.diesOnSIGTERM = true

	key := client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: "default"}
	err = Eventually(ctx, timeout, pollInterval, func() (bool, error) {
		if c.kcm.exited() {
			return false, c.kcm.exitError()
		}
		err := c.Client.Get(ctx, key, &corev1.ServiceAccount{})
		return err == nil, client.IgnoreNotFound(err)
	})
	if err != nil {
		return withLogTail(fmt.Errorf("waiting for kube-controller-manager: %w", err), "kube-controller-manager", logPath)
	}
	return nil
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// port, with the same certificates and flags, over the same etcd. Its
// clients (podguard's informers, kube-controller-manager) see their watches
// break and list again, as in a real control-plane upgrade or restart.
func (c *Cluster) RestartAPIServer() error {
	api := c.env.ControlPlane.APIServer
	// With watches open, kube-apiserver can take longer than envtest's stop
	// timeout to drain; envtest then kills it, which is a restart too (a
	// crashed or OOM-killed API server).
	if err := api.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	if err := api.Start(); err != nil {
		return withLogTail(fmt.Errorf("starting kube-apiserver again: %w", err), "kube-apiserver", filepath.Join(c.WorkDir, APIServerLog))
	}
	return nil
}

// KubeconfigFor writes a kubeconfig that authenticates as user, a member of
// groups, with a client certificate, and returns its path. Unlike the admin
// kubeconfig, it has only the permissions RBAC grants that user: running a
// component as system:serviceaccount:NS:NAME tests the RBAC rules of that
// ServiceAccount.
func (c *Cluster) KubeconfigFor(user string, groups ...string) (string, error) {
	u, err := c.env.ControlPlane.AddUser(envtest.User{Name: user, Groups: groups}, &rest.Config{QPS: 50, Burst: 100})
	if err != nil {
		return "", fmt.Errorf("provisioning user %s: %w", user, err)
	}
	kubeconfig, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("building kubeconfig of %s: %w", user, err)
	}
	f, err := os.CreateTemp(c.WorkDir, "user-*.kubeconfig")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(kubeconfig); err != nil {
		return "", fmt.Errorf("writing kubeconfig of %s: %w", user, err)
	}
	return f.Name(), nil
}

// ServiceAccountKubeconfig is KubeconfigFor the ServiceAccount namespace/name,
// with the groups the API server gives ServiceAccount tokens.
func (c *Cluster) ServiceAccountKubeconfig(namespace, name string) (string, error) {
	return c.KubeconfigFor("system:serviceaccount:"+namespace+":"+name,
		"system:serviceaccounts", "system:serviceaccounts:"+namespace, "system:authenticated")
}

// CreateNamespace creates a namespace with the given labels and waits until
// Pods can be created in it, that is until its default ServiceAccount exists.
func (c *Cluster) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	key := client.ObjectKey{Namespace: name, Name: "default"}
	err := Eventually(ctx, 30*time.Second, pollInterval, func() (bool, error) {
		err := c.Client.Get(ctx, key, &corev1.ServiceAccount{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("waiting for the default ServiceAccount in namespace %s: %w", name, err)
	}
	return nil
}

// StopControllerManager stops kube-controller-manager alone, for a harness
// that writes what controllers would (a Deployment's ReplicaSet and Pods)
// itself and must not race them. Stop does not stop it again.
func (c *Cluster) StopControllerManager() error {
	if c.kcm == nil {
		return nil
	}
	err := c.kcm.stop(kcmStopTimeout)
	c.kcm = nil
	if err != nil {
		return fmt.Errorf("stopping kube-controller-manager: %w", err)
	}
	return nil
}

// Stop stops kube-controller-manager, then kube-apiserver and etcd. The work
// directory stays. Stop may be called more than once; later calls return the
// first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if c.kcm != nil {
			if err := c.kcm.stop(kcmStopTimeout); err != nil {
				errs = append(errs, fmt.Errorf("stopping kube-controller-manager: %w", err))
			}
		}
		if c.env != nil {
			if err := c.env.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stopping etcd and kube-apiserver: %w", err))
			}
		}
		for _, f := range c.logFiles {
			if err := f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing log: %w", err))
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}
