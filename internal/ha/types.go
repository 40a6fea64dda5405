// Package ha owns the failover decisions of pgguard: given one observed
// snapshot of the local instance and of the cluster store, and the current
// time, Decide returns the steps the agent must take.
//
// Nothing in this package performs I/O, reads a clock, starts a goroutine or
// keeps state between calls: the agent observes, calls Decide, and executes.
// Every rule that keeps two primaries apart or keeps acknowledged writes is
// here, where a table test can reach it.
package ha

import (
	"sort"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Role is what a member's PostgreSQL is doing.
type Role string

const (
	RolePrimary Role = "primary"
	RoleStandby Role = "standby"
	RoleNone    Role = "stopped"
	// RoleWitness is a member that votes in the store and runs no
	// PostgreSQL (HA-18).
	RoleWitness Role = "witness"
)

// TimelineSwitch is one line of a timeline history file: timeline TLI ended
// at LSN Switch, where the next timeline forked off.
type TimelineSwitch struct {
	TLI    int     `json:"tli"`
	Switch lsn.LSN `json:"lsn"`
}

// Member is the status an agent publishes about itself (see PublishDue).
type Member struct {
	Name        string           `json:"name"`
	Host        string           `json:"host"`
	Port        int              `json:"port"`
	Role        Role             `json:"role"`
	State       string           `json:"state"`
	Healthy     bool             `json:"healthy"`
	Timeline    int              `json:"timeline"`
	WalLSN      lsn.LSN          `json:"wal_lsn,omitempty"`
	ReceivedLSN lsn.LSN          `json:"received_lsn,omitempty"`
	ReplayedLSN lsn.LSN          `json:"replayed_lsn,omitempty"`
	Streaming   bool             `json:"streaming"`
	Following   string           `json:"following,omitempty"`
	NoFailover  bool             `json:"no_failover,omitempty"`
	SystemID    string           `json:"system_id,omitempty"`
	History     []TimelineSwitch `json:"history,omitempty"`
	Problem     string           `json:"problem,omitempty"`
	// Isolated: the member reaches none of its trusted addresses and does
	// not campaign (candidates do not wait for it).
	Isolated bool `json:"isolated,omitempty"`
	// Delayed: the member replays behind on purpose (an apply delay or an
	// operator's replay request): never promoted automatically, never
	// synchronous.
	Delayed bool `json:"delayed,omitempty"`
	// Repository: this node can rebuild itself from a backup repository.
	Repository bool      `json:"repository,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Replication (primary only) is what the primary sees of each standby.
	Replication map[string]Replica `json:"replication,omitempty"`

	// Revision is the store revision at which this record was written; it
	// is filled by the store, not published.
	Revision int64 `json:"-"`
}

// Position is the furthest WAL position a member has: what a primary wrote,
// or what a standby received or replayed.
func (m Member) Position() lsn.LSN {
	p := m.WalLSN
	if m.ReceivedLSN > p {
		p = m.ReceivedLSN
	}
	if m.ReplayedLSN > p {
		p = m.ReplayedLSN
	}
	return p
}

// Replica is one row of the primary's pg_stat_replication.
type Replica struct {
	State            string  `json:"state"`
	SyncState        string  `json:"sync_state"`
	SentLSN          lsn.LSN `json:"sent_lsn"`
	FlushLSN         lsn.LSN `json:"flush_lsn"`
	ReplayLSN        lsn.LSN `json:"replay_lsn"`
	ReplayLagSeconds float64 `json:"replay_lag_seconds"`
}

// Leader is the holder of the leader key.
type Leader struct {
	Name     string
	Revision int64
}

// Cluster is one consistent read of the store.
type Cluster struct {
	// SystemID is set once the cluster has been bootstrapped.
	SystemID string
	// InitClaim names the node bootstrapping the cluster right now.
	InitClaim string
	Leader    *Leader
	Members   map[string]Member
	// Witnesses are members that vote in the store and run no PostgreSQL.
	Witnesses []string
	// Replay holds the operators' replay requests, by standby.
	Replay map[string]ReplayRequest
	// Optime is the last WAL position the primary recorded.
	Optime     lsn.LSN
	Revision   int64
	Config     ClusterConfig
	Sync       *SyncState
	Switchover *Switchover
	// Takeover is an operator's request that To become primary although
	// automatic failover is paused or impossible.
	Takeover *Takeover
	// Reinit names the members the operator asked to rebuild;
	// ReinitFromBackup those of them to rebuild from the newest backup in
	// the repository rather than from a base backup of the primary.
	Reinit           map[string]bool
	ReinitFromBackup map[string]string // member → backup id ("" = newest)
	// Restore is an operator's request to restore the whole cluster from
	// a backup; nil when none is under way.
	Restore *ClusterRestore
	// MaxTimeline is the highest timeline any promotion reserved: a new
	// primary takes a higher one, even if it never saw the history file
	// of a primary that was promoted and died at once.
	MaxTimeline int
}

// MemberNames lists the members that publish a status, sorted.
func (c Cluster) MemberNames() []string {
	names := make([]string, 0, len(c.Members))
	for n := range c.Members {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ClusterRestore asks for a whole-cluster restore: Node restores the
// backup (Args are the restore command's backup and target flags) and
// becomes the primary of the restored cluster; every other member stops
// meanwhile and is then rebuilt from the same backup to follow it.
type ClusterRestore struct {
	Node   string        `json:"node"`
	Target RestoreTarget `json:"target"`
	// Args is what requests of older versions carried instead of Target
	// (restore command flags); a request with Args and no Target is
	// refused, to be made again.
	Args []string  `json:"args,omitempty"`
	By   string    `json:"by,omitempty"`
	At   time.Time `json:"at"`
	// Revision is the store revision of the request (filled by the store).
	Revision int64 `json:"-"`
}

// RestoreTarget is where a whole-cluster restore recovers to: one of
// Time, LSN, XID, Name or Immediate, from Backup (an id or label:TEXT; ""
// the newest that ends before the target).
type RestoreTarget struct {
	Time      string `json:"time,omitempty"`
	LSN       string `json:"lsn,omitempty"`
	XID       string `json:"xid,omitempty"`
	Name      string `json:"name,omitempty"`
	Immediate bool   `json:"immediate,omitempty"`
	Exclusive bool   `json:"exclusive,omitempty"` // stop just before the target transaction
	Backup    string `json:"backup,omitempty"`
}

// IsZero reports whether no target is set.
func (t RestoreTarget) IsZero() bool { return t == RestoreTarget{} }

// String is the target as restore command flags, for people to read.
func (t RestoreTarget) String() string {
	var a []string
	switch {
	case t.Time != "":
		a = []string{"--time", t.Time}
	case t.LSN != "":
		a = []string{"--lsn", t.LSN}
	case t.XID != "":
		a = []string{"--xid", t.XID}
	case t.Name != "":
		a = []string{"--name", t.Name}
	case t.Immediate:
		a = []string{"--immediate"}
	}
	if t.Exclusive {
		a = append(a, "--exclusive")
	}
	if t.Backup != "" {
		a = append(a, "--backup", t.Backup)
	}
	return strings.Join(a, " ")
}

// Takeover is a manual failover request.
type Takeover struct {
	To    string `json:"to"`
	Force bool   `json:"force"`
	By    string `json:"by,omitempty"`
}

// DataState says what is in the local data directory.
type DataState int

const (
	DataEmpty   DataState = iota // missing or empty: needs initdb or a clone
	DataValid                    // a PostgreSQL data directory we can use
	DataInvalid                  // unreadable, unwritable or not PostgreSQL
)

// PostgreSQL control-file states (pg_controldata "Database cluster state").
const (
	ControlInProduction    = "in production"
	ControlShutDown        = "shut down"
	ControlShutDownRecov   = "shut down in recovery"
	ControlInArchiveRecov  = "in archive recovery"
	ControlInCrashRecovery = "in crash recovery"
)

// Local is what the agent observed of its own node.
type Local struct {
	Data          DataState
	DataProblem   string
	SystemID      string
	ControlState  string
	ControlTLI    int
	CheckpointLSN lsn.LSN

	Running bool // the postmaster is alive
	// ShutDown: the postmaster is still alive, finishing a clean stop
	// the agent asked for, and the control file says "shut down": the
	// shutdown checkpoint is written, no backend is left and none is
	// let in, so it writes no more WAL (the archiver and the WAL senders
	// may still be at work). Healthy is false.
	ShutDown    bool
	Healthy     bool // it answered within health_retries × health_delay
	InRecovery  bool
	Timeline    int
	WalLSN      lsn.LSN
	ReceivedLSN lsn.LSN
	ReplayedLSN lsn.LSN
	Streaming   bool
	// RestoreOff: the configuration in force has no restore_command
	// (a switchover's candidate; ArchiveFetch).
	RestoreOff bool
	// ReplayTimeline is the timeline the standby's startup process
	// replays, when the agent asked (0: not known). It differs from
	// Timeline (the receiver's, when newer) on a standby that received a
	// timeline switch it has not replayed yet, or cannot replay.
	ReplayTimeline int
	// ReplayTimelineFresh: ReplayTimeline was asked in this observation,
	// after ReplayedLSN, with no restart of the server in between (not a
	// value kept from an earlier loop): the two describe one replay.
	ReplayTimelineFresh bool
	// HistoryTimelines are the timelines with a history file in pg_wal
	// (read when the standby is not streaming).
	HistoryTimelines []int
	// Following is the leader named in the standby configuration in force.
	Following      string
	FollowingSince time.Time
	// SyncNames is the synchronous_standby_names in force (primary).
	SyncNames SyncNames
	// Streamers are the standbys streaming from this primary right now,
	// as the primary itself sees them (pg_stat_replication).
	Streamers []string
	// Replication is the primary's pg_stat_replication, by standby.
	Replication map[string]Replica
	// Isolated says why this node counts itself cut off (it reaches none
	// of ha.trusted_addresses); "" when it reaches one, or none is set.
	Isolated string
	// ReplayTarget is the recovery target time the standby runs with
	// (zero: none); ReplayPaused whether its replay is paused.
	ReplayTarget time.Time
	ReplayPaused bool
	// Disk is how full the data and WAL volumes are (disk.warn,
	// disk.critical), DiskDetail the free space in words.
	Disk       DiskLevel
	DiskDetail string
}

// Position is the furthest WAL position the local instance has.
func (l Local) Position() lsn.LSN {
	m := Member{WalLSN: l.WalLSN, ReceivedLSN: l.ReceivedLSN, ReplayedLSN: l.ReplayedLSN}
	return m.Position()
}

// Memory is what the agent remembers between loops. Two pure functions
// change it: Observed (from a snapshot) and Remember (from the outcome of
// an action); the agent only stores it and hands it to Decide.
type Memory struct {
	// HoldsLeader is true after this agent acquired or renewed the leader
	// key and until it released it, failed to renew, or saw another leader.
	HoldsLeader bool
	// LastRenew is when the last successful leader renewal was sent.
	LastRenew time.Time
	// DownSince is when the local postmaster was first seen not running
	// (zero while it runs).
	DownSince time.Time
	// LeaderLostAt / LeaderLostRev are when, and at which store revision,
	// this agent first saw the cluster without a leader.
	LeaderLostAt  time.Time
	LeaderLostRev int64
	// RewindFailed is set when pg_rewind failed for the current leader.
	RewindFailed bool
	// LastRewind is when the agent last rewound, and LastRewindFrom the
	// leader it rewound from, to avoid rewind loops.
	LastRewind     time.Time
	LastRewindFrom string
	// StartFailures counts consecutive failed starts as a standby.
	StartFailures int
	// LastStreaming is when each standby was last seen streaming from this
	// primary (the grace of a lost synchronous standby starts there).
	LastStreaming map[string]time.Time
	// PrimarySince is when this node was first seen running as a primary
	// (zero while it is not one).
	PrimarySince time.Time
	// SyncChangeLSN is the primary's WAL position when it last changed
	// synchronous_standby_names, and when.
	SyncChangeLSN lsn.LSN
	SyncChangeAt  time.Time
	// RewindFailedFor names the leader pg_rewind last failed against (a
	// source that could not be reached does not count).
	RewindFailedFor string
	// Following is the upstream the standby configuration in force names,
	// since FollowingSince (written by StartStandby and Follow).
	Following      string
	FollowingSince time.Time
	// Optime is the WAL position last written into the leader key, and
	// when (RenewLeader writes it at most once per heartbeat).
	Optime   lsn.LSN
	OptimeAt time.Time
	// HandOver is the primary's side of a switchover under way: stopped
	// cleanly, and whether the candidate received the shutdown checkpoint.
	HandOver *HandOverState
	// SawLeader is the last leader this agent saw in the store.
	SawLeader string
}

// HandOverState is the outcome of a HandOver step.
type HandOverState struct {
	To string
	// Checkpoint is the shutdown checkpoint of the stopped primary;
	// Received how far the candidate got within the wait.
	Checkpoint, Received lsn.LSN
	CaughtUp             bool
}

// Settings are the timing and policy knobs Decide needs.
type Settings struct {
	TTL                   time.Duration
	SafetyMargin          time.Duration
	LoopInterval          time.Duration
	MaxLagOnFailover      int64
	PrimaryStartTimeout   time.Duration
	NoFailover            bool
	ReinitOnRewindFailure bool
	// HasRepository: this node has a backup repository to rebuild from.
	HasRepository bool
	// TransferStoreLeadership lets the primary hand raft leadership of its
	// embedded etcd member to a standby's; ElectionTimeout is the store's
	// raft election timeout (zero: unknown, as with an external etcd).
	TransferStoreLeadership bool
	ElectionTimeout         time.Duration
	// SlotRetention is how long the primary keeps the slot of a member
	// that does not stream (zero: for ever).
	SlotRetention time.Duration
	// ApplyDelay is this node's recovery_min_apply_delay (a delayed
	// standby: zero for a normal one).
	ApplyDelay time.Duration
}

// Observation is everything Decide may look at.
type Observation struct {
	Now  time.Time
	Self string
	// Peers names every member this agent knows of, alive or not (the
	// configured peers and every member ever seen).
	Peers    []string
	Settings Settings
	// StoreOK is false when the store could not be read this loop; Cluster
	// is then the last view seen and must not be trusted for elections.
	StoreOK bool
	Cluster Cluster
	Local   Local
	Memory  Memory
	// Store is this node's embedded etcd member's view of the raft group
	// (zero with an external etcd).
	Store StoreView
}
