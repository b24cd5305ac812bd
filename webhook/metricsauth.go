package webhook

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// MetricsAuth is the metrics server's FilterProvider: a request needs a
// bearer token the API server authenticates (TokenReview) for a user it
// authorises to get the non-resource URL (SubjectAccessReview), as
// controller-runtime's filters.WithAuthenticationAndAuthorization and
// kube-rbac-proxy check. It is written on client-go alone: that filter
// pulls in k8s.io/apiserver, which doubles podguard's binary and adds
// ~24 MiB to its resident memory. Answers are cached by token hash, path and
// verb: an allow for a minute, a refusal for 10 seconds.
func MetricsAuth(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metrics authentication: %w", err)
	}
	a := &metricsAuthorizer{review: apiReviewer{cs}, cache: map[[32]byte]authDecision{}}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code, msg := a.check(r)
			if code != http.StatusOK {
				log.V(1).Info("metrics request refused", "status", code, "reason", msg, "remote", r.RemoteAddr)
				http.Error(w, msg, code)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}

// reviewer asks the API server who a token is and what they may do.
type reviewer interface {
	authenticate(ctx context.Context, token string) (*authenticationv1.UserInfo, error)
	authorize(ctx context.Context, user *authenticationv1.UserInfo, path, verb string) (bool, string, error)
}

type apiReviewer struct{ cs kubernetes.Interface }

func (a apiReviewer) authenticate(ctx context.Context, token string) (*authenticationv1.UserInfo, error) {
	tr, err := a.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("reviewing the token: %w", err)
	}
	if !tr.Status.Authenticated {
		return nil, nil
	}
	return &tr.Status.User, nil
}

func (a apiReviewer) authorize(ctx context.Context, u *authenticationv1.UserInfo, path, verb string) (bool, string, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, Groups: u.Groups, UID: u.UID, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("reviewing access: %w", err)
	}
	return sar.Status.Allowed && !sar.Status.Denied, sar.Status.Reason, nil
}

type authDecision struct {
	code    int
	msg     string
	expires time.Time
}

type metricsAuthorizer struct {
	review reviewer
	now    func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]authDecision
}

const (
	authAllowTTL   = time.Minute
	authDenyTTL    = 10 * time.Second
	authCacheSize  = 256
	authAPITimeout = 10 * time.Second
)

func (a *metricsAuthorizer) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// check returns http.StatusOK, or the status and message to refuse with.
func (a *metricsAuthorizer) check(r *http.Request) (int, string) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return http.StatusUnauthorized, "Unauthorized: send a bearer token (a ServiceAccount token allowed to get " + r.URL.Path + ")"
	}
	verb := strings.ToLower(r.Method)
	key := sha256.Sum256([]byte(token + "\x00" + r.URL.Path + "\x00" + verb))
	now := a.clock()
	a.mu.Lock()
	if d, ok := a.cache[key]; ok && now.Before(d.expires) {
		a.mu.Unlock()
		return d.code, d.msg
	}
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), authAPITimeout)
	defer cancel()
	d := authDecision{code: http.StatusOK, expires: now.Add(authAllowTTL)}
	user, err := a.review.authenticate(ctx, token)
	switch {
	case err != nil:
		return http.StatusInternalServerError, "authenticating the request failed"
	case user == nil:
		d = authDecision{code: http.StatusUnauthorized, msg: "Unauthorized", expires: now.Add(authDenyTTL)}
	default:
		allowed, reason, err := a.review.authorize(ctx, user, r.URL.Path, verb)
		if err != nil {
			return http.StatusInternalServerError, "authorizing the request failed"
		}
		if !allowed {
			msg := fmt.Sprintf("Forbidden: %s may not %s %s", user.Username, verb, r.URL.Path)
			if reason != "" {
				msg += ": " + reason
			}
			d = authDecision{code: http.StatusForbidden, msg: msg, expires: now.Add(authDenyTTL)}
		}
	}
	a.mu.Lock()
	if len(a.cache) >= authCacheSize {
		for k, v := range a.cache {
			if !now.Before(v.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= authCacheSize {
			clear(a.cache)
		}
	}
	a.cache[key] = d
	a.mu.Unlock()
	return d.code, d.msg
}
