// Command nullwebhook is the baseline admission webhook of `make perf`
// (hack/perf): a net/http TLS server (HTTP/2, as net/http sets it up) that
// decodes every AdmissionReview POSTed to it, to any path, with
// encoding/json and answers allowed, with the same uid, and nothing else.
// What podguard costs on top of it is what podguard's own work costs.
//
// It also serves GET /readyz (200 once listening) and GET /count, the number
// of reviews answered per path as a JSON object, such as
// {"/mutate":3,"/validate":5}, so that a caller can tell whether the API
// server calls it.
//
// With --capture DIR it writes the raw body of a review to
// DIR/<path>-<kind>-<operation>.json (for example
// mutate-Pod-CREATE.json) when DIR has no such file yet: the first request
// per (path, request.kind.kind, request.operation) is kept, and removing
// the file captures the next one. Files appear whole (written aside, then
// linked into place).
//
//	nullwebhook --cert-dir DIR --addr 127.0.0.1:8443 [--capture DIR]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxBody bounds a request body; kube-apiserver's objects are far smaller.
const maxBody = 16 << 20

func main() {
	certDir := flag.String("cert-dir", "", "directory with tls.crt and tls.key (required)")
	addr := flag.String("addr", "", "listen address, a loopback IP and a port, such as 127.0.0.1:8443 (required)")
	capture := flag.String("capture", "", "directory to write the first request body per (path, kind, operation) to (optional)")
	flag.Parse()
	if err := run(*certDir, *addr, *capture); err != nil {
		log.Fatalf("nullwebhook: %v", err)
	}
}

func run(certDir, addr, capture string) error {
	if certDir == "" {
		return errors.New("--cert-dir is required")
	}
	if err := checkLoopback(addr); err != nil {
		return err
	}
	if capture != "" {
		if err := os.MkdirAll(capture, 0o755); err != nil {
			return err
		}
	}
	h := &handler{capture: capture}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /count", h.serveCount)
	mux.HandleFunc("POST /", h.serveReview)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ErrorLog: log.New(os.Stderr, "nullwebhook: http: ", 0)}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	log.Printf("nullwebhook: serving on https://%s", ln.Addr())
	err = srv.ServeTLS(ln, filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// checkLoopback accepts only an explicit loopback IP with a non-zero port.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q: the host must be a loopback IP such as 127.0.0.1", addr)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("--addr %q: give an explicit port", addr)
	}
	return nil
}

type handler struct {
	capture string
	counts  sync.Map // path -> *atomic.Int64
}

func (h *handler) serveReview(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "decoding AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "AdmissionReview has no request", http.StatusBadRequest)
		return
	}
	if h.capture != "" {
		if err := h.save(r.URL.Path, review.Request, body); err != nil {
			log.Printf("nullwebhook: capture: %v", err)
		}
	}
	resp := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true},
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&resp); err != nil {
		log.Printf("nullwebhook: writing response: %v", err)
	}
	h.counter(r.URL.Path).Add(1)
}

func (h *handler) counter(path string) *atomic.Int64 {
	if c, ok := h.counts.Load(path); ok {
		return c.(*atomic.Int64)
	}
	c, _ := h.counts.LoadOrStore(path, new(atomic.Int64))
	return c.(*atomic.Int64)
}

func (h *handler) serveCount(w http.ResponseWriter, _ *http.Request) {
	counts := map[string]int64{}
	h.counts.Range(func(k, v any) bool {
		counts[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(counts)
}

// save writes body to <path>-<kind>-<operation>.json in the capture
// directory unless that file exists.
func (h *handler) save(path string, req *admissionv1.AdmissionRequest, body []byte) error {
	name := fmt.Sprintf("%s-%s-%s.json", sanitize(strings.Trim(path, "/")), sanitize(req.Kind.Kind), sanitize(string(req.Operation)))
	final := filepath.Join(h.capture, name)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(h.capture, ".capture-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link fails if the file appeared meanwhile: the first request wins.
	if err := os.Link(tmp.Name(), final); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// sanitize keeps a file name component to letters, digits, '-' and '_'.
func sanitize(s string) string {
	if s == "" {
		return "root"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}
