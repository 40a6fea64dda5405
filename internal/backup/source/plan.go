package source

import (
	"slices"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Previous describes the backup an incremental read is relative to.
type Previous struct {
	StartLSN  lsn.LSN
	StartTime time.Time // server clock at its start; guards the mtime rule
	Timeline  uint32
	Files     map[string]PrevFile // by Entry.Path
}

// PrevFile is what the previous backup recorded about one file: Size is the
// size it stored (FileResult.Size, which is less than Entry.Size if the file
// shrank while read), ModTime the Entry.ModTime it walked.
type PrevFile struct {
	Size    int64
	ModTime time.Time
}

// Action says how a file is read.
type Action uint8

const (
	// ActionNone: directories and symlinks, metadata only.
	ActionNone Action = iota
	// ActionReadAll reads the whole file and passes all of it on.
	ActionReadAll
	// ActionScan reads every page of a relation file and passes on only
	// pages changed since Plan.Since, new pages, and pages at or beyond
	// Plan.PrevSize.
	ActionScan
	// ActionReadBlocks reads only Plan.Blocks (known changed from WAL) and
	// the pages at or beyond Plan.PrevSize.
	ActionReadBlocks
	// ActionFromPrevious reads nothing: the content is the previous backup's.
	ActionFromPrevious
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionReadAll:
		return "read-all"
	case ActionScan:
		return "scan"
	case ActionReadBlocks:
		return "read-blocks"
	case ActionFromPrevious:
		return "from-previous"
	}
	return "unknown"
}

// Plan is the decision for one entry. For ActionScan and ActionReadBlocks
// the file written for this backup is the previous version with the passed
// pages laid over it, cut (or extended) to FileResult.Size.
type Plan struct {
	Action   Action
	Since    lsn.LSN  // ActionScan: pages with pd_lsn >= Since changed
	PrevSize int64    // ActionScan, ActionReadBlocks: pages from here on are always passed
	Blocks   []uint32 // ActionReadBlocks: block numbers within this file, ascending
	Reason   string   // for logs and tests
}

// mtimeSlack covers file systems with coarse timestamps: a file written in
// the same tick as the previous backup started may look unchanged.
const mtimeSlack = 2 * time.Second

// Decide chooses how to read e. prev is nil for a full backup. changed is the
// WAL block map between the previous and this backup's start, or nil when
// that WAL was not available (relation files are then scanned by page LSN).
func Decide(e Entry, prev *Previous, changed *BlockMap) Plan {
	if !e.IsRegular() {
		return Plan{Action: ActionNone, Reason: "not a regular file"}
	}
	if prev == nil {
		return Plan{Action: ActionReadAll, Reason: "full backup"}
	}
	pf, ok := prev.Files[e.Path]
	if !ok {
		return Plan{Action: ActionReadAll, Reason: "new since previous backup"}
	}
	rel, isRel := ParseRelFile(e.Path)
	if !isRel || e.Size%PageSize != 0 || pf.Size%PageSize != 0 {
		if pf.Size == e.Size && pf.ModTime.Equal(e.ModTime) && !prev.StartTime.IsZero() &&
			e.ModTime.Before(prev.StartTime.Add(-mtimeSlack)) {
			return Plan{Action: ActionFromPrevious, Reason: "same size and mtime, last written before previous backup"}
		}
		return Plan{Action: ActionReadAll, Reason: "not a relation file, changed or too recent to trust its mtime"}
	}
	if rel.Fork == "vm" || rel.Fork == "fsm" {
		// Heap records clear visibility-map bits without a block reference
		// to the VM page (redo clears them from a flag) and without moving
		// its LSN, and the free space map is not fully WAL-logged: neither
		// can be trusted to WAL or page LSN. Both are tiny next to the heap.
		return Plan{Action: ActionReadAll, Reason: "visibility and free space map forks change without WAL block references"}
	}
	scan := Plan{Action: ActionScan, Since: prev.StartLSN, PrevSize: pf.Size}
	if changed == nil {
		scan.Reason = "no WAL block map: page LSN scan"
		return scan
	}
	blocks, whole := changed.Changed(rel)
	if whole {
		scan.Reason = "relation created or truncated in WAL: page LSN scan"
		return scan
	}
	blocks = slices.DeleteFunc(blocks, func(b uint32) bool { return int64(b)*PageSize >= min(e.Size, pf.Size) })
	if len(blocks) == 0 && e.Size == pf.Size {
		return Plan{Action: ActionFromPrevious, Reason: "no block changed in WAL, same size"}
	}
	return Plan{Action: ActionReadBlocks, PrevSize: pf.Size, Blocks: blocks, Reason: "blocks changed in WAL"}
}
