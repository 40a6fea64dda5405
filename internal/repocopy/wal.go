package repocopy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/repo"
)

// copyWAL copies the archived WAL the options select that the destination
// does not have by name.
func (c *copier) copyWAL(ctx context.Context, all, sel []string) error {
	names, err := c.src.ListWAL(ctx, "")
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	want := names
	if c.opts.WAL == WALNeeded {
		ranges, err := c.neededRanges(ctx, all, sel)
		if err != nil {
			return err
		}
		want = nil
		for _, n := range names {
			if strings.HasSuffix(n, ".history") || inRanges(lsn.SegmentPosition(n), ranges) {
				want = append(want, n)
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	have, err := c.dst.ListWAL(ctx, "")
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	var todo []string
	for _, n := range want {
		if _, ok := slices.BinarySearch(have, n); ok {
			c.st.walSkipped.Add(1)
			continue
		}
		todo = append(todo, n)
	}
	// The first failure stops the copy: nothing new starts, and the calls
	// in flight see their context cancelled.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(c.opts.Parallel, 1))
	for _, name := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // stopping: Wait or ctx has the error
			}
			return c.copyWALFile(gctx, name)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// copyWALFile copies one archived WAL file.
func (c *copier) copyWALFile(ctx context.Context, name string) error {
	data, err := c.src.GetWAL(ctx, name)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	c.st.bytesRead.Add(int64(len(data)))
	c.st.walBytesRead.Add(int64(len(data)))
	if err := c.dst.PutWAL(ctx, name, data); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if n, err := c.dst.WALStoredSize(ctx, name); err == nil {
		c.st.bytesStored.Add(n)
	}
	c.st.walCopied.Add(1)
	c.progress()
	return nil
}

// walRange is an inclusive range of WAL positions (log and segment, 16
// hex digits); hi "" is open.
type walRange struct{ lo, hi string }

func inRanges(pos string, rs []walRange) bool {
	if pos == "" {
		return false
	}
	for _, r := range rs {
		if pos >= r.lo && (r.hi == "" || pos <= r.hi) {
			return true
		}
	}
	return false
}

// neededRanges is, per selected physical backup, its start segment through
// the start segment of the next physical backup of the source (open for
// the newest, or when the next one starts earlier, as after a restore to
// an earlier point on a new timeline).
func (c *copier) neededRanges(ctx context.Context, all, sel []string) ([]walRange, error) {
	starts := map[string]string{} // backup id → start position; "" for logical
	startOf := func(id string) (string, error) {
		if p, ok := starts[id]; ok {
			return p, nil
		}
		m, err := c.src.LoadManifest(ctx, id)
		if err != nil {
			return "", fmt.Errorf("source: %w", err)
		}
		p := ""
		if m.Kind != repo.KindLogical {
			seg, err := backup.StartWAL(ctx, c.src, m)
			if err != nil {
				return "", err
			}
			p = lsn.SegmentPosition(seg)
		}
		starts[id] = p
		return p, nil
	}
	var out []walRange
	for _, id := range sel {
		lo, err := startOf(id)
		if err != nil {
			return nil, err
		}
		if lo == "" {
			continue
		}
		r := walRange{lo: lo}
		for _, next := range all[slices.Index(all, id)+1:] {
			p, err := startOf(next)
			if err != nil {
				return nil, err
			}
			if p != "" {
				if p >= lo {
					r.hi = p
				}
				break
			}
		}
		out = append(out, r)
	}
	return out, nil
}
