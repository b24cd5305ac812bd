package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podguard/podguard/policies"
)

// Response budgets. kube-apiserver relays a denial's message and causes to
// the client whole, and keeps at most 4,096 runes of warnings per request,
// from every webhook together (k8s.io/apiserver pkg/endpoints/filters
// warning.go: beyond that it cuts each warning to 256 runes and drops the
// rest). podguard's two webhooks both warn on one pod create, so each keeps
// its warnings under half of that.
const (
	// maxWarningRunes bounds the warnings of one response.
	maxWarningRunes = 2000
	// maxDenialBytes bounds a denial's message; its status causes list the
	// same violations.
	maxDenialBytes = 32 << 10
	// maxErrorBytes bounds an error message that quotes the input (a
	// decoding error).
	maxErrorBytes = 1 << 10
)

// defaultRequestTimeout is what a request that names no timeout gets: the
// API server's default for a webhook call.
const defaultRequestTimeout = 10 * time.Second

// requestContext is the request's context, with the deadline the API server
// works to. An AdmissionReview carries no timeout, but kube-apiserver sends
// the time it will wait on the URL (`?timeout=5s`: the webhook's
// timeoutSeconds, rounded up to a whole second; see its mutating and
// validating dispatchers). Because of that rounding the API server may give
// up to a second earlier, so podguard aims to answer a second before (half
// the time for timeouts under 2 s). The returned deadline is the API
// server's own, after which a response is certainly thrown away.
func requestContext(r *http.Request) (context.Context, context.CancelFunc, time.Time) {
	start := time.Now()
	timeout := defaultRequestTimeout
	if t, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && t > 0 {
		timeout = min(t, 30*time.Second)
	}
	margin := min(time.Second, timeout/2)
	ctx, cancel := context.WithDeadline(r.Context(), start.Add(timeout-margin))
	return ctx, cancel, start.Add(timeout)
}

// admissionUndelivered counts responses written after the API server had
// given up on them (its deadline passed or the connection closed): their
// decision never took effect, whatever the logs said before.
var admissionUndelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podguard_admission_undelivered_total",
	Help: "Admission responses written after the API server had given up on the request (its timeout passed or the connection closed), by webhook and the result they carried: the decision never took effect.",
}, []string{"webhook", "result"})

// delivered records a response that was written too late to count.
func (s *reviewServer) delivered(r *http.Request, apiDeadline time.Time, uid any, resp *admission.Response, writeErr error) {
	late := time.Now().After(apiDeadline)
	if writeErr == nil && !late && r.Context().Err() == nil {
		return
	}
	result := resultOf(resp)
	admissionUndelivered.WithLabelValues(s.name, result).Inc()
	s.log.Info("admission response not delivered: the API server had given up on the request, so it did not take effect",
		"webhook", s.name, "uid", uid, "result", result, "late", late, "error", fmt.Sprint(writeErr))
}

// errTimedOut is the answer to a request whose deadline passed while the
// policies ran.
var errTimedOut = errors.New("podguard could not decide within the API server's timeout for this call; the webhook's failurePolicy applies")

// timedOut answers a request whose context ended before podguard could
// answer it. It is an error (HTTP 504, see reviewServer), so the API server
// applies the webhook's failurePolicy; it is logged and counted as
// "timeout", never as what the policies would have done.
func (a *Admission) timedOut(ctx context.Context, req admission.Request) admission.Response {
	a.log.Info("admission timed out", "uid", req.UID, "kind", req.Kind.Kind, "namespace", req.Namespace,
		"name", objectName(ctx, req), "operation", req.Operation, "decision", "timeout", "cause", fmt.Sprint(context.Cause(ctx)))
	return admission.Errored(http.StatusGatewayTimeout, errTimedOut)
}

// boundWarnings keeps warnings, in order, while they fit maxWarningRunes,
// and replaces the rest with one that counts them. The first warning is
// always kept, cut if it must be.
func boundWarnings(ws []string) []string {
	const reserve = 200 // for the count
	total := 0
	for _, w := range ws {
		total += utf8.RuneCountInString(w)
	}
	if total <= maxWarningRunes {
		return ws
	}
	out := make([]string, 0, len(ws))
	used := 0
	for i, w := range ws {
		n := utf8.RuneCountInString(w)
		if used+n > maxWarningRunes-reserve {
			if i == 0 {
				out = append(out, truncateRunes(w, maxWarningRunes-reserve))
			}
			if rest := len(ws) - len(out); rest > 0 {
				out = append(out, fmt.Sprintf("podguard: %d more %s not shown (kube-apiserver keeps about 4,000 characters of warnings per request); podguard check on the manifest lists them", rest, plural(rest, "warning", "warnings")))
			}
			return out
		}
		used += n
		out = append(out, w)
	}
	return out
}

// truncateRunes cuts s to n runes with a marker.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	const marker = "…"
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + marker
}

// truncateBytes cuts s to n bytes on a rune boundary, with a marker.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const marker = "…(truncated)"
	cut := max(n-len(marker), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// denialResponse renders violations as a denial's message and causes, in order,
// while the message fits maxDenialBytes; the rest are counted in a last
// line and cause.
func denialResponse(kind string, violations []policies.Finding) (string, []metav1.StatusCause) {
	var msg strings.Builder
	fmt.Fprintf(&msg, "podguard rejected this %s (%d %s):", kind, len(violations), plural(len(violations), "problem", "problems"))
	causes := make([]metav1.StatusCause, 0, len(violations))
	for i, v := range violations {
		line := "\n- " + v.String()
		if msg.Len()+len(line) > maxDenialBytes-256 {
			rest := len(violations) - i
			more := fmt.Sprintf("and %d more %s, from %s on, not listed", rest, plural(rest, "problem", "problems"), v.Field)
			msg.WriteString("\n- " + more)
			causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: v.Field, Message: more})
			break
		}
		msg.WriteString(line)
		causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: v.Field, Message: fmt.Sprintf("[%s] %s", v.Policy, v.Message)})
	}
	return msg.String(), causes
}
