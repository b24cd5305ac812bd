package inspector

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podguard/podguard/imageindex"
	"github.com/podguard/podguard/policies"
)

// imageRecord is what the inspector keeps of an image besides its layer
// indexes; it is also the persisted form.
type imageRecord struct {
	User       string `json:"user,omitempty"`
	WorkingDir string `json:"workingDir,omitempty"`
	// Env is the NAMES of the config's environment variables, never their
	// values: images bake secrets into ENV, and records of private images
	// are persisted to CacheDir.
	Env      []string `json:"env,omitempty"`
	Platform string   `json:"platform,omitempty"`
	Layers   []string `json:"layers"`
}

// envNames returns the names of "NAME=value" entries, in order.
func envNames(env []string) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, 0, len(env))
	for _, e := range env {
		n, _, _ := strings.Cut(e, "=")
		out = append(out, n)
	}
	return out
}

// overhead is what an image's record costs besides its layers.
func (r imageRecord) overhead() int64 {
	n := int64(imageOverhead)
	for _, e := range r.Env {
		n += int64(len(e)) + 16
	}
	return n
}

// imageOverhead is what an image entry costs besides its layers, counted
// against MaxCacheBytes so that many images sharing one layer stay bounded.
const imageOverhead = 512

type layerEntry struct {
	index *imageindex.Layer
	refs  int
	bytes int64
}

type imageEntry struct {
	digest string
	rec    imageRecord
	fs     policies.ImageFS
	layers []string     // distinct digests, each holding one reference
	used   atomic.Int64 // last use, in nanoseconds since the cache started
}

// memCache holds image entries by manifest digest, evicting the least
// recently used, and their layer indexes by layer digest, refcounted: a
// layer shared by several images is held and counted once.
//
// A hit takes only a read lock and stamps the entry's last use atomically,
// so that warm admission requests do not queue on one mutex; an eviction
// scans for the oldest stamp, which is rare and linear in the images held.
type memCache struct {
	mu     sync.RWMutex
	max    int64
	total  int64
	images map[string]*imageEntry
	layers map[string]*layerEntry
	start  time.Time
	onSize func(int64)
}

func newMemCache(max int64, onSize func(int64)) *memCache {
	return &memCache{max: max, images: map[string]*imageEntry{}, layers: map[string]*layerEntry{}, start: time.Now(), onSize: onSize}
}

// touch stamps e as used now; stamps only grow.
func (c *memCache) touch(e *imageEntry) {
	now := int64(time.Since(c.start))
	if e.used.Load() < now {
		e.used.Store(now)
	}
}

func (c *memCache) image(digest string) (*imageEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.images[digest]
	if ok {
		c.touch(e)
	}
	return e, ok
}

func (c *memCache) layer(digest string) *imageindex.Layer {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if l, ok := c.layers[digest]; ok {
		return l.index
	}
	return nil
}

// put caches a layer index as soon as it is built, before the image that
// needs it is complete, so that another image sharing the layer uses it
// instead of fetching it again. It returns the cached index for digest:
// the one already held, if any, else l. A layer no image holds yet has no
// reference; it counts against the bound and is the first evicted.
func (c *memCache) put(digest string, l *imageindex.Layer) *imageindex.Layer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.layers[digest]; ok {
		return old.index
	}
	b := int64(l.Bytes())
	if b > c.max {
		return l
	}
	c.layers[digest] = &layerEntry{index: l, bytes: b}
	c.total += b
	c.shrink(nil, digest)
	c.onSize(c.total)
	return l
}

// add caches an image built from the given layers (in rec.Layers order)
// and returns its entry. A layer already cached is shared: the image's tree
// is built on the cached index, not on the caller's copy. An image whose own
// layers exceed the bound is returned but not cached.
func (c *memCache) add(digest string, rec imageRecord, layers []*imageindex.Layer) *imageEntry {
	e := &imageEntry{digest: digest, rec: rec}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.images[digest]; ok {
		c.touch(old)
		return old
	}
	use := make([]*imageindex.Layer, len(layers))
	for i, d := range rec.Layers {
		use[i] = layers[i]
		if l, ok := c.layers[d]; ok {
			use[i] = l.index
		}
	}
	e.fs = imageindex.NewImage(use)
	own := rec.overhead()
	seen := map[string]bool{}
	for i, d := range rec.Layers {
		if !seen[d] {
			seen[d] = true
			e.layers = append(e.layers, d)
			own += int64(use[i].Bytes())
		}
	}
	if own > c.max {
		return e
	}
	for i, d := range rec.Layers {
		if !seen[d] {
			continue
		}
		delete(seen, d)
		if l, ok := c.layers[d]; ok {
			l.refs++
			continue
		}
		b := int64(use[i].Bytes())
		c.layers[d] = &layerEntry{index: use[i], refs: 1, bytes: b}
		c.total += b
	}
	c.total += rec.overhead()
	c.touch(e)
	c.images[digest] = e
	c.shrink(e, "")
	c.onSize(c.total)
	return e
}

// shrink evicts layers no image holds but keepLayer, then the least
// recently used images other than keep, until the cache is within its
// bound.
func (c *memCache) shrink(keep *imageEntry, keepLayer string) {
	if c.total <= c.max {
		return
	}
	for d, l := range c.layers {
		if c.total <= c.max {
			return
		}
		if l.refs == 0 && d != keepLayer {
			delete(c.layers, d)
			c.total -= l.bytes
		}
	}
	for c.total > c.max {
		var oldest *imageEntry
		for _, o := range c.images {
			if o != keep && (oldest == nil || o.used.Load() < oldest.used.Load()) {
				oldest = o
			}
		}
		if oldest == nil {
			break
		}
		c.evict(oldest)
	}
}

func (c *memCache) evict(e *imageEntry) {
	delete(c.images, e.digest)
	c.total -= e.rec.overhead()
	for _, d := range e.layers {
		l := c.layers[d]
		if l.refs--; l.refs == 0 {
			delete(c.layers, d)
			c.total -= l.bytes
		}
	}
}

func (c *memCache) bytes() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.total
}

// expiring is a map of entries that expire, bounded in size: attackers
// choose image references.
type expiring[K comparable, V any] struct {
	mu  sync.RWMutex
	max int
	m   map[K]expiringEntry[V]
}

type expiringEntry[V any] struct {
	v       V
	expires time.Time
}

func newExpiring[K comparable, V any](max int) *expiring[K, V] {
	return &expiring[K, V]{max: max, m: map[K]expiringEntry[V]{}}
}

func (x *expiring[K, V]) get(k K, now time.Time) (V, time.Time, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.m[k]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, time.Time{}, false
	}
	return e.v, e.expires, true
}

// remove drops k's entry.
func (x *expiring[K, V]) remove(k K) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.m, k)
}

// peek returns k's entry even when it has expired (until it is dropped to
// make room), and whether it has.
func (x *expiring[K, V]) peek(k K, now time.Time) (v V, stale, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.m[k]
	return e.v, ok && !now.Before(e.expires), ok
}

func (x *expiring[K, V]) put(k K, v V, expires time.Time, now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.m[k]; !ok && len(x.m) >= x.max {
		for k, e := range x.m {
			if !now.Before(e.expires) {
				delete(x.m, k)
			}
		}
		for k := range x.m {
			if len(x.m) < x.max {
				break
			}
			delete(x.m, k)
		}
	}
	x.m[k] = expiringEntry[V]{v: v, expires: expires}
}

// diskCache persists layer indexes (layers/<algorithm>-<hex>, imageindex's
// binary form) and image records (images/<algorithm>-<hex>, JSON) by digest.
// Files are written to a temporary name and renamed, mode 0600 in 0700
// directories; a file that does not parse is removed. The directory is kept
// under max bytes by removing the least recently used files (reads touch a
// file's mtime).
type diskCache struct {
	dir string
	max int64

	mu   sync.Mutex
	size int64
}

func openDiskCache(dir string, max int64) (*diskCache, error) {
	for _, sub := range []string{"layers", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	d := &diskCache{dir: dir, max: max}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune()
	return d, nil
}

// fileName maps a digest to a file name, refusing anything that is not a
// well-formed digest (no path can be smuggled in).
func fileName(digest string) (string, bool) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", false
	}
	return h.Algorithm + "-" + h.Hex, true
}

func (d *diskCache) path(sub, digest string) (string, bool) {
	n, ok := fileName(digest)
	return filepath.Join(d.dir, sub, n), ok
}

func (d *diskCache) read(sub, digest string) ([]byte, string, bool) {
	p, ok := d.path(sub, digest)
	if !ok {
		return nil, "", false
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > d.max {
		return nil, "", false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, "", false
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now)
	return b, p, true
}

func (d *diskCache) readLayer(digest string) *imageindex.Layer {
	b, p, ok := d.read("layers", digest)
	if !ok {
		return nil
	}
	l, err := imageindex.ParseLayer(b)
	if err != nil {
		_ = os.Remove(p)
		return nil
	}
	return l
}

func (d *diskCache) readImage(digest string) (imageRecord, bool) {
	b, p, ok := d.read("images", digest)
	if !ok {
		return imageRecord{}, false
	}
	var rec imageRecord
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Layers) > maxLayers {
		_ = os.Remove(p)
		return imageRecord{}, false
	}
	// A record written before only names were kept holds values: drop
	// them, and rewrite the file without them.
	if slices.ContainsFunc(rec.Env, func(e string) bool { return strings.Contains(e, "=") }) {
		rec.Env = envNames(rec.Env)
		_ = d.writeImage(digest, rec)
	}
	for _, l := range rec.Layers {
		if _, ok := fileName(l); !ok {
			_ = os.Remove(p)
			return imageRecord{}, false
		}
	}
	return rec, true
}

func (d *diskCache) writeLayer(digest string, l *imageindex.Layer) error {
	b, err := l.MarshalBinary()
	if err != nil {
		return err
	}
	return d.write("layers", digest, b)
}

func (d *diskCache) writeImage(digest string, rec imageRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return d.write("images", digest, b)
}

func (d *diskCache) write(sub, digest string, b []byte) error {
	p, ok := d.path(sub, digest)
	if !ok {
		return errors.New("not a digest: " + digest)
	}
	if int64(len(b)) > d.max {
		return nil // would evict everything else
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.size += int64(len(b))
	if d.size > d.max {
		d.prune()
	}
	return nil
}

// prune recounts the directory, removes leftover temporary files and, when
// over the bound, the least recently used files down to 90% of it.
func (d *diskCache) prune() {
	type file struct {
		path  string
		size  int64
		mtime time.Time
	}
	var files []file
	var total int64
	for _, sub := range []string{"layers", "images"} {
		ents, _ := os.ReadDir(filepath.Join(d.dir, sub))
		for _, e := range ents {
			p := filepath.Join(d.dir, sub, e.Name())
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if strings.HasPrefix(e.Name(), ".tmp-") && time.Since(fi.ModTime()) > time.Hour {
				_ = os.Remove(p)
				continue
			}
			files = append(files, file{p, fi.Size(), fi.ModTime()})
			total += fi.Size()
		}
	}
	if total > d.max {
		sort.Slice(files, func(i, j int) bool { return files[i].mtime.Before(files[j].mtime) })
		for _, f := range files {
			if total <= d.max/10*9 {
				break
			}
			if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
				total -= f.size
			}
		}
	}
	d.size = total
}
