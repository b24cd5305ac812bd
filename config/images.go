package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// ImagesConfig configures the image inspector: what podguard may learn of the
// images pods run (their USER, and the paths their layers create), and from
// which registries.
//
//	images:
//	  inspect: true
//	  registries: ["*"]            # or a list: ["ghcr.io", "registry.acme.internal:5000", "127.0.0.1:*"]
//	  budget: 1.5s                 # the most an admission request waits for the registry
//	  pullSecrets: false           # read the pods' imagePullSecrets (needs the secret-access component)
//	  cacheDir: /var/cache/podguard/images
//	  maxCacheSize: 256Mi
//	  maxIndexSize: 32Mi           # paths and link targets indexed per image
//
// It is off by default: podguard then never contacts a registry, and the
// policies use their heuristics (the protected-directory list, an unknown
// image user).
type ImagesConfig struct {
	// Inspect turns the inspector on.
	Inspect *bool `json:"inspect,omitempty"`
	// Registries are the only registries podguard may contact: "host",
	// "host:port", "host:*" (any port) or "*" (any). Images from any other
	// registry are never fetched, and policies use their heuristics for
	// them. Required when inspect is true: an allow-list is written on
	// purpose.
	Registries []string `json:"registries,omitempty"`
	// Budget is the most an admission request waits for images that are
	// not cached yet, in total. The fetch goes on in the background; the
	// pod is judged with the heuristics and a warning says so. Default 1.5s,
	// at most 3s (the webhooks time out after 5s).
	Budget *Duration `json:"budget,omitempty"`
	// PullSecrets lets podguard read the pods' imagePullSecrets (and the
	// pull secrets image-pull-secrets adds) to inspect private images, after
	// an anonymous attempt fails. Each value is read for one registry call
	// and never cached or logged. It needs RBAC: get on Secrets (the
	// deploy/components/image-credentials component).
	PullSecrets bool `json:"pullSecrets,omitempty"`
	// CacheDir, when set, keeps the indexes on disk so that a restart does
	// not fetch them again (mount a volume there).
	CacheDir string `json:"cacheDir,omitempty"`
	// MaxCacheSize bounds the indexes held in memory. Default 256Mi.
	MaxCacheSize *resource.Quantity `json:"maxCacheSize,omitempty"`
	// Concurrency is how many images are fetched at once. Default 4.
	Concurrency int `json:"concurrency,omitempty"`
	// TagTTL is how long a tag's digest is trusted before it is resolved
	// again. Default 5m.
	TagTTL *Duration `json:"tagTTL,omitempty"`
	// FetchTimeout bounds the fetch of one image, all its layers. Default 2m.
	FetchTimeout *Duration `json:"fetchTimeout,omitempty"`
	// MaxImageSize bounds the compressed bytes read for one image; a larger
	// image is not inspected. Default 2Gi.
	MaxImageSize *resource.Quantity `json:"maxImageSize,omitempty"`
	// MaxEntries bounds the paths indexed for one image. Default 1000000.
	MaxEntries int `json:"maxEntries,omitempty"`
	// MaxIndexSize bounds the bytes of the paths and symlink targets
	// indexed for one image, all layers together; a larger image is not
	// inspected. Indexing holds at most a few times this much memory per
	// concurrent fetch. Default 32Mi.
	MaxIndexSize *resource.Quantity `json:"maxIndexSize,omitempty"`
}

// Image inspector defaults.
const (
	DefaultImageBudget       = 1500 * time.Millisecond
	MaxImageBudget           = 3 * time.Second
	DefaultImageConcurrency  = 4
	DefaultImageTagTTL       = 5 * time.Minute
	DefaultImageFetchTimeout = 2 * time.Minute
	DefaultImageMaxEntries   = 1_000_000
)

var (
	defaultImageCacheSize = resource.MustParse("256Mi")
	defaultImageMaxSize   = resource.MustParse("2Gi")
	defaultImageIndexSize = resource.MustParse("32Mi")
)

// Enabled reports whether the inspector is on.
func (c *ImagesConfig) Enabled() bool { return ptr.Deref(c.Inspect, false) }

// Default fills the unset fields with their documented defaults.
func (c *ImagesConfig) Default() {
	if c.Inspect == nil {
		c.Inspect = ptr.To(false)
	}
	if c.Budget == nil {
		c.Budget = &Duration{Duration: DefaultImageBudget}
	}
	if c.MaxCacheSize == nil {
		c.MaxCacheSize = ptr.To(defaultImageCacheSize.DeepCopy())
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultImageConcurrency
	}
	if c.TagTTL == nil {
		c.TagTTL = &Duration{Duration: DefaultImageTagTTL}
	}
	if c.FetchTimeout == nil {
		c.FetchTimeout = &Duration{Duration: DefaultImageFetchTimeout}
	}
	if c.MaxImageSize == nil {
		c.MaxImageSize = ptr.To(defaultImageMaxSize.DeepCopy())
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultImageMaxEntries
	}
	if c.MaxIndexSize == nil {
		c.MaxIndexSize = ptr.To(defaultImageIndexSize.DeepCopy())
	}
}

// Validate checks a defaulted ImagesConfig.
func (c *ImagesConfig) Validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Enabled() && len(c.Registries) == 0 {
		errs = append(errs, field.Required(p.Child("registries"), `list the registries podguard may contact, or ["*"] for any`))
	}
	seen := map[string]bool{}
	for i, r := range c.Registries {
		if _, err := ParseRegistryPattern(r); err != nil {
			errs = append(errs, field.Invalid(p.Child("registries").Index(i), r, err.Error()))
		} else if seen[r] {
			errs = append(errs, field.Duplicate(p.Child("registries").Index(i), r))
		}
		seen[r] = true
	}
	if b := c.Budget.Duration; b <= 0 || b > MaxImageBudget {
		errs = append(errs, field.Invalid(p.Child("budget"), c.Budget.Duration.String(), fmt.Sprintf("must be more than 0 and at most %s: the webhooks time out after 5s", MaxImageBudget)))
	}
	if c.CacheDir != "" && !filepath.IsAbs(c.CacheDir) {
		errs = append(errs, field.Invalid(p.Child("cacheDir"), c.CacheDir, "must be an absolute path"))
	}
	if c.MaxCacheSize.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("maxCacheSize"), c.MaxCacheSize.String(), "must be positive"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, field.Invalid(p.Child("concurrency"), c.Concurrency, "must be between 1 and 64"))
	}
	if c.TagTTL.Duration <= 0 {
		errs = append(errs, field.Invalid(p.Child("tagTTL"), c.TagTTL.Duration.String(), "must be positive"))
	}
	if c.FetchTimeout.Duration <= 0 {
		errs = append(errs, field.Invalid(p.Child("fetchTimeout"), c.FetchTimeout.Duration.String(), "must be positive"))
	}
	if c.MaxImageSize.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("maxImageSize"), c.MaxImageSize.String(), "must be positive"))
	}
	if c.MaxEntries < 1 {
		errs = append(errs, field.Invalid(p.Child("maxEntries"), c.MaxEntries, "must be positive"))
	}
	if c.MaxIndexSize.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("maxIndexSize"), c.MaxIndexSize.String(), "must be positive"))
	}
	return errs
}

// RegistryPattern is one entry of images.registries.
type RegistryPattern struct {
	// Any is "*".
	Any bool
	// Host is lower case, without brackets.
	Host string
	// Port is "" for the registry's default ports (443, 80), "*" for any.
	Port string
}

// errRegistryPattern says what a registries entry must look like.
var errRegistryPattern = errors.New(`must be "*", a host, host:port or host:* (no scheme, no path)`)

// ParseRegistryPattern reads an images.registries entry: "*", "host",
// "host:port" or "host:*". The config validates with it, and the image
// inspector matches with what it returns.
func ParseRegistryPattern(r string) (RegistryPattern, error) {
	if r == "*" {
		return RegistryPattern{Any: true}, nil
	}
	if r == "" || strings.ContainsAny(r, "/@?# ") {
		return RegistryPattern{}, errRegistryPattern
	}
	host, port := r, ""
	if h, p, err := net.SplitHostPort(r); err == nil {
		host, port = h, p
	} else if strings.Count(r, ":") == 1 {
		return RegistryPattern{}, errRegistryPattern
	}
	if port != "" && port != "*" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return RegistryPattern{}, errRegistryPattern
		}
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "" || strings.Contains(host, "*") {
		return RegistryPattern{}, errRegistryPattern
	}
	return RegistryPattern{Host: host, Port: port}, nil
}

// Duration is a duration written as Go writes it ("1.5s", "2m"). A value
// that does not parse is a type error, which the config reports with its
// field path.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("string %q", s), Type: reflect.TypeFor[Duration]()}
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }
