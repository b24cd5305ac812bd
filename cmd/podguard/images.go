package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/inspector"
	"github.com/podguard/podguard/manifests"
)

// imageFlags are check's, mutate's and audit's image inspection flags.
type imageFlags struct {
	on         bool
	cacheDir   string
	registries string
	timeout    time.Duration
}

func (f *imageFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.on, "images", false, "inspect the pods' images in their registries (off by default: offline)")
	fs.StringVar(&f.cacheDir, "image-cache", "", "keep image indexes in DIR between runs (default: images.cacheDir from the config, else none)")
	fs.StringVar(&f.registries, "image-registries", "", `registries --images may contact, comma-separated: host, host:port, host:* or * (default: images.registries from the config, else "*")`)
	fs.DurationVar(&f.timeout, "image-timeout", 0, "the most one image may take to fetch (default: images.fetchTimeout from the config, 2m)")
}

// inspector returns the inspector --images asks for, and how long to wait
// for a pod's images; nil without --images. secrets reads the pull secrets
// beyond the local Docker credentials: the given manifests' (check, mutate)
// or the cluster's (audit).
func (f *imageFlags) inspector(cfg *config.Config, secrets inspector.SecretReader) (*inspector.Inspector, time.Duration, error) {
	if !f.on {
		if f.cacheDir != "" || f.registries != "" || f.timeout != 0 {
			return nil, 0, usageError("--image-cache, --image-registries and --image-timeout need --images")
		}
		return nil, 0, nil
	}
	c := cfg.Images
	c.Inspect = new(bool)
	*c.Inspect = true
	if f.registries != "" {
		c.Registries = strings.Split(f.registries, ",")
	}
	if len(c.Registries) == 0 {
		c.Registries = []string{"*"}
	}
	if f.cacheDir != "" {
		c.CacheDir = f.cacheDir
	}
	if f.timeout != 0 {
		c.FetchTimeout = &config.Duration{Duration: f.timeout}
	}
	o := inspector.OptionsFor(&c)
	o.Keychain = authn.DefaultKeychain
	o.PullSecrets = secrets
	ins, err := inspector.New(o)
	if err != nil {
		return nil, 0, usageError("--images: %v", err)
	}
	// A pod waits for its slowest image; the fetches themselves are bounded
	// by the fetch timeout.
	return ins, c.FetchTimeout.Duration + 5*time.Second, nil
}

// manifestSecrets reads pull secrets from the Secrets in the given
// manifests, as the kubelet would from the pod's namespace.
func manifestSecrets(docs []manifests.Document, namespace string) inspector.SecretReader {
	secrets := map[string]*corev1.Secret{}
	for _, d := range docs {
		s, ok := d.Object.(*corev1.Secret)
		if !ok {
			continue
		}
		ns := namespace
		if m, err := meta.Accessor(s); err == nil && m.GetNamespace() != "" {
			ns = m.GetNamespace()
		}
		if len(s.StringData) > 0 {
			// As the API server stores it: stringData wins over data.
			s = s.DeepCopy()
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			for k, v := range s.StringData {
				s.Data[k] = []byte(v)
			}
		}
		secrets[ns+"/"+s.Name] = s
	}
	return func(_ context.Context, ns, name string) (*corev1.Secret, error) {
		if s, ok := secrets[ns+"/"+name]; ok {
			return s, nil
		}
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), fmt.Sprintf("%s/%s (not in the given manifests)", ns, name))
	}
}
