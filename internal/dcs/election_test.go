package dcs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

func TestAcquireLeaderHasOneWinnerAmongConcurrentCampaigners(t *testing.T) {
	names := []string{"n0", "n1", "n2", "n3", "n4"}
	st := stores(t, names...)
	for round := range 3 {
		won, errs := race(names, func(n string) (bool, error) {
			ok, _, err := st[n].AcquireLeader(tctx(t))
			return ok, err
		})
		var winners []string
		for i, n := range names {
			must(t, "acquire by "+n, errs[i])
			if won[i] {
				winners = append(winners, n)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: winners %v, want exactly one", round, winners)
		}
		w := winners[0]
		if c := load(t, st[w]); c.Leader == nil || c.Leader.Name != w {
			t.Fatalf("round %d: %s won but the leader key reads %+v", round, w, c.Leader)
		}
		for _, n := range names {
			if n == w {
				continue
			}
			if _, err := st[n].RenewLeader(tctx(t), 0); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("round %d: %s lost to %s but its renewal returned %v, want ErrNotLeader", round, n, w, err)
			}
		}
		if _, err := st[w].RenewLeader(tctx(t), 0); err != nil {
			t.Fatalf("round %d: the winner %s cannot renew: %v", round, w, err)
		}
		must(t, "release", st[w].ReleaseLeader(tctx(t)))
	}
}

func TestAcquireLeaderTakesBackItsOwnKeyFromAnEarlierRun(t *testing.T) {
	st := stores(t, "a", "b")
	earlier := st["a"]
	ok, _, err := earlier.AcquireLeader(tctx(t))
	if err != nil || !ok {
		t.Fatalf("first acquire: %v, %v", ok, err)
	}
	// The agent restarts: a new store with the same name and no lease.
	restarted := openStore(t, clusterOf(earlier), "a")
	ok, sent, err := restarted.AcquireLeader(tctx(t))
	if err != nil || !ok {
		t.Fatalf("acquire by the restarted agent: %v, %v; want the key back", ok, err)
	}
	if sent.IsZero() || sent.After(time.Now()) {
		t.Errorf("acquire returned the send instant %v", sent)
	}
	if _, err := earlier.RenewLeader(tctx(t), 0); !errors.Is(err, ErrNotLeader) {
		t.Errorf("the earlier run renewed a key now bound to another lease: %v", err)
	}
	if _, err := restarted.RenewLeader(tctx(t), 0); err != nil {
		t.Errorf("the restarted agent cannot renew the key it took back: %v", err)
	}
	if ok, _, err := st["b"].AcquireLeader(tctx(t)); err != nil || ok {
		t.Errorf("b acquired a held key: %v, %v", ok, err)
	}
}

func TestRenewLeaderByANonHolderFailsAndRecordsNoOptime(t *testing.T) {
	st := stores(t, "a", "b")
	if _, err := st["b"].RenewLeader(tctx(t), 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("renewal without ever acquiring: %v, want ErrNotLeader", err)
	}
	if ok, _, err := st["a"].AcquireLeader(tctx(t)); err != nil || !ok {
		t.Fatalf("a acquire: %v, %v", ok, err)
	}
	// b now has a lease of its own, but the key is not bound to it.
	if ok, _, err := st["b"].AcquireLeader(tctx(t)); err != nil || ok {
		t.Fatalf("b acquire: %v, %v, want a refusal", ok, err)
	}
	if _, err := st["b"].RenewLeader(tctx(t), lsn.LSN(0x3000060)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("renewal by b, which holds a lease but not the key: %v, want ErrNotLeader", err)
	}
	if c := load(t, st["a"]); c.Optime != 0 {
		t.Fatalf("a non-holder's renewal recorded optime %s", c.Optime)
	}
	before := time.Now()
	sent, err := st["a"].RenewLeader(tctx(t), lsn.LSN(0x3000100))
	must(t, "renewal by the holder", err)
	if sent.Before(before) || sent.After(time.Now()) {
		t.Errorf("renewal send instant %v outside the call", sent)
	}
	if c := load(t, st["a"]); c.Optime != lsn.LSN(0x3000100) {
		t.Errorf("optime after the holder's renewal: %s, want 0/3000100", c.Optime)
	}
	// The granted TTL, the same at every read (status derives from it how
	// old a live member's record may be), not the time left.
	for range 3 {
		if d, err := st["b"].LeaderLease(tctx(t)); err != nil || d != 10*time.Second {
			t.Fatalf("leader lease %v, %v; want the granted 10s", d, err)
		}
		time.Sleep(600 * time.Millisecond) // letting the lease run down between reads, which must not show
	}
}

func TestReleaseLeaderByANonHolderLeavesTheKey(t *testing.T) {
	st := stores(t, "a", "b")
	if ok, _, err := st["a"].AcquireLeader(tctx(t)); err != nil || !ok {
		t.Fatalf("a acquire: %v, %v", ok, err)
	}
	held := load(t, st["a"]).Leader
	must(t, "release by b", st["b"].ReleaseLeader(tctx(t)))
	if c := load(t, st["a"]); c.Leader == nil || *c.Leader != *held {
		t.Fatalf("after b's release the leader key is %+v, want %+v untouched", c.Leader, held)
	}
	if _, err := st["a"].RenewLeader(tctx(t), 0); err != nil {
		t.Fatalf("a cannot renew after b's release: %v", err)
	}
	lease := st["a"].leaderLease
	must(t, "release by a", st["a"].ReleaseLeader(tctx(t)))
	if c := load(t, st["a"]); c.Leader != nil {
		t.Fatalf("after a's release the leader key is %+v", c.Leader)
	}
	ttl, err := st["a"].cli.TimeToLive(tctx(t), lease)
	if err != nil || ttl.TTL != -1 {
		t.Errorf("the released leader lease still lives (ttl %v, %v): release must revoke it", ttl, err)
	}
	if _, err := st["a"].RenewLeader(tctx(t), 0); !errors.Is(err, ErrNotLeader) {
		t.Errorf("renewal after release: %v, want ErrNotLeader", err)
	}
	if ok, _, err := st["b"].AcquireLeader(tctx(t)); err != nil || !ok {
		t.Errorf("b cannot take the released key: %v, %v", ok, err)
	}
}

func TestLeaderKeyGoesWithItsLease(t *testing.T) {
	st := stores(t, "b")
	st["a"] = openStoreTTL(t, clusterOf(st["b"]), "a", shortTTL)
	if ok, _, err := st["a"].AcquireLeader(tctx(t)); err != nil || !ok {
		t.Fatalf("a acquire: %v, %v", ok, err)
	}
	// Nobody renews: the key must go within the 2 s TTL (plus etcd's
	// lease check granularity).
	eventually(t, "leader key gone with its lease", 10*time.Second, func() (bool, string) {
		c := load(t, st["b"])
		return c.Leader == nil, fmt.Sprintf("leader %+v", c.Leader)
	})
	if _, err := st["a"].RenewLeader(tctx(t), 0); !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("renewal of an expired lease: %v, want ErrNotLeader saying it expired", err)
	}
	if d, err := st["b"].LeaderLease(tctx(t)); err != nil || d != 0 {
		t.Errorf("leader lease with no leader: %v, %v; want 0", d, err)
	}
	if ok, _, err := st["b"].AcquireLeader(tctx(t)); err != nil || !ok {
		t.Errorf("b cannot take the expired key: %v, %v", ok, err)
	}
}

func TestSetSyncReplacesOnlyTheRecordItRead(t *testing.T) {
	st := stores(t, "a", "b")
	want := ha.SyncState{Leader: "a", Members: []string{"b"}, Quorum: 1}
	if err := st["a"].SetSync(tctx(t), nil, want); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("sync write with no leader: %v, want ErrNotLeader", err)
	}
	if ok, _, err := st["a"].AcquireLeader(tctx(t)); err != nil || !ok {
		t.Fatalf("a acquire: %v, %v", ok, err)
	}
	must(t, "first sync write", st["a"].SetSync(tctx(t), nil, want))
	c1 := load(t, st["a"])
	if c1.Sync == nil || !slices.Equal(c1.Sync.Members, []string{"b"}) || c1.Sync.Revision == 0 {
		t.Fatalf("sync after the first write: %+v", c1.Sync)
	}

	wider := ha.SyncState{Leader: "a", Members: []string{"b", "c"}, Quorum: 2}
	ce := mustChange(t, "write believing there is no sync key", st["a"].SetSync(tctx(t), nil, wider), "sync")
	if ce.Read != 0 || ce.Now != c1.Sync.Revision {
		t.Errorf("change reported %+v, want read 0, now %d", ce, c1.Sync.Revision)
	}
	must(t, "write on the record read", st["a"].SetSync(tctx(t), c1.Sync, wider))
	c2 := load(t, st["a"])
	if !slices.Equal(c2.Sync.Members, []string{"b", "c"}) || c2.Sync.Quorum != 2 {
		t.Fatalf("sync after the widening: %+v", c2.Sync)
	}

	narrower := ha.SyncState{Leader: "a", Members: []string{"c"}, Quorum: 1}
	mustChange(t, "write on a stale record", st["a"].SetSync(tctx(t), c1.Sync, narrower), "sync")
	if c := load(t, st["a"]); !slices.Equal(c.Sync.Members, []string{"b", "c"}) || c.Sync.Revision != c2.Sync.Revision {
		t.Fatalf("a stale write changed the sync key: %+v", c.Sync)
	}
	if err := st["b"].SetSync(tctx(t), c2.Sync, narrower); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("sync write by a non-leader on the current record: %v, want ErrNotLeader", err)
	}
	must(t, "release", st["a"].ReleaseLeader(tctx(t)))
	if err := st["a"].SetSync(tctx(t), c2.Sync, narrower); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("sync write after release: %v, want ErrNotLeader", err)
	}
}

func TestReserveTimelineOnlyUpwardsAndOnlyByTheLeader(t *testing.T) {
	st := stores(t, "a", "b")
	if err := st["a"].ReserveTimeline(tctx(t), 2); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("reservation with no leader: %v, want ErrNotLeader", err)
	}
	if ok, _, err := st["a"].AcquireLeader(tctx(t)); err != nil || !ok {
		t.Fatalf("a acquire: %v, %v", ok, err)
	}
	must(t, "reserve 2", st["a"].ReserveTimeline(tctx(t), 2))
	if err := st["a"].ReserveTimeline(tctx(t), 2); err == nil || !strings.Contains(err.Error(), "already reserved") {
		t.Fatalf("reserving 2 twice: %v, want a refusal", err)
	}
	must(t, "reserve 3", st["a"].ReserveTimeline(tctx(t), 3))
	if err := st["b"].ReserveTimeline(tctx(t), 4); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("reservation by a non-leader: %v, want ErrNotLeader", err)
	}
	if c := load(t, st["a"]); c.MaxTimeline != 3 {
		t.Fatalf("reserved timeline %d, want 3", c.MaxTimeline)
	}
}

// A hand-over is seen only on the switchover request it was made for: a
// record left by an earlier request with the same candidate must not tell
// a later candidate that it has every record (it would then promote
// without the archive after a primary that died mid-switchover).
func TestHandOverLeaderMarksOnlyItsOwnSwitchover(t *testing.T) {
	st := stores(t, "a", "b")
	ctx := tctx(t)
	if ok, _, err := st["a"].AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("a acquire: %v, %v", ok, err)
	}
	must(t, "request switchover", st["a"].RequestSwitchover(ctx, ha.Switchover{From: "a", To: "b"}))
	sw := load(t, st["b"]).Switchover
	if sw == nil || sw.Revision == 0 || sw.HandedOver != 0 {
		t.Fatalf("a new request reads as %+v, want a revision and no hand-over", sw)
	}
	must(t, "hand over by b, who does not hold the key", st["b"].HandOverLeader(ctx, *sw, 0x5000028))
	if c := load(t, st["b"]); c.Leader == nil || c.Switchover.HandedOver != 0 {
		t.Fatalf("a non-holder's hand-over changed the store: leader %+v, switchover %+v", c.Leader, c.Switchover)
	}
	must(t, "hand over by a", st["a"].HandOverLeader(ctx, *sw, 0x5000028))
	c := load(t, st["b"])
	if c.Leader != nil || c.Switchover == nil || c.Switchover.HandedOver != 0x5000028 {
		t.Fatalf("after the hand-over: leader %+v, switchover %+v; want no leader and hand-over at 0/5000028", c.Leader, c.Switchover)
	}
	// The request is done; a later one to the same candidate starts
	// without a hand-over.
	must(t, "clear", st["b"].ClearSwitchover(ctx, c.Revision))
	if ok, _, err := st["a"].AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("a acquire again: %v, %v", ok, err)
	}
	must(t, "request again", st["a"].RequestSwitchover(ctx, ha.Switchover{From: "a", To: "b"}))
	if sw := load(t, st["b"]).Switchover; sw == nil || sw.HandedOver != 0 {
		t.Fatalf("a later request reads as %+v: the earlier hand-over must not count for it", sw)
	}
}
