package ha

import (
	"fmt"

	"github.com/pgguard/pgguard/internal/lsn"
)

// DiskLevel says how full this node's data and WAL volumes are against
// disk.warn and disk.critical (HA-14).
type DiskLevel string

const (
	DiskOK       DiskLevel = ""
	DiskWarn     DiskLevel = "warn"
	DiskCritical DiskLevel = "critical"
)

// diskCriticalStandby stops a standby whose own volume is nearly full,
// cleanly, before PostgreSQL fails writing to it (a standby that runs out
// of space mid-replay stops with a PANIC and needs care); it stays down
// until space is back. nil when the standby may run.
func diskCriticalStandby(o Observation) Plan {
	l := o.Local
	if l.Disk != DiskCritical {
		return nil
	}
	why := "disk critical (free space below disk.critical)"
	if l.Running && l.InRecovery {
		return Plan{{Kind: Stop, Reason: why + "; stopping this standby cleanly before its volume fills"}}
	}
	if !l.Running {
		return Plan{{Kind: Wait, Reason: why + "; not starting until space is back"}}
	}
	return nil
}

// diskCriticalSlot is the member whose slot a primary on a nearly full
// volume gives up: the one holding the most WAL back (the lowest
// position) among the members that do not stream now; "" when none
// holds any. That standby then catches up from the archive or is rebuilt.
func diskCriticalSlot(o Observation, keep []string) (string, string) {
	if o.Local.Disk != DiskCritical {
		return "", ""
	}
	streaming := map[string]bool{}
	for _, s := range o.Local.Streamers {
		streaming[s] = true
	}
	victim, lowest := "", lsn.LSN(0)
	for _, name := range keep {
		if streaming[name] {
			continue
		}
		pos := o.Cluster.Members[name].Position()
		if victim == "" || pos < lowest {
			victim, lowest = name, pos
		}
	}
	if victim == "" {
		return "", ""
	}
	return victim, fmt.Sprintf("disk critical (free space below disk.critical): %s does not stream and holds the most WAL back", victim)
}
