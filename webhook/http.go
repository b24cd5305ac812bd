package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// DefaultMaxRequestBytes is the largest AdmissionReview podguard reads: the
// API server's 3 MiB request limit covers one object, and an UPDATE review
// carries the object twice, with room to spare.
const DefaultMaxRequestBytes = 7 << 20

// reviewServer is the HTTP front end of one webhook. It answers malformed
// requests with a real HTTP error status (400, 405, 413, 415) and a plain
// message, hands well-formed requests to the handler, and completes its
// response (the request's UID, the patch encoded) as controller-runtime's
// admission.Webhook does, without the per-request logger that one builds.
type reviewServer struct {
	name     string
	handler  admission.Handler
	maxBytes int64
	// budget bounds the memory of all bodies being read at once; nil
	// means no bound.
	budget *byteBudget
	log    logr.Logger
}

func (s *reviewServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	growStack()
	if r.Method != http.MethodPost {
		s.reject(w, http.StatusMethodNotAllowed, "method", fmt.Errorf("method %s not allowed: send an AdmissionReview with POST", r.Method))
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		s.reject(w, http.StatusUnsupportedMediaType, "content_type", fmt.Errorf("content type %q not supported: expected application/json", r.Header.Get("Content-Type")))
		return
	}
	body, err := readBody(w, r, s.maxBytes, s.budget)
	// The decoded review points into the body: it is released, and may be
	// reused by another request, only once the response is written.
	defer body.release()
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			s.reject(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("request body is larger than the %d-byte limit", s.maxBytes))
		case errors.Is(err, errBodyBudget):
			s.reject(w, http.StatusServiceUnavailable, "busy", err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.reject(w, http.StatusRequestTimeout, "timeout", errors.New("request body not received within the read timeout"))
		default:
			s.reject(w, http.StatusBadRequest, "unreadable", fmt.Errorf("reading request body: %w", err))
		}
		return
	}
	review, obj, err := decodeReview(body.data)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "malformed", err)
		return
	}
	// The policies work to the API server's deadline for this call.
	ctx, cancel, apiDeadline := requestContext(r)
	defer cancel()
	ctx = withObject(ctx, review.Request.Kind, obj)
	resp := s.handle(ctx, admission.Request{AdmissionRequest: *review.Request})
	if !resp.Allowed && resp.Result != nil && resp.Result.Code >= http.StatusInternalServerError {
		// podguard failed, not the request: answer as a failed call, so the
		// API server applies the webhook's failurePolicy.
		http.Error(w, resp.Result.Message, int(resp.Result.Code))
		return
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &resp.AdmissionResponse}
	buf := responsePool.Get().(*bytes.Buffer)
	defer putResponseBuffer(buf)
	buf.Reset()
	if err = json.NewEncoder(buf).Encode(out); err != nil {
		s.log.Error(err, "encoding admission response", "webhook", s.name, "uid", review.Request.UID)
		http.Error(w, "podguard could not encode its response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, err = w.Write(buf.Bytes())
	if err != nil {
		s.log.Error(err, "writing admission response", "webhook", s.name, "uid", review.Request.UID)
	}
	s.delivered(r, apiDeadline, review.Request.UID, &resp, err)
}

// handle runs the handler and completes its response. A panic that gets
// past the handler's own recovery is answered as an error.
func (s *reviewServer) handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error(fmt.Errorf("%v", v), "panic answering an admission request", "webhook", s.name, "uid", req.UID, "stack", string(debug.Stack()))
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("podguard: panic: %v", v))
			resp.UID = req.UID
		}
	}()
	resp = s.handler.Handle(ctx, req)
	if err := complete(&resp, req); err != nil {
		s.log.Error(err, "encoding the patch", "webhook", s.name, "uid", req.UID)
		resp = admission.Errored(http.StatusInternalServerError, errors.New("podguard could not encode its patch"))
		resp.UID = req.UID
	}
	return resp
}

// bodyChunk is how much of the body budget a request takes at a time: a
// slow client holds about what it has sent, not what it announced. A body
// that fits in one chunk (nearly all of them: a pod is a few KiB) is read
// into a pooled buffer.
const bodyChunk = 32 << 10

var errBodyBudget = errors.New("podguard is reading too many request bodies at once; retry")

var (
	bodyPool     = sync.Pool{New: func() any { b := make([]byte, bodyChunk); return &b }}
	responsePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// putResponseBuffer pools a response buffer, unless a large response grew it.
func putResponseBuffer(b *bytes.Buffer) {
	if b.Cap() <= 4*bodyChunk {
		responsePool.Put(b)
	}
}

// requestBody is a request body read by readBody.
type requestBody struct {
	data   []byte
	taken  int64 // of the budget
	budget *byteBudget
	pooled *[]byte // the pooled buffer, if one was taken
}

// release gives back the budget and the pooled buffer. Nothing may use
// data afterwards.
func (b *requestBody) release() {
	b.budget.give(b.taken)
	if b.pooled != nil {
		bodyPool.Put(b.pooled)
	}
	*b = requestBody{}
}

// readBody reads the request body, up to maxBytes, taking what it holds
// from budget as it grows. Call release once the body is no longer needed,
// whatever the error.
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64, budget *byteBudget) (body requestBody, err error) {
	body.budget = budget
	in := http.MaxBytesReader(w, r.Body, maxBytes)
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			grow := min(max(int64(cap(buf)), bodyChunk), maxBytes+1-int64(cap(buf)))
			if grow <= 0 {
				grow = 1
			}
			if !budget.tryTake(grow) {
				return body, errBodyBudget
			}
			body.taken += grow
			if buf == nil && grow <= bodyChunk {
				body.pooled = bodyPool.Get().(*[]byte)
				buf = (*body.pooled)[:0:grow]
			} else {
				buf = append(buf, make([]byte, grow)...)[:len(buf)]
			}
		}
		n, err := in.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			body.data = buf
			return body, nil
		}
		if err != nil {
			return body, err
		}
	}
}

// rejectLogs bounds the log lines of rejected requests (malformed, too
// large, too slow): anyone who reaches the port can send those, and
// podguard's logger does not sample. Every rejection is counted in
// podguard_admission_bad_requests_total, logged or not.
var rejectLogs = rate.NewLimiter(10, 100)

func (s *reviewServer) reject(w http.ResponseWriter, code int, reason string, err error) {
	badRequests.WithLabelValues(s.name, reason).Inc()
	if rejectLogs.Allow() {
		s.log.Info("rejected admission request", "webhook", s.name, "status", code, "reason", err.Error())
	}
	http.Error(w, err.Error(), code)
}

// growStack grows a request's goroutine stack in one step, while it is
// still shallow. Each HTTP/2 request runs on a new goroutine whose stack
// starts small; decoding a pod goes deep, and growing the stack there copies
// it several times over (runtime.copystack was 7-10% of podguard's CPU
// under load, see make perf). Its frame must really be on the stack: touch
// reads it, so the compiler cannot drop it.
//
//go:noinline
func growStack() byte {
	var frame [growStackBytes]byte
	return touch(frame[:])
}

// growStackBytes is growStack's frame: with it the stack is 32 KiB, the
// largest the runtime hands out from its per-CPU caches.
const growStackBytes = 16 << 10

//go:noinline
func touch(b []byte) byte { return b[len(b)-1] }
