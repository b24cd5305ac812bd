package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	kubeversion "k8s.io/apimachinery/pkg/util/version"

	"github.com/podguard/podguard/check"
	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/manifests"
	"github.com/podguard/podguard/policies"
)

// paths is a repeatable -f flag.
type paths []string

func (p *paths) String() string     { return strings.Join(*p, ",") }
func (p *paths) Set(v string) error { *p = append(*p, v); return nil }

// offlineFlags are the flags check and mutate share.
type offlineFlags struct {
	files          paths
	configPath     string
	kubeletVersion string
	namespace      string
	images         imageFlags
}

// newOfflineFlagSet returns the flag set of check or mutate, with the flags
// they share registered.
func newOfflineFlagSet(name, usage string, stderr io.Writer) (*flag.FlagSet, *offlineFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	o := &offlineFlags{}
	o.register(fs)
	return fs, o
}

func (o *offlineFlags) register(fs *flag.FlagSet) {
	fs.Var(&o.files, "f", "manifest file, folder (recursive: .yaml, .yml, .json) or - for stdin; repeatable")
	fs.StringVar(&o.configPath, "config", "", "podguard config file (default: built-in defaults)")
	fs.StringVar(&o.kubeletVersion, "kubelet-version", "", "target kubelet version, e.g. 1.29 (default: cluster.kubeletVersion from the config, else the strict behaviour of 1.29 and older)")
	fs.StringVar(&o.namespace, "namespace", "default", "namespace of objects that set none")
	o.images.register(fs)
}

// parseOffline parses check's or mutate's flags, which take files only
// through -f.
func parseOffline(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q: give files with -f", fs.Args())
	}
	return nil
}

// loaded is what check and mutate read: the manifests, and the loader's
// warnings and errors about them.
type loaded struct {
	docs  []manifests.Document
	warns []manifests.Warning
	errs  []error
	// close releases what load started (the image inspector).
	close func()
}

func (l loaded) release() {
	if l.close != nil {
		l.close()
	}
}

// load reads the config and the manifests.
func (o *offlineFlags) load(stdin io.Reader) (*policies.Engine, check.Options, loaded, error) {
	var (
		opts check.Options
		in   loaded
	)
	if len(o.files) == 0 {
		return nil, opts, in, usageError("at least one -f PATH is required (use -f - for stdin)")
	}
	cfg := config.Default()
	if o.configPath != "" {
		var err error
		if cfg, err = config.Load(o.configPath); err != nil {
			return nil, opts, in, &exitError{code: 2, err: err}
		}
	}
	kubelet := o.kubeletVersion
	if kubelet == "" {
		kubelet = cfg.Cluster.KubeletVersion
	}
	if kubelet != "" {
		v, err := kubeversion.ParseGeneric(kubelet)
		if err != nil {
			return nil, opts, in, usageError("--kubelet-version %q: must be a Kubernetes version such as 1.29 or v1.30.2", kubelet)
		}
		opts.KubeletVersion = v
	}
	opts.Namespace = o.namespace
	in.docs, in.warns, in.errs = manifests.Load(o.files, stdin)
	if len(in.docs) == 0 && len(in.errs) == 0 {
		return nil, opts, in, &exitError{code: 2, err: fmt.Errorf("no Kubernetes objects in %s (did helm template or kustomize build print nothing?)", o.files.String())}
	}
	ins, wait, err := o.images.inspector(cfg, manifestSecrets(in.docs, o.namespace))
	if err != nil {
		return nil, opts, in, err
	}
	if ins != nil {
		in.close = ins.Close
		opts.Images, opts.ImageWait = ins, wait
	}
	return policies.NewEngine(&cfg.Policies, policies.WithExemptions(&cfg.Exemptions)), opts, in, nil
}

const checkUsage = `Usage: podguard check -f PATH [-f PATH ...] [--config FILE] [--kubelet-version X.Y] [--images [--image-cache DIR]] [-o text|json|sarif|junit]

Runs podguard's policies over manifests, offline, with the same verdicts as
the admission webhook: Pods, and the pod templates of Deployments,
ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, ReplicationControllers
and PodTemplates. ConfigMaps and Secrets in the input are what envFrom and
volume checks look up.

With --images, podguard reads each image from its registry (config and layer
tar headers, never file contents) and judges mounts and users from what the
image really ships, as the webhook does with images.inspect; results are
marked image-aware. Credentials: anonymous, then ~/.docker/config.json (and
its credential helpers), then the pull secrets in the given manifests.

Exit status: 0 nothing would be rejected (warnings are fine), 1 something
would be rejected, 2 usage error or unreadable input.

Flags:
`

// checkCommand runs `podguard check`.
func checkCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, o := newOfflineFlagSet("check", checkUsage, stderr)
	format := fs.String("o", "text", "output format: text, json, sarif or junit")
	if err := parseOffline(fs, args); err != nil {
		return err
	}
	if !validFormat(*format) {
		return usageError("unknown output format %q: use text, json, sarif or junit", *format)
	}
	engine, opts, in, err := o.load(stdin)
	if err != nil {
		return err
	}
	defer in.release()
	rep, err := check.Run(in.docs, in.warns, in.errs, engine, opts)
	if err != nil {
		return err
	}
	if err := check.Write(stdout, rep, check.Format(*format), version); err != nil {
		return err
	}
	if code := rep.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func validFormat(f string) bool {
	for _, known := range check.Formats {
		if string(known) == f {
			return true
		}
	}
	return false
}

const mutateUsage = `Usage: podguard mutate -f PATH [-f PATH ...] [--config FILE] [--kubelet-version X.Y] [--images [--image-cache DIR]] [--diff]

Prints the input with podguard's mutations applied, as multi-document YAML:
Pods, and the pod templates of workloads, as the admission webhook would
change them. Objects podguard does not change come out as they went in.

Exit status: 0 done, 1 a mutating policy would reject an object (it is
printed unchanged and the reason goes to stderr), 2 usage error or
unreadable input.

Flags:
`

// mutateCommand runs `podguard mutate`.
func mutateCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, o := newOfflineFlagSet("mutate", mutateUsage, stderr)
	diff := fs.Bool("diff", false, "print a unified diff of the changes instead of the documents")
	if err := parseOffline(fs, args); err != nil {
		return err
	}
	engine, opts, in, err := o.load(stdin)
	if err != nil {
		return err
	}
	defer in.release()
	for _, w := range in.warns {
		// "file:line: warning: ...", beside the errors' "file:line: ...".
		w.Msg = "warning: " + w.Msg
		fmt.Fprintln(stderr, w)
	}
	out, err := check.Mutate(in.docs, engine, opts)
	if err != nil {
		return err
	}
	if *diff {
		err = check.WriteDiff(stdout, out)
	} else {
		err = check.WriteYAML(stdout, out)
	}
	if err != nil {
		return err
	}
	code := 0
	aware, inspected := 0, 0
	for _, m := range out {
		for _, v := range m.Violations {
			fmt.Fprintf(stderr, "%s:%d: %s\n", m.Document.File, m.Document.Line, v)
			code = 1
		}
		if m.Images == nil {
			continue
		}
		// With --images, say which objects' mutations rest on their
		// images, and why the others do not.
		inspected++
		if m.ImageAware {
			aware++
			continue
		}
		for _, img := range m.Images {
			if img.Status != "inspected" {
				fmt.Fprintf(stderr, "%s:%d: warning: image %s %s: %s; mutated without knowing what it ships\n", m.Document.File, m.Document.Line, img.Ref, img.Status, img.Reason)
			}
		}
	}
	if inspected > 0 {
		fmt.Fprintf(stderr, "podguard mutate: %d of %d objects image-aware\n", aware, inspected)
	}
	for _, e := range in.errs {
		fmt.Fprintln(stderr, e)
		code = 2
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
