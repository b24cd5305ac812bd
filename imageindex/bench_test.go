package imageindex

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"runtime"
	"testing"
	"time"
)

// distro generates paths shaped like a Debian or Fedora image's: packages
// with docs, binaries, shared libraries, Python modules, locales, man pages
// and config, each directory once, in package order like a real layer.
type distro struct {
	rng  *rand.Rand
	tag  string // makes one generator's package names its own
	dirs map[string]bool
	pkgs map[string]bool
	out  []Entry
}

var syllables = []string{"lib", "gtk", "ssl", "xml", "py", "core", "net", "util", "font", "glib", "krb", "z", "bz", "curl",
	"dbus", "pam", "sys", "tls", "gnu", "perl", "ruby", "java", "icu", "mesa", "x11", "drm", "pcre", "ffi", "uuid", "ldap"}

var languages = []string{"de", "fr", "es", "ja", "zh_CN", "pt_BR", "ru", "it"}

var pyModules = []string{"__init__", "core", "utils", "compat", "exceptions", "models", "api", "config", "_version", "helpers"}

func newDistro(seed uint64, tag string) *distro {
	return &distro{rng: rand.New(rand.NewPCG(seed, 0x5eed)), tag: tag, dirs: map[string]bool{}, pkgs: map[string]bool{}}
}

// add appends e after the directories above it that are new.
func (d *distro) add(e Entry) {
	var missing []string
	for p := path.Dir(e.Path); p != "/" && !d.dirs[p]; p = path.Dir(p) {
		d.dirs[p] = true
		missing = append(missing, p)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d.out = append(d.out, dir(missing[i]))
	}
	d.out = append(d.out, e)
}

// pkgName returns a package name the generator has not used yet.
func (d *distro) pkgName() string {
	for {
		n := syllables[d.rng.IntN(len(syllables))] + syllables[d.rng.IntN(len(syllables))]
		if d.rng.IntN(3) == 0 {
			n += fmt.Sprint(d.rng.IntN(12))
		}
		n += d.tag
		if !d.pkgs[n] {
			d.pkgs[n] = true
			return n
		}
	}
}

// paths returns n entries (directories included).
func (d *distro) paths(n int) []Entry {
	d.out = d.out[:0]
	for len(d.out) < n {
		pkg := d.pkgName()
		d.add(file("/usr/share/doc/" + pkg + "/copyright"))
		d.add(file("/usr/share/doc/" + pkg + "/changelog.Debian.gz"))
		switch d.rng.IntN(4) {
		case 0:
			for i := range 1 + d.rng.IntN(3) {
				d.add(file(fmt.Sprintf("/usr/bin/%s%s", pkg, []string{"", "-config", "-tool"}[i])))
			}
			d.add(file("/usr/share/man/man1/" + pkg + ".1.gz"))
		case 1:
			so := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/lib%s.so.%d", pkg, d.rng.IntN(4))
			d.add(file(fmt.Sprintf("%s.%d.%d", so, d.rng.IntN(20), d.rng.IntN(9))))
			d.add(link(so, path.Base(so)+".0.0"))
			for _, h := range d.rng.Perm(len(syllables))[:d.rng.IntN(6)] {
				d.add(file(fmt.Sprintf("/usr/include/%s/%s.h", pkg, syllables[h])))
			}
		case 2:
			base := "/usr/lib/python3/dist-packages/" + pkg
			for _, m := range pyModules[:2+d.rng.IntN(len(pyModules)-2)] {
				d.add(file(base + "/" + m + ".py"))
				d.add(file(base + "/__pycache__/" + m + ".cpython-311.pyc"))
			}
		case 3:
			for _, lang := range languages[:d.rng.IntN(len(languages))] {
				d.add(file("/usr/share/locale/" + lang + "/LC_MESSAGES/" + pkg + ".mo"))
			}
			d.add(file("/etc/" + pkg + "/" + pkg + ".conf"))
		}
	}
	return d.out[:n]
}

func mustLayer(b testing.TB, entries []Entry) *Layer {
	l, err := NewLayer(entries)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIndexMemoryPer1000Images measures what caching 1,000 indexed
// images of 20,000 paths costs, from Layer.Bytes and from the heap.
func BenchmarkIndexMemoryPer1000Images(b *testing.B) {
	const images, perImage, base = 1000, 20_000, 15_000
	report := func(b *testing.B, indexBytes int, heap uint64, entries int) {
		b.ReportMetric(float64(indexBytes)/(1<<20), "MiB/1000-images")
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB/1000-images")
		b.ReportMetric(float64(indexBytes)/float64(entries), "bytes/entry")
	}
	b.Run("distinct layers", func(b *testing.B) {
		for b.Loop() {
			before := heapAlloc()
			ims := make([]*Image, images)
			indexBytes, entries := 0, 0
			for i := range ims {
				l := mustLayer(b, newDistro(uint64(i), fmt.Sprint(i%100)).paths(perImage))
				indexBytes += l.Bytes()
				entries += l.Len()
				ims[i] = NewImage([]*Layer{l})
			}
			heap := heapAlloc() - before
			runtime.KeepAlive(ims)
			report(b, indexBytes, heap, entries)
		}
	})
	b.Run("shared 15000-entry base", func(b *testing.B) {
		for b.Loop() {
			before := heapAlloc()
			baseLayer := mustLayer(b, newDistro(1<<40, "").paths(base))
			indexBytes, entries := baseLayer.Bytes(), baseLayer.Len()
			ims := make([]*Image, images)
			for i := range ims {
				l := mustLayer(b, newDistro(uint64(i), fmt.Sprint(i%100)).paths(perImage-base))
				indexBytes += l.Bytes()
				entries += l.Len()
				ims[i] = NewImage([]*Layer{baseLayer, l})
			}
			heap := heapAlloc() - before
			runtime.KeepAlive(ims)
			report(b, indexBytes, heap, entries)
		}
	})
}

// BenchmarkIndexLayer200MB indexes a gzip'd layer of 30,000 files and about
// 200 MB of content, generated and compressed on the fly by another
// goroutine, so neither the tar nor the content is ever held in memory.
func BenchmarkIndexLayer200MB(b *testing.B) {
	const files, totalSize = 30_000, 200 << 20
	// Incompressible content: a 1 MiB random buffer, read at random offsets
	// (further apart than deflate's 32 KiB window).
	noise := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	entries := newDistro(42, "").paths(files)
	regular := 0
	for _, e := range entries {
		if e.Kind == Regular {
			regular++
		}
	}
	avgSize := int64(totalSize / regular)
	sizes := make([]int64, len(entries))
	var total int64
	rng := rand.New(rand.NewPCG(42, 42))
	for i, e := range entries {
		if e.Kind == Regular {
			sizes[i] = rng.Int64N(2 * avgSize)
			total += sizes[i]
		}
	}
	generate := func(w *io.PipeWriter, compress bool) {
		var out io.Writer = w
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if compress {
			out = zw
		}
		tw := tar.NewWriter(out)
		rng := rand.New(rand.NewPCG(7, 7))
		for i, e := range entries {
			hdr := &tar.Header{Name: e.Path[1:], Mode: 0o644, Size: sizes[i], Typeflag: tar.TypeReg}
			switch e.Kind {
			case Dir:
				hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			case Symlink:
				hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Link
			}
			if err := tw.WriteHeader(hdr); err != nil {
				w.CloseWithError(err)
				return
			}
			for left := hdr.Size; left > 0; {
				off := rng.IntN(len(noise) - 64<<10)
				n := min(left, 64<<10)
				if _, err := tw.Write(noise[off : off+int(n)]); err != nil {
					w.CloseWithError(err)
					return
				}
				left -= n
			}
		}
		if err := tw.Close(); err != nil {
			w.CloseWithError(err)
			return
		}
		if compress {
			w.CloseWithError(zw.Close())
		}
		w.Close()
	}
	// The gzip run is the real case; the tar run shows what the
	// compression (mostly the generator's) costs.
	for _, compress := range []bool{true, false} {
		name := map[bool]string{true: "gzip", false: "tar"}[compress]
		b.Run(name, func(b *testing.B) { benchIndex(b, total, files, compress, generate) })
	}
}

func benchIndex(b *testing.B, total int64, files int, compress bool, generate func(*io.PipeWriter, bool)) {
	b.SetBytes(total)
	b.ReportAllocs()
	var peak uint64
	var elapsed time.Duration
	runs := 0
	for b.Loop() {
		pr, pw := io.Pipe()
		go generate(pw, compress)
		runtime.GC()
		stop := heapPeak()
		start := time.Now()
		var r io.Reader = pr
		if compress {
			zr, err := gzip.NewReader(pr)
			if err != nil {
				b.Fatal(err)
			}
			r = zr
		}
		l, err := IndexLayer(r, Limits{})
		elapsed += time.Since(start)
		peak = max(peak, stop())
		if err != nil {
			b.Fatal(err)
		}
		if l.Len() != files {
			b.Fatalf("indexed %d entries, want %d", l.Len(), files)
		}
		runs++
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(runs), "ns/image")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// benchImage is three layers of distro paths, the top one whiting out part
// of the base.
func benchImage(b *testing.B) *Image {
	baseEntries := newDistro(1, "").paths(15_000)
	base := mustLayer(b, baseEntries)
	mid := mustLayer(b, newDistro(2, "").paths(4_000))
	top := mustLayer(b, append(newDistro(3, "").paths(1_000), whiteout("/usr/share/doc"), opaque("/etc")))
	return NewImage([]*Layer{base, mid, top})
}

func BenchmarkStat(b *testing.B) {
	im := benchImage(b)
	paths := []string{"/usr/share/doc", "/etc/ssl/certs/ca-certificates.crt", "/usr/lib/python3/dist-packages", "/nope/x/y"}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range paths {
			im.Stat(p)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(paths)), "ns/stat")
}

func BenchmarkFiles(b *testing.B) {
	im := benchImage(b)
	for _, dir := range []string{"/usr/lib/python3/dist-packages", "/"} {
		b.Run(dir, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n, _ = im.Files(dir, 10)
			}
			b.ReportMetric(float64(n), "files")
		})
	}
}

// hugeLayer returns n entries: packages of 150 files in directories of their
// own below /usr/lib/<tag> and /usr/share/<tag>, with those directories.
func hugeLayer(tag string, n int) []Entry {
	es := make([]Entry, 0, n)
	for pkg := 0; len(es) < n; pkg++ {
		top := []string{"/usr/lib/", "/usr/share/"}[pkg%2] + tag
		d := fmt.Sprintf("%s/pkg%05d", top, pkg)
		es = append(es, dir(d))
		for f := 0; f < 149 && len(es) < n; f++ {
			es = append(es, file(fmt.Sprintf("%s/file%03d.so", d, f)))
		}
	}
	return es
}

// BenchmarkFilesHugeImage is a mount at / (or /usr) of an image of 900,000
// paths in two layers, the worst an admission request can ask of Files:
// counting stops past policies.FilesCountLimit, so it costs what 10,000
// files cost, not what the image holds.
func BenchmarkFilesHugeImage(b *testing.B) {
	im := NewImage([]*Layer{mustLayer(b, hugeLayer("a", 450_000)), mustLayer(b, hugeLayer("b", 450_000))})
	for _, dir := range []string{"/", "/usr/lib"} {
		b.Run(dir, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n, _ = im.Files(dir, 3)
			}
			b.ReportMetric(float64(n), "files")
		})
	}
}
