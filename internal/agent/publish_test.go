package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// publishStore counts member writes and fails keep-alives.
type publishStore struct {
	fakeStore
	published  int
	keepAlives int
	keepErr    error
	last       ha.Member
}

func (f *publishStore) PublishMember(_ context.Context, m ha.Member) error {
	f.published++
	f.last = m
	return nil
}

func (f *publishStore) KeepMemberAlive(context.Context) error {
	f.keepAlives++
	return f.keepErr
}

// A member lease that cannot be renewed (it ran out during a store cut,
// and the record went with it) makes the next loop write the record again,
// under a new lease, rather than leave the member invisible until its
// next change or refresh (seen in the chaos suite's link-flap trial,
// 2026-12-04: 13 failed renewals over 6 s).
func TestAFailedMemberRenewalRepublishesAtOnce(t *testing.T) {
	store := &publishStore{}
	a := testAgent(&fakeInstance{}, &store.fakeStore)
	a.store = store
	now := time.Now()
	o := ha.Observation{Self: "n1", Now: now, StoreOK: true, Settings: ha.Settings{TTL: 3 * time.Second, LoopInterval: 500 * time.Millisecond},
		Cluster: ha.Cluster{Leader: &ha.Leader{Name: "n2"}}}
	a.publish(context.Background(), o)
	if store.published != 1 {
		t.Fatalf("first loop wrote %d records, want 1", store.published)
	}
	o.Now = now.Add(2 * time.Second) // a heartbeat later, nothing changed: a keep-alive
	a.publish(context.Background(), o)
	if store.published != 1 || store.keepAlives != 1 {
		t.Fatalf("an unchanged record: %d writes and %d keep-alives, want 1 and 1", store.published, store.keepAlives)
	}
	store.keepErr = errors.New("etcdserver: requested lease not found")
	o.Now = now.Add(4 * time.Second)
	a.publish(context.Background(), o)
	o.Now = now.Add(4500 * time.Millisecond)
	a.publish(context.Background(), o)
	if store.published != 2 {
		t.Fatalf("after a failed keep-alive the next loop wrote %d records in all, want the record again (2)", store.published)
	}
}

// A node that is both isolated and low on disk shows both problems, the
// isolation first: it changes what the node does (it does not campaign),
// and a low disk must not hide it (a CI machine with less than 10% free
// once did, and the status said only "disk warn").
func TestPublishedProblemsAreNotHiddenByALowDisk(t *testing.T) {
	store := &publishStore{}
	a := testAgent(&fakeInstance{}, &store.fakeStore)
	a.store = store
	o := ha.Observation{Self: "n1", Now: time.Now(), StoreOK: true, Settings: ha.Settings{TTL: 3 * time.Second, LoopInterval: 500 * time.Millisecond},
		Cluster: ha.Cluster{Leader: &ha.Leader{Name: "n2"}},
		Local:   ha.Local{Running: true, Healthy: true, InRecovery: true, Disk: ha.DiskWarn, Isolated: "cannot reach any of ha.trusted_addresses"}}
	a.publish(context.Background(), o)
	p := store.last.Problem
	if !store.last.Isolated || !strings.HasPrefix(p, "isolated: cannot reach") || !strings.Contains(p, "; disk warn: free space below disk.warn") {
		t.Fatalf("published isolated=%v problem %q, want the isolation first and the disk after it", store.last.Isolated, p)
	}
}
