package registrytest

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/bits"
)

// The many-entries layer is n tar headers that differ from one another in a
// few name and checksum bytes. compress/gzip takes about a second per
// million entries to find that out; manyGzip knows it, and writes the
// gzip stream directly as one fixed-Huffman deflate block in which every
// header is a copy of the previous one (distance 512) with the changed bytes
// as literals: about 20 bytes per entry, written at memory speed. Its bytes
// depend on this file only, not on the Go version, so the digests of the
// default layer are constants (see manyDefaultSums).

// bitWriter writes deflate's LSB-first bit stream.
type bitWriter struct {
	w   io.Writer
	acc uint64
	n   uint
	buf []byte
	err error
}

func (b *bitWriter) bits(v uint64, n uint) {
	b.acc |= v << b.n
	b.n += n
	for b.n >= 8 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
		b.n -= 8
	}
	if len(b.buf) >= 64<<10 {
		b.flushBuf()
	}
}

func (b *bitWriter) flushBuf() {
	if b.err == nil && len(b.buf) > 0 {
		_, b.err = b.w.Write(b.buf)
	}
	b.buf = b.buf[:0]
}

// align pads to a byte boundary with zero bits.
func (b *bitWriter) align() {
	if b.n > 0 {
		b.bits(0, 8-b.n)
	}
}

func (b *bitWriter) bytes(p []byte) {
	b.buf = append(b.buf, p...)
}

type hcode struct {
	rev uint16 // code, bit-reversed for the LSB-first stream
	n   uint8
}

// fixedLit are the fixed Huffman codes of the literal/length alphabet
// (RFC 1951 3.2.6).
var fixedLit = func() (t [288]hcode) {
	set := func(sym int, code uint16, n uint8) {
		t[sym] = hcode{bits.Reverse16(code) >> (16 - n), n}
	}
	for s := 0; s < 288; s++ {
		switch {
		case s < 144:
			set(s, uint16(0x30+s), 8)
		case s < 256:
			set(s, uint16(0x190+s-144), 9)
		case s < 280:
			set(s, uint16(s-256), 7)
		default:
			set(s, uint16(0xc0+s-280), 8)
		}
	}
	return t
}()

var (
	lengthBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
)

func (b *bitWriter) sym(s int) { c := fixedLit[s]; b.bits(uint64(c.rev), uint(c.n)) }

func (b *bitWriter) literal(c byte) { b.sym(int(c)) }

// match512 copies length (3..258) bytes from 512 bytes back.
func (b *bitWriter) match512(length int) {
	i := 28
	if length < 258 {
		i = 27
		for lengthBase[i] > length {
			i--
		}
	}
	b.sym(257 + i)
	if lengthExtra[i] > 0 {
		b.bits(uint64(length-lengthBase[i]), lengthExtra[i])
	}
	// Distance code 17 covers 385..512 with 7 extra bits; fixed distance
	// codes are 5 bits.
	b.bits(uint64(bits.Reverse8(17)>>3), 5)
	b.bits(512-385, 7)
}

// same emits a run of n bytes equal to those 512 bytes back; cur holds
// them, for the tail too short for a match.
func (b *bitWriter) same(cur []byte) {
	for len(cur) >= 3 {
		l := min(len(cur), 258)
		b.match512(l)
		cur = cur[l:]
	}
	for _, c := range cur {
		b.literal(c)
	}
}

// manyVarying are the byte ranges in which consecutive many-layer headers
// can differ: the name's directory and file digits, and the checksum.
var manyVarying = [][2]int{{5, 18}, {148, 156}}

// manyGzip writes the gzip'd tar of n empty files to zw, and if tw is not
// nil the uncompressed tar to tw as well. It returns what it wrote to zw.
func manyGzip(zw, tw io.Writer, n int) error {
	bw := &bitWriter{w: zw, buf: make([]byte, 0, 80<<10)}
	bw.bytes([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	bw.bits(1, 1) // BFINAL
	bw.bits(1, 2) // BTYPE=01, fixed Huffman codes
	crc := crc32.NewIEEE()
	var size uint32
	var prev [512]byte
	first := true
	err := manyTarBatches(n, func(batch []byte) error {
		crc.Write(batch)
		size += uint32(len(batch))
		if tw != nil {
			if _, err := tw.Write(batch); err != nil {
				return err
			}
		}
		for len(batch) > 0 {
			h := batch[:512]
			batch = batch[512:]
			if first || h[0] == 0 { // the first header, the end-of-archive blocks
				for _, c := range h {
					bw.literal(c)
				}
				first = false
			} else {
				pos := 0
				for _, r := range manyVarying {
					for p := r[0]; p < r[1]; p++ {
						if h[p] != prev[p] {
							bw.same(h[pos:p])
							bw.literal(h[p])
							pos = p + 1
						}
					}
				}
				bw.same(h[pos:])
			}
			copy(prev[:], h)
		}
		return bw.err
	})
	if err != nil {
		return err
	}
	bw.sym(256) // end of block
	bw.align()
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc.Sum32())
	binary.LittleEndian.PutUint32(trailer[4:], size)
	bw.bytes(trailer[:])
	bw.flushBuf()
	return bw.err
}
