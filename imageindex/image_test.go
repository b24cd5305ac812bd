package imageindex

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/podguard/podguard/policies"
)

func dir(p string) Entry          { return Entry{Path: p, Kind: Dir} }
func file(p string) Entry         { return Entry{Path: p, Kind: Regular} }
func link(p, target string) Entry { return Entry{Path: p, Kind: Symlink, Link: target} }
func whiteout(p string) Entry     { return Entry{Path: p, Kind: Whiteout} }
func opaque(p string) Entry       { return Entry{Path: p, Kind: Opaque} }
func device(p string) Entry       { return Entry{Path: p, Kind: Other} }
func layerOf(es ...Entry) []Entry { return es }

// tarOf writes entries as the tar stream a layer would have, whiteouts and
// opaque markers as ".wh." names.
func tarOf(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		name := strings.TrimPrefix(e.Path, "/")
		hdr := &tar.Header{Name: name, Mode: 0o644}
		switch e.Kind {
		case Dir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case Regular:
			hdr.Typeflag = tar.TypeReg
		case Symlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Link
		case Other:
			hdr.Typeflag = tar.TypeFifo
		case Whiteout:
			hdr.Typeflag, hdr.Name = tar.TypeReg, path.Join(path.Dir(name), ".wh."+path.Base(name))
		case Opaque:
			hdr.Typeflag, hdr.Name = tar.TypeReg, path.Join(name, ".wh..wh..opq")
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type statWant struct {
	kind     policies.FileKind
	resolved string
}

type filesWant struct {
	dir    string
	max    int
	count  int
	sample []string
}

// builds are the ways a test layer is made: each must give the same image.
var builds = []struct {
	name  string
	build func(t *testing.T, entries []Entry) *Layer
}{
	{"NewLayer", func(t *testing.T, entries []Entry) *Layer {
		l, err := NewLayer(entries)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}},
	{"IndexLayer", func(t *testing.T, entries []Entry) *Layer {
		l, err := IndexLayer(bytes.NewReader(tarOf(t, entries)), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}},
	{"gzip IndexLayer", func(t *testing.T, entries []Entry) *Layer {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tarOf(t, entries))
		zw.Close()
		zr, err := gzip.NewReader(&gz)
		if err != nil {
			t.Fatal(err)
		}
		l, err := IndexLayer(zr, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}},
	{"ParseLayer of MarshalBinary", func(t *testing.T, entries []Entry) *Layer {
		l, err := NewLayer(entries)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := l.MarshalBinary()
		p, err := ParseLayer(b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}},
}

func TestImage(t *testing.T) {
	const (
		absent  = policies.FileAbsent
		isDir   = policies.FileDir
		regular = policies.FileRegular
		symlink = policies.FileSymlink
		other   = policies.FileOther
		notDir  = policies.FileNotDir
		loop    = policies.FileLoop
	)
	tests := []struct {
		name   string
		layers [][]Entry
		stat   map[string]statWant
		files  []filesWant
	}{
		{
			name:   "an empty image has only its root directory",
			layers: nil,
			stat:   map[string]statWant{"/": {isDir, "/"}, "/etc": {absent, "/etc"}, "": {isDir, "/"}},
			files:  []filesWant{{dir: "/", max: 5, count: 0}},
		},
		{
			name: "a whiteout deletes a file of the layers below",
			layers: [][]Entry{
				layerOf(dir("/etc"), file("/etc/passwd"), file("/etc/group")),
				layerOf(whiteout("/etc/passwd")),
			},
			stat: map[string]statWant{
				"/etc/passwd": {absent, "/etc/passwd"},
				"/etc/group":  {regular, "/etc/group"},
				"/etc":        {isDir, "/etc"},
			},
			files: []filesWant{{dir: "/etc", max: 5, count: 1, sample: []string{"/etc/group"}}},
		},
		{
			name: "a path through a file, or through a link to one, is not a directory, whatever follows",
			layers: [][]Entry{
				layerOf(file("/app/config.yaml"), link("/app/cfg", "config.yaml"), link("/app/up", "/app")),
			},
			stat: map[string]statWant{
				"/app/config.yaml/x":     {notDir, "/app/config.yaml"},
				"/app/config.yaml/x/y/z": {notDir, "/app/config.yaml"},
				"/app/cfg/x":             {notDir, "/app/config.yaml"},
				"/app/up/config.yaml/x":  {notDir, "/app/config.yaml"},
				"/app/config.yaml":       {regular, "/app/config.yaml"},
			},
		},
		{
			name: "a whiteout of a directory deletes everything below it",
			layers: [][]Entry{
				layerOf(file("/opt/app/bin/x"), file("/opt/app/lib/y"), file("/opt/other")),
				layerOf(whiteout("/opt/app")),
			},
			stat: map[string]statWant{
				"/opt/app":       {absent, "/opt/app"},
				"/opt/app/bin/x": {absent, "/opt/app/bin/x"},
				"/opt":           {isDir, "/opt"},
			},
			files: []filesWant{
				{dir: "/", max: 5, count: 1, sample: []string{"/opt/other"}},
				{dir: "/opt/app", max: 5, count: 0},
			},
		},
		{
			name: "an opaque directory hides what the layers below had in it and stays",
			layers: [][]Entry{
				layerOf(file("/etc/a"), file("/etc/b/c"), file("/etc-keep")),
				layerOf(opaque("/etc"), file("/etc/new")),
			},
			stat: map[string]statWant{
				"/etc":     {isDir, "/etc"},
				"/etc/a":   {absent, "/etc/a"},
				"/etc/b":   {absent, "/etc/b"},
				"/etc/new": {regular, "/etc/new"},
			},
			files: []filesWant{
				{dir: "/etc", max: 5, count: 1, sample: []string{"/etc/new"}},
				{dir: "/", max: 5, count: 2, sample: []string{"/etc-keep", "/etc/new"}},
			},
		},
		{
			name: "an opaque directory alone in a layer still hides the layers below",
			layers: [][]Entry{
				layerOf(file("/var/cache/x")),
				layerOf(opaque("/var/cache")),
			},
			stat:  map[string]statWant{"/var/cache": {isDir, "/var/cache"}, "/var/cache/x": {absent, "/var/cache/x"}},
			files: []filesWant{{dir: "/var", max: 5, count: 0}},
		},
		{
			name: "an opaque root hides every layer below",
			layers: [][]Entry{
				layerOf(file("/a"), file("/d/e")),
				layerOf(opaque("/"), file("/b")),
			},
			stat:  map[string]statWant{"/a": {absent, "/a"}, "/d": {absent, "/d"}, "/b": {regular, "/b"}, "/": {isDir, "/"}},
			files: []filesWant{{dir: "/", max: 5, count: 1, sample: []string{"/b"}}},
		},
		{
			name: "an upper layer re-creates a path a middle layer whited out",
			layers: [][]Entry{
				layerOf(file("/app/f"), file("/app/g")),
				layerOf(whiteout("/app")),
				layerOf(file("/app/f")),
			},
			stat: map[string]statWant{
				"/app":   {isDir, "/app"},
				"/app/f": {regular, "/app/f"},
				"/app/g": {absent, "/app/g"},
			},
			files: []filesWant{{dir: "/app", max: 5, count: 1, sample: []string{"/app/f"}}},
		},
		{
			name: "a whiteout then a new directory in the same layer replace the lower directory",
			layers: [][]Entry{
				layerOf(file("/app/old")),
				layerOf(whiteout("/app"), dir("/app"), file("/app/new")),
			},
			stat: map[string]statWant{
				"/app/old": {absent, "/app/old"},
				"/app/new": {regular, "/app/new"},
			},
			files: []filesWant{{dir: "/", max: 5, count: 1, sample: []string{"/app/new"}}},
		},
		{
			name: "a whiteout deletes what its own layer created before it",
			layers: [][]Entry{
				layerOf(file("/app/x"), whiteout("/app"), file("/app/y")),
			},
			stat: map[string]statWant{
				"/app/x": {absent, "/app/x"},
				"/app/y": {regular, "/app/y"},
			},
			files: []filesWant{{dir: "/app", max: 5, count: 1, sample: []string{"/app/y"}}},
		},
		{
			name: "a file replaces a directory of the layers below",
			layers: [][]Entry{
				layerOf(file("/srv/data/x"), file("/srv/data/y/z")),
				layerOf(file("/srv/data")),
			},
			stat: map[string]statWant{
				"/srv/data":   {regular, "/srv/data"},
				"/srv/data/x": {notDir, "/srv/data"},
			},
			files: []filesWant{
				{dir: "/srv", max: 5, count: 1, sample: []string{"/srv/data"}},
				{dir: "/srv/data", max: 5, count: 1, sample: []string{"/srv/data"}},
			},
		},
		{
			name: "a directory implied by an upper layer replaces a lower file",
			layers: [][]Entry{
				layerOf(file("/srv/data")),
				layerOf(file("/srv/data/x")),
			},
			stat:  map[string]statWant{"/srv/data": {isDir, "/srv/data"}, "/srv/data/x": {regular, "/srv/data/x"}},
			files: []filesWant{{dir: "/srv", max: 5, count: 1, sample: []string{"/srv/data/x"}}},
		},
		{
			name:   "directories implied by deeper entries are directories",
			layers: [][]Entry{layerOf(file("/usr/lib/a/b.so"))},
			stat: map[string]statWant{
				"/usr":          {isDir, "/usr"},
				"/usr/lib/a":    {isDir, "/usr/lib/a"},
				"/usr/lib/a/b":  {absent, "/usr/lib/a/b"},
				"/usr/lib/a/b.": {absent, "/usr/lib/a/b."},
			},
			files: []filesWant{{dir: "/usr/lib", max: 5, count: 1, sample: []string{"/usr/lib/a/b.so"}}},
		},
		{
			name: "symlinked directories resolve relative and absolute targets",
			layers: [][]Entry{
				layerOf(
					file("/etc/pki/tls/certs/ca-bundle.crt"),
					link("/etc/ssl/certs", "../pki/tls/certs"),
					file("/usr/lib/libc.so.6"),
					link("/lib", "usr/lib"),
					link("/bin", "/usr/bin"),
					file("/usr/bin/sh"),
				),
			},
			stat: map[string]statWant{
				"/etc/ssl/certs/ca-bundle.crt": {regular, "/etc/pki/tls/certs/ca-bundle.crt"},
				"/etc/ssl/certs":               {isDir, "/etc/pki/tls/certs"},
				"/lib/libc.so.6":               {regular, "/usr/lib/libc.so.6"},
				"/lib/../etc":                  {absent, "/usr/etc"},
				"/lib/../lib/libc.so.6":        {regular, "/usr/lib/libc.so.6"},
				"/bin/sh":                      {regular, "/usr/bin/sh"},
				"/bin/../lib/libc.so.6":        {regular, "/usr/lib/libc.so.6"},
				"/bin/../bin/sh":               {regular, "/usr/bin/sh"},
				"lib":                          {isDir, "/usr/lib"},
			},
			files: []filesWant{
				{dir: "/etc/pki/tls/certs", max: 5, count: 1, sample: []string{"/etc/pki/tls/certs/ca-bundle.crt"}},
				{dir: "/", max: 2, count: 6, sample: []string{"/bin", "/etc/pki/tls/certs/ca-bundle.crt"}},
			},
		},
		{
			name: "a symlink in an upper layer hides a lower directory's entries",
			layers: [][]Entry{
				layerOf(file("/opt/x/f"), file("/tmp/t")),
				layerOf(link("/opt/x", "/tmp")),
			},
			stat: map[string]statWant{
				"/opt/x/f": {absent, "/tmp/f"},
				"/opt/x/t": {regular, "/tmp/t"},
				"/opt/x":   {isDir, "/tmp"},
			},
			files: []filesWant{{dir: "/opt", max: 5, count: 1, sample: []string{"/opt/x"}}},
		},
		{
			name: "a symlink loop is a loop, as the last element or before it",
			layers: [][]Entry{
				layerOf(link("/a", "b"), link("/b", "/a"), link("/self", "./self")),
			},
			stat: map[string]statWant{
				"/a":      {loop, "/a"},
				"/a/x":    {loop, "/a"},
				"/self":   {loop, "/self"},
				"/self/y": {loop, "/self"},
			},
		},
		{
			name: "a dangling symlink as the last element is a symlink, and one through a file is not a directory",
			layers: [][]Entry{
				layerOf(file("/etc/passwd"), link("/x", "/nowhere"), link("/y", "/etc/passwd/z"), link("/z", "x"), link("/empty", "")),
			},
			stat: map[string]statWant{
				"/x":     {symlink, "/x"},
				"/y":     {notDir, "/etc/passwd"},
				"/z":     {symlink, "/x"},
				"/x/y":   {absent, "/nowhere/y"},
				"/empty": {symlink, "/empty"},
			},
			files: []filesWant{{dir: "/", max: 0, count: 5}},
		},
		{
			name: "traversal names and targets stay inside the image",
			layers: [][]Entry{
				layerOf(file("../../etc/passwd"), file("./usr/bin/../bin/ls"), link("/a/b/up", "../../../../../etc")),
			},
			stat: map[string]statWant{
				"/etc/passwd":      {regular, "/etc/passwd"},
				"/../etc/passwd":   {regular, "/etc/passwd"},
				"/usr/bin/ls":      {regular, "/usr/bin/ls"},
				"/a/b/up/passwd":   {regular, "/etc/passwd"},
				"/a/b/up/../../x":  {absent, "/x"},
				"/a/b/up/../../..": {isDir, "/"},
			},
		},
		{
			name: "devices are other",
			layers: [][]Entry{
				layerOf(device("/dev/null")),
			},
			stat:  map[string]statWant{"/dev/null": {other, "/dev/null"}, "/dev/null/x": {notDir, "/dev/null"}},
			files: []filesWant{{dir: "/dev", max: 5, count: 1, sample: []string{"/dev/null"}}},
		},
		{
			name: "Files samples in order and counts a path once across layers",
			layers: [][]Entry{
				layerOf(file("/d/a"), file("/d/b"), file("/d/c"), file("/d-x/y"), file("/d.z")),
				layerOf(file("/d/b"), file("/d/e"), file("/d/sub/f"), link("/d/l", "a")),
				layerOf(file("/d/a"), dir("/d/sub")),
			},
			files: []filesWant{
				{dir: "/d", max: 3, count: 6, sample: []string{"/d/a", "/d/b", "/d/c"}},
				{dir: "/d", max: 100, count: 6, sample: []string{"/d/a", "/d/b", "/d/c", "/d/e", "/d/l", "/d/sub/f"}},
				{dir: "/d/sub", max: 1, count: 1, sample: []string{"/d/sub/f"}},
				{dir: "/", max: 0, count: 8},
				{dir: "/nope", max: 5, count: 0},
			},
		},
	}
	for _, tt := range tests {
		for _, b := range builds {
			t.Run(tt.name+"/"+b.name, func(t *testing.T) {
				var layers []*Layer
				for _, es := range tt.layers {
					layers = append(layers, b.build(t, es))
				}
				im := NewImage(layers)
				for p, want := range tt.stat {
					kind, resolved := im.Stat(p)
					if kind != want.kind || resolved != want.resolved {
						t.Errorf("Stat(%q) = %v, %q; want %v, %q", p, kind, resolved, want.kind, want.resolved)
					}
				}
				for _, w := range tt.files {
					count, sample := im.Files(w.dir, w.max)
					if count != w.count || !slices.Equal(sample, w.sample) {
						t.Errorf("Files(%q, %d) = %d, %q; want %d, %q", w.dir, w.max, count, sample, w.count, w.sample)
					}
				}
			})
		}
	}
}

func TestIndexLayerTar(t *testing.T) {
	tests := []struct {
		name    string
		headers []tar.Header
		want    []Entry
	}{
		{
			name: "a hard link is a regular file and a symlink keeps its target",
			headers: []tar.Header{
				{Name: "bin/", Typeflag: tar.TypeDir},
				{Name: "bin/busybox", Typeflag: tar.TypeReg, Size: 3},
				{Name: "bin/ls", Typeflag: tar.TypeLink, Linkname: "bin/busybox"},
				{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"},
				{Name: "dev/tty", Typeflag: tar.TypeChar},
			},
			want: []Entry{dir("/bin"), file("/bin/busybox"), file("/bin/ls"), link("/bin/sh", "busybox"), device("/dev/tty")},
		},
		{
			name: "traversal names are cleaned as rooted paths",
			headers: []tar.Header{
				{Name: "../../etc/passwd", Typeflag: tar.TypeReg},
				{Name: "./usr//bin/./ls", Typeflag: tar.TypeReg},
				{Name: "/abs", Typeflag: tar.TypeReg},
				{Name: "./", Typeflag: tar.TypeDir},
			},
			want: []Entry{file("/abs"), file("/etc/passwd"), file("/usr/bin/ls")},
		},
		{
			name: "whiteouts and opaque markers become their kinds and AUFS names are skipped",
			headers: []tar.Header{
				{Name: "etc/.wh.passwd", Typeflag: tar.TypeReg},
				{Name: "var/.wh..wh..opq", Typeflag: tar.TypeReg},
				{Name: ".wh..wh.plnk/", Typeflag: tar.TypeDir},
				{Name: ".wh..wh.plnk/123", Typeflag: tar.TypeReg},
			},
			want: []Entry{whiteout("/etc/passwd"), dir("/var"), opaque("/var")},
		},
		{
			name: "the last entry at a path wins within a layer",
			headers: []tar.Header{
				{Name: "a", Typeflag: tar.TypeReg},
				{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "b"},
				{Name: "c", Typeflag: tar.TypeSymlink, Linkname: "d"},
				{Name: "c/", Typeflag: tar.TypeDir},
			},
			want: []Entry{link("/a", "b"), dir("/c")},
		},
		{
			name: "a file drops what its layer put below it",
			headers: []tar.Header{
				{Name: "a/b", Typeflag: tar.TypeReg},
				{Name: "a", Typeflag: tar.TypeReg},
			},
			want: []Entry{file("/a")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tt.headers {
				h.Mode = 0o644
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
				if h.Size > 0 {
					tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
				}
			}
			tw.Close()
			l, err := IndexLayer(&buf, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, l.Entries()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewLayerRefuses(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
	}{
		{"refuses a whiteout name as a path", []Entry{file("/a/.wh.b")}},
		{"refuses a link target on a file", []Entry{{Path: "/a", Kind: Regular, Link: "b"}}},
		{"refuses an unknown kind", []Entry{{Path: "/a", Kind: 42}}},
		{"refuses a whiteout of the root", []Entry{whiteout("/")}},
		{"refuses a path over the limit", []Entry{file("/" + strings.Repeat("a", DefaultMaxPathBytes))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := NewLayer(tt.entries); err == nil {
				t.Errorf("NewLayer(%v) = %v, want an error", tt.entries, l.Entries())
			}
		})
	}
}

func TestCleanRooted(t *testing.T) {
	for _, name := range []string{
		"", "/", ".", "./", "..", "../", "a", "a/", "a//", "/a", "/a/", "./a", "./a/", "a/./b", "a/../b", "../../etc/passwd",
		"a/b/..", "a/b/.", "//a", "a//b", ".a", "..a", "a/.b", "a/..b/c", "a/b../c", "/../", "./../a/", "usr/share/doc/x/",
	} {
		if got, want := cleanRooted(name), path.Clean("/"+name); got != want {
			t.Errorf("cleanRooted(%q) = %q, want %q as path.Clean gives", name, got, want)
		}
	}
}

func TestConcurrentReads(t *testing.T) {
	// Run with -race: layers shared by images are read from many
	// goroutines at once.
	base, err := NewLayer(newDistro(1, "").paths(3000))
	if err != nil {
		t.Fatal(err)
	}
	top, err := NewLayer([]Entry{whiteout("/usr/share/doc"), link("/lib", "usr/lib"), file("/usr/bin/new")})
	if err != nil {
		t.Fatal(err)
	}
	images := []*Image{NewImage([]*Layer{base}), NewImage([]*Layer{base, top})}
	wantCount, wantSample := images[1].Files("/usr", 5)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			im := images[g%2]
			for range 50 {
				im.Stat("/lib/x86_64-linux-gnu")
				im.Stat("/usr/share/doc/x/copyright")
				if g%2 == 1 {
					if c, s := im.Files("/usr", 5); c != wantCount || !slices.Equal(s, wantSample) {
						t.Errorf("Files(/usr, 5) = %d, %q concurrently; want %d, %q", c, s, wantCount, wantSample)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestFilesStopsCountingPastTheLimit(t *testing.T) {
	const limit = policies.FilesCountLimit
	many := func(prefix string, n int) []Entry {
		es := make([]Entry, n)
		for i := range es {
			es[i] = file(fmt.Sprintf("%s/f%06d", prefix, i))
		}
		return es
	}
	tests := []struct {
		name      string
		layers    [][]Entry
		dir       string
		wantCount int
	}{
		{name: "counts exactly up to the limit", layers: [][]Entry{many("/d", limit)}, dir: "/d", wantCount: limit},
		{name: "says one more than the limit for anything beyond it", layers: [][]Entry{many("/d", 3*limit)}, dir: "/", wantCount: limit + 1},
		{name: "stops in the top layer without walking the lower ones",
			layers: [][]Entry{many("/a", 2*limit), many("/b", 2*limit)}, dir: "/", wantCount: limit + 1},
		{name: "stops across layers", layers: [][]Entry{many("/a", limit/2+1), many("/b", limit/2)}, dir: "/", wantCount: limit + 1},
		{name: "counts a big directory below the limit exactly", layers: [][]Entry{many("/a", 2*limit), many("/b", 10)}, dir: "/b", wantCount: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var layers []*Layer
			for _, es := range tt.layers {
				layers = append(layers, mustLayer(t, es))
			}
			n, sample := NewImage(layers).Files(tt.dir, 3)
			if n != tt.wantCount || len(sample) != min(3, n) || !slices.IsSorted(sample) {
				t.Errorf("Files(%s, 3) = %d, %q; want %d and 3 sorted paths", tt.dir, n, sample, tt.wantCount)
			}
		})
	}
}
