// Command devcluster runs podguard against a local control plane for manual
// testing; `make run` starts it after building bin/podguard.
//
// It starts etcd, kube-apiserver and kube-controller-manager from bin/, runs
// bin/podguard with hack/devcluster/config.yaml, registers the opt-in
// overlay's webhooks pointed at it. Before podguard starts, as in a cluster
// podguard is new to, it installs the openreports.io CRDs of
// deploy/components/policy-reports and creates a namespace "demo" that opts
// in, a ConfigMap to try envFrom with, a Node with a v1.29 kubelet, and a
// Deployment that already reads that ConfigMap: the background audit
// reports it. It
// also serves a registry on 127.0.0.1 with synthetic images (a tomcat-like
// one, an ubuntu-like one, ...) for the image inspector, which the config
// allows to contact 127.0.0.1 only. It then prints how to reach the cluster
// and runs until interrupted, when it stops everything it started.
//
// Everything lives in .devcluster at the repository root, recreated on each
// run: the kubeconfig, the serving certificates and every component's log.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/podguard/podguard/e2e/framework"
	"github.com/podguard/podguard/internal/registrytest"
	"github.com/podguard/podguard/reports"
)

const (
	demoNamespace = "demo"
	demoConfigMap = "abcdocker-configmap"
	demoNode      = "dev-node"
	demoKubelet   = "v1.29.3"
	// demoTomcatConf holds a server.xml, for the mount-shadowing examples.
	demoTomcatConf = "tomcat-conf"
	// demoDeployment runs before podguard starts, reading demoConfigMap.
	demoDeployment = "legacy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		os.Exit(1)
	}
}

// env is what run starts; stop ends it in reverse order.
type env struct {
	// configPath is podguard's config file.
	configPath string
	cluster    *framework.Cluster
	podguard   *framework.Podguard
	registry   *registrytest.Registry
}

func run() error {
	// envtest logs through controller-runtime's logger; without one set,
	// controller-runtime complains on stderr.
	ctrllog.SetLogger(logr.Discard())

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	root, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	workDir := filepath.Join(root, ".devcluster")

	start := time.Now()
	e := &env{}
	if err := e.start(ctx, root, workDir); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted during startup: %w", err)
		}
		if stopErr := e.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return err
	}
	printUsage(e, workDir, time.Since(start))

	var exitErr error
	select {
	case <-ctx.Done():
		fmt.Println("\ndevcluster: shutting down")
	case <-e.podguard.Done():
		exitErr = fmt.Errorf("podguard exited unexpectedly; see %s", e.podguard.LogPath)
	}
	// From here on, a second Ctrl-C kills devcluster at once.
	stopSignals()

	if err := e.stop(); err != nil {
		return errors.Join(exitErr, err)
	}
	if exitErr != nil {
		return exitErr
	}
	fmt.Println("devcluster: podguard, kube-controller-manager, kube-apiserver and etcd stopped")
	return nil
}

// start brings everything up. On error, whatever did start is recorded in e
// for stop.
func (e *env) start(ctx context.Context, root, workDir string) error {
	if err := os.RemoveAll(workDir); err != nil {
		return fmt.Errorf("removing the previous work dir: %w", err)
	}

	fmt.Println("devcluster: starting etcd, kube-apiserver and kube-controller-manager")
	cluster, err := framework.StartCluster(ctx, framework.ClusterOptions{WorkDir: workDir})
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	e.cluster = cluster

	// Loopback only: the config's images.registries allows 127.0.0.1 and
	// nothing else, so no image from another registry is ever fetched.
	reg, err := registrytest.Serve("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the local registry: %w", err)
	}
	e.registry = reg
	if _, err := registrytest.Seed(reg, registrytest.SeedOptions{ManyEntries: 1000}); err != nil {
		return fmt.Errorf("seeding the local registry: %w", err)
	}

	// What a cluster has before podguard: the report CRDs, podguard's
	// namespace (where the audit Lease is), and the demo's objects.
	if err := installReportCRDs(ctx, cluster); err != nil {
		return err
	}
	if err := cluster.CreateNamespace(ctx, "podguard-system", nil); err != nil {
		return err
	}
	if err := createDemoObjects(ctx, cluster); err != nil {
		return err
	}

	certDir := filepath.Join(workDir, "certs")
	caPEM, err := framework.NewServingCerts(certDir)
	if err != nil {
		return err
	}

	fmt.Println("devcluster: starting podguard")
	e.configPath = filepath.Join(root, "hack", "devcluster", "config.yaml")
	pg, err := framework.StartPodguard(ctx, framework.PodguardOptions{
		Kubeconfig: cluster.KubeconfigPath,
		CertDir:    certDir,
		ConfigPath: e.configPath,
		LogPath:    filepath.Join(workDir, "podguard.log"),
	})
	if err != nil {
		return fmt.Errorf("starting podguard: %w", err)
	}
	e.podguard = pg

	overlay := filepath.Join(root, "deploy", "overlays", "opt-in")
	return framework.InstallWebhooks(ctx, cluster.Client, overlay, pg.URL, caPEM)
}

// installReportCRDs installs the CRDs of the API podguard's reports are
// written in (openreports.io/v1alpha1), as deploy/components/policy-reports
// does, and waits until they are served.
func installReportCRDs(ctx context.Context, cluster *framework.Cluster) error {
	crds, err := reports.CRDs(reports.APIOpenReports)
	if err != nil {
		return err
	}
	for _, crd := range crds {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{Object: u}
		obj.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		if err := cluster.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("installing CRD %s: %w", crd.Name, err)
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cluster.Config)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if api, err := reports.Detect(dc, "auto"); err == nil && api == reports.APIOpenReports {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the openreports.io CRDs were not served within 30s")
		}
	}
}

// createDemoObjects creates the namespace, ConfigMap and Node that the
// printed examples use.
func createDemoObjects(ctx context.Context, cluster *framework.Cluster) error {
	if err := cluster.CreateNamespace(ctx, demoNamespace, map[string]string{"podguard.io/enabled": "true"}); err != nil {
		return err
	}

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoConfigMap},
		Data: map[string]string{
			"keyinfo":      "a key a v1.29 kubelet passes on",
			"abcdockerDir": "/var/lib/abcdocker",
			"1st.key":      "a key a v1.29 kubelet drops: not a valid environment variable name there",
		},
	}
	if err := cluster.Client.Create(ctx, cm); err != nil {
		return fmt.Errorf("creating ConfigMap %s/%s: %w", demoNamespace, demoConfigMap, err)
	}
	conf := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoTomcatConf},
		Data:       map[string]string{"server.xml": "<Server port=\"8005\"/>"},
	}
	if err := cluster.Client.Create(ctx, conf); err != nil {
		return fmt.Errorf("creating ConfigMap %s/%s: %w", demoNamespace, demoTomcatConf, err)
	}

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   demoNode,
		Labels: map[string]string{"kubernetes.io/hostname": demoNode, "kubernetes.io/os": "linux"},
	}}
	if err := cluster.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("creating Node %s: %w", demoNode, err)
	}
	// A Node's status is a subresource: creating the Node ignores it.
	node.Status.NodeInfo.KubeletVersion = demoKubelet
	if err := cluster.Client.Status().Update(ctx, node); err != nil {
		return fmt.Errorf("setting the kubelet version of Node %s: %w", demoNode, err)
	}

	// Running before podguard: its pods lose 1st.key on a v1.29 kubelet.
	labels := map[string]string{"app": demoDeployment}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoDeployment},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "registry.k8s.io/pause:3.10",
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: demoConfigMap}}}},
			}}}},
		},
	}
	if err := cluster.Client.Create(ctx, d); err != nil {
		return fmt.Errorf("creating Deployment %s/%s: %w", demoNamespace, demoDeployment, err)
	}
	return nil
}

// stop stops podguard, then the control plane.
func (e *env) stop() error {
	var errs []error
	if e.podguard != nil {
		if err := e.podguard.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping podguard: %w", err))
		}
	}
	if e.cluster != nil {
		if err := e.cluster.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the control plane: %w", err))
		}
	}
	if e.registry != nil {
		e.registry.Close()
	}
	return errors.Join(errs...)
}

func printUsage(e *env, workDir string, took time.Duration) {
	fmt.Printf(`devcluster: ready in %s. Press Ctrl-C to stop.

Point kubectl at the cluster:

  export KUBECONFIG=%s

Logs: podguard   %s
      cluster    %s/{etcd,kube-apiserver,kube-controller-manager}.log

Namespace %s opts in to podguard (podguard.io/enabled=true); Node %s reports kubelet %s.
There is no scheduler or kubelet: pods are admitted and stay Pending.

A pod from registry 10.0.0.130:5000 gets the pull secret myregistrykey added:

  kubectl -n %s run nginx --image=10.0.0.130:5000/nginx:latest
  kubectl -n %s get pod nginx -o jsonpath='{.spec.imagePullSecrets}'; echo

A pod taking its environment from ConfigMap %s, whose key 1st.key a v1.29
kubelet would silently drop, is rejected:

  kubectl -n %s run envfrom --image=registry.k8s.io/pause:3.10 --overrides='{"apiVersion":"v1","spec":{"containers":[{"name":"envfrom","image":"registry.k8s.io/pause:3.10","envFrom":[{"configMapRef":{"name":"%s"}}]}]}}'

The image inspector reads images from the local registry %s (the only
registry the config allows). Mounting ConfigMap %s over the tomcat image's
conf directory is rejected, naming the files it would hide; the same mount
over /etc/pki/tls/certs of the ubuntu image, which has no /etc/pki, is fine:

  kubectl -n %s run tomcat --image=%s --overrides='{"apiVersion":"v1","spec":{"volumes":[{"name":"conf","configMap":{"name":"%s"}}],"containers":[{"name":"tomcat","image":"%s","volumeMounts":[{"name":"conf","mountPath":"/usr/local/tomcat/conf"}]}]}}'
  kubectl -n %s run certs --image=%s --overrides='{"apiVersion":"v1","spec":{"volumes":[{"name":"conf","configMap":{"name":"%s"}}],"containers":[{"name":"certs","image":"%s","volumeMounts":[{"name":"conf","mountPath":"/etc/pki/tls/certs"}]}]}}'

The first request for an image waits at most images.budget (1.5s); if the
image is not indexed by then, the heuristics answer with a warning, and the
next request knows the image.

The background audit judged what ran before podguard started: Deployment
%s/%s reads ConfigMap %s, whose 1st.key its pods lose on Node %s's
v1.29 kubelet. Its report, and the same from a laptop:

  kubectl get reports -A
  kubectl -n %s get report podguard -o yaml
  bin/podguard audit --kubeconfig %s --opt-in

Change what the verdicts depend on, and watch the report follow. A
ConfigMap edit that adds a key the kubelet drops is warned of, naming the
Deployment. A newer kubelet passes every key; when the Node goes back to
v1.29, the verdict turns to fail again, with a PolicyViolation event:

  kubectl -n %s patch configmap %s --type merge -p '{"data":{"2nd.key":"x"}}'
  kubectl patch node %s --subresource=status --type merge -p '{"status":{"nodeInfo":{"kubeletVersion":"v1.31.0"}}}'
  kubectl patch node %s --subresource=status --type merge -p '{"status":{"nodeInfo":{"kubeletVersion":"v1.29.3"}}}'
  kubectl -n %s get events --field-selector reason=PolicyViolation

podguard's config is %s: edits are picked up without a restart (an
invalid one is logged and the last good config stays). Metrics:

  curl -s %s | grep ^podguard_

`,
		took.Round(100*time.Millisecond), e.cluster.KubeconfigPath,
		e.podguard.LogPath, workDir,
		demoNamespace, demoNode, demoKubelet,
		demoNamespace, demoNamespace,
		demoConfigMap, demoNamespace, demoConfigMap,
		e.registry.Host, demoTomcatConf,
		demoNamespace, e.registry.Ref("tomcat:9"), demoTomcatConf, e.registry.Ref("tomcat:9"),
		demoNamespace, e.registry.Ref("ubuntu:22.04"), demoTomcatConf, e.registry.Ref("ubuntu:22.04"),
		demoNamespace, demoDeployment, demoConfigMap, demoNode,
		demoNamespace, e.cluster.KubeconfigPath,
		demoNamespace, demoConfigMap, demoNode, demoNode, demoNamespace,
		e.configPath, e.podguard.MetricsURL)
}
