package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

type fakeReviewer struct {
	users   map[string]string // token → user
	allowed map[string]bool   // user → may get /metrics
	calls   int
}

func (f *fakeReviewer) authenticate(_ context.Context, token string) (*authenticationv1.UserInfo, error) {
	f.calls++
	if u, ok := f.users[token]; ok {
		return &authenticationv1.UserInfo{Username: u}, nil
	}
	return nil, nil
}

func (f *fakeReviewer) authorize(_ context.Context, u *authenticationv1.UserInfo, path, verb string) (bool, string, error) {
	f.calls++
	return f.allowed[u.Username] && path == "/metrics" && verb == "get", "", nil
}

func TestMetricsAuth(t *testing.T) {
	f := &fakeReviewer{users: map[string]string{"t-prom": "prometheus", "t-nosy": "nosy"}, allowed: map[string]bool{"prometheus": true}}
	now := time.Now()
	a := &metricsAuthorizer{review: f, cache: map[[32]byte]authDecision{}, now: func() time.Time { return now }}
	check := func(token string) int {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		code, _ := a.check(r)
		return code
	}
	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"no token is unauthorized", "", http.StatusUnauthorized},
		{"an unknown token is unauthorized", "t-forged", http.StatusUnauthorized},
		{"a user not allowed to get /metrics is forbidden", "t-nosy", http.StatusForbidden},
		{"a user allowed to get /metrics gets them", "t-prom", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := check(tt.token); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("an answer is cached, an allow for a minute", func(t *testing.T) {
		calls := f.calls
		check("t-prom")
		if f.calls != calls {
			t.Errorf("the API server was asked again within the TTL")
		}
		now = now.Add(2 * time.Minute)
		check("t-prom")
		if f.calls == calls {
			t.Errorf("the API server was not asked again after the TTL")
		}
	})
	t.Run("a revoked permission stops scraping once the cache expires", func(t *testing.T) {
		f.allowed["prometheus"] = false
		now = now.Add(2 * time.Minute)
		if got := check("t-prom"); got != http.StatusForbidden {
			t.Errorf("got %d, want 403", got)
		}
	})
}
