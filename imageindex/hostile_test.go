package imageindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// heapPeak samples the live heap every millisecond until stop is called,
// and returns the highest HeapAlloc it saw.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > peak.Load() {
			peak.Store(ms.HeapAlloc)
		}
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		sample()
		return peak.Load()
	}
}

func TestIndexLayerHostile(t *testing.T) {
	t.Run("a PAX path of 2 MiB is refused by archive/tar with bounded memory", func(t *testing.T) {
		// archive/tar's Writer refuses such a header, so write it by hand:
		// a PAX extended header whose path record is 2 MiB, then the
		// entry it applies to.
		control, err := IndexLayer(bytes.NewReader(paxPath(strings.Repeat("c/", 1000)+"x")), Limits{})
		if err != nil || control.Len() != 1 {
			t.Fatalf("the hand-made PAX header does not index a 2 KB path: %v", err)
		}
		buf := bytes.NewBuffer(paxPath(strings.Repeat("a/", 1<<20) + "x"))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = IndexLayer(buf, Limits{})
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatal("IndexLayer of a 2 MiB PAX path succeeded")
		}
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("error %v; allocated %.1f MiB", err, float64(allocated)/(1<<20))
		if allocated > 8<<20 {
			t.Errorf("allocated %d bytes for one header, want under 8 MiB", allocated)
		}
	})
	t.Run("a PAX path under archive/tar's cap but over MaxPathBytes is ErrPathTooLong", func(t *testing.T) {
		for _, hdr := range []tar.Header{
			{Name: strings.Repeat("abcdefgh/", 100<<10/9) + "x", Typeflag: tar.TypeReg, Format: tar.FormatPAX},
			{Name: "short", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("x", 5000), Format: tar.FormatPAX},
		} {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&hdr); err != nil {
				t.Fatal(err)
			}
			tw.Close()
			_, err := IndexLayer(&buf, Limits{})
			if !errors.Is(err, ErrPathTooLong) {
				t.Errorf("IndexLayer error = %v, want ErrPathTooLong", err)
			}
		}
	})
	t.Run("a path exactly at MaxPathBytes is indexed", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		name := strings.Repeat("b", 99)
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg})
		tw.Close()
		if _, err := IndexLayer(&buf, Limits{MaxPathBytes: 100}); err != nil {
			t.Errorf("IndexLayer of a 100-byte path with MaxPathBytes 100: %v", err)
		}
	})
	t.Run("two million entries stop at MaxEntries with ErrTooManyEntries", func(t *testing.T) {
		const total, limit = 2_000_000, 100_000
		pr, pw := io.Pipe()
		var written atomic.Int64
		go func() {
			tw := tar.NewWriter(countWriter{pw, &written})
			for i := range total {
				hdr := &tar.Header{Name: fmt.Sprintf("usr/share/f/%07d", i), Typeflag: tar.TypeReg, Mode: 0o644}
				if err := tw.WriteHeader(hdr); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(tw.Close())
		}()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := heapPeak()
		start := time.Now()
		_, err := IndexLayer(pr, Limits{MaxEntries: limit})
		elapsed := time.Since(start)
		peak := stop()
		runtime.ReadMemStats(&after)
		pr.CloseWithError(errors.New("reader done"))
		if !errors.Is(err, ErrTooManyEntries) {
			t.Fatalf("IndexLayer error = %v, want ErrTooManyEntries", err)
		}
		t.Logf("stopped after %v, %.1f MiB of tar read of %.0f MiB offered; allocated %.1f MiB, peak heap %.1f MiB (generator included)",
			elapsed, float64(written.Load())/(1<<20), float64(total*1024)/(1<<20),
			float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), float64(peak)/(1<<20))
		if w := written.Load(); w > 2*limit*1024 {
			t.Errorf("the generator wrote %d bytes, want indexing to stop after about %d entries", w, limit)
		}
	})
	t.Run("paths totalling more than MaxTotalBytes are ErrLayerTooLarge", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := range 100 {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/file-%04d", i), Typeflag: tar.TypeReg})
		}
		tw.Close()
		if _, err := IndexLayer(bytes.NewReader(buf.Bytes()), Limits{MaxTotalBytes: 1000}); !errors.Is(err, ErrLayerTooLarge) {
			t.Errorf("IndexLayer error = %v, want ErrLayerTooLarge", err)
		}
		if _, err := IndexLayer(bytes.NewReader(buf.Bytes()), Limits{MaxTotalBytes: 2000}); err != nil {
			t.Errorf("IndexLayer of 1800 bytes of paths with MaxTotalBytes 2000: %v", err)
		}
	})
	t.Run("a truncated tar is an error", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := range 10 {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg, Size: 700, Mode: 0o644})
			tw.Write(bytes.Repeat([]byte{byte(i)}, 700))
		}
		tw.Close()
		full := buf.Bytes()
		// Cut inside a header, and inside a file's content. (archive/tar
		// reads a stream cut inside the padding after a file's content,
		// or after the last header, as complete: no header is lost.)
		for _, cut := range []int{100, 512 + 300, 1536 + 512 + 600, 3*1536 + 200} {
			if _, err := IndexLayer(bytes.NewReader(full[:cut]), Limits{}); err == nil {
				t.Errorf("IndexLayer of the first %d of %d bytes succeeded", cut, len(full))
			}
		}
	})
	t.Run("random bytes are an error, never a panic", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 200 {
			b := make([]byte, 512*(1+rng.IntN(16)))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if _, err := IndexLayer(bytes.NewReader(b), Limits{}); err == nil {
				t.Errorf("IndexLayer of random bytes (seed round %d) succeeded", i)
			}
			if _, err := ParseLayer(b); err == nil {
				t.Errorf("ParseLayer of random bytes (seed round %d) succeeded", i)
			}
		}
	})
}

// paxPath is a tar stream of one file whose name is in a PAX record.
func paxPath(name string) []byte {
	record := fmt.Sprintf("path=%s\n", name)
	digits := len(strconv.Itoa(len(record)))
	if n := len(record) + digits + 1; len(strconv.Itoa(n)) > digits {
		digits++
	}
	record = fmt.Sprintf("%d %s", len(record)+digits+1, record)
	var buf bytes.Buffer
	buf.Write(rawHeader("PaxHeaders/x", tar.TypeXHeader, len(record)))
	buf.WriteString(record)
	buf.Write(make([]byte, (512-len(record)%512)%512))
	buf.Write(rawHeader("x", tar.TypeReg, 0))
	buf.Write(make([]byte, 1024))
	return buf.Bytes()
}

// rawHeader encodes a ustar header block without archive/tar's checks.
func rawHeader(name string, typeflag byte, size int) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func TestParseLayerRefuses(t *testing.T) {
	good, err := NewLayer([]Entry{dir("/a"), file("/a/b"), link("/c", "a")})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := good.MarshalBinary()
	body := func(entries ...[]byte) []byte {
		b := append([]byte(nil), binaryMagic...)
		b = append(b, binaryVersion, byte(len(entries)))
		for _, e := range entries {
			b = append(b, e...)
		}
		return b
	}
	// entry encodes shared, suffix, kind by hand.
	entry := func(shared int, suffix string, kind byte) []byte {
		return append([]byte{byte(shared), byte(len(suffix))}, append([]byte(suffix), kind)...)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"refuses an empty input", nil},
		{"refuses another magic", append([]byte("XXXX"), enc[4:]...)},
		{"refuses another version", append(append([]byte(binaryMagic), 9), enc[5:]...)},
		{"refuses a count larger than the bytes could hold", append(append([]byte(nil), enc[:5]...), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"refuses a truncated body", enc[:len(enc)-1]},
		{"refuses trailing bytes", append(append([]byte(nil), enc...), 0)},
		{"refuses a relative path", body(entry(0, "a", byte(Regular)))},
		{"refuses an unclean path", body(entry(0, "/a/../b", byte(Regular)))},
		{"refuses a trailing slash", body(entry(0, "/a/", byte(Dir)))},
		{"refuses a whiteout name", body(entry(0, "/.wh.a", byte(Regular)))},
		{"refuses paths out of order", body(entry(0, "/b", byte(Regular)), entry(0, "/a", byte(Regular)))},
		{"refuses a duplicate path", body(entry(0, "/a", byte(Regular)), entry(2, "", byte(Regular)))},
		{"refuses an unknown kind", body(entry(0, "/a", 7))},
		{"refuses an opaque file", body(entry(0, "/a", byte(Regular)|flagOpaque))},
		{"refuses a root that is not an opaque directory", body(entry(0, "/", byte(Dir)))},
		{"refuses a shared prefix longer than the previous path", body(entry(0, "/a", byte(Dir)), entry(5, "b", byte(Dir)))},
		{"refuses an entry below a file", body(entry(0, "/a", byte(Regular)), entry(2, "/b", byte(Regular)))},
		{"refuses an entry below a whiteout", body(entry(0, "/a", byte(Whiteout)), entry(2, "-x", byte(Regular)), entry(2, "/b", byte(Regular)))},
		{"refuses a symlink target past the end", body(append(entry(0, "/a", byte(Symlink)), 40, 'x'))},
		{"refuses a suffix past the end", append([]byte(binaryMagic), binaryVersion, 1, 0, 40, '/')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := ParseLayer(tt.b); err == nil {
				t.Errorf("ParseLayer(%q) = %v, want an error", tt.b, l.Entries())
			}
		})
	}
	t.Run("accepts what MarshalBinary wrote", func(t *testing.T) {
		if _, err := ParseLayer(enc); err != nil {
			t.Error(err)
		}
	})
	t.Run("accepts a shared prefix shorter than it could be", func(t *testing.T) {
		b := body(entry(0, "/a", byte(Dir)), entry(1, "a/b", byte(Regular)))
		if _, err := ParseLayer(b); err != nil {
			t.Error(err)
		}
	})
}

func TestNestedWhiteoutsCostLinearTime(t *testing.T) {
	// A chain of whiteouts /a, /a/a, /a/a/a... each re-created after, as
	// deep as MaxPathBytes allows: judging every entry against every
	// whiteout above it would be cubic in the depth.
	const depth = DefaultMaxPathBytes/2 - 1
	var entries []Entry
	p := ""
	for range depth {
		p += "/a"
		entries = append(entries, whiteout(p))
	}
	for p := ""; len(p) < 2*depth; {
		p += "/a"
		entries = append(entries, file(p+"/f"))
	}
	start := time.Now()
	l, err := NewLayer(entries)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nested whiteouts indexed in %v", depth, elapsed)
	if l.Len() != 2*depth {
		t.Errorf("Len() = %d, want %d opaque directories and files", l.Len(), 2*depth)
	}
	for _, e := range l.Entries()[:6] {
		if e.Kind == Whiteout {
			t.Errorf("%q is still a whiteout, want an opaque directory", e.Path)
		}
	}
	if elapsed > 3*time.Second {
		t.Errorf("indexing took %v, want well under a second", elapsed)
	}
}
