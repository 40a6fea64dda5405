package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"sync/atomic"
)

var packHeaderAD = []byte("pack header")

// castagnoli is the CRC-32C table (hardware-accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// packer accumulates sealed blocks of one pack in memory.
type packer struct {
	buf     []byte
	entries []packEntry
	capHint int
}

func (p *packer) add(id BlockID, blob []byte, rawLen int, comp byte) {
	if p.buf == nil {
		p.buf = make([]byte, 0, max(p.capHint, len(blob)))
	}
	p.entries = append(p.entries, packEntry{
		ID: id, Offset: uint64(len(p.buf)), Length: uint32(len(blob)), RawLen: uint32(rawLen), Comp: comp,
	})
	p.buf = append(p.buf, blob...)
}

// addSealed seals stored (the stored form of a block of rawLen plaintext
// bytes) straight into the pack buffer and returns the blob's length.
// Sealing in place spares a blob-sized allocation and a copy per block.
func (p *packer) addSealed(s *sealer, id BlockID, stored []byte, rawLen int, comp byte, sum uint32) int {
	if p.buf == nil {
		p.buf = make([]byte, 0, max(p.capHint, len(stored)+blobOverhead(s.code)))
	}
	off := len(p.buf)
	p.buf = s.seal(p.buf, stored, id[:])
	n := len(p.buf) - off
	p.entries = append(p.entries, packEntry{
		ID: id, Offset: uint64(off), Length: uint32(n), RawLen: uint32(rawLen), Comp: comp, Sum: sum, HasSum: true,
	})
	return n
}

// finish appends the sealed header and its length and returns the pack.
func (p *packer) finish(s *sealer) ([]byte, *packMeta) {
	hdr := []byte{1}
	for _, e := range p.entries {
		hdr = appendEntry(hdr, e)
	}
	data := s.seal(p.buf, hdr, packHeaderAD)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(data)-len(p.buf)))
	meta := &packMeta{id: sha256.Sum256(data), entries: slices.Clone(p.entries)}
	return data, meta
}

// reset empties the packer. The finished pack owns the old buffer (it may
// still be uploading), so a new one is allocated on the next add.
func (p *packer) reset() {
	p.buf = nil
	p.entries = p.entries[:0]
}

// readPackHeader loads and decrypts the header at the end of a pack of size
// bytes.
func (r *Repository) readPackHeader(ctx context.Context, name string, size int64) ([]packEntry, error) {
	if size < 4 {
		return nil, fmt.Errorf("pack %s: %d bytes is too short", name, size)
	}
	tail, err := loadRange(ctx, r.be, name, size-4, 4)
	if err != nil {
		return nil, err
	}
	hlen := int64(binary.LittleEndian.Uint32(tail))
	if hlen > size-4 || hlen < 1 {
		return nil, fmt.Errorf("pack %s: header length %d does not fit %d bytes", name, hlen, size)
	}
	blob, err := loadRange(ctx, r.be, name, size-4-hlen, hlen)
	if err != nil {
		return nil, err
	}
	hdr, err := r.keys.sealer.open(nil, blob, packHeaderAD)
	if err != nil {
		return nil, fmt.Errorf("pack %s header: %w", name, err)
	}
	if len(hdr) < 1 || hdr[0] != 1 || (len(hdr)-1)%entrySize != 0 {
		return nil, fmt.Errorf("pack %s header: unknown version or bad length", name)
	}
	entries := make([]packEntry, 0, (len(hdr)-1)/entrySize)
	for b := hdr[1:]; len(b) > 0; b = b[entrySize:] {
		e := readEntry(b)
		if e.Offset+uint64(e.Length) > uint64(size-4-hlen) {
			return nil, fmt.Errorf("pack %s header: block %s lies outside the pack", name, e.ID.Short())
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// Stats counts what a writer did.
type Stats struct {
	BytesIn            int64 // plaintext bytes given to the writer
	BytesNew           int64 // bytes stored in new packs (compressed, encrypted)
	BlocksNew          int64
	BlocksDeduplicated int64 // blocks already stored, or kept by Skip: not stored again
	BytesDeduplicated  int64 // plaintext bytes of those blocks (for Skip: bytes kept)
}

type statCounters struct {
	bytesIn, bytesNew, blocksNew, blocksDedup, bytesDedup atomic.Int64
}

func (s *statCounters) snapshot() Stats {
	return Stats{
		BytesIn: s.bytesIn.Load(), BytesNew: s.bytesNew.Load(), BlocksNew: s.blocksNew.Load(),
		BlocksDeduplicated: s.blocksDedup.Load(), BytesDeduplicated: s.bytesDedup.Load(),
	}
}

// saveBlock stores data as a block unless a block with the same id is
// already indexed or on its way into a pack. data is not retained.
// incremental says the block belongs to an incremental backup (see
// compressBlock). The id is computed and checked before compressing, so a
// block already stored costs one hash and no compression.
func (r *Repository) saveBlock(ctx context.Context, data []byte, st *statCounters, incremental bool) (BlockID, error) {
	id := r.keys.blockID(data)
	st.bytesIn.Add(int64(len(data)))
	r.wmu.Lock()
	_, pending := r.pending[id]
	if pending || r.idx.Load().has(id) {
		r.wmu.Unlock()
		st.blocksDedup.Add(1)
		st.bytesDedup.Add(int64(len(data)))
		return id, nil
	}
	r.pending[id] = struct{}{}
	r.wmu.Unlock()

	// Sized for the largest block, so every pooled buffer fits every block.
	scratch := r.comp.getScratch(max(len(data), r.cfg.BlockSize))
	stored, comp := r.comp.compressBlock(*scratch, data, incremental)
	sum := crc32.Checksum(data, castagnoli)
	var n int
	err := r.toPack(ctx, func(p *packer) { n = p.addSealed(r.keys.sealer, id, stored, len(data), comp, sum) })
	r.comp.putScratch(scratch) // sealed into the pack: no longer referenced
	if err != nil {
		r.wmu.Lock()
		delete(r.pending, id)
		r.wmu.Unlock()
		return id, err
	}
	st.blocksNew.Add(1)
	st.bytesNew.Add(int64(n))
	return id, nil
}

// addBlob appends a sealed block to one of the packers and uploads the pack
// when it reaches the target size.
func (r *Repository) addBlob(ctx context.Context, id BlockID, blob []byte, rawLen int, comp byte) error {
	return r.toPack(ctx, func(p *packer) { p.add(id, blob, rawLen, comp) })
}

// toPack runs add on one of the packers and uploads the pack when it
// reaches the target size.
func (r *Repository) toPack(ctx context.Context, add func(*packer)) error {
	var p *packer
	select {
	case p = <-r.packers:
	case <-ctx.Done():
		return ctx.Err()
	}
	add(p)
	// A pack of tiny blocks is cut at maxIndexEntries too: an index
	// object never splits a pack, and holds at most that many entries.
	if int64(len(p.buf)) < r.cfg.PackSize && len(p.entries) < maxIndexEntries {
		r.packers <- p
		return nil
	}
	data, meta := p.finish(r.keys.sealer)
	p.reset()
	r.packers <- p
	return r.uploadPack(ctx, data, meta)
}

func (r *Repository) uploadPack(ctx context.Context, data []byte, meta *packMeta) error {
	if err := saveBytes(ctx, r.be, meta.id.name(), data); err != nil {
		r.wmu.Lock()
		for _, e := range meta.entries {
			delete(r.pending, e.ID)
		}
		r.wmu.Unlock()
		return fmt.Errorf("save pack: %w", err)
	}
	r.wmu.Lock()
	r.idx.Load().add(meta)
	r.unindexed = append(r.unindexed, meta)
	for _, e := range meta.entries {
		delete(r.pending, e.ID)
	}
	due, entries := len(r.unindexed) >= r.rt.IndexEvery, 0
	for _, p := range r.unindexed {
		entries += len(p.entries)
	}
	due = due || entries >= maxIndexEntries
	r.wmu.Unlock()
	// Index long backups as they go, so a crash loses little even without
	// RebuildIndex. Skipped while a Flush runs: it indexes them anyway.
	if due && r.flushMu.TryLock() {
		defer r.flushMu.Unlock()
		return r.indexUnindexed(ctx)
	}
	return nil
}

// indexUnindexed writes one index object for the saved packs no index lists
// yet. The caller holds flushMu.
func (r *Repository) indexUnindexed(ctx context.Context) error {
	r.wmu.Lock()
	packs := r.unindexed
	r.wmu.Unlock()
	if len(packs) == 0 {
		return nil
	}
	if _, err := r.saveIndex(ctx, packs); err != nil {
		return err
	}
	r.wmu.Lock()
	r.unindexed = r.unindexed[len(packs):]
	r.wmu.Unlock()
	return nil
}

// Flush uploads every partly filled pack, then writes an index object for
// all packs saved since the last flush. After Flush returns, every block
// saved so far is in a saved, indexed pack.
func (r *Repository) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	// Take every packer, so no block is half-added while we finish them.
	taken := make([]*packer, 0, cap(r.packers))
	defer func() {
		for _, p := range taken {
			r.packers <- p
		}
	}()
	for range cap(r.packers) {
		select {
		case p := <-r.packers:
			taken = append(taken, p)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, p := range taken {
		if len(p.entries) == 0 {
			continue
		}
		data, meta := p.finish(r.keys.sealer)
		p.reset()
		if err := r.uploadPack(ctx, data, meta); err != nil {
			return err
		}
	}
	return r.indexUnindexed(ctx)
}
