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
	code byte
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	lz4s sync.Pool
}

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
	// EncodeAll takes one of WithEncoderConcurrency encoders: 1 would make
	// every backup channel wait for a single compressor.
	cp.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true))
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

// compress returns the stored form of data and its compression code; it
// returns data itself with compNone when compression does not help.
func (cp *compressor) compress(data []byte) ([]byte, byte) {
	switch cp.code {
	case compZstd:
		out := cp.enc.EncodeAll(data, make([]byte, 0, len(data)))
		if len(out) < len(data) {
			return out, compZstd
		}
	case compLZ4:
		out := make([]byte, lz4.CompressBlockBound(len(data)))
		c := cp.lz4s.Get().(*lz4.Compressor)
		n, err := c.CompressBlock(data, out)
		cp.lz4s.Put(c)
		if err == nil && n > 0 && n < len(data) {
			return out[:n], compLZ4
		}
	}
	return data, compNone
}

// compressZstd is compress with zstd whatever the block default is.
func (cp *compressor) compressZstd(data []byte) ([]byte, byte) {
	out := cp.enc.EncodeAll(data, make([]byte, 0, len(data)))
	if len(out) < len(data) {
		return out, compZstd
	}
	return data, compNone
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
}
