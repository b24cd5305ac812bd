package imageindex

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// The names the OCI image spec gives whiteouts.
const (
	whiteoutPrefix = ".wh."
	// whiteoutMetaPrefix starts names that are not files of the image
	// (AUFS bookkeeping such as ".wh..wh.plnk"); containerd skips them.
	whiteoutMetaPrefix = whiteoutPrefix + whiteoutPrefix
	// whiteoutOpaque inside a directory marks it opaque.
	whiteoutOpaque = whiteoutMetaPrefix + ".opq"
)

// IndexLayer indexes an uncompressed tar stream: it reads the headers only,
// and archive/tar discards every file's content without it being stored.
//
// Names are cleaned as rooted paths, so "./a" and "../../a" are both "/a".
// Directories, regular files, hard links (as regular files), symlinks (with
// their target) and devices and fifos (as Other) are kept; ".wh.NAME"
// becomes a Whiteout of NAME and ".wh..wh..opq" makes its directory Opaque;
// other ".wh..wh." names and the entries below them are skipped, as
// containerd skips them. Every header counts toward lim.MaxEntries, a
// cleaned path or symlink target longer than lim.MaxPathBytes is an error,
// and so are paths and targets totalling more than lim.MaxTotalBytes, so a
// hostile stream costs at most MaxEntries entries of work and memory.
func IndexLayer(r io.Reader, lim Limits) (*Layer, error) {
	b := builder{lim: lim}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return nil, fmt.Errorf("imageindex: reading tar entry %d: %w", b.count+1, err)
		}
		if err := b.addHeader(hdr); err != nil {
			return nil, err
		}
	}
	return b.build()
}

func (b *builder) addHeader(hdr *tar.Header) error {
	p := cleanRooted(hdr.Name)
	var kind EntryKind
	switch hdr.Typeflag {
	case tar.TypeDir:
		kind = Dir
	case tar.TypeReg, tar.TypeRegA, tar.TypeLink, tar.TypeCont, tar.TypeGNUSparse:
		kind = Regular
	case tar.TypeSymlink:
		kind = Symlink
	case tar.TypeXGlobalHeader:
		b.count++
		return b.checkCount()
	default:
		// Char and block devices, fifos, and types containerd would
		// refuse: something is there, but not a file policies look into.
		kind = Other
	}
	if len(p) > b.lim.maxPathBytes() {
		b.count++
		if err := b.checkCount(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %d bytes (%.40q...), at most %d", ErrPathTooLong, len(p), p, b.lim.maxPathBytes())
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	switch {
	case strings.Contains(dir, "/"+whiteoutPrefix):
		// Below a whiteout name: AUFS bookkeeping, not the image.
		b.count++
		return b.checkCount()
	case base == whiteoutOpaque:
		return b.add(dir, Opaque, "")
	case strings.HasPrefix(base, whiteoutMetaPrefix):
		b.count++
		return b.checkCount()
	case strings.HasPrefix(base, whiteoutPrefix):
		name := base[len(whiteoutPrefix):]
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("imageindex: tar entry %q: malformed whiteout", hdr.Name)
		}
		return b.add(path.Join(dir, name), Whiteout, "")
	case p == "/":
		// The root is always a directory.
		b.count++
		return b.checkCount()
	}
	return b.add(p, kind, hdr.Linkname)
}

func (b *builder) checkCount() error {
	if b.count > b.lim.maxEntries() {
		return fmt.Errorf("%w: more than %d", ErrTooManyEntries, b.lim.maxEntries())
	}
	return nil
}
