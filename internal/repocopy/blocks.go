package repocopy

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pgguard/pgguard/internal/repo"
)

// pair loads backup id from both repositories, checks that the
// destination's is a copy of the source's, and records the id pairs.
func (c *copier) pair(ctx context.Context, id string) error {
	sm, err := c.src.LoadManifest(ctx, id)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	dm, err := c.dst.LoadManifest(ctx, id)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	conflict := func(why string) error {
		return &InputError{fmt.Errorf("backup %s is in both repositories, but the destination's is not a copy of the source's (%s); nothing was copied for it: delete it from %s or leave it out of the selection",
			id, why, c.dst.Backend().Location())}
	}
	sh, _ := json.Marshal(sm.Header)
	dh, _ := json.Marshal(dm.Header)
	if string(sh) != string(dh) {
		return conflict("headers differ")
	}
	if len(sm.Files) != len(dm.Files) {
		return conflict("file lists differ")
	}
	pairs := map[repo.BlockID]repo.BlockID{}
	for i := range sm.Files {
		sf, df := &sm.Files[i], &dm.Files[i]
		if sf.Path != df.Path || sf.Size != df.Size || len(sf.Blocks) != len(df.Blocks) {
			return conflict("file " + sf.Path + " differs")
		}
		for k, sb := range sf.Blocks {
			db := df.Blocks[k]
			if sb.Length != db.Length || sb.BlockOffset != db.BlockOffset {
				return conflict("file " + sf.Path + " differs")
			}
			if c.ids == nil {
				if sb.ID != db.ID {
					return conflict("block ids differ though the keys are the same")
				}
				continue
			}
			if prev, ok := pairs[sb.ID]; ok && prev != db.ID {
				return conflict("one source block pairs with two destination blocks")
			}
			pairs[sb.ID] = db.ID
		}
	}
	if c.ids != nil {
		c.mu.Lock()
		for s, d := range pairs {
			c.ids[s] = d
		}
		c.mu.Unlock()
	}
	return nil
}

// known returns the destination id of a source block when the destination
// is known to have it, without reading it.
func (c *copier) known(id repo.BlockID) (repo.BlockID, bool) {
	d := id
	if c.ids != nil {
		c.mu.Lock()
		var ok bool
		d, ok = c.ids[id]
		c.mu.Unlock()
		if !ok {
			return d, false
		}
	}
	return d, c.dst.HasBlock(d)
}

// copyBackup copies the blocks of one backup that the destination lacks,
// flushes them into saved, indexed packs, and then writes the translated
// manifest.
func (c *copier) copyBackup(ctx context.Context, id string) error {
	m, err := c.src.LoadManifest(ctx, id)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	var fetch []repo.BlockID
	seen := map[repo.BlockID]bool{}
	for _, f := range m.Files {
		for _, b := range f.Blocks {
			if seen[b.ID] {
				continue
			}
			seen[b.ID] = true
			if _, ok := c.known(b.ID); ok {
				c.st.blocksKnown.Add(1)
				c.st.blocksSkipped.Add(1)
				c.st.bytesSkipped.Add(b.Length)
				continue
			}
			fetch = append(fetch, b.ID)
		}
	}
	if len(fetch) > 0 {
		plan, err := c.src.NewBlockFetch(fetch)
		if err != nil {
			return fmt.Errorf("backup %s in the source: %w", id, err)
		}
		err = plan.Run(ctx, c.opts.Parallel, func(sid repo.BlockID, data []byte) error {
			did, stored, n, err := c.dst.PutBlock(ctx, data)
			if err != nil {
				return fmt.Errorf("store block in the destination: %w", err)
			}
			c.st.bytesRead.Add(int64(len(data)))
			if stored {
				c.st.blocksCopied.Add(1)
				c.st.bytesStored.Add(n)
			} else {
				c.st.blocksSkipped.Add(1)
				c.st.bytesSkipped.Add(int64(len(data)))
			}
			if c.ids != nil {
				c.mu.Lock()
				c.ids[sid] = did
				c.mu.Unlock()
			}
			c.progress()
			return nil
		})
		if err != nil {
			return fmt.Errorf("copy backup %s: %w", id, err)
		}
	}
	if err := c.dst.Flush(ctx); err != nil {
		return fmt.Errorf("copy backup %s: %w", id, err)
	}
	out := &repo.Manifest{Header: m.Header, Files: make([]repo.FileEntry, len(m.Files))}
	for i, f := range m.Files {
		refs := make([]repo.BlockRef, len(f.Blocks))
		for k, b := range f.Blocks {
			d, ok := c.known(b.ID)
			if !ok {
				return fmt.Errorf("copy backup %s: block %s of %s is not in the destination after copying it", id, b.ID.Short(), f.Path)
			}
			b.ID = d
			refs[k] = b
		}
		f.Blocks = refs
		f.Checksum = repo.FileChecksum(refs)
		out.Files[i] = f
	}
	if err := c.dst.PutManifest(ctx, out); err != nil {
		return fmt.Errorf("copy backup %s: %w", id, err)
	}
	return nil
}
