package repo

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"

	"github.com/pgguard/pgguard/internal/storage"
)

// This file is the part of the repository API that copying backups between
// repositories (internal/repocopy) needs: storing a block given as
// plaintext, asking whether a block is stored, writing a manifest built
// elsewhere, and telling whether two repositories share their block ids.
// Everything goes through the same write path as a backup (saveBlock,
// packs, Flush, saveManifest), so the format's write order holds.

// HasBlock reports whether a block with id is in a saved, indexed pack
// (including packs this process saved and has not indexed in an object
// yet).
func (r *Repository) HasBlock(id BlockID) bool { return r.idx.Load().has(id) }

// PutBlock stores data as one block of this repository, exactly as a
// backup would: the id is this repository's keyed hash of data, the block
// is compressed with this repository's settings and sealed under its key. A block with the same id
// that is already indexed or on its way into a pack is not stored again.
// It returns the id, whether the block was newly stored and how many bytes
// (compressed and sealed) it added to a pack. data is not retained. As
// with a backup, the block is only in a saved, indexed pack after Flush.
func (r *Repository) PutBlock(ctx context.Context, data []byte) (id BlockID, stored bool, storedBytes int64, err error) {
	if len(data) == 0 {
		return id, false, 0, errors.New("put block: empty block")
	}
	var st statCounters
	id, err = r.saveBlock(ctx, data, &st)
	if err != nil {
		return id, false, 0, err
	}
	return id, st.blocksNew.Load() > 0, st.bytesNew.Load(), nil
}

// PutManifest writes m, built by the caller (for example a manifest copied
// from another repository with its block ids translated), as the manifest
// of backup m.ID. It checks what Backup.Finish guarantees by construction:
// a valid id and kind, blocks that cover each file exactly, checksums that
// match the block lists, and every block in a saved, indexed pack (call
// Flush first). It refuses to replace an existing manifest.
func (r *Repository) PutManifest(ctx context.Context, m *Manifest) error {
	if err := checkBackupID(m.ID); err != nil {
		return fmt.Errorf("put manifest: %w", err)
	}
	switch m.Kind {
	case KindFull, KindIncr, KindLogical:
	default:
		return fmt.Errorf("put manifest %s: backup kind %q unknown", m.ID, m.Kind)
	}
	for _, f := range m.Files {
		var off int64
		for _, b := range f.Blocks {
			if b.Offset != off || b.Length <= 0 || b.BlockOffset < 0 {
				return fmt.Errorf("put manifest %s: file %s: block %s at %d+%d does not follow the previous one", m.ID, f.Path, b.ID.Short(), b.Offset, b.Length)
			}
			off += b.Length
		}
		if off != f.Size {
			return fmt.Errorf("put manifest %s: file %s: blocks cover %d bytes, the file has %d", m.ID, f.Path, off, f.Size)
		}
		if blocksChecksum(f.Blocks) != f.Checksum {
			return fmt.Errorf("put manifest %s: file %s: checksum does not match the block list", m.ID, f.Path)
		}
	}
	switch _, err := r.be.Stat(ctx, manifestName(m.ID)); {
	case err == nil:
		return fmt.Errorf("put manifest %s: the backup already exists in %s", m.ID, r.be.Location())
	case !storage.IsNotExist(err):
		return fmt.Errorf("put manifest %s: %w", m.ID, err)
	}
	return r.saveManifest(ctx, m)
}

// FileChecksum is the checksum a FileEntry with these blocks carries (see
// FileEntry.Checksum); a copy that changes block ids recomputes it.
func FileChecksum(blocks []BlockRef) string { return blocksChecksum(blocks) }

// SameBlockIDs reports whether r and other give equal content equal block
// ids, that is whether they share their master key (one repository, or a
// copy of its files). Blocks can then be looked up by their id in either
// without reading them. The keys themselves are compared in constant time
// and never leave the process.
func (r *Repository) SameBlockIDs(other *Repository) bool {
	return hmac.Equal(r.keys.idKey, other.keys.idKey)
}

// WALStoredSize is the size of the stored object of WAL file name (what a
// PutWAL of it wrote).
func (r *Repository) WALStoredSize(ctx context.Context, name string) (int64, error) {
	obj, err := walObjectName(name)
	if err != nil {
		return 0, err
	}
	fi, err := r.be.Stat(ctx, obj)
	if err != nil {
		return 0, fmt.Errorf("stat WAL %s: %w", name, err)
	}
	return fi.Size, nil
}
