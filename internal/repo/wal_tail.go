package repo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/pgguard/pgguard/internal/storage"
)

// TailSuffix names the object holding the incomplete tail of a segment
// that the agent's stream writes: wal/<timeline>/<segment>.tail. It is
// not PostgreSQL's ".partial" (which a promotion archives under that
// name, with other content).
const TailSuffix = ".tail"

var tailMagic = []byte("PGT1")

// tailHeaderLen: magic, the tag of the stored bytes, the segment size.
const tailHeaderLen = 4 + 32 + 8

// PutWALTail stores the first bytes of an incomplete segment of segSize
// bytes, replacing any earlier tail of the same segment. GetWALTail gives
// it back zero-padded to the full size (what restore_command can hand
// PostgreSQL as is); the size is authenticated with the content.
func (r *Repository) PutWALTail(ctx context.Context, segment string, segSize int64, data []byte) error {
	if int64(len(data)) > segSize {
		return fmt.Errorf("put WAL tail %s: %d bytes of a %d-byte segment", segment, len(data), segSize)
	}
	return r.putWALTail(ctx, segment, segSize, r.keys.blockID(data), func(buf []byte) []byte {
		return r.sealObject(buf, tailAAD(segment, segSize), data, r.comp.code)
	})
}

// putWALTail stores the tail of segment whose content has the keyed tag;
// seal appends the sealed content to the header it is given.
func (r *Repository) putWALTail(ctx context.Context, segment string, segSize int64, tag BlockID, seal func([]byte) []byte) error {
	obj, err := walObjectName(segment + TailSuffix)
	if err != nil {
		return err
	}
	if segSize <= 0 || segSize > 1<<30 {
		return fmt.Errorf("put WAL tail %s: a segment size of %d bytes", segment, segSize)
	}
	buf := make([]byte, 0, tailHeaderLen)
	buf = append(buf, tailMagic...)
	buf = append(buf, tag[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(segSize))
	buf = seal(buf)
	if err := saveBytes(ctx, r.be, obj, buf); err != nil {
		return fmt.Errorf("put WAL tail %s: %w", segment, err)
	}
	return nil
}

func tailAAD(segment string, segSize int64) string {
	return "wal/" + segment + TailSuffix + "/" + strconv.FormatInt(segSize, 10)
}

// RemoveWALTail deletes the tail of a segment; a missing one is no error.
func (r *Repository) RemoveWALTail(ctx context.Context, segment string) error {
	err := r.RemoveWAL(ctx, segment+TailSuffix)
	if storage.IsNotExist(err) {
		return nil
	}
	return err
}

// GetWALTail returns the stored tail of a segment (zero-padded to the
// segment size) only when the segment's timeline is the last one the
// archive knows: a tail of a timeline that a later one forked from holds
// writes the later timeline does not have. Otherwise, and when there is
// no tail, the error is a storage not-exist error.
func (r *Repository) GetWALTail(ctx context.Context, segment string) ([]byte, error) {
	if err := HasNoLaterTimeline(ctx, r.be, segment); err != nil {
		return nil, err
	}
	obj, err := walObjectName(segment + TailSuffix)
	if err != nil {
		return nil, err
	}
	raw, err := loadAll(ctx, r.be, obj)
	if err != nil {
		return nil, fmt.Errorf("get WAL tail %s: %w", segment, err)
	}
	if len(raw) < tailHeaderLen || !bytes.Equal(raw[:4], tailMagic) {
		return nil, fmt.Errorf("get WAL tail %s: %w: not a pgguard WAL tail", segment, ErrCorrupt)
	}
	size := int64(binary.BigEndian.Uint64(raw[36:tailHeaderLen]))
	if size <= 0 || size > 1<<30 {
		return nil, fmt.Errorf("get WAL tail %s: %w: segment size %d", segment, ErrCorrupt, size)
	}
	data, err := r.openObject(raw[tailHeaderLen:], tailAAD(segment, size))
	if err != nil {
		return nil, fmt.Errorf("get WAL tail %s: %w: %w", segment, ErrCorrupt, err)
	}
	if id := r.keys.blockID(data); !hmac.Equal(id[:], raw[4:36]) || int64(len(data)) > size {
		return nil, fmt.Errorf("get WAL tail %s: %w: content does not match its tag", segment, ErrCorrupt)
	}
	out := make([]byte, size)
	copy(out, data)
	return out, nil
}

// HasNoLaterTimeline returns nil when the archive in be has no history
// file of the timeline after segment's, and a not-exist error otherwise
// (or the storage's error). It needs no key.
func HasNoLaterTimeline(ctx context.Context, be storage.Backend, segment string) error {
	if len(segment) < 8 {
		return fmt.Errorf("WAL file name %q: want a segment name", segment)
	}
	tli, err := strconv.ParseUint(segment[:8], 16, 32)
	if err != nil {
		return fmt.Errorf("WAL file name %q: %w", segment, err)
	}
	next := fmt.Sprintf("%08X.history", tli+1)
	obj, _ := walObjectName(next)
	_, err = be.Stat(ctx, obj)
	switch {
	case err == nil:
		return fmt.Errorf("tail of %s: timeline %08X followed it: %w", segment, tli+1, storage.ErrNotExist)
	case storage.IsNotExist(err):
		return nil
	}
	return err
}
