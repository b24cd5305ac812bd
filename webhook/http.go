package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// DefaultMaxRequestBytes is the largest AdmissionReview podguard reads: the
// API server's 3 MiB request limit covers one object, and an UPDATE review
// carries the object twice, with room to spare.
const DefaultMaxRequestBytes = 7 << 20

// reviewServer is the HTTP front end of one webhook. It answers malformed
// requests with a real HTTP error status (400, 405, 413, 415) and a plain
// message, then hands well-formed requests to controller-runtime's
// admission.Webhook, which sets the response UID and completes patches.
type reviewServer struct {
	name     string
	webhook  *admission.Webhook
	maxBytes int64
	// budget bounds the memory of all bodies being read at once; nil
	// means no bound.
	budget *byteBudget
	log    logr.Logger
}

func (s *reviewServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.reject(w, http.StatusMethodNotAllowed, "method", fmt.Errorf("method %s not allowed: send an AdmissionReview with POST", r.Method))
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		s.reject(w, http.StatusUnsupportedMediaType, "content_type", fmt.Errorf("content type %q not supported: expected application/json", r.Header.Get("Content-Type")))
		return
	}
	body, release, err := readBody(w, r, s.maxBytes, s.budget)
	defer release()
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
	review, err := decodeReview(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "malformed", err)
		return
	}
	// The policies work to the API server's deadline for this call.
	ctx, cancel, apiDeadline := requestContext(r)
	defer cancel()
	resp := s.webhook.Handle(ctx, admission.Request{AdmissionRequest: *review.Request})
	if !resp.Allowed && resp.Result != nil && resp.Result.Code >= http.StatusInternalServerError {
		// podguard failed, not the request: answer as a failed call, so the
		// API server applies the webhook's failurePolicy.
		http.Error(w, resp.Result.Message, int(resp.Result.Code))
		return
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &resp.AdmissionResponse}
	w.Header().Set("Content-Type", "application/json")
	err = json.NewEncoder(w).Encode(out)
	if err != nil {
		s.log.Error(err, "writing admission response", "webhook", s.name, "uid", review.Request.UID)
	}
	s.delivered(r, apiDeadline, review.Request.UID, &resp, err)
}

// bodyChunk is how much of the body budget a request takes at a time: a
// slow client holds about what it has sent, not what it announced.
const bodyChunk = 32 << 10

var errBodyBudget = errors.New("podguard is reading too many request bodies at once; retry")

// readBody reads the request body, up to maxBytes, taking what it holds
// from budget as it grows. release gives it back; call it once the body is
// no longer needed.
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64, budget *byteBudget) (body []byte, release func(), err error) {
	var taken int64
	release = func() { budget.give(taken) }
	in := http.MaxBytesReader(w, r.Body, maxBytes)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			grow := min(max(int64(cap(buf)), bodyChunk), maxBytes+1-int64(cap(buf)))
			if grow <= 0 {
				grow = 1
			}
			if !budget.tryTake(grow) {
				return nil, release, errBodyBudget
			}
			taken += grow
			buf = append(buf, make([]byte, grow)...)[:len(buf)]
		}
		n, err := in.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, release, nil
		}
		if err != nil {
			return nil, release, err
		}
	}
}

// decodeReview parses an admission.k8s.io/v1 AdmissionReview and checks that
// it carries a request podguard can answer.
func decodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(body) == 0 {
		return nil, errors.New("malformed AdmissionReview: the request body is empty")
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("malformed AdmissionReview: %w", err)
	}
	if gvk := review.GroupVersionKind(); gvk != admissionv1.SchemeGroupVersion.WithKind("AdmissionReview") {
		return nil, fmt.Errorf("malformed AdmissionReview: apiVersion %q kind %q, expected admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return nil, errors.New("malformed AdmissionReview: request is missing")
	}
	if review.Request.UID == "" {
		return nil, errors.New("malformed AdmissionReview: request.uid is missing")
	}
	return &review, nil
}

func (s *reviewServer) reject(w http.ResponseWriter, code int, reason string, err error) {
	badRequests.WithLabelValues(s.name, reason).Inc()
	s.log.Info("rejected admission request", "webhook", s.name, "status", code, "reason", err.Error())
	http.Error(w, err.Error(), code)
}
