//go:build linux

package logstream

import (
	"bytes"
	"slices"
)

// verdict is whether a new file is a copy of a followed (or retired) one.
type verdict int

const (
	notCopy verdict = iota
	// maybeCopy: the new file is shorter than the other's recorded head and
	// a prefix of it: a copy in progress, a complete copy of a short file,
	// or a new file whose first bytes happen to match so far.
	maybeCopy
	isCopy
)

// classify decides what each new file with bytes is: compressed (skipped),
// a copy of a followed file (linked to it, so that its bytes print once), a
// copy of a truncated or closed file (it continues that stream), or a file
// of its own (read from its beginning). Larger files are decided first, so
// that of two new files with the same bytes, the smaller is the copy.
func (s *streamer) classify(final bool) {
	var pending []*file
	for _, t := range s.files {
		if (t.state == fresh || t.state == undecided) && t.size > 0 {
			pending = append(pending, t)
		}
	}
	slices.SortStableFunc(pending, func(a, b *file) int { return int(min(max(b.size-a.size, -1), 1)) })
	for _, t := range pending {
		force := final || t.gone
		switch {
		case t.state != undecided || t.size != t.undecidedSize:
			t.undecidedSize, t.waited = t.size, 0
		default:
			t.waited++
			force = force || t.waited >= undecidedPasses
		}
		if compressed, tooShort := compressedHead(t.head); compressed {
			s.skip(t.key, t.rel)
			t.state = skipped
			continue
		} else if tooShort && !force {
			t.state = undecided
			continue
		}
		v, r, c := s.match(t)
		if v == maybeCopy && !force {
			t.state = undecided
			continue
		}
		switch {
		case v == notCopy:
			t.state = active
		case r != nil:
			s.adopt(t, r)
		default:
			t.state, t.src, t.verified = linked, c, 0
			if !s.verifyLink(t, final || t.gone) {
				s.unlink(t)
			}
		}
	}
}

// match finds what t is a copy of: a retired record (newest first), or a
// followed file.
func (s *streamer) match(t *file) (verdict, *retired, *file) {
	best, bestR, bestC := notCopy, (*retired)(nil), (*file)(nil)
	for i := len(s.retired) - 1; i >= 0; i-- {
		r := s.retired[i]
		if v := s.matchRetired(t, r); v > best {
			best, bestR, bestC = v, r, nil
			if v == isCopy {
				return best, bestR, bestC
			}
		}
	}
	for _, c := range s.files {
		if c == t || c.state != active {
			continue
		}
		if v := s.matchFile(t, c); v > best {
			best, bestR, bestC = v, nil, c
			if v == isCopy {
				return best, bestR, bestC
			}
		}
	}
	return best, bestR, bestC
}

// matchFile reports whether t's bytes are a prefix of followed file c's:
// same first bytes, and same bytes at t's end. A copy holds no byte its
// original lacks.
func (s *streamer) matchFile(t, c *file) verdict {
	if v := matchHeads(t.head, c.head); v != isCopy {
		return v
	}
	if t.size > c.size {
		return notCopy
	}
	lo := max(0, t.size-tailMax)
	n := int(t.size - lo)
	a, b := s.buf[:n], s.buf[n:2*n]
	if k, _ := t.f.ReadAt(a, lo); k != n {
		return notCopy
	}
	if k, _ := c.f.ReadAt(b, lo); k != n || !bytes.Equal(a, b) {
		return notCopy
	}
	return isCopy
}

// matchRetired reports whether t holds what was read of a truncated or
// closed file: same first bytes, and the same bytes before where it was read
// up to, as far as t reaches there. (A copy shorter than that may still be
// being written.)
func (s *streamer) matchRetired(t *file, r *retired) verdict {
	if v := matchHeads(t.head, r.head); v != isCopy {
		return v
	}
	lo := r.off - int64(len(r.tail))
	if t.size <= lo {
		return isCopy
	}
	n := int(min(t.size, r.off) - lo)
	if !s.bytesAt(t.f, lo, r.tail[:n]) {
		return notCopy
	}
	return isCopy
}

// matchHeads compares a new file's first bytes with another's: isCopy when
// they are the same (as far as the other's go), maybeCopy when the new
// file's are a strict prefix of the other's.
func matchHeads(newHead, head []byte) verdict {
	n := min(len(newHead), len(head))
	switch {
	case n == 0 || !bytes.Equal(newHead[:n], head[:n]):
		return notCopy
	case len(newHead) < len(head):
		return maybeCopy
	}
	return isCopy
}

// adopt makes t continue a retired stream where it was read up to.
func (s *streamer) adopt(t *file, r *retired) {
	t.from, t.own, t.verified = r, t.label, 0
	if _, ok := s.verifyAdopted(t); !ok {
		// Not expected: match compared these bytes. Not a copy then.
		t.from, t.state = nil, active
		return
	}
	t.state, t.label = active, r.label
	t.off, t.tail, t.partial, t.shortOK, t.continues = r.off, r.tail, r.partial, true, true
	s.retired = slices.DeleteFunc(s.retired, func(x *retired) bool { return x == r })
}
