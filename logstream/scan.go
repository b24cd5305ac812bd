//go:build linux

package logstream

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// entry is a regular file found by a listing.
type entry struct {
	rel   string          // path relative to Dir, with slashes
	abs   string          // its path, for messages
	name  string          // its name in its directory
	dirFd int             // its directory, open while the entry is visited
	st    *syscall.Stat_t // from lstat
	dir   *syscall.Stat_t // of the directory that holds it
}

// dirFlags open a directory to list it, without blocking.
const dirFlags = syscall.O_RDONLY | syscall.O_DIRECTORY | syscall.O_CLOEXEC | syscall.O_NONBLOCK

// scan lists Dir and its subdirectories, down to MaxDepth levels, and
// visits the regular files. Symlinks are not followed (Dir itself may be
// one): each subdirectory is opened relative to its parent's descriptor with
// O_NOFOLLOW, and visited files are opened relative to their directory's
// (entry.dirFd), so a directory swapped for a symlink between two listings
// is not followed either. A directory that cannot be listed is reported.
func (s *streamer) scan(visit func(entry)) {
	s.scanFailed = false
	fd, err := syscall.Open(s.opts.Dir, dirFlags, 0)
	if err != nil {
		s.scanFailed = true
		s.reportDir("", nil, &fs.PathError{Op: "open", Path: s.opts.Dir, Err: err})
		return
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		s.scanFailed = true
		s.reportDir("", nil, &fs.PathError{Op: "stat", Path: s.opts.Dir, Err: err})
		return
	}
	s.walk(fd, s.opts.Dir, "", 0, &st, visit)
}

// walk lists directory fd (which it closes), at abs and rel.
func (s *streamer) walk(fd int, abs, rel string, depth int, dirSt *syscall.Stat_t, visit func(entry)) {
	d := os.NewFile(uintptr(fd), abs)
	defer d.Close()
	des, err := d.ReadDir(-1)
	if err != nil {
		// ReadDir returns what it read before the error.
		s.scanFailed = true
		s.reportDir(rel, dirSt, err)
	} else {
		s.resolved(dirKey(rel), "list directory")
	}
	// In name order, as os.ReadDir lists.
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, de := range des {
		r, a := path.Join(rel, de.Name()), filepath.Join(abs, de.Name())
		switch typ := de.Type(); {
		case typ&fs.ModeSymlink != 0:
		case typ.IsDir():
			if depth >= s.opts.MaxDepth {
				continue
			}
			info, err := de.Info()
			if err != nil {
				continue
			}
			sub, err := syscall.Openat(fd, de.Name(), dirFlags|syscall.O_NOFOLLOW, 0)
			if err != nil {
				if err != syscall.ENOENT && err != syscall.ELOOP && err != syscall.ENOTDIR {
					// Not removed or replaced since the listing: unreadable.
					s.scanFailed = true
					s.reportDir(r, info.Sys().(*syscall.Stat_t), &fs.PathError{Op: "open", Path: a, Err: err})
				}
				continue
			}
			var st syscall.Stat_t
			if err := syscall.Fstat(sub, &st); err != nil {
				syscall.Close(sub)
				continue
			}
			s.walk(sub, a, r, depth+1, &st, visit)
		case typ.IsRegular():
			// A file renamed since the directory was read is not found;
			// it is found under its new name in the next pass.
			if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
				visit(entry{rel: r, abs: a, name: de.Name(), dirFd: fd, st: info.Sys().(*syscall.Stat_t), dir: dirSt})
			}
		}
	}
}

// dirKey is the problems key of a directory: "" for Dir, "sub/" below it.
func dirKey(rel string) string {
	if rel == "" {
		return ""
	}
	return rel + "/"
}

// compressedExts are the suffixes of compressed rotations, which are
// skipped: their lines were in the file before it was compressed.
var compressedExts = []string{".gz", ".tgz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".z"}

func compressedName(rel string) bool {
	ext := strings.ToLower(path.Ext(rel))
	for _, e := range compressedExts {
		if ext == e {
			return true
		}
	}
	return false
}

// compressedMagics are the first bytes of compressed files. A 0 in digitAt
// marks no digit; otherwise the byte at digitAt is any of '1'..'9'.
var compressedMagics = []struct {
	magic   string
	digitAt int
}{
	{"\x1f\x8b", 0},            // gzip
	{"BZh_1AY&SY", 3},          // bzip2
	{"BZh_\x17rE8P\x90", 3},    // bzip2, empty
	{"\xfd7zXZ\x00", 0},        // xz
	{"\x28\xb5\x2f\xfd", 0},    // zstd
	{"PK\x03\x04", 0},          // zip
	{"\x04\x22\x4d\x18", 0},    // lz4
	{"\x1f\x9d", 0},            // compress (.Z)
	{"\x89LZO\x00\x0d\x0a", 0}, // lzop
}

// compressedHead reports whether head starts with a compressed file's magic
// number, or is too short to tell (a prefix of one).
func compressedHead(head []byte) (yes, tooShort bool) {
	for _, m := range compressedMagics {
		n := min(len(head), len(m.magic))
		match := true
		for i := 0; i < n && match; i++ {
			if m.digitAt > 0 && i == m.digitAt {
				match = head[i] >= '1' && head[i] <= '9'
			} else {
				match = head[i] == m.magic[i]
			}
		}
		switch {
		case !match:
		case len(head) >= len(m.magic):
			return true, false
		default:
			tooShort = true
		}
	}
	return false, tooShort
}

// skip notes, once, that a compressed file is not streamed.
func (s *streamer) skip(key fileKey, rel string) {
	s.skipped[key] = s.passes
	s.notef("skipping %s: compressed", quoteLabel(rel))
}

// pruneSkipped forgets the compressed files that were not listed.
func (s *streamer) pruneSkipped() {
	if s.scanFailed {
		return
	}
	for k, pass := range s.skipped {
		if pass != s.passes {
			delete(s.skipped, k)
		}
	}
}
