package repo

import (
	"fmt"
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
	dec   *zstd.Decoder
	lz4s  sync.Pool

	// small compresses some of an incremental backup's blocks of at most
	// smallBlock bytes again at a higher level (see compressBlock): an
	// incremental stores changed pages one by one, and a single 8 KiB page
	// compresses much worse alone than inside a 128 KiB block. Made on
	// first use: commands that store no such blocks never pay for it.
	smallOnce sync.Once
	small     *zstd.Encoder
	smallErr  error

	scratch sync.Pool // *[]byte, compressed output of one block
}

// smallBlock is the largest block the small-block encoder is tried on: two
// pages. zstd's best level is slow (about 20 MB/s on pages, against 250
// MB/s at level 3), so it is tried only where it pays: on an incremental's
// small blocks that level 3 compressed less than smallPoorRatio:1. Measured
// on the new blocks of pgbench incrementals: after a light load, those are
// the index pages (half the blocks) and best stores them 11 % smaller, for
// 95 % of the possible gain and 1.1 s CPU per 23 MB; heap pages compress
// 17:1 at level 3 and gain 3 %. After a heavy load (31 000 small blocks, 308
// MB), the rule tries 16 MB of them (0.8 s) where trying all would cost 5.3
// s. Full backups keep the configured level for every block.
const (
	smallBlock     = 2 * PageSize
	smallPoorRatio = 8
)

// smallLevel is the zstd level of the small-block encoder.
const smallLevel = zstd.SpeedBestCompression

func newCompressor(c Compression, level int) (*compressor, error) {
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
	cp.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	cp.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	cp.lz4s.New = func() any { return new(lz4.Compressor) }
	return cp, nil
}

// smallEncoder returns the encoder for blocks of at most smallBlock bytes.
func (cp *compressor) smallEncoder() *zstd.Encoder {
	cp.smallOnce.Do(func() {
		if zstd.EncoderLevelFromZstd(cp.level) >= smallLevel {
			return
		}
		cp.small, cp.smallErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(smallLevel),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithEncoderCRC(false))
	})
	if cp.small == nil || cp.smallErr != nil {
		return cp.enc // the default encoder is as good, or the other failed
	}
	return cp.small
}

// compress returns the stored form of data and its compression code; it
// returns data itself with compNone when compression does not help.
func (cp *compressor) compress(data []byte) ([]byte, byte) {
	return cp.compressTo(nil, data, cp.code, cp.enc)
}

// compressBlock is compress for a block: the output is appended to dst
// (see getScratch). A small block of an incremental that compresses poorly
// is compressed again with the small-block encoder, and the smaller result
// is kept. The result is either data or within dst's backing array (or,
// rarely, a new array when dst is too short).
func (cp *compressor) compressBlock(dst, data []byte, incremental bool) ([]byte, byte) {
	out, code := cp.compressTo(dst[:0], data, cp.code, cp.enc)
	// Not compressible at all at level 3 (code none): the best level would
	// not save it either.
	if !incremental || code != compZstd || len(data) > smallBlock || len(out)*smallPoorRatio <= len(data) {
		return out, code
	}
	small := cp.smallEncoder()
	if small == cp.enc {
		return out, code
	}
	// Behind the first result, so both live in dst.
	if alt := small.EncodeAll(data, out[len(out):len(out)]); len(alt) < len(out) {
		return alt, compZstd
	}
	return out, code
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

// compressZstd is compress with zstd whatever the block default is.
func (cp *compressor) compressZstd(data []byte) ([]byte, byte) {
	return cp.compressTo(nil, data, compZstd, cp.enc)
}

// decompress reverses compress; rawLen is the expected plaintext size.
func (cp *compressor) decompress(data []byte, code byte, rawLen int) ([]byte, error) {
	switch code {
	case compNone:
		return data, nil
	case compZstd:
		out, err := cp.dec.DecodeAll(data, make([]byte, 0, rawLen))
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
	if cp.small != nil {
		cp.small.Close()
	}
}
