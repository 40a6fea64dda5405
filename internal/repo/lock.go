package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

// ErrLocked means another process holds a conflicting lock.
var ErrLocked = errors.New("repository is locked")

// LockInfo is the plaintext content of a lock object.
type LockInfo struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Exclusive bool      `json:"exclusive"`
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
}

func (li LockInfo) String() string {
	kind := "shared"
	if li.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock held by pid %d on %s since %s (refreshed %s)",
		kind, li.PID, li.Host, li.Created.UTC().Format(time.RFC3339), li.Refreshed.UTC().Format(time.RFC3339))
}

// Lock is a lock this process holds on the repository.
type Lock struct {
	r    *Repository
	name string

	mu   sync.Mutex
	info LockInfo

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Lock takes a shared (backup) or exclusive (GC, prune) lock and then
// reloads the index, so the index is current for the holder. The lock is
// refreshed every Runtime.LockRefresh until Unlock. A conflict returns an
// error wrapping ErrLocked that says who holds the lock and since when.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	now := r.rt.Now().UTC()
	l := &Lock{r: r, name: "locks/" + randomHex(16),
		info: LockInfo{Host: r.rt.Host, PID: r.rt.PID, Exclusive: exclusive, Created: now, Refreshed: now},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.save(ctx); err != nil {
		return nil, err
	}
	holders, err := r.Locks(ctx)
	if err == nil {
		for name, li := range holders {
			if name == l.name || r.stale(li) || (!exclusive && !li.Exclusive) {
				continue
			}
			err = fmt.Errorf("%w: %s (%s); wait for it to finish, or remove the lock if that process is gone", ErrLocked, li, name)
			break
		}
	}
	if err == nil {
		err = r.LoadIndex(ctx)
	}
	if err != nil {
		if rerr := r.be.Remove(context.WithoutCancel(ctx), l.name); rerr != nil && !storage.IsNotExist(rerr) {
			err = errors.Join(err, fmt.Errorf("remove own lock %s: %w", l.name, rerr))
		}
		return nil, err
	}
	r.lockMu.Lock()
	r.locks = append(r.locks, l)
	r.lockMu.Unlock()
	go l.refreshLoop()
	return l, nil
}

func (r *Repository) stale(li LockInfo) bool {
	return r.rt.Now().Sub(li.Refreshed) > r.rt.LockStaleAfter
}

// Locks returns every lock object, stale or not, by object name.
func (r *Repository) Locks(ctx context.Context) (map[string]LockInfo, error) {
	var names []string
	if err := r.be.List(ctx, "locks/", func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	out := map[string]LockInfo{}
	for _, name := range names {
		b, err := loadAll(ctx, r.be, name)
		if storage.IsNotExist(err) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, err
		}
		var li LockInfo
		if err := json.Unmarshal(b, &li); err != nil {
			return nil, fmt.Errorf("lock %s is damaged (remove it if no pgguard runs): %w", name, err)
		}
		out[name] = li
	}
	return out, nil
}

// RemoveStaleLocks removes lock objects not refreshed within the stale
// timeout and returns how many it removed.
func (r *Repository) RemoveStaleLocks(ctx context.Context) (int, error) {
	locks, err := r.Locks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for name, li := range locks {
		if !r.stale(li) {
			continue
		}
		if err := r.be.Remove(ctx, name); err != nil && !storage.IsNotExist(err) {
			return n, fmt.Errorf("remove stale lock: %w", err)
		}
		n++
	}
	return n, nil
}

func (l *Lock) save(ctx context.Context) error {
	l.mu.Lock()
	b, err := json.Marshal(l.info)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := saveBytes(ctx, l.r.be, l.name, b); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

// Refresh rewrites the lock with the current time so others do not take it
// for stale.
func (l *Lock) Refresh(ctx context.Context) error {
	l.mu.Lock()
	l.info.Refreshed = l.r.rt.Now().UTC()
	l.mu.Unlock()
	return l.save(ctx)
}

// Info describes the lock.
func (l *Lock) Info() LockInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

func (l *Lock) refreshLoop() {
	defer close(l.done)
	t := time.NewTicker(l.r.rt.LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.r.rt.LockRefresh)
			// A failed refresh is retried at the next tick; the lock only
			// goes stale after LockStaleAfter without any success.
			_ = l.Refresh(ctx)
			cancel()
		}
	}
}

// Unlock stops refreshing and removes the lock object.
func (l *Lock) Unlock(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.r.lockMu.Lock()
		for i, o := range l.r.locks {
			if o == l {
				l.r.locks = append(l.r.locks[:i], l.r.locks[i+1:]...)
				break
			}
		}
		l.r.lockMu.Unlock()
		if rerr := l.r.be.Remove(ctx, l.name); rerr != nil && !storage.IsNotExist(rerr) {
			err = fmt.Errorf("unlock %s: %w", l.name, rerr)
		}
	})
	return err
}

func (r *Repository) holdsExclusive() bool {
	r.lockMu.Lock()
	defer r.lockMu.Unlock()
	for _, l := range r.locks {
		if l.Info().Exclusive {
			return true
		}
	}
	return false
}
