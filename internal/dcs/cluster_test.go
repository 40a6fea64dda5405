package dcs

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/pgguard/pgguard/internal/ha"
)

func TestBootstrapClaimHasOneWinnerAndOnlyItRecordsTheSystem(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	st := stores(t, names...)
	won, errs := race(names, func(n string) (bool, error) { return st[n].ClaimInit(tctx(t)) })
	var winner, loser string
	for i, n := range names {
		must(t, "claim by "+n, errs[i])
		switch {
		case won[i] && winner != "":
			t.Fatalf("both %s and %s won the bootstrap claim", winner, n)
		case won[i]:
			winner = n
		default:
			loser = n
		}
	}
	if winner == "" {
		t.Fatal("nobody won the bootstrap claim")
	}
	if c := load(t, st[winner]); c.InitClaim != winner || c.SystemID != "" {
		t.Fatalf("claim %q, system %q; want %s's claim and no system yet", c.InitClaim, c.SystemID, winner)
	}
	if err := st[loser].FinishInit(tctx(t), "666"); err == nil {
		t.Fatalf("%s finished a bootstrap it did not claim", loser)
	}
	must(t, "finish", st[winner].FinishInit(tctx(t), "7300000000000000001"))
	c := load(t, st[loser])
	if c.SystemID != "7300000000000000001" || c.InitClaim != "" {
		t.Fatalf("after the bootstrap: system %q, claim %q", c.SystemID, c.InitClaim)
	}
	if ok, err := st[loser].ClaimInit(tctx(t)); err != nil || ok {
		t.Fatalf("claim of a bootstrapped cluster: %v, %v", ok, err)
	}
	if err := st[winner].FinishInit(tctx(t), "666"); err == nil {
		t.Fatal("the system identifier was recorded twice")
	}
	if c := load(t, st[loser]); c.SystemID != "7300000000000000001" {
		t.Fatalf("system identifier replaced by %q", c.SystemID)
	}
}

func TestBootstrapClaimGoesWithItsClaimant(t *testing.T) {
	st := stores(t, "a", "b")
	if ok, err := st["a"].ClaimInit(tctx(t)); err != nil || !ok {
		t.Fatalf("a claim: %v, %v", ok, err)
	}
	if ok, err := st["b"].ClaimInit(tctx(t)); err != nil || ok {
		t.Fatalf("b claim while a holds it: %v, %v", ok, err)
	}
	if _, err := st["a"].cli.Revoke(tctx(t), st["a"].memberLease); err != nil { // a dies
		t.Fatal(err)
	}
	if ok, err := st["b"].ClaimInit(tctx(t)); err != nil || !ok {
		t.Fatalf("b claim after a's lease ended: %v, %v", ok, err)
	}
}

func TestSeedConfigNeverReplacesAConfiguration(t *testing.T) {
	st := stores(t, "a")
	seed := ha.DefaultClusterConfig()
	seed.Mode = ha.ModeSync
	must(t, "seed", st["a"].SeedConfig(tctx(t), seed))
	other := ha.DefaultClusterConfig()
	must(t, "seed again", st["a"].SeedConfig(tctx(t), other))
	if c := load(t, st["a"]); c.Config.Mode != ha.ModeSync || c.Config.Revision == 0 {
		t.Fatalf("config %+v, want the first seed (sync)", c.Config)
	}
}

func TestUpdateConfigLosesNoConcurrentEdit(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	st := stores(t, names...)
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st[n].UpdateConfig(tctx(t), func(cfg *ha.ClusterConfig) error {
				cfg.PausedNodes = ha.WithMember(cfg.PausedNodes, n, true)
				return nil
			})
		}()
	}
	wg.Wait()
	for i, n := range names {
		must(t, "edit by "+n, errs[i])
	}
	got := slices.Sorted(slices.Values(load(t, st["a"]).Config.PausedNodes))
	if !slices.Equal(got, names) {
		t.Fatalf("paused nodes %v after four concurrent edits, want %v", got, names)
	}
}

func TestUpdateConfigWritesNothingWhenTheEditFails(t *testing.T) {
	st := stores(t, "a")
	before := load(t, st["a"]).Config
	refused := errors.New("refused")
	if _, err := st["a"].UpdateConfig(tctx(t), func(*ha.ClusterConfig) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("edit error: %v, want the edit's own", err)
	}
	if _, err := st["a"].UpdateConfig(tctx(t), func(cfg *ha.ClusterConfig) error { cfg.SyncCount = 0; return nil }); err == nil {
		t.Fatal("an invalid configuration was accepted")
	}
	if after := load(t, st["a"]).Config; after.Revision != before.Revision {
		t.Fatalf("a failed edit wrote the config (revision %d → %d)", before.Revision, after.Revision)
	}
	cfg, err := st["a"].UpdateConfig(tctx(t), func(cfg *ha.ClusterConfig) error { cfg.SyncCount = 2; return nil })
	must(t, "valid edit", err)
	if got := load(t, st["a"]).Config; got.SyncCount != 2 || cfg.SyncCount != 2 {
		t.Fatalf("sync_count %d stored, %d returned; want 2", got.SyncCount, cfg.SyncCount)
	}
}
