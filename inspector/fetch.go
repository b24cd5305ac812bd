package inspector

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/podguard/podguard/imageindex"
)

// budgetError is an image over one of the inspector's bounds.
type budgetError struct{ msg string }

func (e *budgetError) Error() string { return e.msg }

// contentError is a layer that cannot be indexed: the same bytes (they are
// verified by digest) would fail again.
type contentError struct{ err error }

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

// authError is a registry that refused every credential the pod could use.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

// fetch resolves j to its platform's manifest digest and returns the
// image, from the caches when they have it.
func (i *Inspector) fetch(ctx context.Context, j job) (string, *imageEntry, error) {
	// A reference resolved before (whose image was evicted from memory) may
	// be on disk.
	now := time.Now()
	for _, k := range [...]refKey{j.shared, j.key} {
		if r, _, ok := i.refs.get(k, now); ok {
			if e, ok := i.mem.image(r.digest); ok {
				return r.digest, e, nil
			}
			if e := i.loadDisk(r.digest); e != nil {
				return r.digest, e, nil
			}
		}
	}
	img, digest, top, scoped, err := i.resolve(ctx, j)
	if err != nil {
		return "", nil, err
	}
	key := j.shared
	if scoped {
		key = j.key
	}
	i.refs.put(key, resolved{top: top, digest: digest}, i.refExpiry(j, time.Now()), time.Now())
	if e, ok := i.mem.image(digest); ok {
		return digest, e, nil
	}
	// Builds are shared by repository and digest, not by digest alone: a
	// build reads blobs from its own registry, within its leader's context,
	// and must not make another registry's image wait for, or inherit, a
	// stalled registry's failure.
	repo := j.ref.Context().Name()
	for attempt := 0; ; attempt++ {
		v, err, shared := i.imageFlight.Do(repo+"@"+digest, func() (any, error) {
			if e, ok := i.mem.image(digest); ok {
				return e, nil
			}
			if e := i.loadDisk(digest); e != nil {
				return e, nil
			}
			return i.build(ctx, img, repo, digest)
		})
		if err != nil && shared && attempt == 0 && ctx.Err() == nil && isContextError(err) {
			continue // the leader's deadline, not this fetch's
		}
		if err != nil {
			return "", nil, err
		}
		return digest, v.(*imageEntry), nil
	}
}

// isContextError reports a fetch that ended with its context.
func isContextError(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// notMine reports whether err, from a layer fetch shared with another
// image, may be that image's own: its context ended while ctx lives on, or
// the budget it left (which bounded the shared fetch) ran out while this
// image had more. The waiter then fetches again on its own account.
func (i *Inspector) notMine(ctx context.Context, err error, mine, leader imageBudget) bool {
	if ctx.Err() != nil {
		return false
	}
	var be *budgetError
	return isContextError(err) || errors.As(err, &be) && (mine.decomp > leader.decomp || mine.index > leader.index || mine.entries > leader.entries)
}

// remoteOptions are the options of every registry call: the guarded
// transport, the fetch's context, and no retries (a failing registry is
// backed off instead, and retries would outlast the request's budget).
func (i *Inspector) remoteOptions(ctx context.Context, auth authn.Authenticator) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(i.base),
		remote.WithAuth(auth),
		remote.WithUserAgent("podguard"),
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithJobs(1),
	}
}

// resolved is what a reference resolves to: top is the digest of its
// manifest (an index, for a multi-arch reference), as a HEAD answers it;
// digest is the platform's image manifest.
type resolved struct{ top, digest string }

// never is the expiry of a digest-pinned reference: what it names cannot
// change.
var never = time.Unix(1<<62, 0)

// refExpiry is when j's resolution must be checked again.
func (i *Inspector) refExpiry(j job, now time.Time) time.Time {
	if _, pinned := j.ref.(name.Digest); pinned {
		return never
	}
	return now.Add(i.o.TagTTL)
}

// withCredentials calls call as the kubelet would pull: anonymously first,
// then with the keychain, then with each of the pod's pull secrets, until
// one is not refused. scoped says the pod's pull secrets were needed.
func (i *Inspector) withCredentials(ctx context.Context, j job, call func(authn.Authenticator) error) (scoped bool, err error) {
	err = call(authn.Anonymous)
	if err != nil && isAuthError(err) {
		first := err
		if i.o.Keychain != nil {
			if a, kerr := authn.Resolve(ctx, i.o.Keychain, j.ref.Context()); kerr == nil && a != authn.Anonymous {
				err = call(a)
			}
		}
		if err != nil && isAuthError(err) {
			err = i.withSecrets(ctx, j, call, first)
			scoped = err == nil
		}
	}
	return scoped, err
}

// head returns the digest j's reference resolves to now, with a HEAD of its
// manifest (which Docker Hub does not count as a pull), or a GET when the
// registry does not answer HEAD.
func (i *Inspector) head(ctx context.Context, j job) (string, error) {
	var top string
	_, err := i.withCredentials(ctx, j, func(a authn.Authenticator) error {
		d, err := remote.Head(j.ref, i.remoteOptions(ctx, a)...)
		if err == nil {
			top = d.Digest.String()
			return nil
		}
		if !headUnsupported(err) {
			return err
		}
		desc, err := remote.Get(j.ref, i.remoteOptions(ctx, a)...)
		if err != nil {
			return err
		}
		top = desc.Digest.String()
		return nil
	})
	return top, err
}

// headUnsupported reports a registry that does not answer a manifest HEAD
// usefully: 405 or 501, or an answer without a digest.
func headUnsupported(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusMethodNotAllowed || te.StatusCode == http.StatusNotImplemented
	}
	var ne net.Error
	return !errors.As(err, &ne) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) &&
		!errors.As(err, new(*errRefused)) && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET)
}

// resolve gets j's manifest, as the kubelet would: anonymously first, then
// with the keychain, then with each of the pod's pull secrets. scoped says
// the pod's pull secrets were needed. The credentials live in the returned
// image (for its config and layers) and nowhere else. top is the
// manifest's digest, digest the platform image's.
func (i *Inspector) resolve(ctx context.Context, j job) (img v1.Image, digest, top string, scoped bool, err error) {
	var desc *remote.Descriptor
	scoped, err = i.withCredentials(ctx, j, func(a authn.Authenticator) error {
		var err error
		desc, err = remote.Get(j.ref, i.remoteOptions(ctx, a)...)
		return err
	})
	if err != nil {
		return nil, "", "", false, err
	}
	top = desc.Digest.String()
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, "", "", false, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, "", "", false, err
		}
		chosen, err := pickPlatform(im.Manifests, j.platform)
		if err != nil {
			return nil, "", "", false, err
		}
		img, err := idx.Image(chosen.Digest)
		if err != nil {
			return nil, "", "", false, err
		}
		return img, chosen.Digest.String(), top, scoped, nil
	case desc.MediaType.IsImage() || desc.MediaType.IsSchema1():
		img, err := desc.Image()
		if err != nil {
			return nil, "", "", false, err
		}
		return img, desc.Digest.String(), top, scoped, nil
	default:
		return nil, "", "", false, fmt.Errorf("%s is not an image (media type %q)", j.raw, clip(string(desc.MediaType)))
	}
}

// withSecrets tries the pod's pull secrets, in order, after the registry
// refused anonymous access (first). A secret's content is used for one call
// and dropped; errors name secrets, never their content.
func (i *Inspector) withSecrets(ctx context.Context, j job, call func(authn.Authenticator) error, first error) error {
	refused := fmt.Sprintf("registry %s refused anonymous access (%s)", j.host, statusText(first))
	switch {
	case len(j.secrets) == 0:
		return &authError{refused + " and the pod has no imagePullSecrets"}
	case i.o.PullSecrets == nil:
		return &authError{refused + "; podguard does not read pull secrets (no secret reader configured)"}
	}
	repo := j.ref.Context().RegistryStr()
	if dockerHub[repo] {
		repo = "docker.io"
	}
	repo += "/" + j.ref.Context().RepositoryStr()
	var notes []string
	for _, s := range j.secrets {
		secret, err := i.o.PullSecrets(ctx, j.namespace, s)
		if err != nil {
			notes = append(notes, fmt.Sprintf("secret %q could not be read", s))
			continue
		}
		creds, err := secretCredentials(secret, repo)
		secret = nil
		if err != nil {
			notes = append(notes, fmt.Sprintf("secret %q: %v", s, err))
			continue
		}
		if len(creds) == 0 {
			notes = append(notes, fmt.Sprintf("secret %q has no credentials for %s", s, j.host))
			continue
		}
		for k := range creds {
			err := call(authn.FromConfig(creds[k]))
			creds[k] = authn.AuthConfig{}
			if err == nil {
				return nil
			}
			if !isAuthError(err) {
				return err
			}
			notes = append(notes, fmt.Sprintf("secret %q was refused (%s)", s, statusText(err)))
		}
	}
	return &authError{refused + " and to the pod's imagePullSecrets: " + strings.Join(notes, "; ")}
}

// pickPlatform chooses an index's manifest for p, the way containerd
// matches: os and architecture equal, the variant equal when p names one
// (arm64's default variant is v8), an exact variant preferred.
func pickPlatform(ms []v1.Descriptor, p v1.Platform) (v1.Descriptor, error) {
	norm := func(arch, variant string) string {
		if arch == "arm64" && variant == "" {
			return "v8"
		}
		return variant
	}
	want := norm(p.Architecture, p.Variant)
	var loose *v1.Descriptor
	var have []string
	for k := range ms {
		m := ms[k]
		if m.Platform == nil {
			continue
		}
		mp := m.Platform
		if s := platString(mp.OS, mp.Architecture, mp.Variant); s != "" && mp.OS != "unknown" {
			have = append(have, s)
		}
		if mp.OS != p.OS || mp.Architecture != p.Architecture {
			continue
		}
		switch got := norm(mp.Architecture, mp.Variant); {
		case got == want:
			return m, nil
		case p.Variant == "" && loose == nil:
			loose = &ms[k]
		}
	}
	if loose != nil {
		return *loose, nil
	}
	return v1.Descriptor{}, fmt.Errorf("no %s image in the index (it has %s)",
		platString(p.OS, p.Architecture, p.Variant), clip(strings.Join(have, ", ")))
}

// loadDisk rebuilds an image from the disk cache, or returns nil.
func (i *Inspector) loadDisk(digest string) *imageEntry {
	if i.disk == nil {
		return nil
	}
	rec, ok := i.disk.readImage(digest)
	if !ok {
		return nil
	}
	layers := make([]*imageindex.Layer, len(rec.Layers))
	for k, d := range rec.Layers {
		if layers[k] = i.mem.layer(d); layers[k] == nil {
			if layers[k] = i.disk.readLayer(d); layers[k] == nil {
				return nil
			}
		}
	}
	return i.mem.add(digest, rec, layers)
}

// imageBudget is what one image may still read and index.
type imageBudget struct {
	bytes   int64 // compressed
	decomp  int64 // decompressed
	index   int64 // bytes of paths and link targets
	entries int
}

// blobError is a failure to read a config or layer blob, after the
// registry served the manifest: it fails the image, never backs the
// registry off (a stalled or endless blob is the image's doing).
type blobError struct{ err error }

func (e *blobError) Error() string { return e.err.Error() }
func (e *blobError) Unwrap() error { return e.err }

// build reads an image's config and indexes its layers in order.
func (i *Inspector) build(ctx context.Context, img v1.Image, repo, digest string) (*imageEntry, error) {
	e, err := i.buildImage(ctx, img, repo, digest)
	if err != nil {
		var be *budgetError
		if !errors.As(err, &be) {
			err = &blobError{err}
		}
	}
	return e, err
}

func (i *Inspector) buildImage(ctx context.Context, img v1.Image, repo, digest string) (*imageEntry, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	switch m.Config.MediaType {
	case types.DockerConfigJSON, types.OCIConfigJSON, "":
	default:
		return nil, fmt.Errorf("not a container image: its config is %q", clip(string(m.Config.MediaType)))
	}
	if m.Config.Size > maxManifestBytes || m.Config.Size < 0 {
		i.m.budgetExceed.Inc()
		return nil, &budgetError{fmt.Sprintf("its config declares %d bytes, more than %d", m.Config.Size, maxManifestBytes)}
	}
	if len(m.Layers) > maxLayers {
		i.m.budgetExceed.Inc()
		return nil, &budgetError{fmt.Sprintf("it has %d layers, more than %d", len(m.Layers), maxLayers)}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading its config: %w", err)
	}
	rec := imageRecord{
		User:       cfg.Config.User,
		WorkingDir: cfg.Config.WorkingDir,
		Env:        envNames(cfg.Config.Env),
		Platform:   platString(cfg.OS, cfg.Architecture, cfg.Variant),
	}
	b := &imageBudget{bytes: i.o.MaxImageBytes, decomp: decompressFactor * i.o.MaxImageBytes, index: i.o.MaxIndexBytes, entries: i.o.MaxEntries}
	layers := make([]*imageindex.Layer, 0, len(m.Layers))
	for k, ld := range m.Layers {
		l, err := i.layer(ctx, img, repo, ld, b)
		if err != nil {
			return nil, fmt.Errorf("layer %d of %d (%s): %w", k+1, len(m.Layers), shortDigest(ld.Digest), err)
		}
		if b.entries -= l.Len(); b.entries < 0 {
			i.m.budgetExceed.Inc()
			return nil, i.tooManyEntries()
		}
		if b.index -= int64(l.PathBytes()); b.index < 0 {
			i.m.budgetExceed.Inc()
			return nil, i.indexTooLarge()
		}
		layers = append(layers, l)
		rec.Layers = append(rec.Layers, ld.Digest.String())
	}
	if i.disk != nil {
		if err := i.disk.writeImage(digest, rec); err != nil {
			i.o.Log.Error(err, "image cache: writing an image record", "digest", digest)
		}
	}
	return i.mem.add(digest, rec, layers), nil
}

// layer returns a layer's index from the caches or the registry, and
// charges what reading it cost to the image's budget. Layers are shared
// between images: a layer is cached as soon as it is indexed, and
// concurrent fetches of one layer from one repository are made once.
func (i *Inspector) layer(ctx context.Context, img v1.Image, repo string, ld v1.Descriptor, b *imageBudget) (*imageindex.Layer, error) {
	d := ld.Digest.String()
	if l := i.mem.layer(d); l != nil {
		return l, nil
	}
	for attempt := 0; ; attempt++ {
		// The budget is checked here, outside the shared fetch, for every
		// image that waits for it.
		switch {
		case b.entries <= 0:
			// imageindex reads a zero limit as its default.
			i.m.budgetExceed.Inc()
			return nil, i.tooManyEntries()
		case b.index <= 0:
			i.m.budgetExceed.Inc()
			return nil, i.indexTooLarge()
		case ld.Size > b.bytes || ld.Size < 0:
			i.m.budgetExceed.Inc()
			return nil, i.tooManyBytes()
		}
		lim := *b // the leader's remaining budget bounds the shared fetch
		var leader imageBudget
		v, err, shared := i.layerFlight.Do(repo+"@"+d, func() (any, error) {
			if l := i.mem.layer(d); l != nil {
				return fetchedLayer{l: l}, nil
			}
			if i.disk != nil {
				if l := i.disk.readLayer(d); l != nil {
					return fetchedLayer{l: i.mem.put(d, l)}, nil
				}
			}
			l, decomp, err := i.fetchLayer(ctx, img, ld, lim)
			if err != nil {
				return fetchedLayer{lim: lim}, err // the waiters compare budgets
			}
			if i.disk != nil {
				if err := i.disk.writeLayer(d, l); err != nil {
					i.o.Log.Error(err, "image cache: writing a layer index", "digest", d)
				}
			}
			return fetchedLayer{l: i.mem.put(d, l), compressed: ld.Size, decomp: decomp, lim: lim}, nil
		})
		if f, ok := v.(fetchedLayer); ok {
			leader = f.lim
		}
		if err != nil && shared && attempt == 0 && i.notMine(ctx, err, *b, leader) {
			continue
		}
		if err != nil {
			return nil, err
		}
		f := v.(fetchedLayer)
		b.bytes -= f.compressed
		if b.decomp -= f.decomp; b.decomp < 0 {
			i.m.budgetExceed.Inc()
			return nil, i.tooManyDecompressed()
		}
		return f.l, nil
	}
}

// fetchedLayer is a shared layer fetch's result: the index, and what
// reading it cost.
type fetchedLayer struct {
	l          *imageindex.Layer
	compressed int64
	decomp     int64
	lim        imageBudget // the budget that bounded the fetch
}

// fetchLayer streams one compressed layer (go-containerregistry stops at
// its declared size, which the caller checked against the image's budget),
// decompresses it (gzip, zstd or none, by sniffing) within lim.decomp bytes
// and indexes its tar headers within lim's entries and index bytes. After
// the tar ends, it reads the rest of the compressed blob without
// decompressing it, so that go-containerregistry verifies its size and
// digest: layer indexes are shared by digest between images and
// registries, so an unverified one could poison another image's facts. It
// returns the index and the decompressed bytes read.
func (i *Inspector) fetchLayer(ctx context.Context, img v1.Image, ld v1.Descriptor, lim imageBudget) (*imageindex.Layer, int64, error) {
	rl, err := img.LayerByDigest(ld.Digest)
	if err != nil {
		return nil, 0, err
	}
	rc, err := rl.Compressed()
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	cr := &countingReader{ctx: ctx, r: rc, left: ld.Size, i: i}
	br := bufio.NewReaderSize(cr, 64<<10)
	dec, err := decompress(br)
	if err != nil {
		return nil, 0, cr.cause(err)
	}
	defer dec.Close()
	dr := &decompressedReader{ctx: ctx, r: dec, left: lim.decomp, i: i}
	l, err := imageindex.IndexLayer(dr, imageindex.Limits{MaxEntries: lim.entries, MaxPathBytes: maxPathBytes, MaxTotalBytes: int(min(lim.index, 1<<31))})
	if err != nil {
		if e := cmp.Or(cr.err, dr.err); e != nil {
			return nil, dr.n, e
		}
	}
	switch {
	case errors.Is(err, imageindex.ErrTooManyEntries) && cr.readErr == nil:
		i.m.budgetExceed.Inc()
		return nil, dr.n, i.tooManyEntries()
	case errors.Is(err, imageindex.ErrLayerTooLarge) && cr.readErr == nil:
		i.m.budgetExceed.Inc()
		return nil, dr.n, i.indexTooLarge()
	case err != nil:
		return nil, dr.n, cr.cause(&contentError{fmt.Errorf("indexing: %w", err)})
	}
	// The tar ended: what follows in the decompressed stream is padding,
	// or a bomb. Read the compressed rest without decompressing it.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, dr.n, cr.cause(err)
	}
	if ctx.Err() != nil {
		return nil, dr.n, ctx.Err()
	}
	return l, dr.n, nil
}

func (i *Inspector) tooManyEntries() error {
	return &budgetError{fmt.Sprintf("it has more than %d paths (images.maxEntries)", i.o.MaxEntries)}
}

func (i *Inspector) tooManyBytes() error {
	return &budgetError{fmt.Sprintf("the image exceeds %d compressed bytes (images.maxImageSize)", i.o.MaxImageBytes)}
}

func (i *Inspector) indexTooLarge() error {
	return &budgetError{fmt.Sprintf("its paths and link targets take more than %d bytes (images.maxIndexSize)", i.o.MaxIndexBytes)}
}

func (i *Inspector) tooManyDecompressed() error {
	return &budgetError{fmt.Sprintf("it decompresses to more than %d bytes (%d× images.maxImageSize)", decompressFactor*i.o.MaxImageBytes, decompressFactor)}
}

// countingReader reads one compressed blob, at most its declared size,
// counting bytes and checking ctx, and remembers a failed read, so that a
// dropped connection or a digest mismatch is not blamed on the layer's
// content.
type countingReader struct {
	ctx     context.Context
	r       io.Reader
	left    int64
	i       *Inspector
	err     error // the budget's or the context's
	readErr error // the blob's
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF && c.readErr == nil {
		c.readErr = err
	}
	c.left -= int64(n)
	c.i.m.fetchBytes.Add(float64(n))
	if c.left < 0 {
		c.i.m.budgetExceed.Inc()
		c.err = c.i.tooManyBytes()
		return 0, c.err
	}
	return n, err
}

// cause prefers the budget error, then the blob's read error, to whatever
// they caused downstream.
func (c *countingReader) cause(err error) error {
	switch {
	case c.err != nil:
		return c.err
	case c.readErr != nil:
		return fmt.Errorf("reading the blob: %w", c.readErr)
	}
	return err
}

// decompressedReader bounds and counts the decompressed bytes of a layer,
// and checks ctx, so that a decompression bomb ends with its budget or its
// fetch's deadline.
type decompressedReader struct {
	ctx  context.Context
	r    io.Reader
	left int64
	n    int64
	i    *Inspector
	err  error
}

func (d *decompressedReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if err := d.ctx.Err(); err != nil {
		d.err = err
		return 0, err
	}
	if int64(len(p)) > d.left+1 {
		p = p[:d.left+1]
	}
	n, err := d.r.Read(p)
	d.n += int64(n)
	if d.left -= int64(n); d.left < 0 {
		d.i.m.budgetExceed.Inc()
		d.err = d.i.tooManyDecompressed()
		return 0, d.err
	}
	return n, err
}

// decompress sniffs a layer's compression.
func decompress(br *bufio.Reader) (io.ReadCloser, error) {
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(true)
		return zr, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		// The window bounds the decoder's memory; 64 MiB allows zstd's
		// --long=26, more than any builder uses by default.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	default:
		return io.NopCloser(br), nil
	}
}

func shortDigest(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}

// isAuthError reports a registry refusing the credentials used.
func isAuthError(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.UnauthorizedErrorCode || d.Code == transport.DeniedErrorCode {
			return true
		}
	}
	return false
}

// statusText summarizes a registry error: "HTTP 401 UNAUTHORIZED".
func statusText(err error) string {
	var te *transport.Error
	if !errors.As(err, &te) {
		return clip(err.Error())
	}
	s := fmt.Sprintf("HTTP %d", te.StatusCode)
	for _, d := range te.Errors {
		s += " " + clip(string(d.Code))
		break
	}
	return s
}

// explain turns a fetch error into a Why, and a back-off reason when the
// registry itself failed (5xx, 429, timeouts, refused or broken
// connections on its manifest and token requests) rather than the image or
// the credentials. A blob that fails, stalls or is too large fails its
// image only: one hostile image must not back off a registry others use.
func (i *Inspector) explain(ctx context.Context, j job, err error) (why, backoff string) {
	why, backoff = i.explainErr(ctx, j, err)
	if errors.As(err, new(*blobError)) {
		backoff = ""
	}
	return why, backoff
}

func (i *Inspector) explainErr(ctx context.Context, j job, err error) (why, backoff string) {
	var (
		be *budgetError
		ae *authError
		re *errRefused
		te *transport.Error
		ne net.Error
	)
	switch {
	case errors.As(err, &re):
		return fmt.Sprintf("%s: the registry sent podguard to %s, which is not in images.registries", j.raw, re.addr), ""
	case errors.As(err, &be):
		return fmt.Sprintf("%s is too large to inspect: %s", j.raw, be.msg), ""
	case errors.As(err, &ae):
		return ae.msg, ""
	case errors.As(err, &te):
		status := statusText(te)
		switch {
		case te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests:
			return fmt.Sprintf("registry %s failed (%s)", j.host, status), fmt.Sprintf("HTTP %d", te.StatusCode)
		case te.StatusCode == http.StatusNotFound:
			return fmt.Sprintf("%s was not found in registry %s (%s)", j.raw, j.host, status), ""
		default:
			return fmt.Sprintf("registry %s refused %s (%s)", j.host, j.raw, status), ""
		}
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		reason := fmt.Sprintf("timed out after %s", roundDuration(i.o.FetchTimeout))
		return fmt.Sprintf("registry %s %s", j.host, reason), reason
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("registry %s refused the connection", j.host), "connection refused"
	case errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, new(*contentError)):
		return fmt.Sprintf("registry %s: %s", j.host, clip(err.Error())), "connection failed"
	default:
		return fmt.Sprintf("%s could not be inspected: %s", j.raw, clip(err.Error())), ""
	}
}
