package ha

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// fuzzBytes hands out the fuzzer's bytes as small choices (zero once they
// run out, so every input decodes).
type fuzzBytes struct {
	b []byte
	i int
}

func (f *fuzzBytes) byte() byte {
	if f.i >= len(f.b) {
		return 0
	}
	f.i++
	return f.b[f.i-1]
}

func (f *fuzzBytes) n(k int) int            { return int(f.byte()) % k }
func (f *fuzzBytes) flag() bool             { return f.byte()&1 == 1 }
func (f *fuzzBytes) lsn() lsn.LSN           { return lsn.LSN(0x3000000 + int(f.byte())<<12) }
func (f *fuzzBytes) pick(s []string) string { return s[f.n(len(s))] }

var fuzzNames = []string{"n1", "n2", "n3", "n4", "n5"}

// observationFrom decodes an observation of up to five members, as this
// node (n1) might see it: any leader (or none), any roles, positions,
// health, operator requests and lists, and a local state that may or may
// not agree with what the store says.
func observationFrom(data []byte) Observation {
	f := &fuzzBytes{b: data}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	count := 1 + f.n(5)
	names := fuzzNames[:count]
	modes := []Mode{ModeAsync, ModeSync, ModeStrict}
	c := Cluster{SystemID: "42", Members: map[string]Member{}, Optime: f.lsn(), Revision: 100,
		Config: ClusterConfig{Mode: modes[f.n(3)], SyncCount: 1 + f.n(2), SyncMethod: "first", SyncTimeoutMs: 30000}}
	if f.n(4) != 0 {
		c.Leader = &Leader{Name: f.pick(names), Revision: int64(f.n(200))}
	}
	roles := []Role{RolePrimary, RoleStandby, RoleStandby, RoleNone}
	for _, name := range names {
		if name != "n1" && f.n(5) == 0 {
			continue // silent: no status record
		}
		m := Member{Name: name, Role: roles[f.n(4)], Healthy: f.flag(), Timeline: 1 + f.n(3), Streaming: f.flag(),
			Revision: int64(f.n(250)), Delayed: f.n(6) == 0, NoFailover: f.n(8) == 0, Isolated: f.n(8) == 0}
		m.WalLSN, m.ReceivedLSN, m.ReplayedLSN = f.lsn(), f.lsn(), f.lsn()
		if c.Leader != nil && f.flag() {
			m.Following = c.Leader.Name
		}
		c.Members[name] = m
	}
	for _, name := range names {
		switch f.n(8) {
		case 0:
			c.Config.Detached = append(c.Config.Detached, name)
		case 1:
			c.Config.Stopped = append(c.Config.Stopped, name)
		case 2:
			c.Config.PausedNodes = append(c.Config.PausedNodes, name)
		}
	}
	c.Config.Paused = f.n(6) == 0
	if f.flag() {
		s := &SyncState{Quorum: f.n(2)}
		if c.Leader != nil {
			s.Leader = c.Leader.Name
		}
		for _, name := range names {
			if f.flag() {
				s.Members = append(s.Members, name)
			}
		}
		c.Sync = s
	}
	switch f.n(6) {
	case 0:
		c.Switchover = &Switchover{From: f.pick(names), To: f.pick(names), By: "op"}
	case 1:
		c.Takeover = &Takeover{To: f.pick(names), Force: f.flag(), By: "op"}
	}
	if f.n(8) == 0 {
		c.Replay = map[string]ReplayRequest{f.pick(names): {Pause: true}}
	}
	controls := []string{ControlInProduction, ControlShutDown, ControlShutDownRecov, ControlInArchiveRecov}
	l := Local{Data: []DataState{DataValid, DataValid, DataValid, DataEmpty}[f.n(4)], SystemID: "42",
		Running: f.flag(), Healthy: f.flag(), InRecovery: f.flag(), Timeline: 1 + f.n(3), Streaming: f.flag(),
		ControlState: controls[f.n(4)], ControlTLI: 1 + f.n(3)}
	l.WalLSN, l.ReceivedLSN, l.ReplayedLSN, l.CheckpointLSN = f.lsn(), f.lsn(), f.lsn(), f.lsn()
	if c.Leader != nil && f.flag() {
		l.Following, l.FollowingSince = c.Leader.Name, t0.Add(-time.Minute)
	}
	if f.n(10) == 0 {
		l.SystemID = "43" // another cluster's data directory
	}
	if l.Data == DataEmpty {
		// What observe can report of an empty directory: nothing runs.
		l.Running, l.Healthy, l.InRecovery, l.SystemID, l.ControlState = false, false, false, "", ""
	}
	if f.n(10) == 0 {
		l.Disk = DiskCritical
	}
	s := settings()
	if f.n(6) == 0 {
		s.ApplyDelay = time.Hour
	}
	mem := Memory{HoldsLeader: f.flag(), LastRenew: t0.Add(-time.Duration(f.n(8)) * time.Second),
		LeaderLostAt: t0.Add(-time.Duration(f.n(12)) * time.Second), LeaderLostRev: int64(f.n(200)),
		RewindFailed: f.n(6) == 0, StartFailures: f.n(5)}
	// Choices added later come last, so that older corpus entries decode
	// as before (a missing byte is 0: no hand-over under way).
	if f.n(4) == 3 {
		mem.HandOver = &HandOverState{To: f.pick(names), Checkpoint: f.lsn(), Received: f.lsn(), CaughtUp: f.flag()}
	}
	if l.Running && f.n(6) == 5 {
		// A clean stop past its shutdown checkpoint (what observe reports
		// while the postmaster finishes it).
		l.ShutDown, l.Healthy, l.InRecovery = true, false, false
	}
	return Observation{Now: t0, Self: "n1", Peers: names, Settings: s, StoreOK: f.n(8) != 0, Cluster: c, Local: l, Memory: mem}
}

// planSafety names what is unsafe in plan for o ("" when nothing):
//   - no promotion (and no start as a primary) without the leader key,
//     already held or taken first in the same plan;
//   - nothing of a primary while another member holds the key;
//   - in a synchronous mode with a synchronous set, an automatic failover
//     (no operator's takeover) promotes only a member of that set;
//   - no automatic promotion of a detached, delayed, stopped or
//     no-failover member, nor of one whose data belongs to another cluster.
func planSafety(o Observation, plan Plan) string {
	kinds := make([]Kind, len(plan))
	for i, a := range plan {
		kinds[i] = a.Kind
	}
	acquire := slices.Index(kinds, AcquireLeader)
	holds := o.Cluster.Leader != nil && o.Cluster.Leader.Name == o.Self
	for i, k := range kinds {
		if (k == Promote || k == StartPrimary) && !holds && (acquire < 0 || acquire > i) {
			return fmt.Sprintf("%s without the leader key (leader %v)", k, o.Cluster.Leader)
		}
	}
	promotes := slices.Contains(kinds, Promote) || slices.Contains(kinds, StartPrimary) || acquire >= 0
	if o.Cluster.Leader != nil && !holds && promotes {
		return fmt.Sprintf("plans %v while %s holds the leader key", kinds, o.Cluster.Leader.Name)
	}
	if !slices.Contains(kinds, Promote) || holds {
		return ""
	}
	// A promotion from standby, taking the key now.
	byOperator := o.Cluster.Takeover != nil && o.Cluster.Takeover.To == o.Self
	if byOperator {
		return ""
	}
	cfg := o.Cluster.Config
	if s := o.Cluster.Sync; cfg.Synchronous() && s != nil && len(s.Members) > 0 && !slices.Contains(s.Members, o.Self) {
		return fmt.Sprintf("%s mode: promotes %s, not in the synchronous set %v", cfg.Mode, o.Self, s.Members)
	}
	switch {
	case cfg.IsDetached(o.Self):
		return "promotes a detached member"
	case cfg.IsStopped(o.Self):
		return "promotes a member the operator stopped"
	case Delayed(o):
		return "promotes a delayed member"
	case o.Settings.NoFailover:
		return "promotes a no_failover member"
	case o.Local.SystemID != o.Cluster.SystemID:
		return "promotes a member whose data belongs to another cluster"
	}
	return ""
}

// FuzzDecide checks the safety rules above on every plan Decide makes for
// any observation the fuzzer finds (issue 12 item 6): `go test
// -fuzz=FuzzDecide -fuzztime=5m ./internal/ha`; the corpus under
// testdata/fuzz/FuzzDecide and the seeds here (among them the chaos
// suite's findings, findings_test.go) run with every `go test`.
func FuzzDecide(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{2, 0, 1, 3, 0},
		{4, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		{4, 2, 1, 2, 1, 1, 1, 1, 0, 0, 9, 9, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
		[]byte("a standby whose leader is gone, in sync mode, with a sync set"),
		[]byte("switchover requested to a node that is not synchronous, then the primary dies"),
	} {
		f.Add(seed)
	}
	for _, seed := range findingSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := observationFrom(data)
		if len(data) > 0 && data[0] == '{' {
			// The chaos findings' observations, and what the fuzzer makes
			// of them while they still parse.
			// Only an observation an agent could make: it knows its
			// name and its settings.
			var j Observation
			if json.Unmarshal(data, &j) == nil && j.Self != "" && j.Settings.TTL > 0 && j.Settings.LoopInterval > 0 {
				o = j
			}
		}
		plan := Decide(o)
		if why := planSafety(o, plan); why != "" {
			t.Fatalf("unsafe plan: %s\nplan: %+v\nobservation: %+v", why, plan, o)
		}
	})
}
