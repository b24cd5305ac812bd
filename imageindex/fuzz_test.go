package imageindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"path"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seedLayers are small layers that exercise every kind and overlay rule.
var seedLayers = [][]Entry{
	{dir("/etc"), file("/etc/passwd"), link("/etc/ssl/certs", "../pki/tls/certs"), device("/dev/null")},
	{whiteout("/etc/passwd"), opaque("/var"), file("/var/x"), opaque("/")},
	{file("/a/x"), whiteout("/a"), file("/a/y"), link("/lib", "usr/lib"), file("/usr/lib/libc.so.6")},
	{file("/usr/share/doc/a/copyright"), file("/usr/share/doc/a/changelog.gz"), file("/usr/share/doc/b/copyright"),
		file("/usr/share/doc/b-dev/copyright"), file("/usr/share/doc.x"), dir("/usr/share/doc/c")},
}

// checkLayer asserts what must hold of every layer the package builds or
// accepts: its binary form parses back to the same entries, NewLayer of its
// entries rebuilds it, and queries on it do not panic.
func checkLayer(t *testing.T, l *Layer) {
	t.Helper()
	entries := l.Entries()
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseLayer(b)
	if err != nil {
		t.Fatalf("ParseLayer(MarshalBinary()) = %v", err)
	}
	if diff := cmp.Diff(entries, p.Entries()); diff != "" {
		t.Fatalf("ParseLayer(MarshalBinary()) entries (-want +got):\n%s", diff)
	}
	if p.Len() != l.Len() {
		t.Fatalf("ParseLayer(MarshalBinary()).Len() = %d, want %d", p.Len(), l.Len())
	}
	n, err := NewLayer(entries)
	if errors.Is(err, ErrPathTooLong) {
		// ParseLayer takes paths up to 64 KiB, NewLayer's limit is 4 KiB.
		n, err = p, nil
	}
	if err != nil {
		t.Fatalf("NewLayer(Entries()) = %v", err)
	}
	if diff := cmp.Diff(entries, n.Entries()); diff != "" {
		t.Fatalf("NewLayer(Entries()) entries (-want +got):\n%s", diff)
	}
	im := NewImage([]*Layer{l, p})
	for _, e := range entries {
		im.Stat(e.Path)
		im.Files(e.Path, 3)
	}
	if c, _ := im.Files("/", 0); c > l.Len() {
		t.Fatalf("Files(/) counts %d entries in a layer of %d", c, l.Len())
	}
}

func FuzzIndexLayer(f *testing.F) {
	for _, es := range seedLayers {
		f.Add(tarOf(f, es))
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../../x/./y", Typeflag: tar.TypeLink, Linkname: "z"})
	tw.WriteHeader(&tar.Header{Name: "x", Typeflag: tar.TypeReg})
	tw.WriteHeader(&tar.Header{Name: ".wh..wh.plnk/1", Typeflag: tar.TypeReg})
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := IndexLayer(bytes.NewReader(data), Limits{MaxEntries: 1000, MaxPathBytes: 512})
		if err != nil {
			return
		}
		checkLayer(t, l)
	})
}

func FuzzCleanRooted(f *testing.F) {
	for _, s := range []string{"a/../b", "./x/", "/a//b/.", ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := cleanRooted(name), path.Clean("/"+name); got != want {
			t.Errorf("cleanRooted(%q) = %q, want %q", name, got, want)
		}
	})
}

func FuzzParseLayer(f *testing.F) {
	for _, es := range seedLayers {
		l, err := NewLayer(es)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := l.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte(binaryMagic + "\x01\x00"))
	f.Add([]byte(binaryMagic + "\x01\x02\x00\x02/a\x01\x02\x01/\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLayer(data)
		if err != nil {
			return
		}
		checkLayer(t, l)
	})
}
