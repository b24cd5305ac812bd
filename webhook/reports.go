package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podguard/podguard/audit"
	"github.com/podguard/podguard/reports"
)

// reportPublisher writes the background audit's verdicts as policy reports,
// in the API audit.reports picks (see reports.Detect). The API is detected
// again at each term as the writer, when the config changes it, and when a
// write finds it no longer served; until one is served, the verdicts go to
// the metrics and events only.
type reportPublisher struct {
	client     client.Client
	discovery  discovery.DiscoveryInterface
	configured func() string
	log        logr.Logger

	mu     sync.Mutex
	want   string // the audit.reports the writer was detected for
	writer *reports.Writer
	known  bool // detected since the last reset
}

// newReportPublisher returns a publisher that reads and writes reports
// straight from the API server (Load pages through them once per term).
func newReportPublisher(cfg *rest.Config, configured func() string, log logr.Logger) (*reportPublisher, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := reports.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the policy reports' client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the policy reports' discovery client: %w", err)
	}
	return &reportPublisher{client: c, discovery: dc, configured: configured, log: log}, nil
}

// current returns the writer of the API in force, or nil when none is.
func (p *reportPublisher) current() (*reports.Writer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := p.configured()
	if p.known && want == p.want {
		return p.writer, nil
	}
	api, err := reports.Detect(p.discovery, want)
	if err != nil {
		return nil, err
	}
	p.want, p.known, p.writer = want, true, nil
	if api == "" {
		p.log.Info("writing no policy reports: no report API is served (install deploy/components/policy-reports, or Kyverno's or the openreports chart's CRDs), or audit.reports is none; the verdicts go to metrics and events", "audit.reports", want)
		return nil, nil
	}
	p.log.Info("writing the audit's policy reports", "api", api)
	p.writer = reports.NewWriter(p.client, api, p.log)
	return p.writer, nil
}

// reset makes the next write detect the API again.
func (p *reportPublisher) reset() {
	p.mu.Lock()
	p.known = false
	p.mu.Unlock()
}

// Previous implements audit.Publisher. Each term detects the API again: a
// CRD installed since the last term is written to from now on.
func (p *reportPublisher) Previous(ctx context.Context) (map[types.UID][]string, []string, error) {
	p.reset()
	w, err := p.current()
	if err != nil || w == nil {
		return nil, nil, err
	}
	return w.Load(ctx)
}

// Publish implements audit.Publisher.
func (p *reportPublisher) Publish(ctx context.Context, namespace string, items []audit.Audited) error {
	w, err := p.current()
	if err != nil || w == nil {
		return err
	}
	err = w.Sync(ctx, namespace, reportEntries(items))
	if errors.Is(err, reports.ErrAPINotServed) {
		p.reset() // the CRD went away: detect again on the retry
	}
	return err
}

// reportEntries turns verdicts into report entries: a fail result per
// violation, with its mode, and a pass result per validating policy that
// found nothing.
func reportEntries(items []audit.Audited) []reports.Entry {
	out := make([]reports.Entry, 0, len(items))
	for _, it := range items {
		e := reports.Entry{Resource: it.Ref}
		for _, f := range it.Verdict.Failed {
			e.Results = append(e.Results, reports.FailResult(f.Finding, f.Mode))
		}
		for _, policy := range it.Verdict.Passed {
			e.Results = append(e.Results, reports.PassResult(policy))
		}
		out = append(out, e)
	}
	return out
}
