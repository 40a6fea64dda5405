package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

// The head is the repository's sealed record of what must be there (issue
// 13 item 5): a generation that only grows, and the backups and index
// objects as of that generation. Every change of the set of backups or
// index objects made by pgguard commits a new head; each host remembers the
// highest generation it saw. So whoever can write the storage but holds no
// key cannot, unnoticed, delete a backup or an index object (the head
// still lists it) nor roll the storage back to an older snapshot (the
// head's generation is older than a host remembers). Reported on the next
// open (HeadProblem) and by verify; the next commit adopts what is there,
// so one report per change.
type head struct {
	Generation uint64    `json:"generation"`
	Manifests  []string  `json:"manifests"`
	Indexes    []string  `json:"indexes"`
	Written    time.Time `json:"written"`
}

const headName = "head"

// loadHead reads the head; ok false when the repository has none yet.
func (r *Repository) loadHead(ctx context.Context) (head, bool, error) {
	var h head
	plain, err := r.loadObject(ctx, headName, headName)
	if storage.IsNotExist(err) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("read the repository head: %w", err)
	}
	if err := json.Unmarshal(plain, &h); err != nil {
		return h, false, fmt.Errorf("the repository head is damaged: %w", err)
	}
	return h, true, nil
}

// listed is what the storage holds of what the head records.
func (r *Repository) listed(ctx context.Context) (manifests, indexes []string, err error) {
	if manifests, err = r.listNames(ctx, "manifests/"); err != nil {
		return nil, nil, err
	}
	indexes, err = r.listNames(ctx, "index/")
	return manifests, indexes, err
}

// listNames lists the object names under prefix, without it.
func (r *Repository) listNames(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := r.be.List(ctx, prefix, func(fi storage.FileInfo) error {
		out = append(out, strings.TrimPrefix(fi.Name, prefix))
		return nil
	})
	slices.Sort(out)
	return out, err
}

// headProblems compares h with what the storage holds and with the
// generation this host remembers; removed are names pgguard itself just
// removed (not a problem).
func (r *Repository) headProblems(h head, found bool, manifests, indexes []string, removed map[string]bool) []string {
	var probs []string
	if seen := r.rememberedGeneration(); seen > 0 && (!found || h.Generation < seen) {
		if !found {
			probs = append(probs, fmt.Sprintf("the repository head is gone, and this host saw generation %d: the repository was rolled back or emptied outside pgguard", seen))
		} else {
			probs = append(probs, fmt.Sprintf("the repository head is at generation %d, and this host saw generation %d: the storage was rolled back to an older state", h.Generation, seen))
		}
	}
	missing := func(listed, have []string, prefix string) []string {
		var out []string
		for _, n := range listed {
			if !removed[prefix+n] && !slices.Contains(have, n) {
				out = append(out, n)
			}
		}
		return out
	}
	if m := missing(h.Manifests, manifests, "manifests/"); len(m) > 0 {
		probs = append(probs, fmt.Sprintf("%d backups the head lists are gone, deleted outside pgguard: %s", len(m), strings.Join(m, ", ")))
	}
	if ix := missing(h.Indexes, indexes, "index/"); len(ix) > 0 {
		probs = append(probs, fmt.Sprintf("%d index objects the head lists are gone, deleted or replaced outside pgguard", len(ix)))
	}
	return probs
}

// checkHead runs at open: what it finds is HeadProblem.
// The head is read again after the listings: a prune that committed in
// between (it removed what the first head listed) is not a problem, so
// the comparison is redone on the newer head.
func (r *Repository) checkHead(ctx context.Context) error {
	r.headMu.Lock()
	defer r.headMu.Unlock()
	var probs []string
	for range 3 {
		st, err := r.readHeadState(ctx, nil)
		if err != nil {
			return err
		}
		probs = st.problems
		again, found2, err := r.loadHead(ctx)
		if err != nil {
			return err
		}
		if found2 == st.found && again.Generation == st.head.Generation {
			if st.found {
				r.remember(st.head.Generation)
			}
			break
		}
	}
	r.headProblem = strings.Join(probs, "; ")
	return nil
}

// headState is the head as read, the backups and index objects listed
// after it, and what differs between them.
type headState struct {
	head               head
	found              bool
	manifests, indexes []string
	problems           []string
}

// readHeadState reads the head, lists the storage and compares them;
// removed are the objects (with their prefix) this process just removed
// on purpose, not counted as problems.
func (r *Repository) readHeadState(ctx context.Context, removed map[string]bool) (headState, error) {
	h, found, err := r.loadHead(ctx)
	if err != nil {
		return headState{}, err
	}
	manifests, indexes, err := r.listed(ctx)
	if err != nil {
		return headState{}, err
	}
	return headState{head: h, found: found, manifests: manifests, indexes: indexes,
		problems: r.headProblems(h, found, manifests, indexes, removed)}, nil
}

// commitHead records the backups and index objects the storage holds now
// as a new generation; removed are the objects (with their prefix) this
// process just removed on purpose. A change found that pgguard did not make
// is kept in HeadProblem and then adopted.
func (r *Repository) commitHead(ctx context.Context, removed map[string]bool) error {
	r.headMu.Lock()
	defer r.headMu.Unlock()
	st, err := r.readHeadState(ctx, removed)
	if err != nil {
		return err
	}
	if len(st.problems) > 0 {
		r.headProblem = strings.Join(st.problems, "; ")
	}
	next := head{Generation: max(st.head.Generation, r.rememberedGeneration()) + 1, Manifests: st.manifests, Indexes: st.indexes, Written: r.rt.Now().UTC()}
	plain, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := r.saveObject(ctx, headName, headName, plain, compZstd); err != nil {
		return fmt.Errorf("save the repository head: %w", err)
	}
	r.remember(next.Generation)
	return nil
}

// HeadProblem says what the last open or commit found changed outside
// pgguard ("" when nothing).
func (r *Repository) HeadProblem() string {
	r.headMu.Lock()
	defer r.headMu.Unlock()
	return r.headProblem
}

// generationFile is where this host remembers the repository's head
// generation ("" when there is no place for it: then only deletions are
// detected, not rollbacks).
func (r *Repository) generationFile() string {
	dir := r.rt.StateDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(base, "pgguard")
	}
	return filepath.Join(dir, "head-"+r.cfg.ID)
}

func (r *Repository) rememberedGeneration() uint64 {
	f := r.generationFile()
	if f == "" || r.cfg.ID == "" {
		return 0
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return 0
	}
	g, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return g
}

// remember keeps gen when it is higher than what this host saw (best
// effort: a host without a writable cache directory detects deletions
// only).
func (r *Repository) remember(gen uint64) {
	f := r.generationFile()
	if f == "" || r.cfg.ID == "" || gen <= r.rememberedGeneration() {
		return
	}
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return
	}
	tmp := f + ".tmp" + strconv.Itoa(os.Getpid())
	if os.WriteFile(tmp, []byte(strconv.FormatUint(gen, 10)+"\n"), 0o600) == nil {
		_ = os.Rename(tmp, f)
	}
}
