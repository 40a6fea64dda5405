// Package logrestore fetches the archived WAL of a time range into a
// directory without recovering anything (RS-3): for replaying elsewhere,
// for pg_waldump, for handing to an auditor. It never writes to the
// repository and never starts a server.
package logrestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
)

// Selection is the result of Select.
type Selection struct {
	Segments []string // WAL segments, in archive order
	History  []string // history files of every timeline involved
	// Note says when the range reaches past what is archived.
	Note string
}

// Select picks the segments that hold the WAL written between from and to,
// from archive times: a segment holds WAL written before it was archived
// and after the previous segment was, so the range runs from the first
// segment archived at or after from to the first archived at or after to
// (or the newest, with a note). Archive latency can add one segment at
// either end; it never drops one.
func Select(infos []repo.WALInfo, from, to time.Time) (Selection, error) {
	if !to.After(from) {
		return Selection{}, fmt.Errorf("--to %s is not after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	var segs []repo.WALInfo
	for _, w := range infos {
		if !w.IsHistory() && len(w.Name) == 24 {
			segs = append(segs, w)
		}
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Archived.Before(segs[j].Archived) })
	first, last := -1, -1
	for i, s := range segs {
		if first < 0 && !s.Archived.Before(from) {
			first = i
		}
		if last < 0 && !s.Archived.Before(to) {
			last = i
		}
	}
	if first < 0 {
		return Selection{}, errors.New("no WAL archived at or after --from: nothing to restore for that range")
	}
	var sel Selection
	if last < 0 {
		last = len(segs) - 1
		sel.Note = fmt.Sprintf("the newest archived segment (%s, archived %s) is older than --to: WAL written after it is not archived yet",
			segs[last].Name, segs[last].Archived.Format(time.RFC3339))
	}
	timelines := map[string]bool{}
	for _, s := range segs[first : last+1] {
		sel.Segments = append(sel.Segments, s.Name)
		timelines[s.Timeline] = true
	}
	for _, w := range infos {
		if w.IsHistory() && timelines[w.Timeline] {
			sel.History = append(sel.History, w.Name)
		}
	}
	return sel, nil
}

// Run writes the selected files into dir (created if missing, must not
// hold files of the same names) and returns the selection. Every file is
// created new (O_EXCL) through an os.Root of dir, so a link planted in dir
// is never followed, even when run as root.
func Run(ctx context.Context, r *repo.Repository, from, to time.Time, dir string) (Selection, error) {
	infos, err := r.ListWALInfo(ctx)
	if err != nil {
		return Selection{}, err
	}
	sel, err := Select(infos, from, to)
	if err != nil {
		return sel, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sel, fmt.Errorf("target directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return sel, fmt.Errorf("target directory: %w", err)
	}
	defer root.Close()
	names := append(append([]string{}, sel.History...), sel.Segments...)
	for _, name := range names {
		if _, err := root.Lstat(name); err == nil {
			return sel, fmt.Errorf("%s already exists in %s: choose an empty directory", name, dir)
		}
	}
	for _, name := range names {
		data, err := r.GetWAL(ctx, name)
		if err != nil {
			return sel, fmt.Errorf("fetch %s: %w", name, err)
		}
		if err := writeNew(root, name, data); err != nil {
			return sel, fmt.Errorf("write %s into %s: %w", name, dir, err)
		}
	}
	return sel, nil
}

// writeNew writes data to name in root through a temporary file it creates
// (and so owns) and renames into place only if name still does not exist.
func writeNew(root *os.Root, name string, data []byte) error {
	tmp := "." + name + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if _, serr := root.Lstat(name); serr == nil {
			err = fmt.Errorf("%s appeared while writing: choose a directory nobody else writes to", name)
		}
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
	}
	return err
}
