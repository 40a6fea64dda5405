package ops

import (
	"context"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/explain"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/status"
)

// Operator is every cluster operation a front end offers. *Ops runs them
// against the store; the REST API's client (internal/rest) runs them on an
// agent, which runs them with its own *Ops, so the checks are the same
// either way.
type Operator interface {
	// Name is the cluster's name.
	Name() string
	Status(ctx context.Context, withStore bool) (status.Report, error)
	History(ctx context.Context, since time.Time) ([]dcs.Event, error)
	Explain(ctx context.Context, id string) (explain.Episode, error)

	PlanSwitchover(ctx context.Context, req SwitchoverRequest) (from, to string, plan Plan, err error)
	Switchover(ctx context.Context, req SwitchoverRequest) (SwitchoverResult, error)
	CancelSwitchover(ctx context.Context) error
	PlanTakeover(ctx context.Context, to string) (TakeoverPlan, error)
	Takeover(ctx context.Context, to string, force bool, wait time.Duration) (TakeoverPlan, error)

	PlanConfig(ctx context.Context, ch ConfigChange) (Plan, error)
	Config(ctx context.Context) (ha.ClusterConfig, error)
	SetConfig(ctx context.Context, ch ConfigChange) (ha.ClusterConfig, error)
	Pause(ctx context.Context, node string, pause bool) (ha.ClusterConfig, error)
	PlanDetach(ctx context.Context, node string, detach bool) (Plan, error)
	Detach(ctx context.Context, node string, detach bool) (ha.ClusterConfig, error)

	PlanReinit(ctx context.Context, node string, fromBackup bool) (ReinitPlan, error)
	Reinit(ctx context.Context, node string, fromBackup bool, wait time.Duration) error
	PlanStopStart(ctx context.Context, node string, stop bool) (StopStartPlan, error)
	StopStart(ctx context.Context, node string, stop bool, wait time.Duration) error
	PlanRollingRestart(ctx context.Context) (Plan, error)
	RollingRestart(ctx context.Context) error
	Replay(ctx context.Context, h ReplayHold) (string, error)

	PlanRemove(ctx context.Context, node string) (Plan, error)
	Remove(ctx context.Context, node string) (string, error)
	PlanAdd(ctx context.Context, node, peerURL string) (Plan, error)
	Add(ctx context.Context, node, peerURL string) (dcs.AddResult, error)
	MoveStoreLeader(ctx context.Context, node string) error

	PlanRestoreCluster(ctx context.Context, req RestoreClusterRequest) (RestoreClusterPlan, error)
	RestoreCluster(ctx context.Context, req RestoreClusterRequest) (string, error)
	AbortRestoreCluster(ctx context.Context) error
}

// JobOperator is every job operation a front end offers (*Jobs, or the
// REST API's client).
type JobOperator interface {
	List(ctx context.Context) ([]jobs.Job, map[string][]jobs.Run, error)
	Get(ctx context.Context, id string) (jobs.Job, error)
	Create(ctx context.Context, id string, edit func(*jobs.Job) error) (jobs.Job, error)
	Edit(ctx context.Context, id string, edit func(*jobs.Job) error) (jobs.Job, error)
	Clone(ctx context.Context, id, newID string) (jobs.Job, error)
	Delete(ctx context.Context, id string) error
	Start(ctx context.Context, id string) (jobs.Run, error)
	Stop(ctx context.Context, id string) (jobs.Run, error)
	Runs(ctx context.Context, id string) ([]jobs.Run, error)
}

var (
	_ Operator    = (*Ops)(nil)
	_ JobOperator = (*Jobs)(nil)
)

// Name is the cluster's name.
func (o *Ops) Name() string { return o.Cluster }
