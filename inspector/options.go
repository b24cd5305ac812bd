package inspector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/podguard/podguard/config"
)

// Options configure an Inspector. Zero values take the documented defaults.
type Options struct {
	// Registries is the allow-list of registries podguard may contact:
	// "host", "host:port", "host:*" or "*". A reference whose registry
	// matches none is never contacted (ImageNotInspected), and no connection
	// is ever dialled to an address that matches none, whatever a registry
	// redirects to or names as its token realm.
	Registries []string
	// Concurrency is how many image fetches run at once in the background;
	// default 4.
	Concurrency int
	// TagTTL is how long a reference (with its platform and credential
	// scope) stays resolved to a digest; default 5m.
	TagTTL time.Duration
	// FetchTimeout bounds one image, its manifests, config and all its
	// layers; default 2m.
	FetchTimeout time.Duration
	// MaxCacheBytes bounds the in-memory layer indexes; default 256 MiB.
	MaxCacheBytes int64
	// CacheDir, when set, persists layer indexes and image records so that a
	// restarted Inspector does not fetch them again. The directory is kept
	// under 4×MaxCacheBytes, oldest files first.
	CacheDir string
	// MaxImageBytes bounds the compressed bytes read for one image;
	// default 2 GiB. The decompressed bytes of one image are bounded by
	// 4×MaxImageBytes (a decompression bomb fails its image once it has
	// cost that), and after a layer's tar ends its compressed rest is read
	// (to verify its digest) without being decompressed.
	MaxImageBytes int64
	// MaxEntries bounds the paths of one image, all layers together;
	// default 1,000,000.
	MaxEntries int
	// MaxIndexBytes bounds the bytes of one image's paths and symlink
	// targets, all layers together (each layer is indexed within what the
	// layers below it left); default 32 MiB. Building a layer's index costs
	// a few times what it indexes, and more per entry: a fetch holds at most
	// about 5.5×MaxIndexBytes of heap while it indexes, with MaxEntries at
	// its default (measured by imageindex's TestWorstCaseLayerPeakHeap:
	// 1M entries of 32-byte paths, the worst case of the defaults, peak at
	// 173 MiB; 140k entries of 238-byte paths at 134 MiB; without this
	// bound, 1M entries of 238-byte paths peaked at 847 MiB). Concurrency
	// fetches hold at most Concurrency times that: about 700 MiB with the
	// defaults (4 × 173 MiB), reached only when four hostile images are
	// indexed at the same moment; lower Concurrency or MaxIndexBytes to fit
	// a smaller memory limit (2 × 173 MiB with concurrency 2).
	MaxIndexBytes int64
	// Backoff is the first back-off of a failing registry, doubling on each
	// further failure up to 5m; default 10s.
	Backoff time.Duration
	// PullSecrets reads a pod's imagePullSecrets; nil: none are read.
	PullSecrets SecretReader
	// Keychain supplies extra credentials (the CLI passes
	// authn.DefaultKeychain); nil: none.
	Keychain authn.Keychain
	// Transport is the base transport (tests); default a clone of
	// http.DefaultTransport. An *http.Transport is cloned and its dialler
	// guarded; any other RoundTripper is guarded per request.
	Transport http.RoundTripper
	// Registerer registers the inspector's metrics; nil: none.
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// SecretReader returns a Secret of a namespace (the webhook reads them with
// a client; values are used for one registry call and then dropped).
type SecretReader func(ctx context.Context, namespace, name string) (*corev1.Secret, error)

const (
	defaultConcurrency   = 4
	defaultTagTTL        = 5 * time.Minute
	defaultFetchTimeout  = 2 * time.Minute
	defaultMaxCacheBytes = 256 << 20
	defaultMaxImageBytes = 2 << 30
	defaultMaxEntries    = 1_000_000
	defaultMaxIndexBytes = 32 << 20
	// decompressFactor bounds one image's decompressed bytes:
	// decompressFactor×MaxImageBytes.
	decompressFactor = 4
	defaultBackoff   = 10 * time.Second
	maxBackoff       = 5 * time.Minute

	// maxManifestBytes bounds a manifest or index body, and the declared
	// size of an image config. go-containerregistry accepts 100 MiB.
	maxManifestBytes = 4 << 20
	// maxPathBytes bounds one path in a layer (Linux's PATH_MAX).
	maxPathBytes = 4096
	// maxLayers bounds the layers of one image (overlayfs stacks at most
	// 128 in practice; docker refuses more than 127).
	maxLayers = 1000
	// diskFactor is how much larger than MaxCacheBytes CacheDir may grow.
	diskFactor = 4
)

func (o *Options) defaults() {
	if o.Concurrency == 0 {
		o.Concurrency = defaultConcurrency
	}
	if o.TagTTL == 0 {
		o.TagTTL = defaultTagTTL
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = defaultFetchTimeout
	}
	if o.MaxCacheBytes == 0 {
		o.MaxCacheBytes = defaultMaxCacheBytes
	}
	if o.MaxImageBytes == 0 {
		o.MaxImageBytes = defaultMaxImageBytes
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = defaultMaxEntries
	}
	if o.MaxIndexBytes == 0 {
		o.MaxIndexBytes = defaultMaxIndexBytes
	}
	if o.Backoff == 0 {
		o.Backoff = defaultBackoff
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d: must not be negative", o.Concurrency))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"tagTTL", o.TagTTL}, {"fetchTimeout", o.FetchTimeout}, {"backoff", o.Backoff}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", d.name, d.v))
		}
	}
	if o.MaxCacheBytes < 0 || o.MaxImageBytes < 0 || o.MaxEntries < 0 || o.MaxIndexBytes < 0 {
		errs = append(errs, errors.New("maxCacheBytes, maxImageBytes, maxEntries and maxIndexBytes must not be negative"))
	}
	for i, r := range o.Registries {
		if _, err := parsePattern(r); err != nil {
			errs = append(errs, fmt.Errorf("registries[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// pattern is one allow-list entry, as the config reads it.
type pattern = config.RegistryPattern

func parsePattern(s string) (pattern, error) {
	p, err := config.ParseRegistryPattern(s)
	if err != nil {
		return p, fmt.Errorf("%q: %w", s, err)
	}
	return p, nil
}

// dockerHub are the names of Docker Hub's registry: a pattern naming one
// allows the others. Its token realm (auth.docker.io) and blob CDN are other
// hosts, which the allow-list must name too.
var dockerHub = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

func sameHost(a, b string) bool {
	return a == b || dockerHub[a] && dockerHub[b]
}

// allowList matches registries and dialled addresses.
type allowList []pattern

func newAllowList(ss []string) allowList {
	var l allowList
	for _, s := range ss {
		if p, err := parsePattern(s); err == nil {
			l = append(l, p)
		}
	}
	return l
}

// registry reports whether a reference's registry ("host" or
// "host:port") may be contacted. "*" does not cover an IP address that is
// not public (see publicIP): such a registry must be listed.
func (l allowList) registry(reg string) bool {
	host, port := splitHostPort(reg)
	if l.explicit(host, port) {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && !publicIP(ip) {
		return false
	}
	return l.any()
}

// addr reports whether a dialled "host:port" may be connected to, by name:
// an explicit pattern, or "*". A connection allowed only by "*" must also
// reach a public address, which the guarded dialler checks once the name is
// resolved (anyOnly).
func (l allowList) addr(addr string) bool {
	host, port := splitHostPort(addr)
	return l.explicit(host, port) || l.any()
}

// anyOnly reports whether addr is allowed by "*" alone, so that only a
// public address may be dialled for it.
func (l allowList) anyOnly(addr string) bool {
	host, port := splitHostPort(addr)
	return !l.explicit(host, port) && l.any()
}

func (l allowList) any() bool {
	for _, p := range l {
		if p.Any {
			return true
		}
	}
	return false
}

// explicit reports whether a pattern other than "*" allows host:port. A
// pattern without a port allows the HTTPS and HTTP ports.
func (l allowList) explicit(host, port string) bool {
	for _, p := range l {
		if p.Any || !sameHost(p.Host, host) {
			continue
		}
		switch p.Port {
		case "*", port:
			return true
		case "":
			if port == "443" || port == "80" {
				return true
			}
		}
	}
	return false
}

// publicIP reports whether ip is an address "*" may reach: not loopback,
// private (RFC 1918, unique local), link-local (which includes the cloud
// metadata endpoint 169.254.169.254), shared (100.64.0.0/10), unspecified or
// multicast, nor an IPv6 address that embeds an IPv4 one a relay or
// translator would forward to (NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4
// 2002::/16, Teredo 2001::/32). Otherwise anyone who may create a pod could make podguard send
// requests into the cluster's network with an image named
// 10.0.0.5:6443/x; a registry there must be listed by name or address.
func publicIP(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	if ip4 := ip.To4(); ip4 != nil && (ip4[0] == 100 && ip4[1]&0xc0 == 64 || ip4[0] == 0) {
		return false
	}
	if ip16 := ip.To16(); ip16 != nil && ip.To4() == nil {
		for _, n := range tunnelled {
			if n.Contains(ip16) {
				return false
			}
		}
	}
	return true
}

// tunnelled are the IPv6 prefixes that embed an IPv4 address: a NAT64
// gateway, a 6to4 relay or a Teredo server forwards to it, which could be
// a private one.
var tunnelled = func() []*net.IPNet {
	var out []*net.IPNet
	for _, s := range []string{"64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"} {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	return out
}()

func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return strings.ToLower(h), p
	}
	return strings.ToLower(strings.Trim(s, "[]")), ""
}
