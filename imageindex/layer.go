package imageindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// DefaultMaxEntries is the number of tar entries a layer may hold when
// Limits.MaxEntries is zero.
const DefaultMaxEntries = 1_000_000

// DefaultMaxPathBytes is the length of a cleaned path, or of a symlink
// target, when Limits.MaxPathBytes is zero.
const DefaultMaxPathBytes = 4096

// DefaultMaxTotalBytes is the bytes of all paths and symlink targets of a
// layer when Limits.MaxTotalBytes is zero: about a million 250-byte paths.
const DefaultMaxTotalBytes = 256 << 20

// maxTotalCap keeps every offset of a layer within a uint32.
const maxTotalCap = 1<<32 - 1<<20

// maxPathCap is the longest path or link target a layer ever holds: larger
// Limits.MaxPathBytes are clamped to it, and ParseLayer rejects longer ones.
const maxPathCap = 1 << 16

// blockSize is the number of entries per front-coded block. Every block
// starts with a full path, so a lookup binary-searches the block starts and
// decodes at most blockSize entries.
const blockSize = 16

var (
	// ErrTooManyEntries means a layer has more tar entries than
	// Limits.MaxEntries. Indexing stops at the first entry over the limit.
	ErrTooManyEntries = errors.New("imageindex: too many entries in layer")
	// ErrPathTooLong means a cleaned path or a symlink target is longer
	// than Limits.MaxPathBytes.
	ErrPathTooLong = errors.New("imageindex: path too long")
	// ErrLayerTooLarge means a layer's paths and symlink targets total
	// more than Limits.MaxTotalBytes.
	ErrLayerTooLarge = errors.New("imageindex: layer paths too large")
)

// Limits bound the work and memory one layer may cost.
type Limits struct {
	// MaxEntries is the number of entries per layer (every tar header
	// counts, whiteouts included); 0 means DefaultMaxEntries.
	MaxEntries int
	// MaxPathBytes is the length of a path after cleaning, and of a symlink
	// target; 0 means DefaultMaxPathBytes. Values above 65536 are clamped.
	MaxPathBytes int
	// MaxTotalBytes is the sum of a layer's path and symlink target
	// lengths; 0 means DefaultMaxTotalBytes. Without it, MaxEntries
	// entries of MaxPathBytes paths and targets could cost 8 GiB while the
	// layer is built. Values near 4 GiB are clamped.
	MaxTotalBytes int
}

func (lim Limits) maxTotalBytes() int {
	if lim.MaxTotalBytes <= 0 {
		return DefaultMaxTotalBytes
	}
	return int(min(uint64(lim.MaxTotalBytes), maxTotalCap))
}

func (lim Limits) maxEntries() int {
	if lim.MaxEntries <= 0 {
		return DefaultMaxEntries
	}
	return lim.MaxEntries
}

func (lim Limits) maxPathBytes() int {
	if lim.MaxPathBytes <= 0 {
		return DefaultMaxPathBytes
	}
	return min(lim.MaxPathBytes, maxPathCap)
}

// EntryKind is what a layer entry is.
type EntryKind uint8

const (
	// Dir is a directory.
	Dir EntryKind = iota + 1
	// Regular is a regular file or a hard link.
	Regular
	// Symlink is a symbolic link; Entry.Link is its target.
	Symlink
	// Other is a character or block device, a fifo or a socket.
	Other
	// Whiteout deletes Entry.Path, and everything below it, from the
	// layers below (a tar entry ".wh.NAME").
	Whiteout
	// Opaque marks the directory Entry.Path opaque: everything the layers
	// below have below it is hidden, the directory itself stays (a tar
	// entry ".wh..wh..opq" inside it).
	Opaque
)

func (k EntryKind) String() string {
	switch k {
	case Dir:
		return "dir"
	case Regular:
		return "regular"
	case Symlink:
		return "symlink"
	case Other:
		return "other"
	case Whiteout:
		return "whiteout"
	case Opaque:
		return "opaque"
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// Entry is one path of a layer as the index sees it. For a Whiteout, Path is
// the path deleted (not the ".wh." name); for an Opaque, Path is the
// directory marked opaque ("/" included).
type Entry struct {
	Path string
	Kind EntryKind
	// Link is a Symlink's target as the tar header wrote it; empty for
	// every other kind.
	Link string
}

// The kind byte stored per entry: an EntryKind from Dir to Whiteout, with
// flagOpaque set on an opaque Dir.
const (
	kindMask   = 0x07
	flagOpaque = 0x80
)

// Layer is the immutable index of one layer's paths: sorted by path bytes,
// front-coded in blocks of blockSize entries. It holds no file content and
// no per-entry Go strings or pointers, and is safe for concurrent reads, so
// one *Layer may be shared by many Images.
type Layer struct {
	// buf holds the entries, each encoded as
	//	uvarint shared-prefix length (0 at a block start)
	//	uvarint suffix length, suffix bytes
	//	kind byte
	//	for a Symlink: uvarint target length, target bytes
	buf []byte
	// blocks holds the offset in buf of every blockSize'th entry.
	blocks []uint32
	n      int
	// pathBytes is the sum of the entries' full path and link lengths.
	pathBytes int
}

// PathBytes is the sum of the lengths of the layer's paths and symlink
// targets, as Limits.MaxTotalBytes counts them (for the entries the layer
// kept), so that a caller can bound several layers together.
func (l *Layer) PathBytes() int { return l.pathBytes }

// Len is the number of entries the layer holds, after the entries a later
// one at the same path replaced were dropped.
func (l *Layer) Len() int { return l.n }

// Bytes is the heap memory the index holds, for cache accounting.
func (l *Layer) Bytes() int {
	return int(unsafe.Sizeof(*l)) + cap(l.buf) + 4*cap(l.blocks)
}

// Entries returns the layer's entries in path order. An opaque directory
// yields a Dir entry followed by an Opaque one, so NewLayer(l.Entries())
// rebuilds the same layer.
func (l *Layer) Entries() []Entry {
	out := make([]Entry, 0, l.n)
	c := l.cursorAt(0)
	for c.next() {
		k := EntryKind(c.kind & kindMask)
		if len(c.path) != 1 { // the root is stored only when opaque
			out = append(out, Entry{Path: string(c.path), Kind: k, Link: string(c.link)})
		}
		if c.kind&flagOpaque != 0 {
			out = append(out, Entry{Path: string(c.path), Kind: Opaque})
		}
	}
	return out
}

// cursor decodes a layer's entries in order from a block start. path and
// link are only valid until the next call to next.
type cursor struct {
	buf  []byte
	pos  int
	path []byte
	kind byte
	link []byte
}

func (l *Layer) cursorAt(block int) cursor {
	c := cursor{buf: l.buf}
	if block < len(l.blocks) {
		c.pos = int(l.blocks[block])
	} else {
		c.pos = len(l.buf)
	}
	return c
}

// next decodes the entry at c.pos. The buffer was validated when the layer
// was built or parsed, so decoding cannot fail.
func (c *cursor) next() bool {
	if c.pos >= len(c.buf) {
		return false
	}
	shared, n := binary.Uvarint(c.buf[c.pos:])
	c.pos += n
	slen, n := binary.Uvarint(c.buf[c.pos:])
	c.pos += n
	c.path = append(c.path[:shared], c.buf[c.pos:c.pos+int(slen)]...)
	c.pos += int(slen)
	c.kind = c.buf[c.pos]
	c.pos++
	c.link = nil
	if EntryKind(c.kind&kindMask) == Symlink {
		llen, n := binary.Uvarint(c.buf[c.pos:])
		c.pos += n
		c.link = c.buf[c.pos : c.pos+int(llen)]
		c.pos += int(llen)
	}
	return true
}

// blockStart returns the full path that begins block i, without copying.
func (l *Layer) blockStart(i int) []byte {
	b := l.buf[l.blocks[i]:]
	_, n := binary.Uvarint(b) // shared, always 0
	slen, m := binary.Uvarint(b[n:])
	return b[n+m : n+m+int(slen)]
}

// seek returns a cursor whose next call to next yields the first entry whose
// path is >= key.
func (l *Layer) seek(key string) (cursor, bool) {
	// The last block whose start is <= key holds the lower bound, or the
	// lower bound is the start of the block after it.
	lo, hi := 0, len(l.blocks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if string(l.blockStart(m)) <= key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	b := max(lo-1, 0)
	c := l.cursorAt(b)
	for {
		save := c.pos
		if !c.next() {
			return c, false
		}
		if string(c.path) >= key {
			// Rewind so next yields this entry again; the path prefix
			// the entry shares is still in c.path.
			c.pos = save
			return c, true
		}
	}
}

// lookup returns the kind byte and link of the entry at p.
func (l *Layer) lookup(p string) (kind byte, link string, ok bool) {
	c, found := l.seek(p)
	if !found || !c.next() || string(c.path) != p {
		return 0, "", false
	}
	return c.kind, string(c.link), true
}

// belowPrefix is the prefix every path strictly below dir starts with.
func belowPrefix(dir string) string {
	if dir == "/" {
		return "/"
	}
	return dir + "/"
}

// hasBelow reports whether the layer has an entry strictly below dir.
func (l *Layer) hasBelow(dir string) bool {
	pre := belowPrefix(dir)
	c, found := l.seek(pre)
	for found && c.next() {
		if !bytes.HasPrefix(c.path, []byte(pre)) {
			return false
		}
		if len(c.path) > len(pre) || pre != "/" {
			return true
		}
		// The root's own entry ("/", an opaque marker) is not below it.
	}
	return false
}

// below calls fn for every entry strictly below dir, in path order, until fn
// returns false.
func (l *Layer) below(dir string, fn func(path []byte, kind byte, link []byte) bool) {
	pre := belowPrefix(dir)
	c, found := l.seek(pre)
	for found && c.next() {
		if !bytes.HasPrefix(c.path, []byte(pre)) {
			return
		}
		if len(c.path) == len(pre) {
			continue // "/" itself
		}
		if !fn(c.path, c.kind, c.link) {
			return
		}
	}
}

// record is one entry while a layer is built: its path and link live in an
// arena, so a million entries cost no million Go strings.
type record struct {
	pOff, pLen uint32
	lOff, lLen uint32
	seq        uint32 // order of appearance, the last one wins
	kind       EntryKind
}

// builder collects a layer's entries in the order the tar stream has them.
type builder struct {
	lim   Limits
	arena []byte
	recs  []record
	count int
}

func (b *builder) add(p string, kind EntryKind, link string) error {
	b.count++
	if err := b.checkCount(); err != nil {
		return err
	}
	if len(p) > b.lim.maxPathBytes() {
		return fmt.Errorf("%w: %d bytes (%.40q...), at most %d", ErrPathTooLong, len(p), p, b.lim.maxPathBytes())
	}
	if len(link) > b.lim.maxPathBytes() {
		return fmt.Errorf("%w: symlink %.40q has a %d-byte target, at most %d", ErrPathTooLong, p, len(link), b.lim.maxPathBytes())
	}
	if kind != Symlink {
		link = ""
	}
	if len(b.arena)+len(p)+len(link) > b.lim.maxTotalBytes() {
		return fmt.Errorf("%w: more than %d bytes of paths and targets", ErrLayerTooLarge, b.lim.maxTotalBytes())
	}
	r := record{pOff: uint32(len(b.arena)), pLen: uint32(len(p)), seq: uint32(len(b.recs)), kind: kind}
	b.arena = append(b.arena, p...)
	r.lOff, r.lLen = uint32(len(b.arena)), uint32(len(link))
	b.arena = append(b.arena, link...)
	b.recs = append(b.recs, r)
	return nil
}

func (b *builder) path(r *record) []byte { return b.arena[r.pOff : r.pOff+r.pLen] }
func (b *builder) link(r *record) []byte { return b.arena[r.lOff : r.lOff+r.lLen] }

// folded is a path's state once every entry for it in the layer was applied
// in order.
//
// Its fields are ordered to pack it in 56 bytes: a layer holds one per
// path while it is built.
type folded struct {
	rec record // path, link, the final kind (Dir to Whiteout)
	// dropSeq is the seq of the last entry at this path that deleted what
	// the layer had put below it (a whiteout or a non-directory), -1 for
	// none.
	dropSeq int64
	// firstSeq and lastSeq are the seqs of the path's first and last
	// entries, recs[ri:rj] the entries.
	firstSeq, lastSeq uint32
	ri, rj            uint32
	opaque            bool
	whited            bool // the layer whites this path out, whatever comes after
	dropped           bool
}

// fold applies the entries recs[i:j] of one path in order, ignoring those
// before seq after (a deletion of a path above wiped them, though a
// whiteout among them still deleted the lower layers' path).
func fold(recs []record, i, j int, after int64) folded {
	f := folded{dropSeq: -1, ri: uint32(i), rj: uint32(j), firstSeq: recs[i].seq, lastSeq: recs[j-1].seq}
	for _, r := range recs[i:j] {
		if int64(r.seq) < after {
			f.whited = f.whited || r.kind == Whiteout
			continue
		}
		switch r.kind {
		case Whiteout:
			f.rec, f.opaque, f.dropSeq, f.whited = r, false, int64(r.seq), true
		case Opaque:
			if f.rec.kind != Dir {
				f.rec = r
				f.rec.kind = Dir
			}
			f.opaque = true
		case Dir:
			if f.whited {
				f.opaque = true
			}
			if f.rec.kind != Dir {
				f.rec = r
			}
		default:
			f.rec, f.opaque, f.dropSeq = r, false, int64(r.seq)
		}
	}
	return f
}

// build applies the layer's entries in order and encodes the result:
//   - the last entry at a path wins; a directory at a path the layer also
//     whites out is opaque (the lower one was deleted, a new one made);
//   - a whiteout, file, symlink or device deletes what the layer created
//     below its path before it;
//   - when the layer creates entries below a whiteout afterwards, the path
//     is an opaque directory instead;
//   - nothing is below a path that ends up a non-directory (an extractor
//     would fail to create it); below one that ends up a directory, what
//     came after the last deletion stays.
func (b *builder) build() (*Layer, error) {
	// Sorting by path then seq keeps a path's entries in stream order, as
	// a stable sort would, at the speed of an unstable one.
	slices.SortFunc(b.recs, func(x, y record) int {
		if c := bytes.Compare(b.path(&x), b.path(&y)); c != 0 {
			return c
		}
		return int(x.seq) - int(y.seq)
	})
	fs := make([]folded, 0, len(b.recs))
	for i := 0; i < len(b.recs); {
		j := i + 1
		for j < len(b.recs) && bytes.Equal(b.path(&b.recs[j]), b.path(&b.recs[i])) {
			j++
		}
		fs = append(fs, fold(b.recs, i, j, -1))
		i = j
	}
	// Parents sort before their children. Each entry is judged once, by
	// the nearest "active" path above it (a non-directory, a whiteout, or a
	// directory re-created after a deletion): an active path that survives
	// takes on the dropSeq of the one above it and judges its own subtree,
	// which the one above skips. That keeps nested whiteouts linear.
	for i := range fs {
		f := &fs[i]
		if f.dropped || !f.active() || len(b.path(&f.rec)) == 1 {
			continue
		}
		lo, hi := b.subtree(fs, i)
		nonDir := f.rec.kind != Whiteout && f.rec.kind != Dir
		kept := false
		// skip maps the start of a subtree judged by its own root to its
		// end. The subtree of "/a/b" does not start right after it:
		// "/a/b-y" sorts between them and is judged here.
		var skip map[int]int
		for k := lo; k < hi; k++ {
			if end, ok := skip[k]; ok {
				k = end - 1
				continue
			}
			g := &fs[k]
			switch {
			case g.dropped:
			case nonDir:
				g.dropped = true
			case int64(g.lastSeq) < f.dropSeq:
				g.dropped = true
			default:
				if int64(g.firstSeq) < f.dropSeq {
					// The deletion above wiped this path's
					// earlier entries: only the later ones count.
					*g = fold(b.recs, int(g.ri), int(g.rj), f.dropSeq)
				}
				kept = true
				if g.active() {
					g.dropSeq = max(g.dropSeq, f.dropSeq)
					if glo, ghi := b.subtree(fs, k); glo < ghi {
						if skip == nil {
							skip = map[int]int{}
						}
						skip[glo] = ghi
					}
				}
			}
		}
		if f.rec.kind == Whiteout && kept {
			f.rec.kind, f.rec.lLen, f.opaque = Dir, 0, true
		}
	}
	// The records are no longer needed: let them go before the encoding
	// is allocated.
	b.recs = nil
	// A first pass sizes the encoding, so that the layer's buffers are
	// allocated once, at their exact size, and handed over without a copy.
	keep := func(f *folded) bool {
		return !f.dropped && (len(b.path(&f.rec)) != 1 || f.opaque) // "/" is always a directory; only its opacity is news
	}
	var sz encoder
	for i := range fs {
		if f := &fs[i]; keep(f) {
			sz.size(b.path(&f.rec), byte(f.rec.kind), b.link(&f.rec))
		}
	}
	if uint64(sz.bytes) > maxTotalCap {
		return nil, fmt.Errorf("%w: the index would be %d bytes", ErrLayerTooLarge, sz.bytes)
	}
	enc := encoder{buf: make([]byte, 0, sz.bytes), blocks: make([]uint32, 0, (sz.n+blockSize-1)/blockSize)}
	for i := range fs {
		f := &fs[i]
		if !keep(f) {
			continue
		}
		k := byte(f.rec.kind)
		if f.opaque {
			k |= flagOpaque
		}
		enc.add(b.path(&f.rec), k, b.link(&f.rec))
	}
	return enc.layer(), nil
}

// active reports whether f judges the entries below it: a non-directory
// drops them, a whiteout (or a directory re-created after a deletion) drops
// the ones that came before it.
func (f *folded) active() bool { return f.rec.kind != Dir || f.dropSeq >= 0 }

// subtree returns the range of fs, sorted by path, that holds the entries
// strictly below fs[i]: those starting with its path and "/", which follow
// it, though not always right after it ("/a-b" sorts between "/a" and
// "/a/b").
func (b *builder) subtree(fs []folded, i int) (lo, hi int) {
	p := b.path(&fs[i].rec)
	// The paths starting with p follow it, so when the next one does
	// not, nothing is below p.
	if i+1 == len(fs) || !bytes.HasPrefix(b.path(&fs[i+1].rec), p) {
		return i + 1, i + 1
	}
	pre := append(slices.Clip(p), '/')
	rest := fs[i+1:]
	lo, _ = slices.BinarySearchFunc(rest, pre, func(g folded, key []byte) int {
		return bytes.Compare(b.path(&g.rec), key)
	})
	hi = lo + sort.Search(len(rest)-lo, func(k int) bool {
		return !bytes.HasPrefix(b.path(&rest[lo+k].rec), pre)
	})
	return i + 1 + lo, i + 1 + hi
}

// encoder front-codes sorted entries into a Layer.
type encoder struct {
	buf       []byte
	blocks    []uint32
	prev      []byte
	n         int
	pathBytes int
	bytes     int // what size counted
}

func (e *encoder) shared(p []byte) int {
	shared := 0
	if e.n%blockSize != 0 {
		for shared < len(p) && shared < len(e.prev) && p[shared] == e.prev[shared] {
			shared++
		}
	}
	return shared
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// size counts what add would append, without storing it.
func (e *encoder) size(p []byte, kind byte, link []byte) {
	shared := e.shared(p)
	e.bytes += uvarintLen(uint64(shared)) + uvarintLen(uint64(len(p)-shared)) + len(p) - shared + 1
	if EntryKind(kind&kindMask) == Symlink {
		e.bytes += uvarintLen(uint64(len(link))) + len(link)
	}
	e.prev = append(e.prev[:0], p...)
	e.n++
}

func (e *encoder) add(p []byte, kind byte, link []byte) {
	shared := e.shared(p)
	if e.n%blockSize == 0 {
		e.blocks = append(e.blocks, uint32(len(e.buf)))
	}
	e.pathBytes += len(p)
	e.buf = binary.AppendUvarint(e.buf, uint64(shared))
	e.buf = binary.AppendUvarint(e.buf, uint64(len(p)-shared))
	e.buf = append(e.buf, p[shared:]...)
	e.buf = append(e.buf, kind)
	if EntryKind(kind&kindMask) == Symlink {
		e.buf = binary.AppendUvarint(e.buf, uint64(len(link)))
		e.buf = append(e.buf, link...)
		e.pathBytes += len(link)
	}
	e.prev = append(e.prev[:0], p...)
	e.n++
}

// layer returns the encoded layer. Its buffers are handed over, not
// copied: build sizes them exactly; other callers' are clipped.
func (e *encoder) layer() *Layer {
	return &Layer{buf: slices.Clip(e.buf), blocks: slices.Clip(e.blocks), n: e.n, pathBytes: e.pathBytes}
}

// NewLayer indexes synthetic entries, applied in order as if they were a tar
// stream's, with the same validation and DefaultMaxEntries and
// DefaultMaxPathBytes limits as IndexLayer. Paths are cleaned as rooted
// paths; a name starting with ".wh." is refused, whiteouts and opaque
// markers are said with their Kind.
func NewLayer(entries []Entry) (*Layer, error) {
	b := builder{recs: make([]record, 0, len(entries))}
	size := 0
	for _, e := range entries {
		size += len(e.Path) + 1 + len(e.Link)
	}
	b.arena = make([]byte, 0, size)
	for _, e := range entries {
		p := cleanRooted(e.Path)
		if hasWhiteoutName(p) {
			return nil, fmt.Errorf("imageindex: entry %q: %q names are reserved for whiteouts", e.Path, whiteoutPrefix)
		}
		if e.Link != "" && e.Kind != Symlink {
			return nil, fmt.Errorf("imageindex: entry %q: a %s has no link target", e.Path, e.Kind)
		}
		switch e.Kind {
		case Dir, Regular, Symlink, Other:
			if p == "/" {
				b.count++ // the root is always a directory
				continue
			}
		case Whiteout:
			if p == "/" {
				return nil, fmt.Errorf("imageindex: entry %q: the root cannot be whited out", e.Path)
			}
		case Opaque:
		default:
			return nil, fmt.Errorf("imageindex: entry %q: unknown kind %d", e.Path, e.Kind)
		}
		if err := b.add(p, e.Kind, e.Link); err != nil {
			return nil, err
		}
	}
	return b.build()
}

// The binary form of a Layer: magic, version, uvarint entry count, then the
// entry buffer exactly as Layer.buf holds it.
const (
	binaryMagic   = "PGIL"
	binaryVersion = 1
)

// MarshalBinary encodes the layer for a cache; ParseLayer decodes it.
func (l *Layer) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, len(binaryMagic)+1+binary.MaxVarintLen64+len(l.buf))
	out = append(out, binaryMagic...)
	out = append(out, binaryVersion)
	out = binary.AppendUvarint(out, uint64(l.n))
	return append(out, l.buf...), nil
}

// ParseLayer decodes what MarshalBinary encoded. It validates every entry
// (clean absolute paths in strictly increasing order, known kinds, block
// starts with no shared prefix, nothing below a non-directory, lengths
// within the buffer and 65536 bytes), so corrupt or hostile input returns an
// error, never panics, and never allocates more than O(len(b)). The layer
// does not keep b.
func ParseLayer(b []byte) (*Layer, error) {
	if len(b) < len(binaryMagic)+1 || string(b[:len(binaryMagic)]) != binaryMagic {
		return nil, errors.New("imageindex: not a layer index")
	}
	if v := b[len(binaryMagic)]; v != binaryVersion {
		return nil, fmt.Errorf("imageindex: layer index version %d, want %d", v, binaryVersion)
	}
	b = b[len(binaryMagic)+1:]
	n64, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("imageindex: bad entry count")
	}
	b = b[k:]
	// Every entry takes at least 3 bytes: two varints and a kind.
	if n64 > uint64(len(b))/3 {
		return nil, fmt.Errorf("imageindex: %d entries cannot fit in %d bytes", n64, len(b))
	}
	n := int(n64)
	l := &Layer{buf: slices.Clone(b), blocks: make([]uint32, 0, (n+blockSize-1)/blockSize), n: n}
	if uint64(len(l.buf)) > maxTotalCap {
		return nil, errors.New("imageindex: layer index over 4 GiB")
	}
	buf := l.buf
	var prev []byte
	pos, i := 0, 0
	uv := func(what string) (int, error) {
		v, k := binary.Uvarint(buf[pos:])
		if k <= 0 || v > maxPathCap {
			return 0, fmt.Errorf("imageindex: entry %d: bad %s at byte %d", i, what, pos)
		}
		pos += k
		return int(v), nil
	}
	var nonDirs []int // entries nothing may be below, checked once blocks are known
	cur := make([]byte, 0, 256)
	for ; i < n; i++ {
		start := pos
		if i%blockSize == 0 {
			l.blocks = append(l.blocks, uint32(pos))
		}
		shared, err := uv("shared length")
		if err != nil {
			return nil, err
		}
		slen, err := uv("suffix length")
		if err != nil {
			return nil, err
		}
		if i%blockSize == 0 && shared != 0 {
			return nil, fmt.Errorf("imageindex: entry %d starts a block but shares a prefix", i)
		}
		if shared > len(cur) || shared+slen > maxPathCap || slen > len(buf)-pos-1 {
			return nil, fmt.Errorf("imageindex: entry %d: lengths out of range", i)
		}
		prev = append(prev[:0], cur...)
		cur = append(cur[:shared], buf[pos:pos+slen]...)
		pos += slen
		kind := buf[pos]
		pos++
		if err := validPath(cur); err != nil {
			return nil, fmt.Errorf("imageindex: entry %d: %w", i, err)
		}
		l.pathBytes += len(cur)
		if i > 0 && bytes.Compare(prev, cur) >= 0 {
			return nil, fmt.Errorf("imageindex: entry %d: %q is not after %q", i, cur, prev)
		}
		ek := EntryKind(kind & kindMask)
		if kind&^(kindMask|flagOpaque) != 0 || ek < Dir || ek > Whiteout || (kind&flagOpaque != 0 && ek != Dir) {
			return nil, fmt.Errorf("imageindex: entry %d: bad kind %#x", i, kind)
		}
		if len(cur) == 1 && kind != byte(Dir)|flagOpaque {
			return nil, fmt.Errorf("imageindex: entry %d: the root may only be an opaque directory", i)
		}
		if ek == Symlink {
			llen, err := uv("link length")
			if err != nil {
				return nil, err
			}
			if llen > len(buf)-pos {
				return nil, fmt.Errorf("imageindex: entry %d: link out of range", i)
			}
			pos += llen
			l.pathBytes += llen
		}
		if ek != Dir {
			nonDirs = append(nonDirs, start)
		}
	}
	if pos != len(buf) {
		return nil, fmt.Errorf("imageindex: %d bytes after the last entry", len(buf)-pos)
	}
	for _, off := range nonDirs {
		p := l.pathAt(off)
		if l.hasBelow(p) {
			return nil, fmt.Errorf("imageindex: entries below the non-directory %q", p)
		}
	}
	return l, nil
}

// pathAt returns the full path of the entry at byte offset off.
func (l *Layer) pathAt(off int) string {
	bi, _ := slices.BinarySearch(l.blocks, uint32(off))
	if bi == len(l.blocks) || l.blocks[bi] != uint32(off) {
		bi--
	}
	c := l.cursorAt(bi)
	for c.pos <= off && c.next() {
	}
	return string(c.path)
}

// validPath reports whether p is absolute and clean, with no name reserved
// for whiteouts.
func validPath(p []byte) error {
	if len(p) == 0 || p[0] != '/' {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if len(p) == 1 {
		return nil
	}
	if p[len(p)-1] == '/' {
		return fmt.Errorf("path %q is not clean", p)
	}
	for el := range bytes.SplitSeq(p[1:], []byte("/")) {
		if len(el) == 0 || string(el) == "." || string(el) == ".." {
			return fmt.Errorf("path %q is not clean", p)
		}
	}
	if hasWhiteoutName(string(p)) {
		return fmt.Errorf("path %q has a whiteout name", p)
	}
	return nil
}

// cleanRooted is path.Clean("/" + name), without the allocation and the
// work when name is already clean and absolute, as most tar names but for
// the leading "./" or "/" are.
func cleanRooted(name string) string {
	if len(name) > 1 && name[len(name)-1] == '/' {
		name = name[:len(name)-1] // a directory's name in a tar
	}
	if len(name) > 0 && name[0] != '/' && !strings.HasPrefix(name, "./") {
		name = "/" + name
	}
	if len(name) == 0 || !isCleanRooted(name) {
		return path.Clean("/" + name)
	}
	return name
}

// isCleanRooted reports whether p is absolute and path.Clean leaves it alone.
func isCleanRooted(p string) bool {
	if p[0] != '/' {
		return false
	}
	if len(p) == 1 {
		return true
	}
	if p[len(p)-1] == '/' {
		return false
	}
	// Every element is between two slashes or a slash and the end.
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

// hasWhiteoutName reports whether an element of the clean path p starts with
// ".wh.", a name the layer format reserves.
func hasWhiteoutName(p string) bool {
	return strings.Contains(p, "/"+whiteoutPrefix)
}
