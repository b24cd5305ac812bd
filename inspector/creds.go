package inspector

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
)

// dockerEntry is one registry's credentials in a dockercfg / dockerconfigjson.
type dockerEntry struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// secretCredentials returns the credentials a pull secret holds for repo
// ("host[:port]/path", Docker Hub as "docker.io"), most specific key first,
// the way the kubelet's keyring matches them: keys may carry a scheme and a
// /v1/ or /v2/ suffix, hosts may use globs per label ("*.example.com"),
// ports must be equal, and a key's path must prefix the repository's.
//
// The returned values must be used for one registry call and dropped.
func secretCredentials(s *corev1.Secret, repo string) ([]authn.AuthConfig, error) {
	var entries map[string]dockerEntry
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		var cfg struct {
			Auths map[string]dockerEntry `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, errors.New("its .dockerconfigjson is not valid JSON")
		}
		entries = cfg.Auths
	case corev1.SecretTypeDockercfg:
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &entries); err != nil {
			return nil, errors.New("its .dockercfg is not valid JSON")
		}
	default:
		return nil, errors.New("its type is " + string(s.Type) + ", not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg")
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	// The kubelet tries its keys in reverse lexical order: longer, more
	// specific paths before their prefixes.
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	var out []authn.AuthConfig
	for _, k := range keys {
		if !keyMatches(k, repo) {
			continue
		}
		e := entries[k]
		ac := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
		if e.Auth != "" && ac.Username == "" {
			if b, err := base64.StdEncoding.DecodeString(e.Auth); err == nil {
				ac.Username, ac.Password, _ = strings.Cut(string(b), ":")
			}
		}
		out = append(out, ac)
	}
	return out, nil
}

// keyMatches reports whether a docker config key matches repo.
func keyMatches(key, repo string) bool {
	k := strings.ToLower(key)
	if !strings.Contains(k, "://") {
		k = "https://" + k
	}
	u, err := url.Parse(k)
	if err != nil || u.Host == "" {
		return false
	}
	p := u.Path
	if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/v2/") {
		p = p[3:]
	}
	p = strings.TrimSuffix(p, "/")
	regHost, repoPath, _ := strings.Cut(repo, "/")
	kh, kp := splitHostPort(u.Host)
	rh, rp := splitHostPort(regHost)
	if kp != rp {
		return false
	}
	if !(dockerHub[kh] && dockerHub[rh]) && !globHost(kh, rh) {
		return false
	}
	return p == "" || strings.HasPrefix("/"+repoPath+"/", p+"/")
}

// globHost matches a host against a pattern label by label.
func globHost(pat, host string) bool {
	pp, hp := strings.Split(pat, "."), strings.Split(host, ".")
	if len(pp) != len(hp) {
		return false
	}
	for i := range pp {
		if ok, _ := filepath.Match(pp[i], hp[i]); !ok {
			return false
		}
	}
	return true
}
