package registrytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every synthetic entry, so that digests
// are the same on every run.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one tar entry of a synthetic layer. Names are written as given
// (no leading "/" unless the name has one), so they can be hostile.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg (default), tar.TypeDir, tar.TypeSymlink, tar.TypeLink
	Body     string
	Linkname string
	Mode     int64 // default 0644 for files, 0755 for directories
	Format   tar.Format
}

// Dir, File and Symlink are shorthands for Entry.
func Dir(name string) Entry { return Entry{Name: name, Type: tar.TypeDir} }

// File is a regular file with body.
func File(name, body string) Entry { return Entry{Name: name, Type: tar.TypeReg, Body: body} }

// Exec is a regular file with mode 0755.
func Exec(name, body string) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Body: body, Mode: 0o755}
}

// Symlink is name -> target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Linkname: target}
}

// TarBytes writes entries as an uncompressed tar stream.
func TarBytes(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:     e.Name,
			Typeflag: e.Type,
			Linkname: e.Linkname,
			Mode:     e.Mode,
			ModTime:  epoch,
			Format:   e.Format,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeSymlink {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %.64q: %w", e.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipBytes compresses b deterministically (no name, zero mtime).
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// LayerFromTar makes a Docker gzip layer of an uncompressed tar stream.
func LayerFromTar(tarStream []byte) (v1.Layer, error) {
	gz := gzipBytes(tarStream)
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.DockerLayer))
}

// Layer makes a gzip'd tar layer of entries.
func Layer(entries ...Entry) (v1.Layer, error) {
	b, err := TarBytes(entries)
	if err != nil {
		return nil, err
	}
	return LayerFromTar(b)
}

func mustLayer(entries ...Entry) v1.Layer {
	l, err := Layer(entries...)
	if err != nil {
		panic(err)
	}
	return l
}

// MaliciousPAXLayer is a layer whose only entry carries a PAX extended
// header whose path record is 2 MiB long (a path of "pax/" and 'a's);
// Go's archive/tar reader refuses PAX headers over 1 MiB.
func MaliciousPAXLayer() v1.Layer {
	long := "pax/" + strings.Repeat("a", 2<<20)
	// Written by hand: archive/tar would write the same, but this way the
	// size of the record does not depend on its choices.
	rec := paxRecord("path", long)
	var buf bytes.Buffer
	buf.Write(ustarHeader("PaxHeaders/pax", tar.TypeXHeader, int64(len(rec)), ""))
	buf.WriteString(rec)
	pad(&buf)
	buf.Write(ustarHeader("pax/short-name", tar.TypeReg, 2, ""))
	buf.WriteString("x\n")
	pad(&buf)
	buf.Write(make([]byte, 1024))
	l, err := LayerFromTar(buf.Bytes())
	if err != nil {
		panic(err)
	}
	return l
}

// paxRecord formats "%d key=value\n" where %d counts the whole record.
func paxRecord(k, v string) string {
	size := len(k) + len(v) + 3
	size += len(fmt.Sprint(size))
	rec := fmt.Sprintf("%d %s=%s\n", size, k, v)
	if len(rec) != size {
		rec = fmt.Sprintf("%d %s=%s\n", size+1, k, v)
	}
	return rec
}

func pad(buf *bytes.Buffer) {
	if n := buf.Len() % 512; n != 0 {
		buf.Write(make([]byte, 512-n))
	}
}

// ustarHeader builds a 512-byte ustar header block.
func ustarHeader(name string, typ byte, size int64, link string) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", epoch.Unix()))
	b[156] = typ
	copy(b[157:257], link)
	copy(b[257:265], "ustar\x0000")
	copy(b[329:337], "0000000\x00") // devmajor, as archive/tar writes it
	copy(b[337:345], "0000000\x00") // devminor
	setChecksum(b)
	return b
}

func setChecksum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// MaliciousTraversalLayer has entries that escape the root: "../../etc/evil",
// "/abs/path", "app/../../../etc/evil3", a symlink app/link -> /etc/shadow
// and a symlink app/up -> ../../.., next to one harmless app/ok.txt.
func MaliciousTraversalLayer() v1.Layer {
	return mustLayer(
		File("../../etc/evil", "evil\n"),
		File("/abs/path", "absolute\n"),
		Dir("app/"),
		File("app/../../../etc/evil3", "evil3\n"),
		Symlink("app/link", "/etc/shadow"),
		Symlink("app/up", "../../.."),
		File("app/ok.txt", "ok\n"),
	)
}

// endlessTarHeader is the header of the never-ending layer's only entry: a
// regular file "endless/blob" claiming 1 TiB (GNU base-256 size).
func endlessTarHeader() []byte {
	b := ustarHeader("endless/blob", tar.TypeReg, 0, "")
	// base-256 size: high bit set, big-endian in the 12-byte field.
	size := make([]byte, 12)
	size[0] = 0x80
	binary.BigEndian.PutUint64(size[4:], 1<<40)
	copy(b[124:136], size)
	copy(b[257:265], "ustar  \x00") // GNU magic
	setChecksum(b)
	return b
}

// endlessReader yields a gzip stream that never ends: a gzip header, then
// non-final stored deflate blocks carrying the endless tar header followed by
// zeros.
type endlessReader struct {
	prefix []byte
	block  []byte
	off    int
	inPref bool
}

const storedBlock = 32 << 10

var endlessBlock = func() []byte {
	b := make([]byte, 5+storedBlock)
	b[0] = 0 // BFINAL=0, BTYPE=00 (stored), rest of the byte padding
	binary.LittleEndian.PutUint16(b[1:], storedBlock)
	binary.LittleEndian.PutUint16(b[3:], ^uint16(storedBlock))
	return b
}()

func newEndlessReader() *endlessReader {
	first := bytes.Clone(endlessBlock)
	copy(first[5:], endlessTarHeader())
	prefix := append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, first...)
	return &endlessReader{prefix: prefix, block: endlessBlock, inPref: true}
}

func (e *endlessReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		src := e.block
		if e.inPref {
			src = e.prefix
		}
		c := copy(p[n:], src[e.off:])
		n += c
		e.off += c
		if e.off == len(src) {
			e.off, e.inPref = 0, false
		}
	}
	return n, nil
}

// endlessLayer is the never-ending layer: it declares a 1 TiB blob whose
// digest is made up (nothing can ever check it), and reads forever.
type endlessLayer struct{}

func (endlessLayer) virtual() {}

// EndlessLayerSize is the compressed size the endless layer declares.
const EndlessLayerSize = 1 << 40

var (
	endlessDigest = fakeHash("registrytest endless layer compressed")
	endlessDiffID = fakeHash("registrytest endless layer uncompressed")
)

func fakeHash(s string) v1.Hash {
	sum := sha256.Sum256([]byte(s))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func (endlessLayer) Digest() (v1.Hash, error) { return endlessDigest, nil }
func (endlessLayer) DiffID() (v1.Hash, error) { return endlessDiffID, nil }
func (endlessLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(newEndlessReader()), nil
}
func (endlessLayer) Uncompressed() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(newEndlessReader())
	if err != nil {
		return nil, err
	}
	return zr, nil
}
func (endlessLayer) Size() (int64, error)                { return EndlessLayerSize, nil }
func (endlessLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

// EndlessLayer returns the never-ending layer (see Fault.EndlessBlobs).
func EndlessLayer() v1.Layer { return endlessLayer{} }

// manyLayer is a layer of n zero-size regular files "many/DDDD/NNNNNNNN"
// (DDDD = index/10000, NNNNNNNN = index), generated on the fly (see
// manyGzip) every time it is read; only its digests and size are kept,
// computed by one pass on first use and shared per n in the process
// (about 0.5 s per million entries, mostly hashing the tar for the DiffID),
// except for DefaultManyEntries whose sums are constants.
type manyLayer struct{ n int }

func (manyLayer) virtual() {}

// DefaultManyEntries is the number of entries SeedAll's malicious/many image has.
const DefaultManyEntries = 3_000_000

type manySums struct {
	once           sync.Once
	digest, diffID v1.Hash
	size           int64
	err            error
}

var manyCache sync.Map // int → *manySums

// ManyEntriesLayer returns the layer of n zero-size entries.
func ManyEntriesLayer(n int) v1.Layer { return manyLayer{n} }

func (l manyLayer) sums() *manySums {
	v, _ := manyCache.LoadOrStore(l.n, &manySums{})
	s := v.(*manySums)
	s.once.Do(func() { s.digest, s.diffID, s.size, s.err = computeManySums(l.n) })
	return s
}

// The sums of ManyEntriesLayer(DefaultManyEntries), so that SeedAll costs
// nothing for it; TestManyDefaultSums recomputes them.
const (
	manyDefaultDigest = "sha256:053d230917aa736cd3244f70574df223b9a425278cca191be68605c4db421164"
	manyDefaultDiffID = "sha256:4ba7841a1023b7cd9a28aaa8bd0eff67cc9dbf88fcc585ae9ddc5f0ed5a229a2"
	manyDefaultSize   = 39784645
)

func init() {
	d, err1 := v1.NewHash(manyDefaultDigest)
	t, err2 := v1.NewHash(manyDefaultDiffID)
	if err1 != nil || err2 != nil {
		panic("registrytest: bad many-layer constants")
	}
	s := &manySums{digest: d, diffID: t, size: manyDefaultSize}
	s.once.Do(func() {}) // already computed
	manyCache.Store(DefaultManyEntries, s)
}

// computeManySums generates the layer once to hash it.
func computeManySums(n int) (digest, diffID v1.Hash, size int64, err error) {
	zh, th := sha256.New(), sha256.New()
	cw := &countWriter{w: zh}
	if err := manyGzip(cw, th, n); err != nil {
		return v1.Hash{}, v1.Hash{}, 0, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(zh.Sum(nil))},
		v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(th.Sum(nil))},
		cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// manyTarBatches produces the tar of n empty files in batches of headers
// (the last batch is the two zero blocks that end the archive). The headers
// are the bytes archive/tar's ustar writer would produce, only faster.
func manyTarBatches(n int, emit func([]byte) error) error {
	const batch = 128
	buf := make([]byte, batch*512)
	tmpl := ustarHeader("many/0000/00000000", tar.TypeReg, 0, "")
	// The checksum is the sum of the header's bytes with the checksum field
	// as spaces: the template's, plus what the digits add to its zeros.
	copy(tmpl[148:156], "        ")
	base := 0
	for _, c := range tmpl {
		base += int(c)
	}
	for i := 0; i < n; {
		k := 0
		for ; k < batch && i < n; k, i = k+1, i+1 {
			h := buf[k*512 : (k+1)*512]
			copy(h, tmpl)
			putDec(h[5:9], i/10000)
			putDec(h[10:18], i)
			sum := base
			for _, c := range h[5:9] {
				sum += int(c - '0')
			}
			for _, c := range h[10:18] {
				sum += int(c - '0')
			}
			putChecksum(h, sum)
		}
		if err := emit(buf[:k*512]); err != nil {
			return err
		}
	}
	return emit(make([]byte, 1024))
}

func putDec(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// putChecksum writes the ustar checksum sum as archive/tar does.
func putChecksum(b []byte, sum int) {
	for i := 153; i >= 148; i-- {
		b[i] = byte('0' + sum&7)
		sum >>= 3
	}
	b[154], b[155] = 0, ' '
}

func (l manyLayer) Digest() (v1.Hash, error) { s := l.sums(); return s.digest, s.err }
func (l manyLayer) DiffID() (v1.Hash, error) { s := l.sums(); return s.diffID, s.err }
func (l manyLayer) Size() (int64, error)     { s := l.sums(); return s.size, s.err }
func (manyLayer) MediaType() (types.MediaType, error) {
	return types.DockerLayer, nil
}

func (l manyLayer) Compressed() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(manyGzip(pw, nil, l.n)) }()
	return pr, nil
}

func (l manyLayer) Uncompressed() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(manyTarBatches(l.n, func(b []byte) error {
			_, err := pw.Write(b)
			return err
		}))
	}()
	return pr, nil
}
