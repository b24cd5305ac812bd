package imageindex

import (
	"path"
	"slices"
	"strings"

	"github.com/podguard/podguard/policies"
)

// maxLinks is the number of symlinks Stat follows before it calls the path
// a loop, as Linux's MAXSYMLINKS.
const maxLinks = 40

// Image is an image's file tree: its layers overlaid bottom to top, whiteouts
// and opaque directories applied. It copies nothing from its layers, which
// many Images may share, and is safe for concurrent use.
type Image struct {
	layers []*Layer // bottom to top
}

var _ policies.ImageFS = (*Image)(nil)

// NewImage overlays layers, given bottom to top as the manifest lists them.
// Nil layers are skipped.
func NewImage(layers []*Layer) *Image {
	im := &Image{layers: make([]*Layer, 0, len(layers))}
	for _, l := range layers {
		if l != nil {
			im.layers = append(im.layers, l)
		}
	}
	return im
}

// hidesBelow reports whether an entry of kind k hides what lower layers have
// strictly below its path: a whiteout, a non-directory or an opaque directory.
func hidesBelow(k byte) bool {
	return EntryKind(k&kindMask) != Dir || k&flagOpaque != 0
}

// hidesAncestorOf reports whether the layer hides p from the layers below
// through one of p's proper ancestors.
func (l *Layer) hidesAncestorOf(p string) bool {
	if l.n == 0 {
		return false
	}
	if string(l.blockStart(0)) == "/" { // only an opaque root is stored
		return true
	}
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			if k, _, ok := l.lookup(p[:i]); ok && hidesBelow(k) {
				return true
			}
		}
	}
	return false
}

// lookup says what the overlaid layers have at the clean path p, without
// following symlinks: the topmost layer that has p, or has entries below it,
// decides, unless a layer above hid p.
func (im *Image) lookup(p string) (policies.FileKind, string) {
	if p == "/" {
		return policies.FileDir, ""
	}
	for i := len(im.layers) - 1; i >= 0; i-- {
		l := im.layers[i]
		if k, link, ok := l.lookup(p); ok {
			switch EntryKind(k & kindMask) {
			case Whiteout:
				return policies.FileAbsent, ""
			case Dir:
				return policies.FileDir, ""
			case Regular:
				return policies.FileRegular, ""
			case Symlink:
				return policies.FileSymlink, link
			default:
				return policies.FileOther, ""
			}
		}
		if l.hasBelow(p) {
			return policies.FileDir, ""
		}
		if l.hidesAncestorOf(p) {
			return policies.FileAbsent, ""
		}
	}
	return policies.FileAbsent, ""
}

// Stat says what is at p, following symlinks in every element as
// securejoin does inside a rootfs: p is relative to the image root whether
// it starts with "/" or not, an absolute target is relative to the image
// root, a relative one to the link's directory, and ".." applies to the
// path resolved so far (after the symlinks before it), stopping at "/".
// It returns the kind and the resolved path. A symlink whose target does not
// exist, as the last element, returns FileSymlink and the link's path (the
// runtime creates the target). An element before the last that is not a
// directory (a regular file, device, fifo or socket), reached directly or
// through a link, returns FileNotDir and that element's resolved path: the
// runtime cannot create anything below it (ENOTDIR). More than 40 links
// return FileLoop and the link where resolution gave up (ELOOP). A missing
// element before the last returns FileAbsent. "/" is always a directory.
func (im *Image) Stat(p string) (policies.FileKind, string) {
	rest := p // "..", "." and empty elements are handled as the walk meets them
	resolved := "/"
	links := 0
	finalLink := "" // the link being resolved as the last element, if any
	for rest != "" {
		var elem string
		elem, rest, _ = strings.Cut(rest, "/")
		switch elem {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, elem)
		kind, link := im.lookup(next)
		switch {
		case kind == policies.FileSymlink:
			links++
			if links > maxLinks {
				return policies.FileLoop, next
			}
			if rest == "" {
				finalLink = next
			}
			if link == "" {
				// An empty target resolves to nothing.
				if finalLink != "" {
					return policies.FileSymlink, finalLink
				}
				return policies.FileAbsent, path.Join(next, rest)
			}
			if strings.HasPrefix(link, "/") {
				resolved = "/"
			}
			if rest == "" {
				rest = link
			} else {
				rest = link + "/" + rest
			}
			continue
		case kind != policies.FileAbsent && kind != policies.FileDir && rest != "":
			// A file, device, fifo or socket with elements left to walk:
			// nothing can be created below it.
			return policies.FileNotDir, next
		case kind == policies.FileAbsent:
			if finalLink != "" {
				return policies.FileSymlink, finalLink
			}
			return policies.FileAbsent, path.Join(next, rest)
		case rest == "":
			return kind, next
		}
		resolved = next
	}
	// The path (or the last link's target) ended at a directory reached
	// by ".." or at the root.
	return policies.FileDir, resolved
}

// Files counts the entries other than directories at or below dir (already
// resolved, as Stat returns it) in the overlaid image, each path once
// however many layers have it, and returns up to max of their paths in
// sorted order. When dir is a directory, that is the regular files,
// symlinks and devices strictly below it; when dir is something else, it is
// dir itself. The cost is that of the entries below dir in every layer,
// plus a binary search per layer, never that of the whole image.
//
// Counting stops at policies.FilesCountLimit+1, which then means "more
// than FilesCountLimit": the layers are walked top to bottom and the walk
// ends there, so a mount at / of an image of a million files costs what
// 10,000 cost (the paths an upper layer has are kept to tell which lower
// entries it hides, and those are what costs). The sample is then the
// first max files of the layers walked, in sorted order, which need not be
// the image's first.
func (im *Image) Files(dir string, max int) (int, []string) {
	dir = path.Clean("/" + dir)
	switch kind, _ := im.lookup(dir); kind {
	case policies.FileAbsent:
		return 0, nil
	case policies.FileDir:
	default:
		if max > 0 {
			return 1, []string{dir}
		}
		return 1, nil
	}
	// taken holds the paths an upper layer has, or implies as a directory,
	// below dir; hidden the ones below which an upper layer hides the lower
	// layers' entries. Both are only needed when a lower layer follows.
	taken := map[string]struct{}{}
	hidden := map[string]struct{}{}
	visible := func(p []byte) bool {
		if _, ok := taken[string(p)]; ok {
			return false
		}
		if len(hidden) == 0 {
			return true
		}
		for i := len(dir) + 1; i < len(p); i++ {
			if p[i] == '/' {
				if _, ok := hidden[string(p[:i])]; ok {
					return false
				}
			}
		}
		return true
	}
	count := 0
	var sample []string
	var pending []string
	for i := len(im.layers) - 1; i >= 0; i-- {
		l := im.layers[i]
		upper, lower := i < len(im.layers)-1, i > 0
		layerSample := 0
		pending = pending[:0]
		l.below(dir, func(p []byte, k byte, _ []byte) bool {
			if upper && !visible(p) {
				return true
			}
			if ek := EntryKind(k & kindMask); ek != Dir && ek != Whiteout {
				if count++; count > policies.FilesCountLimit {
					return false
				}
				if layerSample < max {
					// Each layer's visible entries come in order, so
					// the first max of the image are among the first
					// max of some layer.
					sample = append(sample, string(p))
					layerSample++
				}
			}
			if lower {
				s := string(p)
				taken[s] = struct{}{}
				for a := path.Dir(s); len(a) > len(dir); a = path.Dir(a) {
					if _, ok := taken[a]; ok {
						break
					}
					taken[a] = struct{}{}
				}
				if hidesBelow(k) {
					pending = append(pending, s)
				}
			}
			return true
		})
		for _, s := range pending {
			hidden[s] = struct{}{}
		}
		if !lower || count > policies.FilesCountLimit {
			break
		}
		if k, _, ok := l.lookup(dir); ok && hidesBelow(k) {
			break
		}
		if l.hidesAncestorOf(dir) {
			break
		}
	}
	slices.Sort(sample)
	if len(sample) > max {
		sample = slices.Clip(sample[:max])
	}
	return count, sample
}
