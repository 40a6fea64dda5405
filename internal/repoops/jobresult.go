package repoops

import (
	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/drill"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/logrestore"
)

// The result message each job kind's command hands the agent that runs it
// (jobs.Report): methods on this package's results, functions for the
// results of other packages.

// JobResult is the message of a backup job (full or incr).
func (r *BackupReport) JobResult() jobs.Result {
	return jobs.Result{Kind: jobs.Kind(r.Kind), BackupID: r.ID, BytesRead: r.BytesRead, BytesStored: r.StoredSize}
}

// JobResult is the message of a logical backup job: what it read is the
// dump.
func (r LogicalBackupResult) JobResult() jobs.Result {
	return jobs.Result{Kind: jobs.KindLogical, BackupID: r.ID, BytesRead: r.DumpSize}
}

// JobResult is the message of a logical restore job.
func (r LogicalRestoreResult) JobResult() jobs.Result {
	return jobs.Result{Kind: jobs.KindRestoreLogical, BackupID: r.BackupID}
}

// JobResult is the message of a verify job.
func (v VerifyResult) JobResult() jobs.Result { return jobs.Result{Kind: jobs.KindVerify} }

// JobResult is the message of a copy job: the backup copied last, what was
// read from the source and stored in the destination.
func (r CopyReport) JobResult() jobs.Result {
	return jobs.Result{Kind: jobs.KindCopy, BackupID: r.ID, BytesRead: r.BytesRead, BytesStored: r.BytesStored}
}

// JobResult is the message of a restore job: what it moved is what it
// wrote into the target directory.
func (r RestoreResult) JobResult() jobs.Result {
	return jobs.Result{Kind: jobs.KindRestore, BackupID: r.BackupID, BytesRead: r.BytesWritten}
}

// PruneJobResult is the message of a prune job.
func PruneJobResult(backup.PruneResult) jobs.Result { return jobs.Result{Kind: jobs.KindPrune} }

// DrillJobResult is the message of a drill job, passed or failed: the
// backup drilled and the bytes restored.
func DrillJobResult(r drill.Result) jobs.Result {
	return jobs.Result{Kind: jobs.KindDrill, BackupID: r.BackupID, BytesRead: r.Bytes}
}

// RestoreWALJobResult is the message of a restore-wal job.
func RestoreWALJobResult(logrestore.Selection) jobs.Result {
	return jobs.Result{Kind: jobs.KindRestoreWAL}
}
