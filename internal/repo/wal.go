package repo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/pgguard/pgguard/internal/storage"
)

// ErrWALConflict means a WAL file of that name is already archived with
// different content.
var ErrWALConflict = errors.New("WAL file already archived with different content")

var walMagic = []byte("PGW1")

const walHeaderLen = 4 + 32

// walObjectName validates a WAL or history file name and returns where it
// is stored: wal/<timeline>/<name>.
func walObjectName(name string) (string, error) {
	if len(name) < 8 || len(name) > 64 {
		return "", fmt.Errorf("WAL file name %q: want a segment (24 hex digits) or history file name", name)
	}
	for _, c := range name {
		ok := (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || c == '.' || (c >= 'a' && c <= 'z')
		if !ok {
			return "", fmt.Errorf("WAL file name %q: unexpected character %q", name, c)
		}
	}
	tl := name[:8]
	for _, c := range tl {
		if !(c >= '0' && c <= '9') && !(c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("WAL file name %q: does not start with an 8-digit hex timeline", name)
		}
	}
	return "wal/" + tl + "/" + name, nil
}

// WALObject is where the WAL or history file name is stored in a
// repository's storage: its existence can be checked without the key.
func WALObject(name string) (string, error) { return walObjectName(name) }

// PutWAL archives a WAL segment or history file. Putting the same name
// again with identical content succeeds without writing; with different
// content it fails with ErrWALConflict.
func (r *Repository) PutWAL(ctx context.Context, name string, data []byte) error {
	return r.putWAL(ctx, name, r.keys.blockID(data), func(buf []byte) []byte {
		return r.sealObject(buf, "wal/"+name, data, r.comp.code)
	})
}

// putWAL stores the WAL object of name whose content has the keyed tag,
// unless it is stored already; seal appends the sealed content to the
// header it is given.
func (r *Repository) putWAL(ctx context.Context, name string, tag BlockID, seal func([]byte) []byte) error {
	obj, err := walObjectName(name)
	if err != nil {
		return err
	}
	old, err := loadRange(ctx, r.be, obj, 0, walHeaderLen)
	switch {
	case err == nil:
		if !bytes.Equal(old[:4], walMagic) {
			return fmt.Errorf("put WAL %s: stored object is not a pgguard WAL object", name)
		}
		if hmac.Equal(old[4:], tag[:]) {
			return nil
		}
		// A conflict is reported only for a stored object that
		// authenticates: one that does not (damaged, or planted by
		// whoever can write the storage but holds no key) is replaced
		// by this authentic content instead of blocking the archive.
		if _, gerr := r.GetWAL(ctx, name); gerr == nil {
			return fmt.Errorf("put WAL %s: %w (timeline or archive mix-up? check the other cluster writing here)", name, ErrWALConflict)
		} else if !errors.Is(gerr, ErrCorrupt) {
			return fmt.Errorf("put WAL %s: read the stored object to compare: %w", name, gerr)
		}
	case !storage.IsNotExist(err):
		return fmt.Errorf("put WAL %s: %w", name, err)
	}
	buf := make([]byte, 0, walHeaderLen)
	buf = append(buf, walMagic...)
	buf = append(buf, tag[:]...)
	buf = seal(buf)
	if err := saveBytes(ctx, r.be, obj, buf); err != nil {
		return fmt.Errorf("put WAL: %w", err)
	}
	return nil
}

// loadWAL loads the stored object of WAL file name: its header (magic and
// tag) checked for shape, the sealed content not yet opened.
func (r *Repository) loadWAL(ctx context.Context, name string) ([]byte, error) {
	obj, err := walObjectName(name)
	if err != nil {
		return nil, err
	}
	raw, err := loadAll(ctx, r.be, obj)
	if err != nil {
		return nil, fmt.Errorf("get WAL %s: %w", name, err)
	}
	if len(raw) < walHeaderLen || !bytes.Equal(raw[:4], walMagic) {
		return nil, fmt.Errorf("get WAL %s: %w: not a pgguard WAL object", name, ErrCorrupt)
	}
	return raw, nil
}

// GetWAL returns an archived WAL file, authenticated and checked.
func (r *Repository) GetWAL(ctx context.Context, name string) ([]byte, error) {
	raw, err := r.loadWAL(ctx, name)
	if err != nil {
		return nil, err
	}
	data, err := r.openObject(raw[walHeaderLen:], "wal/"+name)
	if err != nil {
		return nil, fmt.Errorf("get WAL %s: %w: %w", name, ErrCorrupt, err)
	}
	if id := r.keys.blockID(data); !hmac.Equal(id[:], raw[4:walHeaderLen]) {
		return nil, fmt.Errorf("get WAL %s: %w: content does not match its tag", name, ErrCorrupt)
	}
	return data, nil
}

// WriteWALTo writes an archived WAL file to w as it decompresses, and
// returns its size: a zstd-compressed segment (the default) is never held
// whole, only its stored object. In a short-lived
// wal-fetch, GetWAL's 16 MiB of fresh memory per segment cost more in
// page faults than the rest of the call (issue 16). The stored object is
// authenticated before anything is written (its seal); the content's tag
// is checked at the end, so on an error the caller discards what w got.
func (r *Repository) WriteWALTo(ctx context.Context, name string, w io.Writer) (int64, error) {
	raw, err := r.loadWAL(ctx, name)
	if err != nil {
		return 0, err
	}
	buf, err := r.keys.sealer.openInPlace(raw[walHeaderLen:], []byte("wal/"+name))
	if err == nil && len(buf) < 5 {
		err = errors.New("object too short")
	}
	if err != nil {
		return 0, fmt.Errorf("get WAL %s: %w: %w", name, ErrCorrupt, err)
	}
	size := int64(binary.LittleEndian.Uint32(buf[1:]))
	m := r.keys.macs.Get().(hash.Hash)
	defer r.keys.macs.Put(m)
	m.Reset()
	var src io.Reader
	if buf[0] == compZstd {
		d, err := zstd.NewReader(bytes.NewReader(buf[5:]), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return 0, fmt.Errorf("get WAL %s: zstd decoder: %w", name, err)
		}
		defer d.Close()
		src = d
	} else {
		plain, err := r.comp.decompress(buf[5:], buf[0], int(size))
		if err != nil {
			return 0, fmt.Errorf("get WAL %s: %w: %w", name, ErrCorrupt, err)
		}
		src = bytes.NewReader(plain)
	}
	var n int64
	chunk := make([]byte, 256<<10)
	for {
		k, rerr := src.Read(chunk)
		if k > 0 {
			if n+int64(k) > size {
				return n, fmt.Errorf("get WAL %s: %w: longer than the %d bytes its header says", name, ErrCorrupt, size)
			}
			m.Write(chunk[:k])
			if _, err := w.Write(chunk[:k]); err != nil {
				return n, fmt.Errorf("get WAL %s: write: %w", name, err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, fmt.Errorf("get WAL %s: %w: %w", name, ErrCorrupt, rerr)
		}
	}
	var id BlockID
	m.Sum(id[:0])
	if n != size || !hmac.Equal(id[:], raw[4:walHeaderLen]) {
		return n, fmt.Errorf("get WAL %s: %w: content does not match its tag", name, ErrCorrupt)
	}
	return n, nil
}

// ListWAL returns the archived WAL file names of timeline (8 hex digits),
// or of every timeline when timeline is "", sorted.
func (r *Repository) ListWAL(ctx context.Context, timeline string) ([]string, error) {
	prefix := "wal/"
	if timeline != "" {
		prefix += timeline + "/"
	}
	var names []string
	err := r.be.List(ctx, prefix, func(fi storage.FileInfo) error {
		names = append(names, fi.Name[strings.LastIndexByte(fi.Name, '/')+1:])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list WAL: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// RemoveWAL deletes an archived WAL file.
func (r *Repository) RemoveWAL(ctx context.Context, name string) error {
	obj, err := walObjectName(name)
	if err != nil {
		return err
	}
	if err := r.be.Remove(ctx, obj); err != nil {
		return fmt.Errorf("remove WAL %s: %w", name, err)
	}
	return nil
}
