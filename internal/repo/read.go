package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pgguard/pgguard/internal/storage"
)

// ErrBlockMissing means a manifest names a block no index knows.
var ErrBlockMissing = errors.New("block not in any pack of the index")

// ErrCorrupt means stored data failed authentication or its id check.
var ErrCorrupt = errors.New("stored data is corrupted")

// LoadBlock fetches, authenticates, decompresses and checks one block.
func (r *Repository) LoadBlock(ctx context.Context, id BlockID) ([]byte, error) {
	pack, e, ok := r.idx.Load().lookup(id)
	if !ok {
		return nil, fmt.Errorf("block %s: %w (run rebuild-index, or the backup is damaged)", id.Short(), ErrBlockMissing)
	}
	blob, err := loadRange(ctx, r.be, pack.name(), int64(e.Offset), int64(e.Length))
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", id.Short(), err)
	}
	return r.openBlock(id, pack, e, blob)
}

func (r *Repository) openBlock(id BlockID, pack packID, e packEntry, blob []byte) ([]byte, error) {
	stored, err := r.keys.sealer.open(nil, blob, id[:])
	if err != nil {
		return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, err)
	}
	data, err := r.comp.decompress(stored, e.Comp, int(e.RawLen))
	if err != nil {
		return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, err)
	}
	if r.keys.blockID(data) != id {
		return nil, fmt.Errorf("block %s in pack %s: %w: content does not match its id", id.Short(), pack, ErrCorrupt)
	}
	return data, nil
}

// ReadFile returns the content of path in backup m; the caller must Close
// it (Close stops the prefetching goroutines). Blocks are fetched up
// to Runtime.Parallel at a time ahead of the reader; every block is
// authenticated and checked against its id. A block that several nearby
// pieces of the file refer to (an incremental keeps the unchanged pages of
// an older block around each changed one) is fetched once for all of them.
func (r *Repository) ReadFile(ctx context.Context, m *Manifest, path string) (io.ReadCloser, error) {
	f := m.File(path)
	if f == nil {
		return nil, fmt.Errorf("read %s: not in backup %s", path, m.ID)
	}
	ctx, cancel := context.WithCancel(ctx)
	results := make(chan pieceResult, r.rt.Parallel)
	go func() {
		defer close(results)
		recent := map[BlockID]*blockFuture{}
		for _, ref := range f.Blocks {
			fut, ok := recent[ref.ID]
			if !ok {
				if len(recent) >= recentBlocks {
					clear(recent)
				}
				fut = &blockFuture{done: make(chan struct{})}
				recent[ref.ID] = fut
				go func() {
					defer close(fut.done)
					fut.data, fut.err = r.LoadBlock(ctx, ref.ID)
				}()
			}
			select {
			case results <- pieceResult{fut: fut, ref: ref}:
			case <-ctx.Done():
				<-fut.done
				return
			}
		}
	}()
	return &fileReader{path: path, results: results, cancel: cancel}, nil
}

// recentBlocks is how many blocks a file reader keeps for the pieces that
// follow.
const recentBlocks = 16

type blockFuture struct {
	done chan struct{}
	data []byte
	err  error
}

type pieceResult struct {
	fut *blockFuture
	ref BlockRef
}

type fileReader struct {
	path    string
	results chan pieceResult
	cur     []byte
	err     error
	cancel  context.CancelFunc
	once    sync.Once
}

func (fr *fileReader) Read(p []byte) (int, error) {
	for len(fr.cur) == 0 {
		if fr.err != nil {
			return 0, fr.err
		}
		res, ok := <-fr.results
		if !ok {
			fr.err = io.EOF
			continue
		}
		<-res.fut.done
		data, err, ref := res.fut.data, res.fut.err, res.ref
		if err == nil && ref.BlockOffset+ref.Length > int64(len(data)) {
			err = fmt.Errorf("block %s has %d bytes, manifest wants %d at %d", ref.ID.Short(), len(data), ref.Length, ref.BlockOffset)
		}
		if err != nil {
			fr.err = fmt.Errorf("read %s: %w", fr.path, err)
			continue
		}
		fr.cur = data[ref.BlockOffset : ref.BlockOffset+ref.Length]
	}
	n := copy(p, fr.cur)
	fr.cur = fr.cur[n:]
	return n, nil
}

// Close stops prefetching.
func (fr *fileReader) Close() error {
	fr.once.Do(func() {
		fr.cancel()
		for res := range fr.results {
			<-res.fut.done
		}
	})
	return nil
}

// Problem is one defect found by Verify.
type Problem struct {
	BackupID string  // empty for a pack-level problem
	Path     string  // file in the backup
	Block    BlockID // zero for a pack-level problem
	Pack     string  // pack object name, when known
	Err      error
}

func (p Problem) String() string {
	switch {
	case p.BackupID != "" && p.Block != (BlockID{}):
		return fmt.Sprintf("backup %s, file %s, block %s: %v", p.BackupID, p.Path, p.Block.Short(), p.Err)
	case p.BackupID != "" && p.Path != "":
		return fmt.Sprintf("backup %s, file %s: %v", p.BackupID, p.Path, p.Err)
	case p.BackupID != "":
		return fmt.Sprintf("backup %s: %v", p.BackupID, p.Err)
	default:
		return fmt.Sprintf("pack %s: %v", p.Pack, p.Err)
	}
}

// Verify reads and checks every block of backup backupID, or of every
// backup when backupID is "" (then it also checks every pack's SHA-256, so
// damage outside referenced blocks is found too). Each defect is passed to
// report; Verify returns an error only when it could not finish.
func (r *Repository) Verify(ctx context.Context, backupID string, report func(Problem)) error {
	ids := []string{backupID}
	if backupID == "" {
		var err error
		if ids, err = r.ListBackups(ctx); err != nil {
			return err
		}
		if err := r.verifyPacks(ctx, report); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	checked := map[BlockID]error{}
	for _, id := range ids {
		m, err := r.LoadManifest(ctx, id)
		if err != nil {
			report(Problem{BackupID: id, Err: err})
			continue
		}
		type job struct {
			f   *FileEntry
			ref BlockRef
		}
		var jobs []job
		for i := range m.Files {
			f := &m.Files[i]
			var sum int64
			for _, ref := range f.Blocks {
				sum += ref.Length
				jobs = append(jobs, job{f, ref})
			}
			if sum != f.Size {
				report(Problem{BackupID: id, Path: f.Path, Err: fmt.Errorf("blocks cover %d bytes, file has %d", sum, f.Size)})
			}
			if blocksChecksum(f.Blocks) != f.Checksum {
				report(Problem{BackupID: id, Path: f.Path, Err: errors.New("checksum does not match the block list")})
			}
		}
		err = r.forEach(ctx, len(jobs), func(ctx context.Context, i int) error {
			j := jobs[i]
			mu.Lock()
			cerr, seen := checked[j.ref.ID]
			mu.Unlock()
			if !seen {
				_, cerr = r.LoadBlock(ctx, j.ref.ID)
				if cerr != nil && ctx.Err() != nil {
					return ctx.Err()
				}
				mu.Lock()
				checked[j.ref.ID] = cerr
				mu.Unlock()
			}
			if cerr != nil {
				p := Problem{BackupID: id, Path: j.f.Path, Block: j.ref.ID, Err: cerr}
				if pack, _, ok := r.idx.Load().lookup(j.ref.ID); ok {
					p.Pack = pack.name()
				}
				mu.Lock()
				report(p)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("verify %s: %w", id, err)
		}
	}
	return nil
}

// verifyPacks checks that every indexed pack exists and hashes to its id.
func (r *Repository) verifyPacks(ctx context.Context, report func(Problem)) error {
	packs := r.idx.Load().packIDs()
	var mu sync.Mutex
	return r.forEach(ctx, len(packs), func(ctx context.Context, i int) error {
		name := packs[i].name()
		data, err := loadAll(ctx, r.be, name)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && sha256.Sum256(data) != packs[i] {
			err = fmt.Errorf("%w: content does not match the pack id", ErrCorrupt)
		}
		if err != nil {
			if storage.IsNotExist(err) {
				err = fmt.Errorf("indexed pack is missing: %w", err)
			}
			mu.Lock()
			report(Problem{Pack: name, Err: err})
			mu.Unlock()
		}
		return nil
	})
}
