package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
)

// diskLevel measures the data directory's volume and pg_wal's (another
// volume when pg_wal is a link) against disk.warn and disk.critical and
// returns the worse, with the free space in words.
func (a *Agent) diskLevel() (ha.DiskLevel, string) {
	data := a.cfg.Postgres.DataDir
	if _, err := os.Stat(data); err != nil {
		return ha.DiskOK, ""
	}
	dirs := []string{data}
	if wal, err := filepath.EvalSymlinks(filepath.Join(data, "pg_wal")); err == nil {
		dirs = append(dirs, wal)
	}
	level, detail := ha.DiskOK, ""
	for _, d := range dirs {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err != nil || st.Blocks == 0 {
			continue
		}
		total, free := st.Blocks*uint64(st.Bsize), st.Bavail*uint64(st.Bsize)
		warn, _ := config.Threshold(a.cfg.Disk.Warn, total)
		crit, _ := config.Threshold(a.cfg.Disk.Critical, total)
		l := ha.DiskOK
		switch {
		case free < crit:
			l = ha.DiskCritical
		case free < warn:
			l = ha.DiskWarn
		}
		if l != ha.DiskOK && (level == ha.DiskOK || l == ha.DiskCritical) {
			level = l
			detail = fmt.Sprintf("%s free of %s on the volume of %s (warn below %s, critical below %s)",
				status.HumanBytes(int64(free)), status.HumanBytes(int64(total)), d, a.cfg.Disk.Warn, a.cfg.Disk.Critical)
		}
	}
	return level, detail
}

// recordDisk logs and records a change of the disk level (once per
// crossing, not every loop).
func (a *Agent) recordDisk(ctx context.Context, level ha.DiskLevel, detail string) {
	if level == a.diskWas {
		return
	}
	prev := a.diskWas
	a.diskWas = level
	switch level {
	case ha.DiskOK:
		a.log.Info("disk space back above disk.warn", "was", prev)
		go a.record(context.WithoutCancel(ctx), ha.EventDiskOK, "", "free space back above disk.warn", "observed")
	default:
		a.log.Warn("disk space low", "level", level, "detail", detail)
		go a.record(context.WithoutCancel(ctx), level.Event(), "", detail, "observed")
	}
}
