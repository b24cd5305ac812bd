package inspector

import (
	"context"
	"time"

	"github.com/podguard/podguard/config"
	"github.com/podguard/podguard/policies"
)

// InspectPod implements policies.ImageSource: Inspect for the images of one
// pod (or pod template), in its namespace.
func (i *Inspector) InspectPod(ctx context.Context, pod *policies.Pod, platform string, pullSecrets []string, wait time.Duration) map[string]policies.ImageFacts {
	images := pod.Images()
	refs := make([]string, 0, len(images))
	for _, img := range images {
		if img.Ref != "" {
			refs = append(refs, img.Ref)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	return i.Inspect(ctx, Request{Namespace: pod.Namespace, Refs: refs, Platform: platform, PullSecrets: pullSecrets}, wait)
}

var _ policies.ImageSource = (*Inspector)(nil)

// OptionsFor returns the Options that a defaulted, validated images config
// describes. The caller adds what a config cannot say: the secret reader,
// a keychain, the metrics registry and the logger.
func OptionsFor(c *config.ImagesConfig) Options {
	return Options{
		Registries:    c.Registries,
		Concurrency:   c.Concurrency,
		TagTTL:        c.TagTTL.Duration,
		FetchTimeout:  c.FetchTimeout.Duration,
		MaxCacheBytes: c.MaxCacheSize.Value(),
		CacheDir:      c.CacheDir,
		MaxImageBytes: c.MaxImageSize.Value(),
		MaxEntries:    c.MaxEntries,
		MaxIndexBytes: c.MaxIndexSize.Value(),
	}
}
