package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// fakeInstance is the local PostgreSQL as the handlers see it. Methods a
// test does not expect panic (the embedded nil interface).
type fakeInstance struct {
	instance
	running    bool
	startErr   error
	checkpoint lsn.LSN
	rewindErr  error
	historyErr error
	stopped    []string
	onStop     func()
	// stopGate, when set, holds a clean stop past its shutdown
	// checkpoint (the control file says "shut down") until it is closed:
	// a postmaster still archiving its last segment.
	stopGate chan struct{}
	// stoppedAs is the control file's state once stopped ("" = shut
	// down; "in production": a stop that ended without its checkpoint).
	stoppedAs string

	mu       sync.Mutex // running, stopped, stopping: Stop may run beside the step
	stopping bool
}

func (f *fakeInstance) Running() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}
func (f *fakeInstance) Stop(mode string, _ time.Duration) error {
	if f.onStop != nil {
		f.onStop()
	}
	f.mu.Lock()
	f.stopped, f.stopping = append(f.stopped, mode), true
	f.mu.Unlock()
	if f.stopGate != nil {
		<-f.stopGate
	}
	f.mu.Lock()
	f.running, f.stopping = false, false
	f.mu.Unlock()
	return nil
}

// stops is what Stop was asked for so far.
func (f *fakeInstance) stops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stopped)
}
func (f *fakeInstance) Start(context.Context, time.Duration) error {
	if f.startErr != nil {
		return f.startErr
	}
	f.mu.Lock()
	f.running = true
	f.mu.Unlock()
	return nil
}
func (f *fakeInstance) ControlFile(ctx context.Context) (pg.Control, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running && !f.stopping {
		return pg.Control{State: ha.ControlInProduction}, nil
	}
	return f.Controldata(ctx)
}
func (f *fakeInstance) WriteConfig(bool, *pg.Upstream) error { return nil }
func (f *fakeInstance) SetRestoreOff(bool)                   {}
func (f *fakeInstance) RestoreOff() bool                     { return false }
func (f *fakeInstance) PinPeer(pg.Upstream) error            { return nil }
func (f *fakeInstance) SuperConninfo(u pg.Upstream) string   { return "host=" + u.Host }
func (f *fakeInstance) Connect(context.Context) (*pgx.Conn, error) {
	return nil, errors.New("no server in a unit test")
}
func (f *fakeInstance) Controldata(context.Context) (pg.Control, error) {
	state := ha.ControlShutDown
	if f.stoppedAs != "" {
		state = f.stoppedAs
	}
	return pg.Control{State: state, CheckpointLSN: f.checkpoint}, nil
}
func (f *fakeInstance) Rewind(context.Context, pg.Upstream) (string, error) { return "", f.rewindErr }
func (f *fakeInstance) RemoveHistoryAbove(int) ([]int, error)               { return nil, f.historyErr }
func (f *fakeInstance) CompleteShortCopies() ([]string, error)              { return nil, nil }

// fakeStore records what the handlers write.
type fakeStore struct {
	clusterStore
	mu       sync.Mutex
	history  []dcs.Event
	cleared  []int64
	renewErr error
	// releaseBlocks makes ReleaseLeader wait for its context, as a
	// store without quorum does.
	releaseBlocks bool
	handedOver    []string // HandOverLeader calls: "candidate at checkpoint"
	handOverErr   error
}

func (f *fakeStore) AppendHistory(_ context.Context, e dcs.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history = append(f.history, e)
	return nil
}
func (f *fakeStore) ReleaseLeader(ctx context.Context) error {
	if f.releaseBlocks {
		<-ctx.Done() // a store without quorum
		return ctx.Err()
	}
	return nil
}
func (f *fakeStore) HandOverLeader(_ context.Context, sw ha.Switchover, checkpoint lsn.LSN) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handedOver = append(f.handedOver, fmt.Sprintf("%s at %s", sw.To, checkpoint))
	return f.handOverErr
}

func (f *fakeStore) handOvers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.handedOver)
}
func (f *fakeStore) RenewLeader(context.Context, lsn.LSN) (time.Time, error) {
	return time.Now(), f.renewErr
}
func (f *fakeStore) ClearSwitchover(_ context.Context, read int64) error {
	f.cleared = append(f.cleared, read)
	return nil
}

func testAgent(inst *fakeInstance, store *fakeStore) *Agent {
	cfg := config.Config{Name: "n1"}
	cfg.HA.LoopInterval = config.Duration(500 * time.Millisecond)
	a := &Agent{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), pg: inst, store: store}
	a.cb = &callbacks{a: a}
	return a
}

// observation of n1 leading, with n2 a published standby.
func leading(mem ha.Memory) ha.Observation {
	return ha.Observation{Self: "n1", Now: time.Now(), StoreOK: true, Memory: mem,
		Local: ha.Local{Data: ha.DataValid, SystemID: "42", ControlState: ha.ControlShutDown},
		Cluster: ha.Cluster{SystemID: "42", Revision: 77, Leader: &ha.Leader{Name: "n1"},
			Switchover: &ha.Switchover{From: "n1", To: "n2"},
			Members: map[string]ha.Member{"n1": {Name: "n1", Host: "127.0.0.1", Port: 5432, Role: ha.RolePrimary},
				"n2": {Name: "n2", Host: "127.0.0.1", Port: 5433, Role: ha.RoleStandby}}}}
}

func TestHandOverStopsWaitsAndLeavesTheDecisionToDecide(t *testing.T) {
	for _, tc := range []struct {
		name     string
		received []lsn.LSN
		want     []ha.Kind
	}{
		{"the candidate receives the shutdown checkpoint: the key is released", []lsn.LSN{0x400, 0x480, 0x600}, []ha.Kind{ha.ReleaseLeader}},
		{"the candidate stays behind: the switchover is withdrawn and the primary starts again", []lsn.LSN{0x400}, []ha.Kind{ha.ClearSwitchover, ha.StartPrimary}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := &fakeInstance{running: true, checkpoint: 0x500}
			store := &fakeStore{}
			a := testAgent(inst, store)
			a.mem = ha.Memory{HoldsLeader: true, LastRenew: time.Now()}
			i := 0
			a.candidatePosition = func(context.Context, string) (lsn.LSN, error) {
				p := tc.received[min(i, len(tc.received)-1)]
				i++
				return p, nil
			}
			a.handOverWait = 100 * time.Millisecond
			o := leading(a.mem)
			if err := a.run(context.Background(), o, ha.Action{Kind: ha.HandOver, Target: "n2"}); err != nil {
				t.Fatal(err)
			}
			if s := inst.stops(); len(s) != 1 || s[0] != "fast" {
				t.Fatalf("the primary must stop cleanly once: %v", s)
			}
			if len(store.history) == 0 || store.history[0].Action != ha.EventSwitchoverStop {
				t.Fatalf("history %+v: the clean stop must be recorded", store.history)
			}
			if !a.mem.HoldsLeader {
				t.Fatal("the hand-over step itself must not give up the key: Decide does")
			}
			next := leading(a.mem)
			next.Local.Running = inst.Running()
			if got := ha.Decide(next).Kinds(); !equalKinds(got, tc.want) {
				t.Fatalf("next plan %v, want %v (hand-over memory %+v)", got, tc.want, a.mem.HandOver)
			}
		})
	}
}

// TestHandOverReleasesBeforeThePostmasterExits: past the shutdown
// checkpoint the old primary takes no write, so once the candidate has
// that checkpoint the key goes at once, while the postmaster still
// archives its last segment; the release step then waits for the exit,
// so that the next loop sees PostgreSQL down.
func TestHandOverReleasesBeforeThePostmasterExits(t *testing.T) {
	store := &fakeStore{}
	a, inst, gate := handedOverStopHeld(t, store)
	if !inst.Running() || a.mem.HandOver == nil || !a.mem.HandOver.CaughtUp {
		t.Fatalf("after the hand-over step: running %v, hand-over %+v; want the postmaster still stopping and the candidate caught up",
			inst.Running(), a.mem.HandOver)
	}
	next := leading(a.mem)
	next.Local.Running, next.Local.ShutDown = true, true
	plan := ha.Decide(next)
	if got := plan.Kinds(); !equalKinds(got, []ha.Kind{ha.ReleaseLeader}) {
		t.Fatalf("postmaster past its shutdown checkpoint: plan %v, want the key released", got)
	}
	released := make(chan error, 1)
	go func() { released <- a.run(context.Background(), next, plan[0]) }()
	testcluster.WaitUntil(t, 5*time.Second, "the key handed to n2 while the postmaster still runs", func() (bool, string) {
		h := store.handOvers()
		return len(h) == 1 && inst.Running(), fmt.Sprintf("hand-overs %v, running %v", h, inst.Running())
	})
	select {
	case err := <-released:
		t.Fatalf("the release step returned (%v) before the postmaster exited", err)
	default:
	}
	close(gate)
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if inst.Running() || a.handOverStop != nil {
		t.Fatalf("after the release: running %v, stop pending %v; want the postmaster down", inst.Running(), a.handOverStop != nil)
	}
	if h := store.handOvers(); h[0] != "n2 at 0/500" {
		t.Fatalf("handed over %v, want n2 at the shutdown checkpoint 0/500", h)
	}
}

func TestRewindOutcomes(t *testing.T) {
	up := ha.Action{Kind: ha.Rewind, Target: "n2"}
	cases := []struct {
		name       string
		inst       *fakeInstance
		target     string
		failedFor  string
		rewindSeen bool
	}{
		{"an unreachable source is not a failed rewind", &fakeInstance{rewindErr: pg.ErrSourceUnreachable}, "n2", "", true},
		{"a rewind that ran and failed marks the leader", &fakeInstance{rewindErr: errors.New("could not find common ancestor")}, "n2", "n2", true},
		{"a rewind that worked clears it even if the history cleanup failed", &fakeInstance{historyErr: errors.New("read-only")}, "n2", "", true},
		{"a source with no published address is not tried at all", &fakeInstance{}, "n9", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := testAgent(tc.inst, &fakeStore{})
			a.mem = ha.Memory{StartFailures: 3}
			o := leading(a.mem)
			m := o.Cluster.Members["n2"]
			m.Timeline = 2
			o.Cluster.Members["n2"] = m
			act := up
			act.Target = tc.target
			_ = a.run(context.Background(), o, act)
			if a.mem.RewindFailedFor != tc.failedFor || a.mem.LastRewind.IsZero() == tc.rewindSeen {
				t.Fatalf("memory after the rewind: failed for %q, last rewind %v", a.mem.RewindFailedFor, a.mem.LastRewind)
			}
		})
	}
}

func TestFailedStandbyStartsAreCounted(t *testing.T) {
	inst := &fakeInstance{startErr: errors.New("requested timeline 3 does not contain minimum recovery point")}
	a := testAgent(inst, &fakeStore{})
	o := leading(ha.Memory{})
	o.Cluster.Leader, o.Cluster.Switchover = &ha.Leader{Name: "n2"}, nil
	for i := 1; i <= 3; i++ {
		if err := a.run(context.Background(), o, ha.Action{Kind: ha.StartStandby, Target: "n2"}); err == nil {
			t.Fatal("the start must fail")
		}
		if a.mem.StartFailures != i || a.mem.Following != "n2" {
			t.Fatalf("after %d failed starts: %+v", i, a.mem)
		}
	}
	inst.startErr = nil
	if err := a.run(context.Background(), o, ha.Action{Kind: ha.StartStandby, Target: "n2"}); err != nil {
		t.Fatal(err)
	}
	if a.mem.StartFailures != 0 {
		t.Fatalf("a successful start must reset the count: %d", a.mem.StartFailures)
	}
}

func TestFenceDropsTheLeaseBeforeItStopsPostgres(t *testing.T) {
	inst := &fakeInstance{running: true}
	a := testAgent(inst, &fakeStore{})
	a.mem = ha.Memory{HoldsLeader: true, LastRenew: time.Now()}
	held := true
	inst.onStop = func() {
		a.mu.Lock()
		held = a.mem.HoldsLeader
		a.mu.Unlock()
	}
	if err := a.run(context.Background(), leading(a.mem), ha.Action{Kind: ha.Fence}); err != nil {
		t.Fatal(err)
	}
	if held || len(inst.stopped) != 1 || inst.stopped[0] != "immediate" {
		t.Fatalf("held the lease at the stop: %v; stops %v", held, inst.stopped)
	}
}

func TestARenewalRefusedBecauseAnotherNodeLeadsDropsTheLease(t *testing.T) {
	store := &fakeStore{renewErr: dcs.ErrNotLeader}
	a := testAgent(&fakeInstance{running: true}, store)
	a.mem = ha.Memory{HoldsLeader: true, LastRenew: time.Now()}
	if err := a.run(context.Background(), leading(a.mem), ha.Action{Kind: ha.RenewLeader}); err == nil {
		t.Fatal("the renewal must fail")
	}
	if a.mem.HoldsLeader {
		t.Fatal("the agent still believes it holds the key")
	}
	store.renewErr = errors.New("context deadline exceeded")
	a.mem = ha.Memory{HoldsLeader: true, LastRenew: time.Unix(100, 0)}
	_ = a.run(context.Background(), leading(a.mem), ha.Action{Kind: ha.RenewLeader})
	if !a.mem.HoldsLeader || !a.mem.LastRenew.Equal(time.Unix(100, 0)) {
		t.Fatalf("a renewal that timed out must keep the fencing deadline where it was: %+v", a.mem)
	}
}

func TestClearingARequestComparesTheRevisionTheDecisionRead(t *testing.T) {
	store := &fakeStore{}
	a := testAgent(&fakeInstance{}, store)
	if err := a.run(context.Background(), leading(ha.Memory{}), ha.Action{Kind: ha.ClearSwitchover}); err != nil {
		t.Fatal(err)
	}
	if len(store.cleared) != 1 || store.cleared[0] != 77 {
		t.Fatalf("cleared at revisions %v, want the observation's 77", store.cleared)
	}
}

func TestAnUnknownStepIsAnError(t *testing.T) {
	a := testAgent(&fakeInstance{}, &fakeStore{})
	if err := a.run(context.Background(), leading(ha.Memory{}), ha.Action{Kind: ha.EventLeaderLost}); err == nil {
		t.Fatal("a history event kind must not run as a step")
	}
}

func equalKinds(a, b []ha.Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A leader's agent stopping while the store has no quorum (the last node
// of a cluster stopped after the others) gives up releasing its key after
// the lease's TTL, when the lease has ended by itself, instead of holding
// the shutdown for its 90 s bound.
func TestShutdownWithoutTheStoreReleasesWithinTheTTL(t *testing.T) {
	inst := &fakeInstance{running: true}
	store := &fakeStore{releaseBlocks: true}
	a := testAgent(inst, store)
	a.cfg.HA.TTL = config.Duration(50 * time.Millisecond)
	a.mem.HoldsLeader = true
	done := make(chan struct{})
	go func() { a.shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown still waiting for the store 30 s after its 50 ms TTL")
	}
	if len(inst.stopped) != 1 || inst.stopped[0] != "fast" {
		t.Fatalf("PostgreSQL stopped %v, want one fast shutdown before the release", inst.stopped)
	}
	if a.mem.HoldsLeader {
		t.Fatal("the agent still believes it holds the key")
	}
	if len(store.history) != 0 {
		t.Fatalf("a release that never happened was recorded: %+v", store.history)
	}
}

// TestAFailedReleaseLeavesNoStopPending: a hand-over whose release the
// store refuses still waits for the postmaster's exit, and nothing of
// the stop is left pending, so that a later start of PostgreSQL is not
// observed as that stop (observe reports ShutDown only while one is).
func TestAFailedReleaseLeavesNoStopPending(t *testing.T) {
	store := &fakeStore{handOverErr: errors.New("etcdserver: request timed out")}
	a, inst, gate := handedOverStopHeld(t, store)
	next := leading(a.mem)
	next.Local.Running, next.Local.ShutDown = true, true
	released := make(chan error, 1)
	go func() { released <- a.run(context.Background(), next, ha.Action{Kind: ha.ReleaseLeader, Target: "n2"}) }()
	testcluster.WaitUntil(t, 5*time.Second, "the refused hand-over written", func() (bool, string) {
		return len(store.handOvers()) == 1, fmt.Sprint(store.handOvers())
	})
	close(gate)
	if err := <-released; err == nil {
		t.Fatal("the refused release reported no error")
	}
	if inst.Running() || a.handOverStop != nil {
		t.Fatalf("after the refused release: running %v, stop pending %v; want the postmaster down and nothing pending", inst.Running(), a.handOverStop != nil)
	}
}

// TestAStopWithoutItsShutdownCheckpointWithdrawsTheSwitchover: a clean
// stop that ran out of time ends with SIGQUIT, and the control file then
// holds an older checkpoint; a candidate past that one may lack
// commits, so the switchover is withdrawn.
func TestAStopWithoutItsShutdownCheckpointWithdrawsTheSwitchover(t *testing.T) {
	inst := &fakeInstance{running: true, checkpoint: 0x500, stoppedAs: ha.ControlInProduction}
	a := testAgent(inst, &fakeStore{})
	a.mem = ha.Memory{HoldsLeader: true, LastRenew: time.Now()}
	a.candidatePosition = func(context.Context, string) (lsn.LSN, error) { return 0x600, nil }
	if err := a.run(context.Background(), leading(a.mem), ha.Action{Kind: ha.HandOver, Target: "n2"}); err != nil {
		t.Fatal(err)
	}
	if h := a.mem.HandOver; h == nil || h.CaughtUp {
		t.Fatalf("hand-over %+v after a stop without a shutdown checkpoint; want it not caught up", h)
	}
	next := leading(a.mem)
	if got := ha.Decide(next).Kinds(); !equalKinds(got, []ha.Kind{ha.ClearSwitchover, ha.StartPrimary}) {
		t.Fatalf("next plan %v, want the switchover withdrawn and the primary started", got)
	}
}

// handedOverStopHeld runs a hand-over to n2, which has the shutdown
// checkpoint 0/500, with the fake postmaster held in its stop until gate
// is closed.
func handedOverStopHeld(t *testing.T, store *fakeStore) (*Agent, *fakeInstance, chan struct{}) {
	t.Helper()
	gate := make(chan struct{})
	inst := &fakeInstance{running: true, checkpoint: 0x500, stopGate: gate}
	a := testAgent(inst, store)
	a.mem = ha.Memory{HoldsLeader: true, LastRenew: time.Now()}
	a.candidatePosition = func(context.Context, string) (lsn.LSN, error) { return 0x600, nil }
	a.handOverWait = 5 * time.Second
	if err := a.run(context.Background(), leading(a.mem), ha.Action{Kind: ha.HandOver, Target: "n2"}); err != nil {
		t.Fatal(err)
	}
	return a, inst, gate
}
