package agent

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
)

// instance is the local PostgreSQL as the agent drives it: the methods of
// pg.Instance it calls, so that the handlers can be tested with a fake.
type instance interface {
	// lifecycle
	Running() bool
	Start(ctx context.Context, timeout time.Duration) error
	Stop(mode string, timeout time.Duration) error
	Crashes() <-chan struct{}
	Initdb(ctx context.Context) error
	CrashRecover(ctx context.Context) error
	Connect(ctx context.Context) (*pgx.Conn, error)
	Options() pg.Options

	// configuration files
	WriteConfig(primary bool, up *pg.Upstream) error
	SetRestoreOff(off bool)
	RestoreOff() bool
	WritePassFile() error
	PinPeer(u pg.Upstream) error
	WriteDataFile(name, content string) error
	SuperConninfo(u pg.Upstream) string
	LocalConninfo() string
	SyncNames() string
	SetSyncNames(v string) error
	ReplayTarget() time.Time
	SetReplayTarget(t pg.ReplayTarget)

	// the data directory and its timelines
	Inspect(ctx context.Context) (ha.DataState, pg.Control, string)
	Controldata(ctx context.Context) (pg.Control, error)
	// ControlFile reads the control file without running pg_controldata.
	ControlFile(ctx context.Context) (pg.Control, error)
	Rewind(ctx context.Context, up pg.Upstream) (string, error)
	CloneFrom(ctx context.Context, up pg.Upstream) error
	MoveDataAside(now time.Time) (string, error)
	StopPointBefore(ctx context.Context, from, to lsn.LSN, tli int, t time.Time) (lsn.LSN, error)
	ReplayTimeline(ctx context.Context) (int, error)
	HistoryTimelines() ([]int, error)
	RemoveHistoryAbove(tli int) ([]int, error)
	CompleteShortCopies() ([]string, error)
	TimelineHistory(tli int) ([]ha.TimelineSwitch, error)
	HighestHistory() int
	SkipTimelines(current, upTo int) error
	RemoveTimelinePlaceholders() ([]string, error)
}

var _ instance = (*pg.Instance)(nil)

// clusterStore is the consensus store as the agent uses it: the methods of
// dcs.Store it calls. Every write that replaces or clears shared state
// takes the revision the decision read (dcs.ErrChanged when it moved).
type clusterStore interface {
	Load(ctx context.Context) (ha.Cluster, error)
	LoadLocal(ctx context.Context) (ha.Cluster, error)
	PublishMember(ctx context.Context, m ha.Member) error
	KeepMemberAlive(ctx context.Context) error
	RegisterWitness(ctx context.Context) error
	AppendHistory(ctx context.Context, e dcs.Event) error

	// bootstrap
	ClaimInit(ctx context.Context) (bool, error)
	SeedConfig(ctx context.Context, cfg ha.ClusterConfig) error
	FinishInit(ctx context.Context, systemID string) error

	// the leader key, the synchronous set and timelines
	AcquireLeader(ctx context.Context) (bool, time.Time, error)
	RenewLeader(ctx context.Context, optime lsn.LSN) (time.Time, error)
	ReleaseLeader(ctx context.Context) error
	HandOverLeader(ctx context.Context, sw ha.Switchover, checkpoint lsn.LSN) error
	SetSync(ctx context.Context, prev *ha.SyncState, st ha.SyncState) error
	ReserveTimeline(ctx context.Context, tli int) error

	// operators' requests, cleared once carried out
	ClearSwitchover(ctx context.Context, read int64) error
	ClearTakeover(ctx context.Context, read int64) error
	ClearReinit(ctx context.Context, node string, read int64) error
	ClearClusterRestore(ctx context.Context, rev int64) error
	ReserveRestoreTimeline(ctx context.Context, tli int, restoreRev int64) error
	FinishClusterRestore(ctx context.Context, self string, restoreRev int64, rebuild []string, backupID string) error

	// jobs
	Jobs(ctx context.Context) ([]jobs.Job, error)
	Runs(ctx context.Context) (map[string][]jobs.Run, error)
	WatchJobs(ctx context.Context) <-chan struct{}
	ClaimRun(ctx context.Context, r jobs.Run) (int64, bool, error)
	UpdateRun(ctx context.Context, r jobs.Run, rev int64) (int64, bool, error)
}

var _ clusterStore = (*dcs.Store)(nil)
