package imageindex

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// modelLayer applies entries one at a time to a map, the way an extractor
// applies a tar to a directory, as the reference the indexer's one sort and
// one pass must agree with:
//   - a whiteout deletes the path and what the layer put below it, and
//     stays as a marker;
//   - a non-directory deletes what the layer put below it;
//   - creating something below a whiteout marker re-creates the path as an
//     opaque directory (the lower one was deleted);
//   - a directory at a path the layer whited out is opaque;
//   - at the end, nothing is below a non-directory (an extractor would have
//     failed to create it).
func modelLayer(entries []Entry) []Entry {
	type node struct {
		kind   EntryKind
		opaque bool
		link   string
	}
	m := map[string]*node{}
	deleteBelow := func(p string) {
		for q := range m {
			if strings.HasPrefix(q, p+"/") {
				delete(m, q)
			}
		}
	}
	whited := map[string]bool{}
	// below turns the whiteout markers above p into opaque directories.
	below := func(p string) bool {
		for a := p; a != "/"; {
			a = a[:strings.LastIndexByte(a, '/')]
			if a == "" {
				a = "/"
			}
			if n := m[a]; n != nil && n.kind == Whiteout {
				*n = node{kind: Dir, opaque: true}
			}
		}
		return true
	}
	for _, e := range entries {
		p := e.Path
		if !below(p) {
			continue
		}
		n := m[p]
		switch e.Kind {
		case Whiteout:
			deleteBelow(p)
			m[p] = &node{kind: Whiteout}
			whited[p] = true
		case Opaque:
			if n == nil || n.kind != Dir {
				m[p] = &node{kind: Dir, opaque: true}
			} else {
				n.opaque = true
			}
		case Dir:
			if n == nil || n.kind != Dir {
				m[p] = &node{kind: Dir, opaque: whited[p]}
			}
		default:
			deleteBelow(p)
			m[p] = &node{kind: e.Kind, link: e.Link}
		}
	}
	for p, n := range m {
		if n.kind != Dir && n.kind != Whiteout {
			deleteBelow(p)
		}
	}
	var out []Entry
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		n := m[p]
		if p != "/" {
			out = append(out, Entry{Path: p, Kind: n.kind, Link: n.link})
		}
		if n.opaque {
			out = append(out, Entry{Path: p, Kind: Opaque})
		}
	}
	return out
}

func TestNewLayerAgreesWithSequentialApplication(t *testing.T) {
	paths := []string{"/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a-x", "/a/b-y", "/a/c", "/z"}
	kinds := []EntryKind{Dir, Regular, Symlink, Other, Whiteout, Opaque, Dir, Whiteout}
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 20_000 {
		entries := make([]Entry, 1+rng.IntN(10))
		for i := range entries {
			entries[i] = Entry{Path: paths[rng.IntN(len(paths))], Kind: kinds[rng.IntN(len(kinds))]}
			if entries[i].Kind == Symlink {
				entries[i].Link = "t"
			}
		}
		if rng.IntN(20) == 0 {
			entries = append(entries, opaque("/"))
		}
		l, err := NewLayer(entries)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(modelLayer(entries), l.Entries()); diff != "" {
			t.Fatalf("round %d: NewLayer(%v) entries (-model +got):\n%s", round, entries, diff)
		}
	}
}
