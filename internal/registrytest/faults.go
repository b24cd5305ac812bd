package registrytest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Fault is what the registry does wrong for one repository (and the
// repositories below it: a fault on "slow" also hits "slow/app").
// Faults apply to every client except the seeding Push calls.
type Fault struct {
	// Delay holds every response (headers included) back this long, or
	// until the client hangs up.
	Delay time.Duration
	// Status answers every request with this HTTP status and a registry
	// error body (code "REGISTRYTEST_FAULT").
	Status int
	// EndlessBlobs answers GETs of layer blobs (config blobs are spared)
	// with 200, no Content-Length, a valid gzip header and then a tar stream
	// that never ends, until the client hangs up or the registry closes.
	// A go-containerregistry client stops after the manifest's declared layer
	// size and reports a digest mismatch; the endless/app image declares a
	// 1 TiB layer, so with it the client reads until its own deadline.
	EndlessBlobs bool
	// Stall answers GETs of layer blobs with 200 and their headers
	// (Content-Length included) and then sends no body byte until the client
	// hangs up or the registry closes. Manifests and configs are served.
	Stall bool
	// StallAll is Stall for every GET in the repository, manifests included.
	StallAll bool
}

// SetFault replaces repo's fault; the zero Fault clears it.
func (r *Registry) SetFault(repo string, f Fault) {
	repo = strings.Trim(repo, "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	if f == (Fault{}) {
		delete(r.faults, repo)
		return
	}
	r.faults[repo] = f
}

// ClearFaults removes every fault.
func (r *Registry) ClearFaults() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.faults)
}

func (r *Registry) updateFault(repo string, f func(*Fault)) {
	repo = strings.Trim(repo, "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.faults[repo]
	f(&cur)
	r.faults[repo] = cur
}

// Slow delays every response for repo by d (see Fault.Delay).
func (r *Registry) Slow(repo string, d time.Duration) {
	r.updateFault(repo, func(f *Fault) { f.Delay = d })
}

// Status answers every request for repo with code (see Fault.Status).
func (r *Registry) Status(repo string, code int) {
	r.updateFault(repo, func(f *Fault) { f.Status = code })
}

// NeverEndingBlob makes repo's layer blobs endless (see Fault.EndlessBlobs).
func (r *Registry) NeverEndingBlob(repo string) {
	r.updateFault(repo, func(f *Fault) { f.EndlessBlobs = true })
}

// Stall makes repo's layer blob GETs send headers and no body (see Fault.Stall).
func (r *Registry) Stall(repo string) {
	r.updateFault(repo, func(f *Fault) { f.Stall = true })
}

// applyFault carries out f; it reports whether the request should still be
// served normally.
func (r *Registry) applyFault(w http.ResponseWriter, req *http.Request, f Fault, kind string, isConfig bool) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.Context().Done():
			return false
		case <-r.done:
			return false
		}
	}
	if f.Status != 0 {
		writeRegError(w, f.Status, "REGISTRYTEST_FAULT", fmt.Sprintf("registrytest: fault status %d", f.Status))
		return false
	}
	if req.Method != http.MethodGet {
		return true
	}
	_, _, ref := parsePath(req.URL.Path)
	layerBlob := kind == "blobs" && !isConfig && strings.HasPrefix(ref, "sha256:")
	switch {
	case layerBlob && f.EndlessBlobs:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", ref)
		w.WriteHeader(http.StatusOK)
		r.stream(w, req, newEndlessReader())
		return false
	case (layerBlob && f.Stall) || f.StallAll:
		if kind == "blobs" {
			if h, err := v1.NewHash(ref); err == nil {
				if n, err := r.blobs.Stat(req.Context(), "", h); err == nil {
					w.Header().Set("Content-Length", fmt.Sprint(n))
				}
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Docker-Content-Digest", ref)
		}
		w.WriteHeader(http.StatusOK)
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		select {
		case <-req.Context().Done():
		case <-r.done:
		}
		return false
	}
	return true
}

// stream copies src to w until the client hangs up or the registry closes.
func (r *Registry) stream(w http.ResponseWriter, req *http.Request, src io.Reader) {
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-req.Context().Done():
			return
		case <-r.done:
			return
		default:
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}
