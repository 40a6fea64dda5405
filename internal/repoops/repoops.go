// Package repoops is the repository layer's operations: creating a
// repository, a physical or logical backup, listing, verifying, pruning,
// pinning, labelling and deleting backups, restoring a data directory, a
// database or a range of WAL, drills, copies between repositories, and
// the WAL archive commands — each a function with a typed request and a
// typed result. The backup and restore commands of the CLI call them; the
// agent and an API can call the same functions in-process.
//
// An operation checks its request, opens what it needs through
// reposettings in an order that makes a wrong input cost nothing, calls
// the packages that do the work (backup, restore, repocopy, drill,
// logical, logrestore, backup/wal) and returns what they did. It never
// prints a result and never exits: progress goes to the reporter in the
// request, warnings to Settings.Notices, and errors a person must fix are
// badinput errors.
package repoops

import (
	"fmt"
	"strconv"

	"github.com/pgguard/pgguard/internal/backup/progress"
)

// HumanBytes prints n in binary units, as the repository commands show
// sizes.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// reporter is rep, or a reporter that shows nothing.
func reporter(rep progress.Reporter) progress.Reporter {
	if rep == nil {
		return progress.Discard{}
	}
	return rep
}
