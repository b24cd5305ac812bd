package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
// again at each term, when a reload changes audit.reports, when a write
// finds it gone, and, while none is served, every minute: a CRD installed
// after podguard started is written to within a minute, and everything is
// published to it. When the API changes, podguard's reports in the one it
// leaves are removed, so that none goes stale.
type reportPublisher struct {
	client     client.Client
	discovery  discovery.DiscoveryInterface
	configured func() string
	log        logr.Logger

	mu       sync.Mutex
	want     string // the audit.reports the writer was detected for
	writer   *reports.Writer
	known    bool      // detected since the last reset
	detected time.Time // when
}

// redetectEvery is how often an API is looked for while none is served.
const redetectEvery = time.Minute

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

// current returns the writer of the API in force, or nil when none is, and
// whether it changed since the last call.
func (p *reportPublisher) current(ctx context.Context) (*reports.Writer, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := p.configured()
	stale := !p.known || want != p.want || (p.writer == nil && time.Since(p.detected) > redetectEvery)
	if !stale {
		return p.writer, false, nil
	}
	api, err := reports.Detect(p.discovery, want)
	if err != nil {
		return nil, false, err
	}
	old := p.writer
	p.want, p.known, p.detected = want, true, time.Now()
	changed := (old == nil) != (api == "") || (old != nil && old.API() != api)
	if !changed {
		return p.writer, false, nil
	}
	p.writer = nil
	if api != "" {
		p.writer = reports.NewWriter(p.client, api, p.log)
		p.log.Info("writing the audit's policy reports", "api", api)
	} else {
		p.log.Info("writing no policy reports: no report API is served (install deploy/components/policy-reports, or Kyverno's or the openreports chart's CRDs), or audit.reports is none; the verdicts go to metrics and events", "audit.reports", want)
	}
	if old != nil {
		p.removeAll(ctx, old)
	}
	return p.writer, true, nil
}

// removeAll deletes podguard's reports in an API it no longer writes.
func (p *reportPublisher) removeAll(ctx context.Context, w *reports.Writer) {
	_, namespaces, err := w.Load(ctx)
	if err != nil {
		if !errors.Is(err, reports.ErrAPINotServed) {
			p.log.Error(err, "removing podguard's reports in the API it no longer writes", "api", w.API())
		}
		return
	}
	for _, ns := range namespaces {
		if err := w.Sync(ctx, ns, nil); err != nil {
			p.log.Error(err, "removing podguard's reports in the API it no longer writes", "api", w.API(), "namespace", ns)
		}
	}
}

// reset makes the next write detect the API again.
func (p *reportPublisher) reset() {
	p.mu.Lock()
	p.known = false
	p.mu.Unlock()
}

// Previous implements audit.Publisher. Each term detects the API again.
func (p *reportPublisher) Previous(ctx context.Context) (map[types.UID][]string, []string, error) {
	p.reset()
	w, _, err := p.current(ctx)
	if err != nil || w == nil {
		return nil, nil, err
	}
	return w.Load(ctx)
}

// Refresh implements audit.Refresher: true when the API to write changed,
// and everything must be written to the new one.
func (p *reportPublisher) Refresh(ctx context.Context) bool {
	_, changed, err := p.current(ctx)
	if err != nil {
		p.log.Error(err, "detecting the policy report API")
	}
	return changed
}

// Publish implements audit.Publisher. With no API to write to, it writes
// nothing and says so (audit.ErrNotPublished).
func (p *reportPublisher) Publish(ctx context.Context, namespace string, items []audit.Audited) error {
	w, _, err := p.current(ctx)
	if err != nil {
		return err
	}
	if w == nil {
		return audit.ErrNotPublished
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
