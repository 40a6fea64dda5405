package repoops

import (
	"fmt"
	"io"
	"time"

	"github.com/pgguard/pgguard/internal/logrestore"
	"github.com/pgguard/pgguard/internal/repocopy"
)

// WriteRestore prints what a restore did and what to do next.
func WriteRestore(w io.Writer, req RestoreRequest, res RestoreResult) error {
	fmt.Fprintf(w, "restored backup %s into %s in %s: %s of files, %s written, %s fetched",
		res.BackupID, res.TargetDir, res.Duration.Round(time.Millisecond), HumanBytes(res.BytesTotal), HumanBytes(res.BytesWritten), HumanBytes(res.BytesFetched))
	if req.Delta {
		fmt.Fprintf(w, "; delta: %d of %d files unchanged, %d removed", res.Unchanged, res.Files, res.Removed)
	}
	fmt.Fprintln(w)
	for _, n := range res.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	switch {
	case req.Target.Standby:
		fmt.Fprintf(w, "standby is set up (standby.signal, postgresql.auto.conf): its agent starts it and names the primary to stream from\n")
	case !req.Start:
		fmt.Fprintf(w, "recovery is set up (recovery.signal, postgresql.auto.conf); start the server on %s to recover\n", res.TargetDir)
	case res.Server == nil:
		fmt.Fprintf(w, "recovery reached the target and the database opened after %s; the server was shut down\n", res.OpenAfter.Round(time.Millisecond))
	default:
		fmt.Fprintf(w, "recovery reached the target (%s) after %s; postgres pid %d is running on 127.0.0.1:%d (log %s)\n",
			req.Target.Action, res.OpenAfter.Round(time.Millisecond), res.Server.PID, res.Server.Port, res.Server.LogPath)
		fmt.Fprintf(w, "stop it with: kill -INT %d\n", res.Server.PID)
	}
	return nil
}

// WriteRestoreWAL prints the WAL files a restore of a time range wrote.
func WriteRestoreWAL(w io.Writer, req RestoreWALRequest, sel logrestore.Selection) error {
	fmt.Fprintf(w, "%d segments and %d history files written to %s\n", len(sel.Segments), len(sel.History), req.TargetDir)
	for _, n := range append(append([]string{}, sel.History...), sel.Segments...) {
		fmt.Fprintln(w, "  "+n)
	}
	if sel.Note != "" {
		fmt.Fprintln(w, "note:", sel.Note)
	}
	return nil
}

// WriteCopy prints what a copy did.
func WriteCopy(w io.Writer, res repocopy.Result) error {
	took := res.Duration.Round(time.Millisecond)
	if len(res.Backups) == 0 {
		_, err := fmt.Fprintf(w, "nothing to copy: %s (%d WAL files copied)\n", res.Note, res.WALCopied)
		return err
	}
	if res.NothingNew() {
		_, err := fmt.Fprintf(w, "nothing new to copy: %s already has the %d selected backups and their WAL (%d WAL files); stored 0 B, read %s in %s\n",
			res.Destination, len(res.Backups), res.WALSkipped, HumanBytes(res.BytesRead), took)
		return err
	}
	for _, id := range res.Copied {
		fmt.Fprintf(w, "copied backup %s\n", id)
	}
	rate := ""
	if secs := res.Duration.Seconds(); secs > 0 {
		rate = fmt.Sprintf(" (%s/s read)", HumanBytes(int64(float64(res.BytesRead)/secs)))
	}
	_, err := fmt.Fprintf(w, "copied %d backups (%d already there) from %s to %s in %s%s: %d blocks stored, %d already there (%d without reading); read %s, stored %s; WAL: %d copied, %d already there\n",
		len(res.Copied), len(res.Present), res.Source, res.Destination, took, rate, res.BlocksCopied, res.BlocksSkipped, res.BlocksKnown,
		HumanBytes(res.BytesRead), HumanBytes(res.BytesStored), res.WALCopied, res.WALSkipped)
	return err
}
