package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync/atomic"
)

var packHeaderAD = []byte("pack header")

// castagnoli is the CRC-32C table (hardware-accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// packer fills one pack. The pack's bytes go to an unlinked temporary
// file (Runtime.TempDir), not memory: a pack is named by the SHA-256 of
// its bytes, so it can only be saved once complete, and Runtime.Parallel
// packs of 32 MiB held in memory, with as many being uploaded, were most
// of a backup's memory (issue 16). The upload reads the file back; a
// file unlinked before the kernel writes it back never reaches the disk.
type packer struct {
	dir     string
	f       *os.File // nil until the pack's first block
	w       *bufio.Writer
	sum     hash.Hash // SHA-256 of the bytes so far
	size    int64
	entries []packEntry
	sealed  []byte // one block's blob, reused
}

// packWriteBuffer is each packer's write buffer.
const packWriteBuffer = 128 << 10

func (p *packer) start() error {
	if p.f != nil {
		return nil
	}
	f, err := tempFile(p.dir, "pack")
	if err != nil {
		return err
	}
	p.f = f
	if p.w == nil {
		p.w, p.sum = bufio.NewWriterSize(f, packWriteBuffer), sha256.New()
	} else {
		p.w.Reset(f)
		p.sum.Reset()
	}
	return nil
}

func (p *packer) write(b []byte) error {
	p.sum.Write(b)
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("write the pack's temporary file: %w", err)
	}
	p.size += int64(len(b))
	return nil
}

// add appends a sealed block.
func (p *packer) add(id BlockID, blob []byte, rawLen int, comp byte) error {
	if err := p.start(); err != nil {
		return err
	}
	off := p.size
	if err := p.write(blob); err != nil {
		return err
	}
	p.entries = append(p.entries, packEntry{
		ID: id, Offset: uint64(off), Length: uint32(len(blob)), RawLen: uint32(rawLen), Comp: comp,
	})
	return nil
}

// addSealed seals stored (the stored form of a block of rawLen plaintext
// bytes) and appends it; it returns the blob's length.
func (p *packer) addSealed(s *sealer, id BlockID, stored []byte, rawLen int, comp byte, sum uint32) (int, error) {
	if err := p.start(); err != nil {
		return 0, err
	}
	off := p.size
	p.sealed = s.seal(p.sealed[:0], stored, id[:])
	if err := p.write(p.sealed); err != nil {
		return 0, err
	}
	n := len(p.sealed)
	p.entries = append(p.entries, packEntry{
		ID: id, Offset: uint64(off), Length: uint32(n), RawLen: uint32(rawLen), Comp: comp, Sum: sum, HasSum: true,
	})
	return n, nil
}

// finishedPack is a complete pack in its temporary file, to be uploaded
// and closed.
type finishedPack struct {
	f    *os.File
	size int64
	meta *packMeta
}

func (fp *finishedPack) close() { fp.f.Close() }

// finish appends the sealed header and its length and hands the pack
// over; the packer starts a new one on its next add.
func (p *packer) finish(s *sealer) (*finishedPack, error) {
	hdr := []byte{1}
	for _, e := range p.entries {
		hdr = appendEntry(hdr, e)
	}
	blob := s.seal(nil, hdr, packHeaderAD)
	blob = binary.LittleEndian.AppendUint32(blob, uint32(len(blob)))
	err := p.write(blob)
	if err == nil {
		if err = p.w.Flush(); err != nil {
			err = fmt.Errorf("write the pack's temporary file: %w", err)
		}
	}
	fp := &finishedPack{f: p.f, size: p.size, meta: &packMeta{entries: slices.Clone(p.entries)}}
	p.sum.Sum(fp.meta.id[:0])
	p.f, p.size, p.entries = nil, 0, p.entries[:0]
	if err != nil {
		fp.close()
		return nil, err
	}
	return fp, nil
}

// discard drops the pack being filled (after an error).
func (p *packer) discard() {
	if p.f != nil {
		p.f.Close()
	}
	p.f, p.size, p.entries = nil, 0, p.entries[:0]
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
// already indexed or on its way into a pack. data is not retained. The
// id is computed and checked before compressing, so a
// block already stored costs one hash and no compression.
func (r *Repository) saveBlock(ctx context.Context, data []byte, st *statCounters) (BlockID, error) {
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
	stored, comp := r.comp.compressBlock(*scratch, data)
	sum := crc32.Checksum(data, castagnoli)
	var n int
	err := r.toPack(ctx, func(p *packer) (err error) {
		n, err = p.addSealed(r.keys.sealer, id, stored, len(data), comp, sum)
		return err
	})
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
	return r.toPack(ctx, func(p *packer) error { return p.add(id, blob, rawLen, comp) })
}

// toPack runs add on one of the packers and uploads the pack when it
// reaches the target size.
func (r *Repository) toPack(ctx context.Context, add func(*packer) error) error {
	var p *packer
	select {
	case p = <-r.packers:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := add(p); err != nil {
		r.dropPack(p)
		r.packers <- p
		return err
	}
	// A pack of tiny blocks is cut at maxIndexEntries too: an index
	// object never splits a pack, and holds at most that many entries.
	if p.size < r.cfg.PackSize && len(p.entries) < maxIndexEntries {
		r.packers <- p
		return nil
	}
	fp, err := r.finishPack(p)
	r.packers <- p
	if err != nil {
		return err
	}
	return r.uploadPack(ctx, fp)
}

// finishPack finishes p's pack; on failure its blocks are no longer
// pending (a later write stores them again).
func (r *Repository) finishPack(p *packer) (*finishedPack, error) {
	entries := slices.Clone(p.entries)
	fp, err := p.finish(r.keys.sealer)
	if err != nil {
		r.unpend(entries)
		return nil, err
	}
	return fp, nil
}

// dropPack discards what p holds after a failed write.
func (r *Repository) dropPack(p *packer) {
	r.unpend(p.entries)
	p.discard()
}

func (r *Repository) unpend(entries []packEntry) {
	r.wmu.Lock()
	for _, e := range entries {
		delete(r.pending, e.ID)
	}
	r.wmu.Unlock()
}

func (r *Repository) uploadPack(ctx context.Context, fp *finishedPack) error {
	defer fp.close()
	meta := fp.meta
	if err := r.be.Save(ctx, meta.id.name(), io.NewSectionReader(fp.f, 0, fp.size), fp.size); err != nil {
		r.wmu.Lock()
		for _, e := range meta.entries {
			delete(r.pending, e.ID)
		}
		r.wmu.Unlock()
		return fmt.Errorf("save pack %s: %w", meta.id.name(), err)
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
		fp, err := r.finishPack(p)
		if err != nil {
			return err
		}
		if err := r.uploadPack(ctx, fp); err != nil {
			return err
		}
	}
	return r.indexUnindexed(ctx)
}
