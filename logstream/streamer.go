//go:build linux

package logstream

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"
)

// Internal bounds.
const (
	// headMax is how many of a file's first bytes are kept: to notice a
	// rewrite that did not shrink the file, and to recognise copies.
	headMax = 1024
	// tailMax is how many bytes before the read offset are kept, for the
	// same reasons.
	tailMax = 256
	// readChunk is the read buffer, shared by all files.
	readChunk = 32 << 10
	// passBudget is the most read from one file in one pass, so that one
	// fast writer does not starve the others; the next pass follows at once.
	passBudget = 4 << 20
	// missingPasses is how many passes in a row a file must be missing from
	// the listing (while it still has a name) before it is closed: a rename
	// during a listing can hide a file from one listing.
	missingPasses = 3
	// undecidedPasses is how many passes a new file that may be a copy in
	// progress is waited for, while it does not grow, before it is decided.
	undecidedPasses = 4
	// retiredPasses is how long what was read of a truncated or closed file
	// is remembered, so that a copy of it found later continues it.
	retiredPasses = 20
	// retiredMax bounds those records.
	retiredMax = 64
)

// fileKey is a file's identity: it survives renames.
type fileKey struct{ dev, ino uint64 }

func keyOf(st *syscall.Stat_t) fileKey { return fileKey{dev: uint64(st.Dev), ino: st.Ino} }

type fileState int

const (
	// fresh: empty so far; what it is is decided when it has bytes.
	fresh fileState = iota
	// undecided: its bytes so far are a prefix of a followed file's first
	// bytes, so it may be a copy in progress; not read yet.
	undecided
	// active: read from off.
	active
	// linked: a copy of src, whose bytes it holds a prefix of; src prints
	// them. If src is truncated or goes away, the copy continues src's
	// stream.
	linked
	// skipped: compressed; closed at the end of the pass.
	skipped
)

// file is a followed file.
type file struct {
	key   fileKey
	f     *os.File
	label string // the prefix of its lines: its path when first seen, or that of the stream it continues
	rel   string // its path when last listed
	state fileState
	src   *file // when linked

	off     int64  // bytes consumed: printed, or held in partial
	partial []byte // the last line so far, without its newline
	head    []byte // the file's first bytes, up to headMax
	tail    []byte // the bytes just before off, up to tailMax
	// shortOK: off was taken over from the file this one is a copy of, and
	// may be beyond this file's end; that is not a truncation.
	shortOK bool
	// continues: it took over another file's stream in this pass.
	continues bool
	// verified: while linked, how many of its first bytes were found equal
	// to src's at the same offsets; while it continues a retired stream
	// (from, shortOK), how far its bytes were checked against the record.
	verified int64
	// from: the retired record it continues while shortOK, and own, the
	// label it had before: if its bytes turn out to differ from what the
	// record knows, the record is restored and the file is its own.
	from *retired
	own  string

	size  int64 // at the last check
	mtime syscall.Timespec
	nlink uint64

	seen          int  // the pass that last listed it
	missing       int  // passes in a row it was not listed
	gone          bool // deleted, or missing long enough: drain and close
	waited        int  // passes undecided without growing
	undecidedSize int64
	readErr       string
}

// retired is what was read of a file that was truncated or closed, so that a
// copy of it found later continues where it was read up to.
type retired struct {
	label      string
	head, tail []byte
	partial    []byte
	off        int64
	pass       int
}

type problem struct {
	state string
	pass  int
}

type streamer struct {
	opts  Options
	out   lineWriter
	notes io.Writer
	ident identity
	// open opens a file to follow, name in directory dirFd, at abs; tests
	// replace it.
	open func(dirFd int, name, abs string) (*os.File, error)

	passes     int
	busy       bool // a file had more to read than passBudget
	scanFailed bool // a directory could not be listed this pass
	files      []*file
	added      []*file // found in this pass, not yet in files
	byKey      map[fileKey]*file
	retired    []*retired
	problems   map[string]*problem // by path ("" for Dir itself, "sub/" for directories)
	skipped    map[fileKey]int     // compressed files: the pass that last listed them
	capNoted   bool
	buf        []byte
}

func newStreamer(opts Options, out, notes io.Writer) *streamer {
	return &streamer{
		opts:     opts,
		out:      lineWriter{w: out},
		notes:    notes,
		ident:    currentIdentity(),
		open:     openAt,
		byKey:    map[fileKey]*file{},
		problems: map[string]*problem{},
		skipped:  map[fileKey]int{},
		buf:      make([]byte, readChunk),
	}
}

// openAt opens a file for reading without following a symlink put in its
// place since it was listed, and without blocking on a FIFO.
func openAt(dirFd int, name, abs string) (*os.File, error) {
	fd, err := syscall.Openat(dirFd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	return os.NewFile(uintptr(fd), abs), nil
}

// pass lists the directory once and reads what every file gained. The final
// pass reads everything to its end, decides every undecided file and prints
// every held partial line.
func (s *streamer) pass(final bool) error {
	s.passes++
	s.busy = false
	s.scan(s.discover)
	// Of the files found in this pass, the oldest are read first: after
	// rotations between two passes, catalina.log.2 before catalina.log.1.
	slices.SortStableFunc(s.added, func(a, b *file) int { return compareTimespec(a.mtime, b.mtime) })
	s.files = append(s.files, s.added...)
	clear(s.added)
	s.added = s.added[:0]
	s.pruneProblems()
	s.pruneSkipped()
	for _, t := range s.files {
		s.check(t)
	}
	s.verifyCopies(final)
	s.classify(final)
	// Streams continued by a copy first: their lines were written before
	// those of the file that replaced them.
	for _, t := range s.files {
		if t.state == active && t.continues {
			t.continues = false
			s.read(t, final || t.gone)
		}
	}
	for _, t := range s.files {
		if t.state == active {
			s.read(t, final || t.gone)
		}
	}
	s.relinkOutgrown()
	s.closeGone()
	s.expireRetired(final)
	if final {
		for _, t := range s.files {
			s.flushPartial(t.label, &t.partial)
		}
	}
	return s.out.flush()
}

// discover starts following a listed file, unless it is followed already.
func (s *streamer) discover(e entry) {
	key := keyOf(e.st)
	if t := s.byKey[key]; t != nil {
		t.seen, t.rel = s.passes, e.rel
		return
	}
	if _, ok := s.skipped[key]; ok {
		s.skipped[key] = s.passes
		return
	}
	if compressedName(e.rel) {
		s.skip(key, e.rel)
		return
	}
	if len(s.files)+len(s.added) >= s.opts.MaxFiles {
		if !s.capNoted {
			s.capNoted = true
			s.notef("following %d files, the limit (--max-files): %s and any other new file are not followed until followed files are deleted", len(s.files)+len(s.added), quoteLabel(e.rel))
		}
		return
	}
	f, err := s.open(e.dirFd, e.name, e.abs)
	if errors.Is(err, fs.ErrNotExist) {
		return // deleted (or renamed) since the listing: rotation
	}
	if err != nil {
		s.reportFile(e, err)
		return
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return
	}
	key = keyOf(fi.Sys().(*syscall.Stat_t))
	if t := s.byKey[key]; t != nil { // replaced since it was listed
		f.Close()
		t.seen, t.rel = s.passes, e.rel
		return
	}
	s.resolved(e.rel, "read")
	t := &file{key: key, f: f, label: quoteLabel(e.rel), rel: e.rel, state: fresh, seen: s.passes, mtime: fi.Sys().(*syscall.Stat_t).Mtim}
	s.added = append(s.added, t)
	s.byKey[key] = t
}

// check looks at a followed file: its size, whether it was truncated or
// rewritten, whether it is gone.
func (s *streamer) check(t *file) {
	var st syscall.Stat_t
	if fi, err := t.f.Stat(); err == nil {
		st = *fi.Sys().(*syscall.Stat_t)
	}
	if t.seen == s.passes {
		t.missing = 0
	} else if !s.scanFailed {
		t.missing++
	}
	t.gone = st.Nlink == 0 || t.missing >= missingPasses
	changed := st.Size != t.size || st.Mtim != t.mtime
	switch t.state {
	case active:
		if t.shortOK && st.Size >= t.off {
			// A copy that reached where its original was read up to: its
			// bytes before off are now checked like any file's.
			t.shortOK, changed = false, true
		}
		if (st.Size < t.off && !t.shortOK) || (changed && !s.sameBytes(t, st.Size)) {
			s.truncated(t)
		}
	case linked:
		if st.Size < t.size || (changed && !s.sameBytes(t, st.Size)) {
			// The copy itself was rewritten: its bytes are its own now.
			t.state, t.src = active, nil
			t.head, t.tail, t.off = t.head[:0], nil, 0
		}
	}
	t.size, t.mtime, t.nlink = st.Size, st.Mtim, uint64(st.Nlink)
	s.growHead(t)
}

// sameBytes reports whether the file still starts with the recorded head and
// still has the recorded tail before off: bytes already read do not change
// in a file that is only appended to.
func (s *streamer) sameBytes(t *file, size int64) bool {
	if size < int64(len(t.head)) || !s.bytesAt(t.f, 0, t.head) {
		return false
	}
	if t.shortOK || len(t.tail) == 0 || size < t.off {
		return true
	}
	return s.bytesAt(t.f, t.off-int64(len(t.tail)), t.tail)
}

// bytesAt reports whether f holds want at off.
func (s *streamer) bytesAt(f *os.File, off int64, want []byte) bool {
	got := s.buf[:len(want)]
	n, _ := f.ReadAt(got, off)
	return n == len(want) && bytes.Equal(got, want)
}

// growHead records the file's first bytes, up to headMax.
func (s *streamer) growHead(t *file) {
	want := min(t.size, headMax)
	if int64(len(t.head)) >= want {
		return
	}
	n, _ := t.f.ReadAt(s.buf[:want-int64(len(t.head))], int64(len(t.head)))
	t.head = append(t.head, s.buf[:n]...)
}

// truncated handles a followed file that was truncated or rewritten: a copy
// of it continues its stream (copytruncate), or what was read is remembered
// for a copy found later; the file is read again from its beginning.
func (s *streamer) truncated(t *file) {
	if s.promoteCopy(t) == nil && (t.off > 0 || len(t.partial) > 0) {
		s.retire(t)
	}
	t.off, t.tail, t.partial, t.shortOK = 0, nil, nil, false
	t.head = t.head[:0]
}

// promoteCopy makes the first linked copy of t continue t's stream, where t
// was read up to, with t's partial line; t's other copies become its copies.
// Copies that are gone too are left to be closed: they hold nothing t did not.
func (s *streamer) promoteCopy(t *file) *file {
	var succ *file
	for _, c := range s.files {
		if c.state != linked || c.src != t || c.gone {
			continue
		}
		if succ == nil {
			succ = c
			c.state, c.src = active, nil
			c.off, c.tail, c.partial, c.label = t.off, slices.Clone(t.tail), t.partial, t.label
			c.shortOK, c.continues = true, true
			continue
		}
		c.src = succ
	}
	if succ != nil {
		t.partial = nil
	}
	return succ
}

// retire remembers what was read of t.
func (s *streamer) retire(t *file) {
	s.retired = append(s.retired, &retired{
		label: t.label, head: slices.Clone(t.head), tail: slices.Clone(t.tail),
		partial: t.partial, off: t.off, pass: s.passes,
	})
	t.partial = nil
	if len(s.retired) > retiredMax {
		r := s.retired[0]
		s.flushPartial(r.label, &r.partial)
		s.retired = s.retired[1:]
	}
}

// read reads what t gained and prints its complete lines.
func (s *streamer) read(t *file, unlimited bool) {
	budget := int64(passBudget)
	for unlimited || budget > 0 {
		n, err := t.f.ReadAt(s.buf, t.off)
		if n > 0 {
			s.consume(t, s.buf[:n])
			t.off += int64(n)
			budget -= int64(n)
		}
		if err != nil {
			if err != io.EOF && err.Error() != t.readErr {
				t.readErr = err.Error()
				s.notef("reading %s: %v; retrying", quoteLabel(t.rel), err)
			}
			return
		}
		if n == 0 {
			return
		}
	}
	s.busy = true
}

// consume prints the complete lines of data, the continuation of t's stream.
// A line longer than MaxLine is split.
func (s *streamer) consume(t *file, data []byte) {
	t.tail = appendTail(t.tail, data)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		room := s.opts.MaxLine - len(t.partial)
		switch {
		case i < 0 && len(data) <= room:
			t.partial = append(t.partial, data...)
			return
		case i < 0 || i > room:
			s.out.line(t.label, t.partial, data[:room])
			data = data[room:]
		default:
			s.out.line(t.label, t.partial, data[:i])
			data = data[i+1:]
		}
		t.partial = releaseBuffer(t.partial)
	}
}

// appendTail keeps the last tailMax bytes of tail followed by data.
func appendTail(tail, data []byte) []byte {
	if len(data) >= tailMax {
		return append(tail[:0], data[len(data)-tailMax:]...)
	}
	if over := len(tail) + len(data) - tailMax; over > 0 {
		tail = append(tail[:0], tail[over:]...)
	}
	return append(tail, data...)
}

// releaseBuffer empties a line buffer, and frees it if it grew large.
func releaseBuffer(b []byte) []byte {
	if cap(b) > 4<<10 {
		return nil
	}
	return b[:0]
}

// flushPartial prints a held partial line.
func (s *streamer) flushPartial(label string, partial *[]byte) {
	if len(*partial) > 0 {
		s.out.line(label, *partial, nil)
	}
	*partial = nil
}

// relinkOutgrown ends the link of a copy that holds bytes its source does
// not: it was the original, and is read on from where the source was read,
// once all the bytes they share are found equal (else it is read from where
// they differ).
func (s *streamer) relinkOutgrown() {
	for _, t := range s.files {
		if t.state != linked {
			continue
		}
		src := t.src
		if t.size <= max(src.size, src.off) {
			continue
		}
		if !s.verifyLink(t, true) {
			s.unlink(t)
			continue
		}
		t.state, t.src = active, nil
		t.off, t.tail, t.partial, t.shortOK, t.continues = src.off, slices.Clone(src.tail), src.partial, true, true
		src.partial = nil
	}
}

// verifyCopies compares what linked copies, and files that continue a
// retired stream, gained with what they are taken to be a copy of. One
// whose bytes differ is a file of its own, read from the line where they
// differ: the bytes before were printed as the other file's.
func (s *streamer) verifyCopies(final bool) {
	for _, t := range s.files {
		switch {
		case t.state == linked:
			if !s.verifyLink(t, final || t.gone) {
				s.unlink(t)
			}
		case t.state == active && t.from != nil:
			if !t.shortOK {
				t.from = nil // reached where the record was read up to
			} else if at, ok := s.verifyAdopted(t); !ok {
				s.unadopt(t, at)
			}
		}
	}
}

// verifyLink compares linked t's bytes with its source's at the same
// offsets, from t.verified as far as both reach (at most passBudget bytes
// unless unlimited). It reports false at the first difference, with
// t.verified there.
func (s *streamer) verifyLink(t *file, unlimited bool) bool {
	end := min(t.size, t.src.size)
	budget := int64(passBudget)
	half := int64(len(s.buf) / 2)
	for t.verified < end {
		if !unlimited && budget <= 0 {
			s.busy = true
			return true
		}
		n := min(end-t.verified, half)
		a, b := s.buf[:n], s.buf[n:2*n]
		ka, _ := t.f.ReadAt(a, t.verified)
		kb, _ := t.src.f.ReadAt(b, t.verified)
		k := min(ka, kb)
		for i := range k {
			if a[i] != b[i] {
				t.verified += int64(i)
				return false
			}
		}
		if k == 0 {
			return true
		}
		t.verified += int64(k)
		budget -= int64(k)
	}
	return true
}

// unlink makes a linked file whose bytes differ from its source's at
// t.verified a file of its own, read from the start of that line.
func (s *streamer) unlink(t *file) {
	t.state, t.src = active, nil
	s.readFromLineAt(t, t.verified)
}

// readFromLineAt sets t to be read from the start of the line that holds
// offset at (or from at, if that line started more than tailMax bytes
// before).
func (s *streamer) readFromLineAt(t *file, at int64) {
	lo := max(0, at-tailMax)
	b := s.buf[:at-lo]
	if n, _ := t.f.ReadAt(b, lo); n == len(b) {
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 || lo == 0 {
			at = lo + int64(i+1)
			b = b[:i+1]
		}
		t.tail = appendTail(nil, b)
	} else {
		at, t.tail = 0, nil
	}
	t.off, t.partial, t.shortOK, t.continues = at, nil, false, false
}

// verifyAdopted compares what t, which continues retired stream t.from and
// is still shorter than where it was read up to, gained with the bytes the
// record knows: its first bytes and those before its offset. It reports
// false, with the offset of the first difference, if they differ.
func (s *streamer) verifyAdopted(t *file) (int64, bool) {
	r := t.from
	lo := r.off - int64(len(r.tail))
	for _, k := range []struct {
		start int64
		want  []byte
	}{{0, r.head}, {lo, r.tail}} {
		from := max(t.verified, k.start)
		to := min(t.size, k.start+int64(len(k.want)))
		if from >= to {
			continue
		}
		got := s.buf[:to-from]
		n, _ := t.f.ReadAt(got, from)
		for i := range n {
			if got[i] != k.want[from-k.start+int64(i)] {
				return from + int64(i), false
			}
		}
		if n < len(got) {
			return 0, true // shorter than it was: check sees to it
		}
	}
	t.verified = max(t.verified, min(t.size, r.off))
	return 0, true
}

// unadopt makes t, whose bytes at offset at differ from those of the
// retired stream it continued, a file of its own, read from the start of
// that line; the record is restored for a real copy found later.
func (s *streamer) unadopt(t *file, at int64) {
	r := t.from
	r.partial, r.pass = t.partial, s.passes
	s.retired = append(s.retired, r)
	t.label, t.from = t.own, nil
	s.readFromLineAt(t, at)
}

// closeGone closes the files that were deleted or left the directory, which
// were read to their end in this pass.
func (s *streamer) closeGone() {
	for _, t := range s.files {
		if !t.gone || t.state != active || s.promoteCopy(t) != nil {
			continue
		}
		if t.nlink == 0 {
			s.flushPartial(t.label, &t.partial)
		} else if t.off > 0 || len(t.partial) > 0 {
			// Renamed out of reach; if it comes back, it continues.
			s.retire(t)
		}
	}
	kept := s.files[:0]
	for _, t := range s.files {
		if !t.gone && t.state != skipped {
			kept = append(kept, t)
			continue
		}
		t.f.Close()
		delete(s.byKey, t.key)
	}
	clear(s.files[len(kept):])
	s.files = kept
	if len(s.files) < s.opts.MaxFiles {
		s.capNoted = false
	}
}

// expireRetired forgets old records of truncated files, printing their held
// partial lines.
func (s *streamer) expireRetired(final bool) {
	kept := s.retired[:0]
	for _, r := range s.retired {
		if !final && s.passes-r.pass <= retiredPasses {
			kept = append(kept, r)
			continue
		}
		s.flushPartial(r.label, &r.partial)
	}
	clear(s.retired[len(kept):])
	s.retired = kept
}

// closeAll closes every followed file.
func (s *streamer) closeAll() {
	for _, t := range s.files {
		t.f.Close()
	}
	s.files = nil
	clear(s.byKey)
}

func compareTimespec(a, b syscall.Timespec) int {
	if a.Sec != b.Sec {
		return cmp.Compare(a.Sec, b.Sec)
	}
	return cmp.Compare(a.Nsec, b.Nsec)
}

// run is Run on Linux, where files are followed through openat and their
// device and inode.
func run(ctx context.Context, opts Options, out, notes io.Writer) error {
	s := newStreamer(opts, out, notes)
	defer s.closeAll()
	s.notef("following the files in %s (every %s; running as %s)", opts.Dir, opts.Poll, s.ident)
	for {
		if err := s.pass(false); err != nil {
			return err
		}
		wait := opts.Poll
		if s.busy {
			wait = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return s.pass(true)
		case <-timer.C:
		}
	}
}
