// Package jobs owns backup jobs: what a job is (a kind, options and a
// schedule), the record of each run, the pure decision of which runs are
// due on which node, and the result message a job's command hands the
// agent that runs it (Result). Jobs and runs live in the cluster store, not on a
// host: the current primary (or the member a job names) runs each trigger,
// and a claim in an etcd transaction makes every trigger run exactly once.
//
// The decision (Plan) is pure; Runner executes it. Nothing here decides
// anything about roles.
package jobs

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/logical"
	"github.com/pgguard/pgguard/internal/pgtime"

	"github.com/pgguard/pgguard/internal/jobs/schedule"
)

// Kind is what a job does.
type Kind string

// Job kinds. Logical, copy and drill are part of the model; Runner says
// clearly when a kind is not available in this build.
const (
	KindFull    Kind = "full"
	KindIncr    Kind = "incr"
	KindPrune   Kind = "prune"
	KindVerify  Kind = "verify"
	KindLogical Kind = "logical"
	KindCopy    Kind = "copy"
	KindDrill   Kind = "drill"
	// Restore kinds (seed 001 runs restores as jobs): a physical restore
	// into a directory of the node that runs the job, a logical restore,
	// the archived WAL of a time range. They run once or by hand.
	KindRestore        Kind = "restore"
	KindRestoreLogical Kind = "restore-logical"
	KindRestoreWAL     Kind = "restore-wal"
)

var kinds = []Kind{KindFull, KindIncr, KindPrune, KindVerify, KindLogical, KindCopy, KindDrill, KindRestore, KindRestoreLogical, KindRestoreWAL}

// IsRestore reports whether k is a restore kind.
func (k Kind) IsRestore() bool {
	return k == KindRestore || k == KindRestoreLogical || k == KindRestoreWAL
}

// Job is one scheduled backup task of the cluster.
type Job struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Kind     Kind              `json:"kind"`
	Schedule schedule.Schedule `json:"schedule"`
	// Node, when set, names the member that runs the job (e.g. a standby
	// for backups from a standby); empty means the current primary.
	Node    string  `json:"node,omitempty"`
	Enabled bool    `json:"enabled"`
	Options Options `json:"options"`
	// Scripts name executables the running node allow-lists; they run
	// without a shell, with only the job's context in PGGUARD_* variables,
	// under a timeout. A precondition that exits non-zero records the run
	// as skipped.
	Precondition *Script   `json:"precondition,omitempty"`
	PreScript    *Script   `json:"pre_script,omitempty"`
	PostScript   *Script   `json:"post_script,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	// Revision is the store revision of the record read (filled by the
	// store, not stored): an edit replaces that version only.
	Revision int64 `json:"-"`
}

// Options are the kind-specific settings.
type Options struct {
	Channels int    `json:"channels,omitempty"`
	Keep     int    `json:"keep,omitempty"`      // prune: newest backups kept
	KeepDays int    `json:"keep_days,omitempty"` // prune: also keep younger than
	WAL      string `json:"wal,omitempty"`       // prune: keep-all | covered | days:N
	// RateLimit caps repository transfers: "10MiB" or
	// "unlimited,08:00-20:00=1MiB" (BK-10).
	RateLimit string `json:"rate_limit,omitempty"`
	// ReadLimit caps reading the data directory (full, incr) and
	// WriteLimit writing the restored files (drill), in the same form.
	ReadLimit  string `json:"read_limit,omitempty"`
	WriteLimit string `json:"write_limit,omitempty"`
	// DB, Schema, Table (logical) name what is dumped.
	DB     string `json:"db,omitempty"`
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	// Checks (drill) are SQL=EXPECTED checks run against the restored copy.
	Checks []string `json:"checks,omitempty"`
	// ToRepo (copy) is the destination repository URL; its key comes from
	// repository.copy_to.key_file or PGGUARD_TO_PASSPHRASE on the node.
	// Newest (copy) copies the newest N backups; 0 copies all. WAL is then
	// needed or all.
	ToRepo string `json:"to_repo,omitempty"`
	Newest int    `json:"newest,omitempty"`
	// TargetDir (restore, restore-wal) is an absolute directory on the
	// node that runs the job: empty or absent (a restore job that runs
	// again after an interruption resumes into it).
	TargetDir string `json:"target_dir,omitempty"`
	// Backup (restore, restore-logical) picks the backup: an id or
	// label:TEXT ("": the newest that fits).
	Backup string `json:"backup,omitempty"`
	// The recovery target of a restore: at most one of them, or Standby
	// (the directory set up as a standby that replays the archive).
	TargetTime      string `json:"target_time,omitempty"`
	TargetLSN       string `json:"target_lsn,omitempty"`
	TargetXID       string `json:"target_xid,omitempty"`
	TargetName      string `json:"target_name,omitempty"`
	TargetImmediate bool   `json:"target_immediate,omitempty"`
	Standby         bool   `json:"standby,omitempty"`
	// Into (restore-logical) restores into this new database instead of
	// the original.
	Into string `json:"into,omitempty"`
	// From and To (restore-wal) bound the time range of WAL fetched.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks a job and names every bad field.
func (j Job) Validate() error {
	var bad []string
	if !idPattern.MatchString(j.ID) {
		bad = append(bad, fmt.Sprintf("id %q: lower-case letters, digits, '-' or '_'", j.ID))
	}
	known := false
	for _, k := range kinds {
		known = known || k == j.Kind
	}
	if !known {
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = string(k)
		}
		bad = append(bad, fmt.Sprintf("kind %q: use %s", j.Kind, strings.Join(names, ", ")))
	}
	if err := j.Schedule.Validate(); err != nil {
		bad = append(bad, "schedule: "+err.Error())
	}
	if j.Options.Channels < 0 || j.Options.Channels > 255 {
		bad = append(bad, fmt.Sprintf("channels %d: 1 to 255", j.Options.Channels))
	}
	if j.Kind == KindLogical {
		if j.Options.DB == "" {
			bad = append(bad, "db: a logical job names its database")
		} else if _, err := logical.ParseRequest(j.Options.DB, j.Options.Schema, j.Options.Table); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if j.Kind == KindPrune && j.Options.Keep < 1 {
		bad = append(bad, "keep: a prune job must keep at least 1 backup")
	}
	if j.Kind == KindCopy {
		if !strings.HasPrefix(j.Options.ToRepo, "file:///") && !strings.HasPrefix(j.Options.ToRepo, "s3://") && !strings.HasPrefix(j.Options.ToRepo, "/") {
			bad = append(bad, fmt.Sprintf("to-repo %q: a copy job names its destination, file:///path or s3://bucket/prefix", j.Options.ToRepo))
		}
		if j.Options.Newest < 0 {
			bad = append(bad, fmt.Sprintf("newest %d: 0 (all backups) or more", j.Options.Newest))
		}
		if w := j.Options.WAL; w != "" && w != "needed" && w != "all" {
			bad = append(bad, fmt.Sprintf("wal %q: a copy job copies needed or all WAL", w))
		}
	}
	if j.Kind.IsRestore() {
		bad = append(bad, j.validateRestore()...)
	}
	bad = append(bad, j.Precondition.validate("precondition")...)
	bad = append(bad, j.PreScript.validate("pre_script")...)
	bad = append(bad, j.PostScript.validate("post_script")...)
	if len(bad) > 0 {
		return errors.New("invalid job: " + strings.Join(bad, "; "))
	}
	return nil
}

// Status of a run.
type Status string

const (
	Requested   Status = "requested"   // started by hand, not yet picked up
	Running     Status = "running"     // a node is executing it
	Succeeded   Status = "succeeded"   //
	Failed      Status = "failed"      //
	Skipped     Status = "skipped"     // the precondition said no
	Interrupted Status = "interrupted" // its node died or left; a new attempt resumes it
	Stopping    Status = "stopping"    // an operator asked it to stop
	Stopped     Status = "stopped"     // stopped by an operator
)

// Done reports whether a run has ended.
func (s Status) Done() bool {
	switch s {
	case Succeeded, Failed, Skipped, Interrupted, Stopped:
		return true
	}
	return false
}

// Run is one execution of a job for one trigger.
type Run struct {
	Job         string    `json:"job"`
	Trigger     time.Time `json:"trigger"`
	Attempt     int       `json:"attempt"`
	Node        string    `json:"node"`
	Status      Status    `json:"status"`
	Started     time.Time `json:"started,omitzero"`
	Ended       time.Time `json:"ended,omitzero"`
	BytesRead   int64     `json:"bytes_read"`
	BytesStored int64     `json:"bytes_stored"`
	Speed       float64   `json:"bytes_per_second"`
	Message     string    `json:"message,omitempty"`
	Log         string    `json:"log,omitempty"`
	BackupID    string    `json:"backup_id,omitempty"`
	// Progress is set while the run is running (every few seconds).
	Progress *Progress `json:"progress,omitempty"`
	Revision int64     `json:"-"`
}

// Key is the run's unique name under its job: the trigger instant and the
// attempt. Claiming a key that exists fails, which is what makes a
// trigger run once.
func (r Run) Key() string {
	return fmt.Sprintf("%s/%s-%d", r.Job, r.Trigger.UTC().Format("20060102T150405.000000000Z"), r.Attempt)
}

// SortRuns orders runs by trigger, then attempt.
func SortRuns(runs []Run) {
	sort.Slice(runs, func(i, k int) bool {
		if !runs[i].Trigger.Equal(runs[k].Trigger) {
			return runs[i].Trigger.Before(runs[k].Trigger)
		}
		return runs[i].Attempt < runs[k].Attempt
	})
}

// validateRestore names what is wrong with a restore job's settings.
func (j Job) validateRestore() []string {
	var bad []string
	switch j.Schedule.Kind {
	case schedule.Immediate, schedule.Once, schedule.Manual:
	default:
		bad = append(bad, fmt.Sprintf("schedule %s: a %s job runs once or by hand (immediate, once@TIME or manual)", j.Schedule.Kind, j.Kind))
	}
	o := j.Options
	needDir := func() {
		if o.TargetDir == "" || !filepath.IsAbs(o.TargetDir) || filepath.Clean(o.TargetDir) == "/" {
			bad = append(bad, fmt.Sprintf("target-dir %q: an absolute directory on the node that runs the job", o.TargetDir))
		}
	}
	switch j.Kind {
	case KindRestore:
		needDir()
		if o.TargetTime != "" {
			if _, err := pgtime.Parse(o.TargetTime); err != nil {
				bad = append(bad, err.Error())
			}
		}
		targets := 0
		for _, set := range []bool{o.TargetTime != "", o.TargetLSN != "", o.TargetXID != "", o.TargetName != "", o.TargetImmediate} {
			if set {
				targets++
			}
		}
		if targets > 1 {
			bad = append(bad, "recovery target: give at most one of target-time, target-lsn, target-xid, target-name, target-immediate")
		}
		if o.Standby && targets > 0 {
			bad = append(bad, "standby: a standby has no recovery target")
		}
	case KindRestoreLogical:
		if o.DB == "" {
			bad = append(bad, "db: a restore-logical job names the database of the logical backup")
		} else if _, err := logical.ParseRequest(o.DB, o.Schema, o.Table); err != nil {
			bad = append(bad, err.Error())
		}
	case KindRestoreWAL:
		needDir()
		from, e1 := pgtime.Parse(o.From)
		to, e2 := pgtime.Parse(o.To)
		switch {
		case o.From == "" || o.To == "":
			bad = append(bad, "from, to: a restore-wal job names its time range")
		case e1 != nil || e2 != nil:
			bad = append(bad, fmt.Sprintf("from, to: %v", errors.Join(e1, e2)))
		case !to.After(from):
			bad = append(bad, fmt.Sprintf("to %s is not after from %s", o.To, o.From))
		}
	}
	return bad
}
