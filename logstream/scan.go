package logstream

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// entry is a regular file found by a listing.
type entry struct {
	rel string          // path relative to Dir, with slashes
	abs string          // path to open
	st  *syscall.Stat_t // from lstat
	dir *syscall.Stat_t // of the directory that holds it
}

// scan lists Dir and its subdirectories, down to MaxDepth levels, and
// returns the regular files. Symlinks are not followed (Dir itself may be
// one). A directory that cannot be listed is reported.
func (s *streamer) scan() []entry {
	s.scanFailed = false
	fi, err := os.Stat(s.opts.Dir)
	if err == nil && !fi.IsDir() {
		err = &fs.PathError{Op: "open", Path: s.opts.Dir, Err: syscall.ENOTDIR}
	}
	if err != nil {
		s.scanFailed = true
		s.reportDir("", nil, err)
		return nil
	}
	var out []entry
	s.walk(s.opts.Dir, "", 0, fi.Sys().(*syscall.Stat_t), &out)
	return out
}

func (s *streamer) walk(abs, rel string, depth int, dirSt *syscall.Stat_t, out *[]entry) {
	des, err := os.ReadDir(abs)
	if err != nil {
		// os.ReadDir returns what it read before the error.
		s.scanFailed = true
		s.reportDir(rel, dirSt, err)
	} else {
		s.resolved(dirKey(rel), "list directory")
	}
	for _, de := range des {
		r, a := path.Join(rel, de.Name()), filepath.Join(abs, de.Name())
		switch typ := de.Type(); {
		case typ&fs.ModeSymlink != 0:
		case typ.IsDir():
			if depth >= s.opts.MaxDepth {
				continue
			}
			if info, err := de.Info(); err == nil {
				s.walk(a, r, depth+1, info.Sys().(*syscall.Stat_t), out)
			}
		case typ.IsRegular():
			// A file renamed since the directory was read is not found;
			// it is found under its new name in the next pass.
			if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
				*out = append(*out, entry{rel: r, abs: a, st: info.Sys().(*syscall.Stat_t), dir: dirSt})
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
