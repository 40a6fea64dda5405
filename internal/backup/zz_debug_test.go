package backup_test

import (
	"context"
	"sort"
	"testing"

	"github.com/pgguard/pgguard/internal/repo"
)

func TestZZDebugIncr(t *testing.T) {
	e := newEnv(t, nil)
	pg := e.startPG()
	e.ok("repo", "init")
	pg.Pgbench(t, "-i", "-s", "5", "-q")
	full := e.backup("full")
	pg.Pgbench(t, "-c", "2", "-t", "300", "-n")
	incr := e.backup("incr")
	r := e.openRepo()
	ctx := context.Background()
	mf, _ := r.LoadManifest(ctx, full.ID)
	mi, _ := r.LoadManifest(ctx, incr.ID)
	old := map[repo.BlockID]bool{}
	for _, f := range mf.Files {
		for _, b := range f.Blocks {
			old[b.ID] = true
		}
	}
	type fs struct {
		p string
		n int64
		c int
	}
	var out []fs
	for _, f := range mi.Files {
		var n int64
		c := 0
		for _, b := range f.Blocks {
			if !old[b.ID] {
				n += b.Length
				c++
				old[b.ID] = true
			}
		}
		if n > 0 {
			out = append(out, fs{f.Path, n, c})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n })
	for i, o := range out {
		if i < 25 {
			t.Logf("%s new raw %d in %d blocks", o.p, o.n, o.c)
		}
	}
}
