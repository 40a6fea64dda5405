package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// WALWriter builds the WAL object of one segment while its bytes arrive
// (the agent's WAL stream writes each message it receives): the keyed tag
// and the zstd stream grow with the data, so that storing the completed
// segment, or its tail, costs a seal and a write instead of compressing
// up to 16 MiB at that moment. That moment is when archive_command waits
// for the segment, and a switchover's clean shutdown for archive_command.
//
// It stores the same objects as PutWAL and PutWALTail: a reader cannot
// tell them apart. A repository that does not compress with zstd, or data
// that does not compress, takes those paths instead.
type WALWriter struct {
	r   *Repository
	mac hash.Hash
	enc *zstd.Encoder // nil: the repository does not use zstd
	out appendWriter  // the zstd stream so far
	n   int           // bytes written
	err error
}

// NewWALWriter starts the object of a segment; Close releases it.
func (r *Repository) NewWALWriter() *WALWriter {
	w := &WALWriter{r: r, mac: r.keys.macs.Get().(hash.Hash)}
	w.mac.Reset()
	if r.comp.code != compZstd {
		return w
	}
	enc, err := zstd.NewWriter(&w.out, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(r.comp.level)),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(streamWindow))
	if err != nil {
		w.err = fmt.Errorf("zstd encoder: %w", err)
		return w
	}
	w.enc = enc
	return w
}

// Write adds the next bytes of the segment.
func (w *WALWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.mac.Write(p)
	w.n += len(p)
	if w.enc != nil {
		if _, err := w.enc.Write(p); err != nil {
			w.err = fmt.Errorf("zstd: %w", err)
			return 0, w.err
		}
	}
	return len(p), nil
}

// PutWAL stores the segment as PutWAL(name, data) would; data is every
// byte written, in order (for the rare object stored uncompressed). The
// writer is done afterwards.
func (w *WALWriter) PutWAL(ctx context.Context, name string, data []byte) error {
	if err := w.check(data); err != nil {
		return fmt.Errorf("put WAL %s: %w", name, err)
	}
	var comp []byte
	if w.enc != nil {
		if err := w.enc.Close(); err != nil {
			return fmt.Errorf("put WAL %s: zstd: %w", name, err)
		}
		comp = w.out.b
	}
	var tag BlockID
	w.mac.Sum(tag[:0])
	return w.r.putWAL(ctx, name, tag, func(buf []byte) []byte {
		if comp == nil {
			return w.r.sealObject(buf, "wal/"+name, data, w.r.comp.code)
		}
		return w.r.sealCompressed(buf, "wal/"+name, data, comp)
	})
}

// PutWALTail stores what was written so far as the tail of segment, as
// PutWALTail(segment, segSize, data) would; data is every byte written.
// Writing may go on afterwards.
func (w *WALWriter) PutWALTail(ctx context.Context, segment string, segSize int64, data []byte) error {
	if err := w.check(data); err != nil {
		return fmt.Errorf("put WAL tail %s: %w", segment, err)
	}
	if int64(len(data)) > segSize {
		return fmt.Errorf("put WAL tail %s: %d bytes of a %d-byte segment", segment, len(data), segSize)
	}
	if w.enc == nil {
		return w.r.PutWALTail(ctx, segment, segSize, data)
	}
	// The stream so far, ended by an empty last block: a complete frame
	// (the encoder writes no content size and no checksum), while the
	// encoder goes on with the open one.
	if err := w.enc.Flush(); err != nil {
		w.err = fmt.Errorf("zstd: %w", err)
		return fmt.Errorf("put WAL tail %s: %w", segment, w.err)
	}
	comp := append(slices.Clip(w.out.b), zstdEmptyLastBlock...)
	var tag BlockID
	w.mac.Sum(tag[:0])
	return w.r.putWALTail(ctx, segment, segSize, tag, func(buf []byte) []byte {
		return w.r.sealCompressed(buf, tailAAD(segment, segSize), data, comp)
	})
}

// zstdEmptyLastBlock is a raw block of no bytes with the last-block flag
// (RFC 8878, 3.1.1.2): what ends a frame that has no checksum.
var zstdEmptyLastBlock = []byte{1, 0, 0}

// Close releases the writer's encoder and key.
func (w *WALWriter) Close() {
	if w.enc != nil {
		w.enc.Close()
		w.enc = nil
	}
	if w.mac != nil {
		w.r.keys.macs.Put(w.mac)
		w.mac = nil
	}
	w.err = errWriterClosed
}

var errWriterClosed = errors.New("WAL writer closed")

func (w *WALWriter) check(data []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(data) != w.n {
		return fmt.Errorf("%d bytes given, %d written", len(data), w.n)
	}
	return nil
}

// sealCompressed is sealObject for a plaintext whose zstd stream is comp
// (compressed beforehand): the shorter of the two is sealed.
func (r *Repository) sealCompressed(dst []byte, ad string, plain, comp []byte) []byte {
	s := r.keys.sealer
	start := len(dst)
	at := start + blobHeaderLen(s.code)
	body, used := plain, compNone
	if len(comp) < len(plain) {
		body, used = comp, compZstd
	}
	dst = slices.Grow(dst, at-start+5+len(body)+blobOverhead(s.code))[:at+5]
	dst = append(dst, body...)
	dst[at] = used
	binary.LittleEndian.PutUint32(dst[at+1:], uint32(len(plain)))
	return s.sealAt(dst, start, []byte(ad))
}
