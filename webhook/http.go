package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

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
	log      logr.Logger
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.reject(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("request body is larger than the %d-byte limit", s.maxBytes))
			return
		}
		s.reject(w, http.StatusBadRequest, "unreadable", fmt.Errorf("reading request body: %w", err))
		return
	}
	review, err := decodeReview(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "malformed", err)
		return
	}
	resp := s.webhook.Handle(r.Context(), admission.Request{AdmissionRequest: *review.Request})
	if !resp.Allowed && resp.Result != nil && resp.Result.Code >= http.StatusInternalServerError {
		// podguard failed, not the request: answer as a failed call, so the
		// API server applies the webhook's failurePolicy.
		http.Error(w, resp.Result.Message, int(resp.Result.Code))
		return
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &resp.AdmissionResponse}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		s.log.Error(err, "writing admission response", "webhook", s.name, "uid", review.Request.UID)
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
