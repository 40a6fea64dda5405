package repo

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression names a block compression algorithm.
type Compression string

const (
	CompressNone Compression = "none"
	CompressZstd Compression = "zstd"
	CompressLZ4  Compression = "lz4"
)

const (
	compNone byte = 0
	compZstd byte = 1
	compLZ4  byte = 2
)

func (c Compression) code() (byte, error) {
	switch c {
	case CompressNone:
		return compNone, nil
	case CompressZstd:
		return compZstd, nil
	case CompressLZ4:
		return compLZ4, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want none, zstd or lz4)", c)
}

// compressor compresses with one algorithm and level; safe for concurrent use.
type compressor struct {
	code  byte
	level int
	enc   *zstd.Encoder
	// fast is zstd's fastest encoder, for blocks that compress poorly
	// (poorlyCompressing); nil when the level is already the fastest.
	fast *zstd.Encoder
	dec  *zstd.Decoder
	lz4s sync.Pool

	scratch sync.Pool // *[]byte, compressed output of one block
}

// Every block is compressed at the repository's level. Incrementals used
// to compress their small poorly compressing blocks again at zstd's best
// level (pgbench index pages 10 % smaller); klauspost's best encoder has
// fixed match tables of 35 MiB, one per concurrent encoder, more than the
// rest of a backup's memory together (issue 16), so that pass is gone.

// newCompressor compresses blocks of up to blockSize bytes and objects.
func newCompressor(c Compression, level, blockSize int) (*compressor, error) {
	code, err := c.code()
	if err != nil {
		return nil, err
	}
	cp := &compressor{code: code}
	if code != compZstd {
		level = 3 // zstd is still used for index, manifest and WAL objects
	}
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("zstd level %d out of range 1..22", level)
	}
	cp.level = level
	// EncodeAll takes one of WithEncoderConcurrency encoders: 1 would make
	// every backup channel wait for a single compressor. No frame CRC:
	// every block and object is authenticated (AEAD) and a block is also
	// checked against its id, so the CRC would only cost time and 4 bytes.
	//
	// The window is the block size's (at least 1 MiB, at most zstd's 8
	// MiB default): an input larger than 128 KiB makes each of the
	// encoders keep a history buffer of the window's size, 8 MiB each by
	// default, and no block has a match farther back than its own size.
	if cp.enc, err = blockEncoder(zstd.EncoderLevelFromZstd(level), blockSize); err != nil {
		return nil, err
	}
	if zstd.EncoderLevelFromZstd(level) > zstd.SpeedFastest {
		if cp.fast, err = blockEncoder(zstd.SpeedFastest, blockSize); err != nil {
			return nil, err
		}
	}
	cp.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	cp.lz4s.New = func() any { return new(lz4.Compressor) }
	return cp, nil
}

// blockEncoder is a shared zstd encoder at level for blocks of up to
// blockSize bytes (see newCompressor for its options).
func blockEncoder(level zstd.EncoderLevel, blockSize int) (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(windowFor(max(blockSize, 1<<20))))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return enc, nil
}

// compressBlock returns the stored form of a block and its compression
// code (data itself with compNone when compression does not help). The
// output is appended to dst (see getScratch): the result is either data
// or within dst's backing array (or, rarely, a new array when dst is too
// short).
func (cp *compressor) compressBlock(dst, data []byte) ([]byte, byte) {
	enc := cp.enc
	if cp.code == compZstd && cp.poorlyCompressing(dst, data) {
		enc = cp.fast
	}
	return cp.compressTo(dst[:0], data, cp.code, enc)
}

// A block whose first probeSize bytes the fastest encoder cannot shrink
// below poorRatio of their size is compressed with that encoder: on such
// blocks (a table of random bytes, encrypted or already compressed
// values) the repository's level finds next to nothing more and costs
// three times the time. Measured on 128 KiB blocks of a table of 1 KiB
// random values, 7 to a page: 74 MB/s at level 3 against 215 MB/s at the
// fastest, for 88.1 % and 88.3 % of the size; pgbench's tables compress to
// 3 % and keep the level. The probe costs one page of the block at the
// fastest level.
const (
	probeSize = 8 << 10
	poorRatio = 0.6
)

// poorlyCompressing probes data with the fastest encoder, into dst's
// space (overwritten by the block's own compression after it).
func (cp *compressor) poorlyCompressing(dst, data []byte) bool {
	if cp.fast == nil || len(data) < 2*probeSize {
		return false
	}
	probe := cp.fast.EncodeAll(data[:probeSize], dst[:0])
	return float64(len(probe)) > poorRatio*probeSize
}

func (cp *compressor) compressTo(dst, data []byte, code byte, enc *zstd.Encoder) ([]byte, byte) {
	switch code {
	case compZstd:
		if dst == nil {
			dst = make([]byte, 0, len(data))
		}
		out := enc.EncodeAll(data, dst)
		if len(out) < len(data) {
			return out, compZstd
		}
	case compLZ4:
		out := dst[:0]
		if bound := lz4.CompressBlockBound(len(data)); cap(out) < bound {
			out = make([]byte, bound)
		}
		out = out[:cap(out)]
		c := cp.lz4s.Get().(*lz4.Compressor)
		n, err := c.CompressBlock(data, out)
		cp.lz4s.Put(c)
		if err == nil && n > 0 && n < len(data) {
			return out[:n], compLZ4
		}
	}
	return data, compNone
}

// getScratch returns a buffer for the compressed form of a block of up to
// size bytes; give it back with putScratch once the result is sealed.
// Reusing it spares allocating (and zeroing) one block-sized buffer per
// block.
func (cp *compressor) getScratch(size int) *[]byte {
	// Room for zstd's and lz4's worst case, so the encoders never grow it.
	need := lz4.CompressBlockBound(size) + 64
	if b, ok := cp.scratch.Get().(*[]byte); ok && cap(*b) >= need {
		return b
	}
	b := make([]byte, 0, need)
	return &b
}

func (cp *compressor) putScratch(b *[]byte) { cp.scratch.Put(b) }

// windowFor is the zstd window for inputs of up to n bytes: the next power
// of two, at most the 8 MiB zstd uses by default at the levels below 5.
func windowFor(n int) int {
	w := zstd.MinWindowSize
	for w < n && w < 8<<20 {
		w <<= 1
	}
	return w
}

// compressObject is compressTo for an object (an index object, a head)
// of at most largeObject bytes with code, with the shared encoders.
func (cp *compressor) compressObject(dst, data []byte, code byte) ([]byte, byte) {
	return cp.compressTo(dst, data, code, cp.enc)
}

// streamWindow is the window of streamZstd: pgbench WAL segments are 0.2
// to 0.4 % larger with it than with 8 MiB, for a quarter of the history.
const streamWindow = 2 << 20

// streamZstd compresses data into w as one zstd stream with a window of
// at most streamWindow: for an object larger than largeObject (a WAL
// segment), which EncodeAll would compress with a history as large as
// the object, kept by the shared encoder afterwards. The encoder goes
// with the call.
func (cp *compressor) streamZstd(w io.Writer, data []byte) error {
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(cp.level)),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(min(windowFor(len(data)), streamWindow)))
	if err != nil {
		return fmt.Errorf("zstd encoder: %w", err)
	}
	if _, err := enc.Write(data); err != nil {
		enc.Close()
		return fmt.Errorf("zstd: %w", err)
	}
	return enc.Close()
}

// largeObject is the plaintext size above which decompress uses a
// decoder of its own.
const largeObject = 1 << 20

// decompress reverses compress; rawLen is the expected plaintext size.
func (cp *compressor) decompress(data []byte, code byte, rawLen int) ([]byte, error) {
	switch code {
	case compNone:
		return data, nil
	case compZstd:
		dec := cp.dec
		if rawLen > largeObject {
			// The shared decoder keeps references to the input and the
			// output of its last frame until it decodes another: a
			// manifest of MiBs would stay in memory for the whole
			// backup that read it. A decoder of its own goes with it.
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(1<<30))
			if err != nil {
				return nil, fmt.Errorf("zstd decoder: %w", err)
			}
			defer d.Close()
			dec = d
		}
		out, err := dec.DecodeAll(data, make([]byte, 0, rawLen))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return out, nil
	case compLZ4:
		out := make([]byte, rawLen)
		n, err := lz4.UncompressBlock(data, out)
		if err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		return out[:n], nil
	}
	return nil, fmt.Errorf("unknown compression code %d", code)
}

func (cp *compressor) close() {
	cp.enc.Close()
	cp.dec.Close()
}
