// Package status turns one read of the cluster store into what `ctl
// status` shows: a stable JSON document and a table for people. It only
// formats; it never writes to the store.
package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

// Report is the JSON shape of `ctl status -o json`. Fields are only ever
// added, never renamed.
type Report struct {
	Cluster         string   `json:"cluster"`
	Leader          string   `json:"leader"`
	LeaseTTLSeconds float64  `json:"lease_ttl_seconds"`
	Initialized     bool     `json:"initialized"`
	SystemID        string   `json:"system_id,omitempty"`
	Mode            string   `json:"mode"`
	Paused          bool     `json:"paused"`
	SyncStandbys    []string `json:"sync_standbys"`
	// Operation describes an operator request under way ("" when none).
	Operation string   `json:"operation"`
	Members   []Member `json:"members"`
	// Store lists the consensus store's members as each answers for
	// itself (empty when not asked).
	Store []StoreMember `json:"store,omitempty"`
}

// StoreMember is one etcd member of the consensus store.
type StoreMember struct {
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	Leader    bool   `json:"leader"`
	RaftIndex uint64 `json:"raft_index,omitempty"`
	Error     string `json:"error,omitempty"`
}

// StoreLeader names the store member that reports itself raft leader.
func (r Report) StoreLeader() string {
	for _, m := range r.Store {
		if m.Leader {
			return m.Name
		}
	}
	return ""
}

// Member is one row of the report.
type Member struct {
	Name        string `json:"name"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Role        string `json:"role"`
	State       string `json:"state"`
	Healthy     bool   `json:"healthy"`
	Timeline    int    `json:"timeline"`
	WalLSN      string `json:"wal_lsn,omitempty"`
	ReceivedLSN string `json:"received_lsn,omitempty"`
	ReplayedLSN string `json:"replayed_lsn,omitempty"`
	LagBytes    int64  `json:"lag_bytes"`
	// SentLSN, FlushedLSN and LagSeconds come from the primary's
	// pg_stat_replication; empty when the primary does not see the member.
	SentLSN    string  `json:"sent_lsn,omitempty"`
	FlushedLSN string  `json:"flushed_lsn,omitempty"`
	LagSeconds float64 `json:"lag_seconds"`
	SyncState  string  `json:"sync_state,omitempty"`
	Streaming  bool    `json:"streaming"`
	Following  string  `json:"following,omitempty"`
	Leader     bool    `json:"leader"`
	Sync       bool    `json:"sync"`
	Detached   bool    `json:"detached"`
	// Paused: the operator paused this node alone (ctl pause NODE).
	Paused bool `json:"paused"`
	// Delayed: it replays behind on purpose (apply delay, ctl replay).
	Delayed    bool    `json:"delayed"`
	AgeSeconds float64 `json:"age_seconds"`
	// Stale: the member's record is older than a live agent lets it grow
	// (ha.MemberRecordMaxAge: an unchanged record is rewritten every 10
	// heartbeats, and its lease outlives a dead agent by up to the TTL),
	// so what it last said cannot be trusted: State is then
	// "unreachable", LastState what it said, Healthy and Streaming false.
	Stale     bool   `json:"stale"`
	LastState string `json:"last_state,omitempty"`
	Problem   string `json:"problem,omitempty"`
}

// Build makes the report from a cluster read at now.
func Build(cluster string, c ha.Cluster, leaseTTL time.Duration, now time.Time) Report {
	r := Report{Cluster: cluster, LeaseTTLSeconds: leaseTTL.Seconds(), Initialized: c.SystemID != "", SystemID: c.SystemID,
		Mode: string(c.Config.Mode), Paused: c.Config.Paused, SyncStandbys: []string{}, Members: []Member{}}
	if c.Sync != nil && c.Config.Synchronous() {
		r.SyncStandbys = append(r.SyncStandbys, c.Sync.Standbys()...)
	}
	var primaryLSN lsn.LSN
	var repl map[string]ha.Replica
	if c.Leader != nil {
		r.Leader = c.Leader.Name
		if m, ok := c.Members[c.Leader.Name]; ok {
			primaryLSN, repl = m.WalLSN, m.Replication
		}
	}
	switch {
	case c.Switchover != nil:
		r.Operation = fmt.Sprintf("switchover %s → %s", c.Switchover.From, c.Switchover.To)
		if !c.Switchover.At.IsZero() {
			r.Operation += " at " + c.Switchover.At.Format(time.RFC3339)
		}
	case c.Takeover != nil:
		r.Operation = "takeover by " + c.Takeover.To
	case len(c.Reinit) > 0:
		for n := range c.Reinit {
			r.Operation = "reinit of " + n
		}
	}
	if primaryLSN == 0 {
		primaryLSN = c.Optime
	}
	names := c.MemberNames()
	text := func(l lsn.LSN) string {
		if l == 0 {
			return ""
		}
		return l.String()
	}
	for _, n := range names {
		m := c.Members[n]
		row := Member{
			Name: m.Name, Host: m.Host, Port: m.Port, Role: string(m.Role), State: m.State, Healthy: m.Healthy,
			Timeline: m.Timeline, WalLSN: text(m.WalLSN), ReceivedLSN: text(m.ReceivedLSN), ReplayedLSN: text(m.ReplayedLSN),
			Streaming: m.Streaming, Following: m.Following, Leader: r.Leader == n,
			Sync: contains(r.SyncStandbys, n), Detached: c.Config.IsDetached(n), Paused: c.Config.IsNodePaused(n), Delayed: m.Delayed,
			AgeSeconds: now.Sub(m.UpdatedAt).Seconds(), Problem: m.Problem,
		}
		if leaseTTL > 0 && row.AgeSeconds > ha.MemberRecordMaxAge(leaseTTL).Seconds() {
			row.Stale, row.LastState = true, row.State
			row.State, row.Healthy, row.Streaming = "unreachable", false, false
		}
		if rep, ok := repl[n]; ok {
			row.SentLSN, row.FlushedLSN, row.LagSeconds, row.SyncState = text(rep.SentLSN), text(rep.FlushLSN), rep.ReplayLagSeconds, rep.SyncState
		}
		if m.Role == ha.RoleStandby && primaryLSN > 0 {
			pos := m.ReplayedLSN
			if m.ReceivedLSN > pos {
				pos = m.ReceivedLSN
			}
			if primaryLSN > pos {
				row.LagBytes = int64(primaryLSN - pos)
			}
		}
		r.Members = append(r.Members, row)
	}
	return r
}

// Healthy reports whether the cluster has one primary holding the leader
// key and every other member of want streaming from it.
func (r Report) Healthy(want int) bool { return len(r.Problems(want)) == 0 }

// Problems lists what keeps the cluster from being healthy: no leader,
// fewer than want members publishing, a leader that is not a healthy
// primary, a member that is stale or not a streaming standby.
func (r Report) Problems(want int) []string {
	var out []string
	if r.Leader == "" {
		out = append(out, "no leader")
	}
	if len(r.Members) < want {
		out = append(out, fmt.Sprintf("%d of %d members publish their status", len(r.Members), want))
	}
	for _, m := range r.Members {
		switch {
		case m.Stale:
			out = append(out, fmt.Sprintf("%s unreachable: last status %.1fs ago (%s %s)", m.Name, m.AgeSeconds, m.Role, m.LastState))
		case m.Role == string(ha.RoleWitness):
			// A witness votes in the store and runs no PostgreSQL.
		case m.Leader && (m.Role != "primary" || !m.Healthy):
			out = append(out, fmt.Sprintf("leader %s is %s/%s", m.Name, m.Role, m.State))
		case !m.Leader && (m.Role != "standby" || !m.Streaming):
			out = append(out, fmt.Sprintf("%s is %s/%s, not a streaming standby", m.Name, m.Role, m.State))
		}
	}
	return out
}

// WriteTable prints the report for people.
func (r Report) WriteTable(w io.Writer) error {
	leader := r.Leader
	if leader == "" {
		leader = "(none)"
	}
	paused := ""
	if r.Paused {
		paused = "   PAUSED (no automatic failover)"
	}
	if r.Operation != "" {
		paused += "   operation: " + r.Operation
	}
	fmt.Fprintf(w, "cluster %s   leader %s   lease %.0fs   mode %s%s\n", r.Cluster, leader, r.LeaseTTLSeconds, r.Mode, paused)
	if len(r.Store) > 0 {
		parts := make([]string, 0, len(r.Store))
		for _, m := range r.Store {
			switch {
			case !m.Reachable:
				parts = append(parts, m.Name+" unreachable")
			case m.Leader:
				parts = append(parts, m.Name+" raft leader")
			default:
				parts = append(parts, m.Name+" ok")
			}
		}
		fmt.Fprintf(w, "store   %s\n", strings.Join(parts, ", "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tHOST:PORT\tROLE\tSTATE\tTL\tWAL/RECEIVED\tSENT\tFLUSHED\tREPLAYED\tLAG\tLAG(s)\tAGE")
	for _, m := range r.Members {
		name := m.Name
		if m.Leader {
			name += " *"
		}
		pos := m.WalLSN
		if pos == "" {
			pos = m.ReceivedLSN
		}
		state := m.State
		if m.Stale {
			state += " (last: " + m.Role + " " + m.LastState + ")"
		}
		if m.Sync {
			state += " sync"
		}
		if m.Detached {
			state += " detached"
		}
		if m.Paused {
			state += " PAUSED"
		}
		if m.Delayed {
			state += " delayed"
		}
		if m.Problem != "" {
			state += " (" + m.Problem + ")"
		}
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1fs\n", name, m.Host, m.Port, m.Role, state,
			m.Timeline, dash(pos), dash(m.SentLSN), dash(m.FlushedLSN), dash(m.ReplayedLSN), HumanBytes(m.LagBytes), m.LagSeconds, m.AgeSeconds)
	}
	return tw.Flush()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// HumanBytes writes a size in KiB, MiB or GiB.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
