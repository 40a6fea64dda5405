// Package repocopy copies backups, and the WAL they need, from one
// repository into another (BK-5): for example from a local repository to
// S3 for an off-site copy.
//
// The two repositories usually have different master keys, so a block's id
// (a keyed hash of its content) differs between them. Every block is
// therefore re-identified: read from the source (authenticated,
// decompressed, checked against its source id), hashed under the
// destination's block-id key, and stored only when the destination does not
// have that id yet, compressed with the destination's settings and sealed
// under its key. Manifests are rewritten with the destination's ids and
// keep their backup ids and headers.
//
// Deduplication without reading: a backup already in both repositories
// pairs each source block id with its destination id (the two manifests
// list the same blocks in the same order). A later copy uses those pairs to
// skip every block the destination already has without fetching it from the
// source, so copying again stores and reads nothing, and copying a new
// incremental reads only the blocks no earlier copy paired. When both
// repositories share their key (a file-level clone), ids are equal and no
// pairing is needed.
//
// Crash safety follows the repository's write order: for each backup the
// blocks go into packs, packs are flushed and indexed, and only then is the
// manifest written; the WAL a backup needs is copied before its manifest. An
// interrupted copy leaves at worst packs that no manifest references; the
// next copy indexes them first (RebuildIndex) and reuses their blocks.
package repocopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
)

// WALMode says which archived WAL is copied.
type WALMode string

const (
	// WALNeeded copies, for each copied physical backup, the WAL from its
	// start segment through the start segment of the next backup of the
	// source (to the end of the archive for the newest), and every
	// timeline history file.
	WALNeeded WALMode = "needed"
	// WALAll copies every archived WAL and history file.
	WALAll WALMode = "all"
)

// Options choose what Copy copies. Exactly one of BackupIDs, All and
// Newest selects the backups.
type Options struct {
	BackupIDs []string
	All       bool
	Newest    int
	// Parents also copies the backups an incremental names as its parent,
	// and theirs. A manifest lists every block of every file, so an
	// incremental restores without its parent; this only keeps the chain
	// visible in the destination.
	Parents bool
	WAL     WALMode // default WALNeeded
	// Parallel is the number of source reads and destination writes in
	// flight; default 4.
	Parallel int
	// Progress, if set, is called after each block and WAL file with the
	// totals so far. It is called from several goroutines and must return
	// quickly.
	Progress func(Result)
}

// InputError is a request Copy refuses before writing anything: a
// selection or destination a person must change.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Validate reports a selection a person must fix (an *InputError).
func (o Options) Validate() error {
	if err := o.validate(); err != nil {
		return &InputError{err}
	}
	return nil
}

func (o Options) validate() error {
	n := 0
	if len(o.BackupIDs) > 0 {
		n++
	}
	if o.All {
		n++
	}
	if o.Newest != 0 {
		n++
	}
	switch {
	case n == 0:
		return errors.New("choose what to copy: --backup ID (repeatable), --all, or --newest N")
	case n > 1:
		return errors.New("give only one of --backup, --all and --newest")
	case o.Newest < 0:
		return fmt.Errorf("--newest %d: give a number of backups, 1 or more", o.Newest)
	}
	switch o.WAL {
	case "", WALNeeded, WALAll:
	default:
		return fmt.Errorf("--wal %q: use needed (the WAL the copied backups need) or all", o.WAL)
	}
	if o.Parallel < 0 || o.Parallel > 255 {
		return fmt.Errorf("parallel %d: use 1 to 255", o.Parallel)
	}
	return nil
}

// Result reports what a copy did.
type Result struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Backups are the selected backups, oldest first.
	Backups []string `json:"backups"`
	// Copied are the backups whose manifest this copy wrote; Present were
	// already in the destination.
	Copied  []string `json:"copied"`
	Present []string `json:"present"`
	// BlocksCopied were stored in the destination. BlocksSkipped were
	// already there: BlocksKnown of them without reading them from the
	// source (paired by an earlier copy), the rest after reading and
	// hashing them (for example blocks a killed copy had stored).
	BlocksCopied  int64 `json:"blocks_copied"`
	BlocksSkipped int64 `json:"blocks_skipped"`
	BlocksKnown   int64 `json:"blocks_skipped_unread"`
	// BytesRead is the plaintext read from the source (blocks and WAL);
	// BytesStored is what the copy added to the destination (sealed
	// blocks in packs, and WAL objects). After an interruption it also
	// counts blocks that were still in unsaved packs.
	BytesRead   int64 `json:"bytes_read"`
	BytesStored int64 `json:"bytes_stored"`
	// WALBytesRead is the part of BytesRead that is WAL.
	WALBytesRead int64 `json:"wal_bytes_read"`
	// BytesSkipped is the plaintext of the skipped blocks.
	BytesSkipped int64 `json:"bytes_skipped"`
	WALCopied    int   `json:"wal_copied"`
	WALSkipped   int   `json:"wal_skipped"`
	// PacksReused are packs of an earlier, interrupted copy (or backup)
	// that no index listed; they were indexed and their blocks reused.
	PacksReused int           `json:"packs_reused"`
	Duration    time.Duration `json:"-"`
	Seconds     float64       `json:"seconds"`
	Note        string        `json:"note,omitempty"`
}

// NothingNew reports whether the copy stored nothing: the destination
// already had everything selected.
func (r Result) NothingNew() bool {
	return len(r.Copied) == 0 && r.BlocksCopied == 0 && r.WALCopied == 0
}

// counters are a Result's numbers while the copy runs.
type counters struct {
	blocksCopied, blocksSkipped, blocksKnown, bytesRead, bytesStored, bytesSkipped atomic.Int64
	walCopied, walSkipped, walBytesRead                                            atomic.Int64
}

func (c *counters) fill(r *Result) {
	r.BlocksCopied, r.BlocksSkipped, r.BlocksKnown = c.blocksCopied.Load(), c.blocksSkipped.Load(), c.blocksKnown.Load()
	r.BytesRead, r.BytesStored, r.BytesSkipped = c.bytesRead.Load(), c.bytesStored.Load(), c.bytesSkipped.Load()
	r.WALCopied, r.WALSkipped, r.WALBytesRead = int(c.walCopied.Load()), int(c.walSkipped.Load()), c.walBytesRead.Load()
}

// copier is one Copy call.
type copier struct {
	src, dst *repo.Repository
	opts     Options
	res      Result
	st       counters

	mu sync.Mutex
	// ids maps source block ids to destination ids: pairs from manifests
	// in both repositories and blocks this copy handled. Nil when the two
	// repositories share their ids.
	ids map[repo.BlockID]repo.BlockID
}

// progress reports the totals so far to Options.Progress.
func (c *copier) progress() {
	if c.opts.Progress == nil {
		return
	}
	r := c.res
	c.st.fill(&r)
	c.opts.Progress(r)
}

// Copy copies the selected backups and their WAL from src into dst. Both
// must be open; Copy takes a shared lock on each (so no prune or GC runs
// meanwhile) and releases them before it returns. A selection naming a
// backup src does not have, or a backup id dst holds with other content,
// is refused before anything is written.
func Copy(ctx context.Context, src, dst *repo.Repository, opts Options) (Result, error) {
	start := time.Now()
	c := &copier{src: src, dst: dst, opts: opts}
	c.res.Backups, c.res.Copied, c.res.Present = []string{}, []string{}, []string{}
	c.res.Source, c.res.Destination = src.Backend().Location(), dst.Backend().Location()
	if err := opts.Validate(); err != nil {
		return c.res, err
	}
	if c.opts.WAL == "" {
		c.opts.WAL = WALNeeded
	}
	if c.opts.Parallel == 0 {
		c.opts.Parallel = 4
	}
	if src.Config().ID == dst.Config().ID && src.Backend().Location() == dst.Backend().Location() {
		return c.res, &InputError{fmt.Errorf("source and destination are the same repository (%s); give another destination", dst.Backend().Location())}
	}
	if !src.SameBlockIDs(dst) {
		c.ids = map[repo.BlockID]repo.BlockID{}
	}

	// Decide everything that can be refused before writing anything, not
	// even a lock object.
	all, err := src.ListBackups(ctx)
	if err != nil {
		return c.res, fmt.Errorf("source: %w", err)
	}
	sel, err := c.selectBackups(ctx, all)
	if err != nil {
		return c.res, err
	}
	if sel == nil {
		sel = []string{}
	}
	c.res.Backups = sel
	have, err := dst.ListBackups(ctx)
	if err != nil {
		return c.res, fmt.Errorf("destination: %w", err)
	}
	// Check that a selected backup the destination has is really a copy
	// of the source's, and pair the block ids of backups both hold. Other
	// backups are paired only when something is to be copied: their
	// manifests are read for nothing otherwise.
	selected, missing := map[string]bool{}, false
	for _, id := range sel {
		selected[id] = true
		missing = missing || !slices.Contains(have, id)
	}
	for _, id := range have {
		if !slices.Contains(all, id) || (!selected[id] && !missing) {
			continue
		}
		if err := c.pair(ctx, id); err != nil && selected[id] {
			return c.res, err
		}
	}

	srcLock, err := src.Lock(ctx, false)
	if err != nil {
		return c.res, fmt.Errorf("lock source repository %s: %w", src.Backend().Location(), err)
	}
	defer srcLock.Unlock(context.WithoutCancel(ctx))
	dstLock, err := dst.Lock(ctx, false)
	if err != nil {
		return c.res, fmt.Errorf("lock destination repository %s: %w", dst.Backend().Location(), err)
	}
	defer dstLock.Unlock(context.WithoutCancel(ctx))

	err = c.run(ctx, all, sel, have)
	c.st.fill(&c.res)
	c.res.Duration = time.Since(start)
	c.res.Seconds = c.res.Duration.Seconds()
	return c.res, err
}

func (c *copier) run(ctx context.Context, all, sel, have []string) error {
	// Packs an interrupted copy saved without an index become usable.
	rs, err := c.dst.RebuildIndex(ctx)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	c.res.PacksReused = rs.PacksAdded
	inDst := map[string]bool{}
	for _, id := range have {
		inDst[id] = true
	}
	if err := c.copyWAL(ctx, all, sel); err != nil {
		return err
	}
	for _, id := range sel {
		if inDst[id] {
			c.res.Present = append(c.res.Present, id)
			continue
		}
		if err := c.copyBackup(ctx, id); err != nil {
			return err
		}
		c.res.Copied = append(c.res.Copied, id)
	}
	if len(sel) == 0 {
		c.res.Note = "the source has no backups"
	}
	return nil
}

// selectBackups turns the options into backup ids, oldest first.
func (c *copier) selectBackups(ctx context.Context, all []string) ([]string, error) {
	var sel []string
	switch {
	case c.opts.All:
		sel = slices.Clone(all)
	case c.opts.Newest > 0:
		sel = slices.Clone(all[max(0, len(all)-c.opts.Newest):])
	default:
		for _, id := range c.opts.BackupIDs {
			if !slices.Contains(all, id) {
				hint := "the source has no backups"
				if len(all) > 0 {
					hint = "newest is " + all[len(all)-1] + "; 'pgguard backups' lists them"
				}
				return nil, &InputError{fmt.Errorf("backup %s is not in the source repository %s (%s)", id, c.src.Backend().Location(), hint)}
			}
			sel = append(sel, id)
		}
	}
	if c.opts.Parents {
		seen := map[string]bool{}
		for _, id := range sel {
			seen[id] = true
		}
		for i := 0; i < len(sel); i++ {
			m, err := c.src.LoadManifest(ctx, sel[i])
			if err != nil {
				return nil, fmt.Errorf("source: %w", err)
			}
			if p := m.Parent; p != "" && !seen[p] && slices.Contains(all, p) {
				seen[p] = true
				sel = append(sel, p)
			}
		}
	}
	slices.Sort(sel)
	return slices.Compact(sel), nil
}
