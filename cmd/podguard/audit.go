package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kubeversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podguard/podguard/audit"
	"github.com/podguard/podguard/check"
	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

const auditUsage = `Usage: podguard audit [--kubeconfig PATH] [--context NAME] [-n NAMESPACE] [--opt-in] [-l SELECTOR] [--config FILE] [--kubelet-version X.Y] [--images ...] [-o text|json|sarif|junit]

Judges what already runs in a cluster as the admission webhook would judge it
now: Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs
and ReplicationControllers, against the cluster's Namespaces, ConfigMap key
names, Secret key names (when the config has the webhook read them), the
oldest kubelet among the Nodes and the API server's version. A workload owns
the verdict for its pods: a Deployment is reported, not its ReplicaSets nor
their pods. A bare Pod is validated as it is (it was mutated at admission); a
workload is mutated, then validated, as its next pods would be.

Namespaces are those the webhook admits: all but namespaces.exclude and those
labelled podguard.io/enabled=false (the cluster-wide overlay), or, with
--opt-in, only those labelled podguard.io/enabled=true (the opt-in overlay).
What will not run again is not judged, and counted in a note: Pods Succeeded,
Failed or being deleted, Jobs Complete or Failed, and ReplicaSets and
ReplicationControllers scaled to 0 that no audited workload owns.

It reads with your credentials (list on those kinds, Namespaces, ConfigMaps
and Nodes; Secrets only if the config needs them, as metadata only when only
which exist matters) and changes nothing.

Exit status: 0 nothing would be rejected (warnings are fine), 1 something
would be rejected, 2 usage error, cluster unreachable, or forbidden to list
what the verdicts need.

Flags:
`

// auditCommand runs `podguard audit`.
func auditCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage); fs.PrintDefaults() }
	var (
		kubeconfig, kubeContext, namespace, selector string
		configPath, kubeletVersion                   string
		images                                       imageFlags
	)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config, else in-cluster)")
	fs.StringVar(&kubeContext, "context", "", "kubeconfig context (default: the current context)")
	fs.StringVar(&namespace, "namespace", "", "audit this namespace only, in scope or not (default: all but the config's namespaces.exclude and those out of the webhook's scope)")
	fs.StringVar(&namespace, "n", "", "short for --namespace")
	optIn := fs.Bool("opt-in", false, "audit only namespaces labelled podguard.io/enabled=true, as the opt-in overlay deploys the webhook (default: all but those labelled podguard.io/enabled=false)")
	fs.StringVar(&selector, "selector", "", "label selector for the workloads and pods audited, e.g. app=web")
	fs.StringVar(&selector, "l", "", "short for --selector")
	fs.StringVar(&configPath, "config", "", "podguard config file, as the webhook runs with (default: built-in defaults)")
	fs.StringVar(&kubeletVersion, "kubelet-version", "", "target kubelet version, e.g. 1.29 (default: cluster.kubeletVersion from the config, else the oldest kubelet among the Nodes)")
	format := fs.String("o", "text", "output format: text, json, sarif or junit")
	timeout := fs.Duration("timeout", 5*time.Minute, "the most the whole audit may take")
	images.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if !validFormat(*format) {
		return usageError("unknown output format %q: use text, json, sarif or junit", *format)
	}
	if _, err := labels.Parse(selector); err != nil {
		return usageError("--selector %q: %v", selector, err)
	}
	cfg := config.Default()
	if configPath != "" {
		var err error
		if cfg, err = config.Load(configPath); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	opts := audit.Options{
		Namespace:      namespace,
		Exclude:        cfg.Namespaces.Exclude,
		OptIn:          *optIn,
		Selector:       selector,
		SecretKeys:     cfg.SecretKeysEnabled(),
		SecretMetadata: cfg.SecretMetadataEnabled(),
	}
	if kubeletVersion == "" {
		kubeletVersion = cfg.Cluster.KubeletVersion
	}
	if kubeletVersion != "" {
		v, err := kubeversion.ParseGeneric(kubeletVersion)
		if err != nil {
			return usageError("--kubelet-version %q: must be a Kubernetes version such as 1.29 or v1.30.2", kubeletVersion)
		}
		opts.KubeletVersion = v
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("loading kubeconfig: %w", err)}
	}
	restConfig.UserAgent = "podguard-audit/" + version
	// One request, such as a page of 500 Pods, never takes this long; a
	// cluster that does not answer is reported rather than waited for.
	restConfig.Timeout = min(*timeout, time.Minute)
	cs, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// Only which Secrets exist, never their data, when that is all the
	// config needs.
	if opts.Metadata, err = metadata.NewForConfig(restConfig); err != nil {
		return &exitError{code: 2, err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	copts := check.Options{}
	ins, wait, err := images.inspector(cfg, func(ctx context.Context, ns, name string) (*corev1.Secret, error) {
		return cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		return err
	}
	if ins != nil {
		defer ins.Close()
		copts.Images, copts.ImageWait = ins, wait
	}
	engine := policies.NewEngine(&cfg.Policies, policies.WithExemptions(&cfg.Exemptions))
	rep, notes, err := audit.Run(ctx, cs, engine, opts, copts)
	for _, n := range notes {
		fmt.Fprintln(stderr, "podguard audit: note:", n)
	}
	if err != nil {
		if apierrors.IsForbidden(err) {
			err = fmt.Errorf("%w (podguard audit needs list on the kinds it audits; see podguard audit -h)", err)
		}
		return &exitError{code: 2, err: err}
	}
	if err := check.Write(stdout, rep, check.Format(*format), version); err != nil {
		return err
	}
	if code := rep.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}
