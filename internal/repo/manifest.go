package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/storage"
)

// Kind is the kind of a backup.
type Kind string

const (
	KindFull    Kind = "full"
	KindIncr    Kind = "incr"
	KindLogical Kind = "logical"
)

// Header describes a backup as a whole.
type Header struct {
	ID           string    `json:"id"`
	Kind         Kind      `json:"kind"`
	Parent       string    `json:"parent,omitempty"` // informational only
	StartTime    time.Time `json:"start_time"`
	StopTime     time.Time `json:"stop_time"`
	StartLSN     lsn.LSN   `json:"start_lsn"` // a JSON number in manifests (headerWire)
	StopLSN      lsn.LSN   `json:"stop_lsn"`
	Timeline     uint32    `json:"timeline"`
	SystemID     uint64    `json:"system_id,string"`
	PGVersion    int       `json:"pg_version"` // server_version_num, e.g. 170002
	DatabaseSize int64     `json:"database_size"`
	// Label is free text for people (e.g. the logical target "db.schema").
	Label string `json:"label,omitempty"`
	// Logical names exactly what a logical backup holds (nil for other
	// kinds, and for logical backups older than the field: their Label
	// says it).
	Logical *LogicalTarget `json:"logical,omitempty"`
}

// LogicalTarget is the database, and optionally the one schema or the one
// table in a schema, that a logical backup holds; names are exact (as in
// the catalog), not patterns.
type LogicalTarget struct {
	DB     string `json:"db"`
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	// Holds lists the tables (views, sequences, foreign tables) the
	// database had within the target when the dump started.
	Holds []HeldTable `json:"holds,omitempty"`
}

// HeldTable is one relation of a logical backup, with what a restore of
// that one relation must bring along: its indexes that back no constraint
// (constraints follow the table by name) and the sequences it owns.
type HeldTable struct {
	TableName
	Indexes   []string `json:"indexes,omitempty"`
	Sequences []string `json:"sequences,omitempty"`
}

// TableName is a schema-qualified relation name, exact.
type TableName struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// String quotes both parts as SQL does: "app"."Orders".
func (t TableName) String() string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(t.Schema) + "." + q(t.Name)
}

// Manifest is the complete description of one backup.
type Manifest struct {
	Header
	Files []FileEntry `json:"files"`
}

// FileEntry is one file of a backup. Its Blocks cover [0, Size) in order
// without gaps.
type FileEntry struct {
	Path  string    `json:"path"`
	Mode  uint32    `json:"mode"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	// Checksum is hex SHA-256 over each block's 32-byte id, uint64 LE
	// offset inside the block and uint64 LE length, in order. Block ids are
	// keyed hashes of content, so it pins the content exactly, and both an
	// incremental backup (without reading unchanged pages) and a delta
	// restore (from local pages, via Repository.BlockID) can compute it.
	Checksum string    `json:"checksum"`
	Blocks   BlockList `json:"blocks"`
}

// BlockRef places Length bytes of a block, starting at BlockOffset inside
// the block's plaintext, at Offset in the file. BlockOffset is non-zero only
// when an incremental backup keeps part of a larger earlier block.
type BlockRef struct {
	ID          BlockID
	Offset      int64
	Length      int64
	BlockOffset int64
}

// BlockList is stored compactly: base64 of, per block, 32-byte id, uvarint
// length, uvarint block offset (file offsets follow from the lengths).
type BlockList []BlockRef

func (bl BlockList) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(bl)*40)
	for _, r := range bl {
		b = append(b, r.ID[:]...)
		b = binary.AppendUvarint(b, uint64(r.Length))
		b = binary.AppendUvarint(b, uint64(r.BlockOffset))
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

func (bl *BlockList) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("block list: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("block list: %w", err)
	}
	var out BlockList
	var off int64
	for len(b) > 0 {
		if len(b) < 34 {
			return errors.New("block list truncated")
		}
		var r BlockRef
		copy(r.ID[:], b)
		b = b[32:]
		l, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("block list: bad length")
		}
		b = b[n:]
		bo, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("block list: bad block offset")
		}
		b = b[n:]
		r.Offset, r.Length, r.BlockOffset = off, int64(l), int64(bo)
		off += r.Length
		out = append(out, r)
	}
	*bl = out
	return nil
}

func blocksChecksum(bl []BlockRef) string {
	h := sha256.New()
	var n [16]byte
	for _, r := range bl {
		h.Write(r.ID[:])
		binary.LittleEndian.PutUint64(n[:8], uint64(r.BlockOffset))
		binary.LittleEndian.PutUint64(n[8:], uint64(r.Length))
		h.Write(n[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// File returns the entry for path, or nil.
func (m *Manifest) File(path string) *FileEntry {
	for i := range m.Files {
		if m.Files[i].Path == path {
			return &m.Files[i]
		}
	}
	return nil
}

// NewBackupID returns a backup id that sorts by start time: the second,
// then the millisecond in the suffix's first four hex digits (two backups
// can start within one second), then two random bytes.
func NewBackupID(start time.Time) string {
	start = start.UTC()
	return start.Format("20060102T150405Z") + "-" + fmt.Sprintf("%04x", start.Nanosecond()/int(time.Millisecond)) + randomHex(2)
}

var backupIDRe = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

func checkBackupID(id string) error {
	if !backupIDRe.MatchString(id) {
		return fmt.Errorf("backup id %q is malformed (want e.g. 20261123T104500Z-1a2b3c4d)", id)
	}
	return nil
}

func manifestName(id string) string { return "manifests/" + id }

// saveManifest writes m after checking every block it names is indexed.
func (r *Repository) saveManifest(ctx context.Context, m *Manifest) error {
	if err := checkBackupID(m.ID); err != nil {
		return err
	}
	x := r.idx.Load()
	for _, f := range m.Files {
		for _, b := range f.Blocks {
			if _, _, ok := x.lookup(b.ID); !ok {
				return fmt.Errorf("save manifest %s: block %s of %s is not in a saved pack; refusing to write a manifest that cannot be restored", m.ID, b.ID.Short(), f.Path)
			}
		}
	}
	blob, err := r.sealManifest(m)
	if err != nil {
		return fmt.Errorf("encode manifest %s: %w", m.ID, err)
	}
	if err := saveBytes(ctx, r.be, manifestName(m.ID), blob); err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	if err := r.commitHead(ctx, nil); err != nil {
		return fmt.Errorf("backup %s saved; %w", m.ID, err)
	}
	return nil
}

// sealManifest returns m's sealed object, as saveObject would make it
// of json.Marshal(m.wire()) with zstd, but compressed as it is encoded,
// file by file: the JSON of a large manifest (tens of bytes per block)
// is never held whole, only its compressed form, which is then sealed in
// place.
func (r *Repository) sealManifest(m *Manifest) ([]byte, error) {
	s := r.keys.sealer
	at := blobHeaderLen(s.code)
	refs := 0
	for i := range m.Files {
		refs += len(m.Files[i].Blocks)
	}
	out := &appendWriter{b: make([]byte, at+5, at+5+refs*40+len(m.Files)*160+4096)}
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(r.comp.level)),
		zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	raw, err := writeManifestJSON(zw, m)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	buf := out.b
	buf[at] = compZstd
	binary.LittleEndian.PutUint32(buf[at+1:], uint32(raw))
	buf = slices.Grow(buf, blobOverhead(s.code)-at)
	return s.sealAt(buf, 0, []byte(manifestName(m.ID))), nil
}

// writeManifestJSON writes json.Marshal(m.wire()) to w one file at a
// time, a file's block list as it is base64-encoded, and returns the
// number of bytes.
func writeManifestJSON(w io.Writer, m *Manifest) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 32<<10)
	hdr, err := json.Marshal(m.Header.wire())
	if err != nil {
		return 0, err
	}
	// The header object without its closing brace, then the files member
	// as json.Marshal places it after the embedded header's fields.
	bw.Write(hdr[:len(hdr)-1])
	bw.WriteString(`,"files":`)
	switch {
	case m.Files == nil:
		bw.WriteString("null}")
	case len(m.Files) == 0:
		bw.WriteString("[]}")
	default:
		for i := range m.Files {
			sep := byte(',')
			if i == 0 {
				sep = '['
			}
			bw.WriteByte(sep)
			if err := writeFileJSON(bw, &m.Files[i]); err != nil {
				return cw.n, err
			}
		}
		bw.WriteString("]}")
	}
	err = bw.Flush()
	return cw.n, err
}

// writeFileJSON writes json.Marshal(f), its block list (BlockList's
// MarshalJSON) base64-encoded as it goes instead of built whole: the
// list of a relation segment an incremental keeps in pieces is MiBs.
func writeFileJSON(w *bufio.Writer, f *FileEntry) error {
	for _, field := range []struct {
		name string
		v    any
	}{{"path", f.Path}, {"mode", f.Mode}, {"size", f.Size}, {"mtime", f.MTime}, {"checksum", f.Checksum}} {
		b, err := json.Marshal(field.v)
		if err != nil {
			return err
		}
		if field.name == "path" {
			w.WriteString(`{"path":`)
		} else {
			w.WriteString(`,"` + field.name + `":`)
		}
		w.Write(b)
	}
	w.WriteString(`,"blocks":"`)
	enc := base64.NewEncoder(base64.StdEncoding, w)
	var ref [32 + 2*binary.MaxVarintLen64]byte
	for _, r := range f.Blocks {
		b := append(ref[:0], r.ID[:]...)
		b = binary.AppendUvarint(b, uint64(r.Length))
		b = binary.AppendUvarint(b, uint64(r.BlockOffset))
		enc.Write(b)
	}
	enc.Close()
	_, err := w.WriteString(`"}`)
	return err
}

// countingWriter counts what it passes on.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// appendWriter appends what is written to b.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// LoadManifest reads the manifest of backup id.
func (r *Repository) LoadManifest(ctx context.Context, id string) (*Manifest, error) {
	if err := checkBackupID(id); err != nil {
		return nil, err
	}
	plain, err := r.loadObject(ctx, manifestName(id), manifestName(id))
	if storage.IsNotExist(err) {
		return nil, fmt.Errorf("backup %s not found in %s: %w", id, r.be.Location(), err)
	}
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	var w manifestWire // what Manifest.UnmarshalJSON does, without its second pass
	if err := json.Unmarshal(plain, &w); err != nil {
		return nil, fmt.Errorf("manifest %s is damaged: %w", id, err)
	}
	m := w.manifest()
	if m.ID != id {
		return nil, fmt.Errorf("manifest %s names itself %s", id, m.ID)
	}
	return &m, nil
}

// LoadHeader reads the header of backup id's manifest, without keeping
// its file list: choosing among many backups holds one list at a time.
func (r *Repository) LoadHeader(ctx context.Context, id string) (Header, error) {
	if err := checkBackupID(id); err != nil {
		return Header{}, err
	}
	plain, err := r.loadObject(ctx, manifestName(id), manifestName(id))
	if storage.IsNotExist(err) {
		return Header{}, fmt.Errorf("backup %s not found in %s: %w", id, r.be.Location(), err)
	}
	if err != nil {
		return Header{}, fmt.Errorf("load manifest: %w", err)
	}
	var w headerWire // the "files" member is skipped
	if err := json.Unmarshal(plain, &w); err != nil {
		return Header{}, fmt.Errorf("manifest %s is damaged: %w", id, err)
	}
	if w.ID != id {
		return Header{}, fmt.Errorf("manifest %s names itself %s", id, w.ID)
	}
	return w.header(), nil
}

// ListBackups returns the ids of all backups, oldest first.
func (r *Repository) ListBackups(ctx context.Context) ([]string, error) {
	var ids []string
	err := r.be.List(ctx, "manifests/", func(fi storage.FileInfo) error {
		id := strings.TrimPrefix(fi.Name, "manifests/")
		if checkBackupID(id) == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// DeleteManifest removes a backup's manifest. Its blocks stay until GC.
func (r *Repository) DeleteManifest(ctx context.Context, id string) error {
	if err := checkBackupID(id); err != nil {
		return err
	}
	if err := r.be.Remove(ctx, manifestName(id)); err != nil {
		return fmt.Errorf("delete backup %s: %w", id, err)
	}
	if err := r.be.Remove(ctx, annotationName(id)); err != nil && !storage.IsNotExist(err) {
		return fmt.Errorf("delete the annotation of backup %s: %w", id, err)
	}
	return r.commitHead(ctx, map[string]bool{manifestName(id): true})
}
