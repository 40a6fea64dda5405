package agent

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/ha"
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
	WritePassFile() error
	WriteDataFile(name, content string) error
	SuperConninfo(u pg.Upstream) string
	SyncNames() string
	SetSyncNames(v string) error
	ReplayTarget() time.Time
	SetReplayTarget(t pg.ReplayTarget)

	// the data directory and its timelines
	Inspect(ctx context.Context) (ha.DataState, pg.Control, string)
	Controldata(ctx context.Context) (pg.Control, error)
	Rewind(ctx context.Context, up pg.Upstream) (string, error)
	CloneFrom(ctx context.Context, up pg.Upstream) error
	MoveDataAside(now time.Time) (string, error)
	StopPointBefore(ctx context.Context, from, to lsn.LSN, tli int, t time.Time) (lsn.LSN, error)
	ReplayTimeline(ctx context.Context) (int, error)
	HistoryTimelines() ([]int, error)
	RemoveHistoryAbove(tli int) ([]int, error)
	TimelineHistory(tli int) ([]ha.TimelineSwitch, error)
	HighestHistory() int
	SkipTimelines(current, upTo int) error
}

var _ instance = (*pg.Instance)(nil)
