package inspector

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// resolver resolves the names "*" allows; a variable for tests.
var resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
} = net.DefaultResolver

// errRefused is returned for a connection to an address outside the
// allow-list; nothing was dialled.
type errRefused struct{ addr string }

func (e *errRefused) Error() string {
	return fmt.Sprintf("%s is not in images.registries: refused to connect", e.addr)
}

// guardedTransport builds the inspector's base transport: every connection,
// including token realms, redirects and foreign layer URLs, goes through the
// allow-list before anything is dialled, and manifest bodies are bounded.
//
// An *http.Transport is cloned: its proxy is dropped (through a proxy the
// dialled address is the proxy's, and the guard could not see the target),
// and its DialContext refuses addresses outside the allow-list. Any other
// RoundTripper is checked per request, by URL host.
func guardedTransport(base http.RoundTripper, allow allowList, refused *atomic.Int64, onRefuse func()) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	refuse := func(addr string) error {
		refused.Add(1)
		onRefuse()
		return &errRefused{addr: addr}
	}
	if t, ok := base.(*http.Transport); ok {
		t = t.Clone()
		t.Proxy = nil
		dial := t.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !allow.addr(addr) {
				return nil, refuse(addr)
			}
			if !allow.anyOnly(addr) {
				return dial(ctx, network, addr)
			}
			// Allowed by "*" alone: resolve the name here and dial a public
			// address of it, so that neither a name pointing inside the
			// cluster nor a DNS answer that changes between a check and
			// the dial reaches a private one.
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, refuse(addr)
			}
			ips, err := resolver.LookupIPAddr(ctx, host)
			if err != nil {
				return nil, err
			}
			for _, ip := range ips {
				if publicIP(ip.IP) {
					return dial(ctx, network, net.JoinHostPort(ip.IP.String(), port))
				}
			}
			return nil, refuse(addr + " (not a public address: list it in images.registries)")
		}
		// A custom TLS dialler would bypass DialContext.
		t.DialTLSContext = nil
		t.DialTLS = nil //nolint:staticcheck // cleared so that it cannot bypass the guard
		t.Dial = nil    //nolint:staticcheck // idem
		if t.MaxResponseHeaderBytes == 0 || t.MaxResponseHeaderBytes > 1<<20 {
			t.MaxResponseHeaderBytes = 1 << 20
		}
		base = t
	}
	return &limitTransport{base: base, allow: allow, refuse: refuse}
}

// limitTransport checks each request's host against the allow-list (for
// base transports whose dialler cannot be guarded) and bounds manifest
// bodies: go-containerregistry reads up to 100 MiB of one.
type limitTransport struct {
	base   http.RoundTripper
	allow  allowList
	refuse func(addr string) error
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host, port := splitHostPort(req.URL.Host)
	if port == "" {
		port = "443"
		if req.URL.Scheme == "http" {
			port = "80"
		}
	}
	if addr := net.JoinHostPort(host, port); !t.allow.addr(addr) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, t.refuse(addr)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || !strings.Contains(req.URL.Path, "/manifests/") {
		return resp, err
	}
	if resp.ContentLength > maxManifestBytes {
		resp.Body.Close()
		return nil, fmt.Errorf("manifest of %d bytes is larger than %d", resp.ContentLength, maxManifestBytes)
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxManifestBytes}
	return resp, nil
}

// limitedBody fails a read past its limit instead of truncating silently.
type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe whether the body really goes on.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("manifest larger than %d bytes", maxManifestBytes)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
