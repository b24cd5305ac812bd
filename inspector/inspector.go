// Package inspector tells policies what an image really ships: it resolves a
// pod's image references to digests, reads their config (USER, WORKDIR,
// platform) and indexes the paths their layers create, within a time budget
// per admission request.
//
// Fetches run in the background, bounded in number (Options.Concurrency),
// time (FetchTimeout) and bytes (MaxImageBytes compressed, 4× that
// decompressed, MaxEntries paths and MaxIndexBytes of paths per image); a
// request waits at most its budget and otherwise gets ImagePending, while
// the fetch goes on and fills the cache for the next one. A tag past its
// TagTTL is served from its last digest while a manifest HEAD checks it in
// the background. Fetches are shared by repository and digest, and a layer
// index is shared by digest as soon as it is built. A registry is backed
// off when its manifest or token requests fail (connection failures, 5xx,
// 429, timeouts); a blob that stalls, fails or is too large fails its image
// only. Only registries in the allow-list
// are ever dialled. Pull secrets are read only after a registry refused
// anonymous access, used for that fetch only, and never cached, logged or
// quoted.
package inspector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"

	"github.com/podguard/podguard/policies"
)

// Request is one pod's images.
type Request struct {
	Namespace string
	// Refs are the image references as the pod writes them; duplicates are
	// answered once.
	Refs []string
	// Platform is "os/arch[/variant]" ("linux/amd64", "linux/arm64/v8");
	// empty means policies.DefaultImagePlatform.
	Platform string
	// PullSecrets are secret names in Namespace, in the order the kubelet
	// tries them.
	PullSecrets []string
}

// Inspector resolves, fetches, indexes and caches images. It is safe for
// concurrent use.
type Inspector struct {
	o       Options
	allow   allowList
	m       *metrics
	base    http.RoundTripper
	closeFn func()

	mem    *memCache
	disk   *diskCache
	refs   *expiring[refKey, resolved] // -> manifest and platform manifest digests
	failed *expiring[refKey, string]   // -> why, for failures not worth a registry back-off

	imageFlight singleflight.Group // by manifest digest
	layerFlight singleflight.Group // by layer digest
	sem         chan struct{}

	mu     sync.Mutex
	closed bool
	calls  map[refKey]*call
	// refreshing are the resolutions being checked again in the
	// background.
	refreshing map[refKey]bool
	backoff    map[string]*hostBackoff
	wg         sync.WaitGroup
	ctx        context.Context
	cancel     context.CancelFunc

	refused atomic.Int64

	parsedMu sync.RWMutex
	parsed   map[string]parsed
}

// call is one background fetch that requests wait for.
type call struct {
	done  chan struct{}
	facts policies.ImageFacts
}

type hostBackoff struct {
	failures int
	at       time.Time // of the last failure
	until    time.Time
	reason   string
}

const (
	// maxRefEntries bounds the resolution and negative caches.
	maxRefEntries = 100_000
	// queuePerWorker bounds the fetches waiting for a worker.
	queuePerWorker = 64
)

// New validates o and returns an Inspector. Close releases it.
func New(o Options) (*Inspector, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("image inspector: %w", err)
	}
	o.defaults()
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("image inspector metrics: %w", err)
	}
	i := &Inspector{
		o:          o,
		allow:      newAllowList(o.Registries),
		m:          m,
		refs:       newExpiring[refKey, resolved](maxRefEntries),
		failed:     newExpiring[refKey, string](maxRefEntries),
		sem:        make(chan struct{}, o.Concurrency),
		calls:      map[refKey]*call{},
		refreshing: map[refKey]bool{},
		backoff:    map[string]*hostBackoff{},
		parsed:     map[string]parsed{},
	}
	i.mem = newMemCache(o.MaxCacheBytes, func(n int64) { m.indexBytes.Set(float64(n)) })
	if o.CacheDir != "" {
		if i.disk, err = openDiskCache(o.CacheDir, diskFactor*o.MaxCacheBytes); err != nil {
			return nil, fmt.Errorf("image inspector cache dir: %w", err)
		}
	}
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	i.base = guardedTransport(base, i.allow, &i.refused, m.dialsRefused.Inc)
	i.closeFn = func() {
		if t, ok := i.base.(*limitTransport); ok {
			if ht, ok := t.base.(*http.Transport); ok {
				ht.CloseIdleConnections()
			}
		}
	}
	i.ctx, i.cancel = context.WithCancel(context.Background())
	return i, nil
}

// Close stops the background fetches and waits for them to end.
func (i *Inspector) Close() {
	i.mu.Lock()
	i.closed = true
	i.mu.Unlock()
	i.cancel()
	i.wg.Wait()
	i.closeFn()
}

// Inspect returns facts for every reference of req, waiting until all are
// known, wait has elapsed or ctx ends, whichever comes first. The fetches it
// started keep running in the background and fill the cache. It never fails:
// a failure is an ImageFailed with its Why.
func (i *Inspector) Inspect(ctx context.Context, req Request, wait time.Duration) map[string]policies.ImageFacts {
	start := time.Now()
	out := make(map[string]policies.ImageFacts, len(req.Refs))
	type waiting struct {
		ref string
		c   *call
	}
	var ws []waiting
	for _, raw := range req.Refs {
		if _, dup := out[raw]; dup {
			continue
		}
		f, c := i.lookup(req, raw)
		out[raw] = f
		if c != nil {
			ws = append(ws, waiting{raw, c})
		}
	}
	if len(ws) == 0 {
		return out
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	expired := false
	for _, w := range ws {
		if !expired {
			select {
			case <-w.c.done:
			case <-timer.C:
				expired = true
			case <-ctx.Done():
				expired = true
			}
		}
		select {
		case <-w.c.done:
			f := w.c.facts
			f.Ref = w.ref
			out[w.ref] = f
		default:
			out[w.ref] = policies.ImageFacts{Ref: w.ref, Status: policies.ImagePending,
				Why: fmt.Sprintf("not inspected yet: the fetch was still running after %s", roundDuration(time.Since(start)))}
		}
	}
	return out
}

// lookup answers raw from the caches, or returns the background fetch to
// wait for.
func (i *Inspector) lookup(req Request, raw string) (policies.ImageFacts, *call) {
	f := policies.ImageFacts{Ref: raw}
	p := i.parse(raw)
	if p.err != "" {
		f.Status, f.Why = policies.ImageFailed, p.err
		return f, nil
	}
	if !p.allowed {
		f.Status, f.Why = policies.ImageNotInspected, fmt.Sprintf("registry %s is not in images.registries", p.host)
		return f, nil
	}
	platStr := req.Platform
	if platStr == "" {
		platStr = policies.DefaultImagePlatform
	}
	pp := i.parse(platformPrefix + platStr)
	if pp.err != "" {
		f.Status, f.Why = policies.ImageFailed, pp.err
		return f, nil
	}
	shared := refKey{ref: p.name, platform: pp.name}
	key := shared
	if len(req.PullSecrets) > 0 {
		// A result that needed a pod's pull secrets is only reused by pods
		// of the same namespace naming the same secrets.
		key.scope = req.Namespace + "/" + strings.Join(req.PullSecrets, ",")
	}
	now := time.Now()
	for _, k := range [...]refKey{shared, key} {
		// A resolution past its TagTTL is still served, at once, while it
		// is checked again in the background (stale-while-revalidate): a
		// warm request never waits for a registry.
		if r, stale, ok := i.refs.peek(k, now); ok {
			if e, ok := i.mem.image(r.digest); ok {
				i.m.hits.Inc()
				if stale {
					i.revalidate(k, r, job{ref: p.ref, raw: raw, host: p.host, platform: pp.platform, namespace: req.Namespace,
						secrets: slices.Clone(req.PullSecrets), shared: shared, key: key})
				}
				return known(raw, r.digest, e), nil
			}
		}
		if key == shared {
			break
		}
	}
	if why, _, ok := i.failed.get(key, now); ok {
		i.m.hits.Inc()
		f.Status, f.Why = policies.ImageFailed, why
		return f, nil
	}
	if why, ok := i.backedOff(p.host, now); ok {
		f.Status, f.Why = policies.ImageFailed, why
		return f, nil
	}
	i.m.misses.Inc()

	j := job{ref: p.ref, raw: raw, host: p.host, platform: pp.platform, namespace: req.Namespace, secrets: slices.Clone(req.PullSecrets), shared: shared, key: key}
	i.mu.Lock()
	defer i.mu.Unlock()
	if c, ok := i.calls[j.key]; ok {
		return f, c
	}
	if i.closed {
		f.Status, f.Why = policies.ImageNotInspected, "the image inspector is shut down"
		return f, nil
	}
	if len(i.calls) >= queuePerWorker*i.o.Concurrency {
		f.Status, f.Why = policies.ImageFailed, fmt.Sprintf("not inspected: %d image fetches are already queued", len(i.calls))
		return f, nil
	}
	c := &call{done: make(chan struct{})}
	i.calls[j.key] = c
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		c.facts = i.run(j)
		i.mu.Lock()
		delete(i.calls, j.key)
		i.mu.Unlock()
		close(c.done)
	}()
	return f, c
}

// parsed is a reference or platform parsed once: parsing is most of the
// cost of a warm lookup.
type parsed struct {
	ref      name.Reference
	name     string // the reference's full name, or the platform's
	host     string
	allowed  bool
	platform v1.Platform
	err      string // a Why
}

// maxParsed bounds the parse cache; it is cleared when full.
const maxParsed = 10_000

// platformPrefix marks platforms in the parse cache; no reference starts
// with it.
const platformPrefix = "\x00platform "

func (i *Inspector) parse(s string) parsed {
	i.parsedMu.RLock()
	p, ok := i.parsed[s]
	i.parsedMu.RUnlock()
	if ok {
		return p
	}
	if plat, ok := strings.CutPrefix(s, platformPrefix); ok {
		v, err := v1.ParsePlatform(plat)
		if err != nil || v.OS == "" || v.Architecture == "" {
			p.err = fmt.Sprintf("invalid platform %q", clip(plat))
		} else {
			p.platform, p.name = *v, platString(v.OS, v.Architecture, v.Variant)
		}
	} else if ref, err := name.ParseReference(s); err != nil {
		p.err = "invalid image reference: " + clip(err.Error())
	} else {
		p.ref, p.name, p.host = ref, ref.Name(), ref.Context().RegistryStr()
		p.allowed = i.allow.registry(p.host)
	}
	i.parsedMu.Lock()
	if len(i.parsed) >= maxParsed {
		clear(i.parsed)
	}
	i.parsed[s] = p
	i.parsedMu.Unlock()
	return p
}

func known(raw, digest string, e *imageEntry) policies.ImageFacts {
	return policies.ImageFacts{
		Ref:        raw,
		Status:     policies.ImageKnown,
		Digest:     digest,
		Platform:   e.rec.Platform,
		User:       e.rec.User,
		WorkingDir: e.rec.WorkingDir,
		Env:        e.rec.Env,
		FS:         e.fs,
	}
}

// job is one reference to fetch, with what it may use.
type job struct {
	ref       name.Reference
	raw       string
	host      string
	platform  v1.Platform
	namespace string
	secrets   []string
	shared    refKey // without credentials
	key       refKey // with the pod's pull secrets
}

// refKey is what a resolution is cached by: the reference's full name, the
// platform and, when the pod names pull secrets, "namespace/secret,...".
type refKey struct{ ref, platform, scope string }

// run fetches one reference in the background.
func (i *Inspector) run(j job) (out policies.ImageFacts) {
	failed := func(why string) policies.ImageFacts {
		return policies.ImageFacts{Ref: j.raw, Status: policies.ImageFailed, Why: why}
	}
	select {
	case i.sem <- struct{}{}:
	case <-i.ctx.Done():
		return policies.ImageFacts{Ref: j.raw, Status: policies.ImageNotInspected, Why: "the image inspector is shut down"}
	}
	defer func() { <-i.sem }()
	// A panic in a parser of registry data must not take the webhook down
	// from a background goroutine.
	defer func() {
		if r := recover(); r != nil {
			i.o.Log.Error(fmt.Errorf("panic: %v", r), "image inspection panicked", "ref", j.raw)
			out = failed("podguard could not inspect this image (internal error, logged)")
		}
	}()
	// The registry may have failed while this fetch was queued.
	if why, ok := i.backedOff(j.host, time.Now()); ok {
		return failed(why)
	}
	i.m.inFlight.Inc()
	defer i.m.inFlight.Dec()
	start := time.Now()
	ctx, cancel := context.WithTimeout(i.ctx, i.o.FetchTimeout)
	defer cancel()
	digest, e, err := i.fetch(ctx, j)
	took := time.Since(start)
	if err == nil {
		i.m.fetchDuration.WithLabelValues("ok").Observe(took.Seconds())
		i.recover(j.host)
		i.o.Log.V(1).Info("image inspected", "ref", j.raw, "digest", digest, "duration", took)
		return known(j.raw, digest, e)
	}
	i.m.fetchDuration.WithLabelValues("error").Observe(took.Seconds())
	why, reason := i.explain(ctx, j, err)
	if errors.Is(i.ctx.Err(), context.Canceled) {
		return policies.ImageFacts{Ref: j.raw, Status: policies.ImageNotInspected, Why: "the image inspector is shut down"}
	}
	now := time.Now()
	var (
		be *budgetError
		ce *contentError
	)
	switch {
	case reason != "":
		i.fail(j.host, reason, now)
	case errors.As(err, &be) || errors.As(err, &ce):
		// Fetching the image again would cost as much and fail the same
		// way, until its tag moves.
		i.failed.put(j.key, why, now.Add(max(i.o.TagTTL, i.o.Backoff)), now)
	default:
		i.failed.put(j.key, why, now.Add(i.o.Backoff), now)
	}
	i.o.Log.V(1).Info("image not inspected", "ref", j.raw, "why", why, "duration", took)
	return failed(why)
}

// revalidate checks k's resolution (old) again in the background, at most
// once at a time per key.
func (i *Inspector) revalidate(k refKey, old resolved, j job) {
	i.mu.Lock()
	if i.closed || i.refreshing[k] || len(i.refreshing) >= queuePerWorker*i.o.Concurrency {
		i.mu.Unlock()
		return
	}
	i.refreshing[k] = true
	i.wg.Add(1)
	i.mu.Unlock()
	go func() {
		defer i.wg.Done()
		defer func() {
			i.mu.Lock()
			delete(i.refreshing, k)
			i.mu.Unlock()
		}()
		i.refresh(k, old, j)
	}()
}

// refresh asks the registry what k's reference resolves to now, with a
// manifest HEAD. The same digest is trusted for another TagTTL. A registry
// that fails for the moment (a connection, a 5xx, a 429) keeps the old
// digest, tried again after Backoff. Anything else ends the old answer at
// once: a reference that moved is resolved and indexed again by the next
// request, which waits its budget like any request for a new image, and
// one the registry now refuses or no longer has is failed. Serving the old
// image's facts would judge the pod by an image it will not run: its USER,
// for runAsNonRoot, or its files, for mount-shadowing.
func (i *Inspector) refresh(k refKey, old resolved, j job) {
	select {
	case i.sem <- struct{}{}:
	case <-i.ctx.Done():
		return
	}
	defer func() { <-i.sem }()
	defer func() {
		if r := recover(); r != nil {
			i.o.Log.Error(fmt.Errorf("panic: %v", r), "image re-resolution panicked", "ref", j.raw)
		}
	}()
	keep := func() { now := time.Now(); i.refs.put(k, old, now.Add(i.o.Backoff), now) }
	if _, ok := i.backedOff(j.host, time.Now()); ok {
		keep()
		return
	}
	ctx, cancel := context.WithTimeout(i.ctx, i.o.FetchTimeout)
	defer cancel()
	top, err := i.head(ctx, j)
	if i.ctx.Err() != nil {
		return
	}
	if err != nil {
		why, reason := i.explain(ctx, j, err)
		if reason != "" {
			i.fail(j.host, reason, time.Now())
			i.o.Log.V(1).Info("image reference not re-resolved; keeping its digest", "ref", j.raw, "digest", old.digest, "error", clip(err.Error()))
			keep()
			return
		}
		now := time.Now()
		i.refs.remove(k)
		i.failed.put(k, why, now.Add(i.o.Backoff), now)
		i.o.Log.V(1).Info("image reference no longer resolves; its old digest is dropped", "ref", j.raw, "digest", old.digest, "why", why)
		return
	}
	if top == old.top {
		now := time.Now()
		i.refs.put(k, old, i.refExpiry(j, now), now)
		return
	}
	// The reference moved.
	i.refs.remove(k)
	i.o.Log.V(1).Info("image reference moved; the next request inspects its new image", "ref", j.raw, "old", old.top, "new", top)
}

// backedOff reports whether host is backed off, and says so.
func (i *Inspector) backedOff(host string, now time.Time) (string, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	b, ok := i.backoff[host]
	if !ok || !now.Before(b.until) {
		return "", false
	}
	return fmt.Sprintf("registry %s failed %s ago (%s); retrying after %s",
		host, roundDuration(now.Sub(b.at)), b.reason, roundDuration(b.until.Sub(now))), true
}

// fail backs host off: Backoff after its first failure, doubling up to 5m.
func (i *Inspector) fail(host, reason string, now time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	b, ok := i.backoff[host]
	if !ok {
		if len(i.backoff) >= maxRefEntries {
			clear(i.backoff)
		}
		b = &hostBackoff{}
		i.backoff[host] = b
	}
	b.failures++
	d := i.o.Backoff
	for n := 1; n < b.failures && d < maxBackoff; n++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	b.at, b.until, b.reason = now, now.Add(d), reason
}

func (i *Inspector) recover(host string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.backoff, host)
}

// roundDuration rounds for messages: 1.5s, 12s, 2m0s.
func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// clip makes registry-chosen text fit a warning: one line, bounded.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// platString formats a platform as ImageFacts.Platform does: arm64's
// default variant v8 is left out.
func platString(os, arch, variant string) string {
	if os == "" || arch == "" {
		return "" // a config that does not say
	}
	s := os + "/" + arch
	if variant != "" && !(arch == "arm64" && variant == "v8") {
		s += "/" + variant
	}
	return s
}
