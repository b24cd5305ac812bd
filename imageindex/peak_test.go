package imageindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// worstTar streams a tar of n regular files whose cleaned paths are
// pathLen bytes each, all distinct, below 64 directories.
func worstTar(n, pathLen int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		pad := strings.Repeat("x", max(pathLen-len("/d00/0000000-"), 0))
		for k := range n {
			name := fmt.Sprintf("d%02d/%07d-%s", k%64, k, pad)
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX}); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

// TestWorstCaseLayerPeakHeap measures the peak heap of indexing the largest
// layers the limits admit, and holds it to the 5.5× bound the inspector
// documents. The shipped settings' case runs always; the larger ones take a
// while and much memory: run them with PODGUARD_PEAK_HEAP=1.
func TestWorstCaseLayerPeakHeap(t *testing.T) {
	// The shipped settings' case runs always (about 2 s); the others,
	// which take 30 s and 850 MiB, with PODGUARD_PEAK_HEAP=1.
	only := os.Getenv("PODGUARD_PEAK_HEAP")
	if only == "" {
		only = "shipped"
	}
	const mi = 1 << 20
	for _, tc := range []struct {
		name    string
		n, plen int
		lim     Limits
	}{
		{"1M entries of 238-byte paths, MaxTotalBytes 256Mi", 1_000_000, 238, Limits{MaxEntries: 1_000_000}},
		{"1M entries of 32-byte paths, MaxTotalBytes 32Mi", 1_000_000, 32, Limits{MaxEntries: 1_000_000, MaxTotalBytes: 32 * mi}},
		{"140k entries of 238-byte paths, MaxTotalBytes 32Mi", 140_000, 238, Limits{MaxEntries: 1_000_000, MaxTotalBytes: 32 * mi}},
		// deploy/base/config.yaml: maxEntries 300000, maxIndexSize 16Mi.
		{"300k entries of 55-byte paths, MaxTotalBytes 16Mi (the shipped config)", 300_000, 55, Limits{MaxEntries: 300_000, MaxTotalBytes: 16 * mi}},
	} {
		if only != "1" && !strings.Contains(tc.name, only) {
			continue
		}
		base := heapAlloc()
		stop := heapPeak()
		l, err := IndexLayer(worstTar(tc.n, tc.plen), tc.lim)
		peak := stop()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		held := heapAlloc() - base
		runtime.KeepAlive(l)
		t.Logf("%s: peak heap %.0f MiB above the baseline, index holds %.1f MiB (Bytes %d)",
			tc.name, float64(peak-base)/mi, float64(held)/mi, l.Bytes())
		// The bound the inspector's documentation states: a fetch holds at
		// most about 5.5× the index bytes it allows.
		if bound := uint64(tc.lim.MaxTotalBytes) * 11 / 2; tc.lim.MaxTotalBytes > 0 && peak-base > bound {
			t.Errorf("%s: peak heap %.0f MiB, more than 5.5× MaxTotalBytes (%.0f MiB)", tc.name, float64(peak-base)/mi, float64(bound)/mi)
		}
	}
}

func TestLayerBuffersAreExactAndPathBytesCounted(t *testing.T) {
	entries := []Entry{dir("/a"), file("/a/b"), link("/a/c", "../target"), whiteout("/d"), opaque("/"), file("/e/f")}
	l, err := NewLayer(entries)
	if err != nil {
		t.Fatal(err)
	}
	if cap(l.buf) != len(l.buf) || cap(l.blocks) != len(l.blocks) {
		t.Errorf("buffers: len %d cap %d, blocks len %d cap %d; want exact", len(l.buf), cap(l.buf), len(l.blocks), cap(l.blocks))
	}
	want := 0
	for _, e := range l.Entries() {
		if e.Kind != Opaque {
			want += len(e.Path) + len(e.Link)
		}
	}
	want++ // the opaque root "/"
	if l.PathBytes() != want {
		t.Errorf("PathBytes = %d, want %d", l.PathBytes(), want)
	}
	b, _ := l.MarshalBinary()
	p, err := ParseLayer(b)
	if err != nil || p.PathBytes() != l.PathBytes() {
		t.Errorf("parsed: PathBytes %d (%v), want %d", p.PathBytes(), err, l.PathBytes())
	}
	// The limit counts what PathBytes counts.
	tr := tarOf(t, []Entry{dir("/a"), file("/a/b")})
	if _, err := IndexLayer(bytes.NewReader(tr), Limits{MaxTotalBytes: len("/a/a/b") - 1}); !errors.Is(err, ErrLayerTooLarge) {
		t.Errorf("over MaxTotalBytes: %v", err)
	}
}

func TestFoldedIsPacked(t *testing.T) {
	if n := unsafe.Sizeof(folded{}); n > 56 {
		t.Errorf("folded is %d bytes, want at most 56: a layer holds one per path while it is built", n)
	}
}
