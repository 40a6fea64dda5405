// Package restore owns physical restore from a pgguard repository: it
// picks the backup that can reach a recovery target, writes its files into
// a data directory (or rewrites only what differs in an existing one),
// sets up archive recovery to the target, and optionally starts the
// restored server and waits until it is open.
//
// It validates everything before it writes anything: a bad target, a
// directory that is not empty (or, for a delta restore, belongs to another
// cluster or is in use), or a target the chosen backup cannot reach leaves
// the directory untouched. It never touches a server it did not start,
// never writes outside the target directory except into the locations of
// tablespaces (original or remapped, and only when those are empty), and
// never logs repository secrets (the restore command is written as given;
// the caller must not put one in it).
//
// Run as root for a database account, it takes no directory that exists
// and is not the account's (the target, a tablespace location), creates
// the missing ones for the account (those alone are handed over), and
// writes beneath them only as the account (privdrop.FS) and through no
// symbolic link: a link in the target is removed, never written or
// deleted through. Only the repository is read as root.
//
// Delta restores leave the directory exactly as the backup has it: every
// file the backup does not list is removed, including stale WAL in pg_wal
// and local edits to postgresql.auto.conf (which is restored from the
// backup, then given the recovery settings).
package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/privdrop"
	"github.com/pgguard/pgguard/internal/repo"
)

// Options configures Run.
type Options struct {
	Repo *repo.Repository
	// BackupID to restore; "" picks the newest backup that can reach Target.
	BackupID  string
	TargetDir string
	Target    Target
	// Delta rewrites an existing data directory of the same cluster in
	// place, writing only blocks that differ; it also resumes an
	// interrupted restore.
	Delta    bool
	Channels int // parallel workers (each reads, decodes and writes), 1–255
	// Tablespaces restores tablespaces (by oid) to new locations instead
	// of their original ones; each location must be empty.
	Tablespaces map[string]string
	// RestoreCommand is written as restore_command, e.g.
	// "pgguard wal-fetch -c /etc/pgguard.yaml %f %p".
	RestoreCommand string
	// ArchiveOff writes archive_mode = off, so that a copy (a PITR into a
	// new directory, a drill) does not archive its new timeline into the
	// original's archive. Leave it false when replacing the original.
	ArchiveOff bool
	// Account owns the restored files and runs the server.
	Account osuser.Account
	// Start runs postgres on the restored directory (BinDir/postgres, on
	// 127.0.0.1:Port) and waits until recovery reaches the target.
	Start  bool
	BinDir string
	// Programs renames PostgreSQL's programs (forks; see pgbin), Database
	// is the database recovery is watched through (default postgres).
	Programs map[string]string
	Database string
	Port     int
	// User is the role that watches recovery over 127.0.0.1 (default: the
	// account name, which initdb makes the superuser), Password its
	// password (the restored copy keeps the original's pg_hba.conf, which
	// trusts no one on loopback). The password stays in this process.
	User     string
	Password string
	// StopAfterOpen shuts the started server down once it is open.
	StopAfterOpen bool
	// OpenTimeout bounds the wait for recovery (default 1 hour).
	OpenTimeout time.Duration
	Progress    func(Event)
	// WriteLimit, when set, is called with the bytes of every write into
	// the target directory and waits to keep to a write rate (BK-10).
	WriteLimit func(ctx context.Context, n int) error
}

// Event reports progress. Phase is one of "plan", "files", "recovery",
// "start", "open", "done".
type Event struct {
	Phase      string `json:"phase"`
	BackupID   string `json:"backup_id,omitempty"`
	Path       string `json:"path,omitempty"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	FilesDone  int    `json:"files_done"`
	FilesTotal int    `json:"files_total"`
	Message    string `json:"message,omitempty"`
}

// Result is what a restore did.
type Result struct {
	BackupID     string        `json:"backup_id"`
	Files        int           `json:"files"`
	BytesTotal   int64         `json:"bytes_total"`   // size of the restored files
	BytesWritten int64         `json:"bytes_written"` // written to disk
	BytesFetched int64         `json:"bytes_fetched"` // read from the repository (uncompressed)
	Unchanged    int           `json:"files_unchanged"`
	Removed      int           `json:"files_removed"`
	Duration     time.Duration `json:"duration_ns"`
	Notes        []string      `json:"notes,omitempty"`
	// Set when Options.Start: the time from start to open, and the server
	// (nil after StopAfterOpen).
	OpenAfter time.Duration `json:"open_after_ns,omitempty"`
	Server    *Server       `json:"-"`
	// PID and Port of the server left running, for scripts.
	PID  int `json:"pid,omitempty"`
	Port int `json:"port,omitempty"`
}

// Validate checks the options that need no I/O (all but Repo, so that a
// command can check its input before it opens the repository).
func (o Options) Validate() error {
	switch {
	case o.TargetDir == "":
		return errors.New("no target directory: give --target-dir")
	case o.Channels < 1 || o.Channels > 255:
		return fmt.Errorf("channels %d out of range: use 1 to 255", o.Channels)
	case o.RestoreCommand == "":
		return errors.New("no restore command: recovery needs one to fetch WAL from the archive")
	case o.Start && (o.Port < 1 || o.Port > 65535):
		return fmt.Errorf("port %d out of range: give --port", o.Port)
	case o.Start && o.BinDir == "":
		return errors.New("no PostgreSQL binary directory to start the server from")
	case o.Start && o.Target.Standby:
		return errors.New("--start with --standby: a standby is started by its agent, which names its primary")
	}
	if !filepath.IsAbs(o.TargetDir) {
		return fmt.Errorf("target directory %q must be an absolute path", o.TargetDir)
	}
	_, err := o.Target.parse()
	return err
}

// Run restores a backup into opts.TargetDir and sets up recovery to
// opts.Target.
func Run(ctx context.Context, opts Options) (Result, error) {
	began := time.Now()
	var res Result
	if err := opts.Validate(); err != nil {
		return res, err
	}
	if opts.Repo == nil {
		return res, errors.New("restore: no repository")
	}
	target, _ := opts.Target.parse()
	emit := func(e Event) {}
	if opts.Progress != nil {
		var mu sync.Mutex
		emit = func(e Event) { mu.Lock(); defer mu.Unlock(); opts.Progress(e) }
	}

	st, err := inspectDir(opts.TargetDir)
	if err != nil {
		return res, err
	}
	// A delta restore picks among the backups of the directory's own
	// cluster when a repository holds several.
	var system uint64
	if opts.Delta {
		system = st.systemID
	}
	m, err := pickManifest(ctx, opts.Repo, opts.BackupID, system, target)
	if err != nil {
		return res, err
	}
	res.BackupID = m.ID
	if err := checkTargetDir(opts.TargetDir, st, opts.Delta, m.SystemID); err != nil {
		return res, err
	}
	if err := checkTargetOwner(opts.TargetDir, opts.Account); err != nil {
		return res, err
	}
	if m.File(backupLabelName) == nil {
		return res, fmt.Errorf("backup %s has no backup_label: it is not a physical backup this pgguard can restore", m.ID)
	}
	label, err := readSmall(ctx, opts.Repo, m, backupLabelName)
	if err != nil {
		return res, err
	}
	var spcmap []byte
	if m.File(tablespaceMapName) != nil {
		if spcmap, err = readSmall(ctx, opts.Repo, m, tablespaceMapName); err != nil {
			return res, err
		}
	}
	l, err := planLayout(m, string(spcmap))
	if err != nil {
		return res, err
	}
	if err := l.remap(opts.Tablespaces); err != nil {
		return res, err
	}
	spcmap = l.tablespaceMap(spcmap)
	if err := checkTablespaces(opts.TargetDir, l, opts.Delta, opts.Account); err != nil {
		return res, err
	}
	for _, oid := range slices.Sorted(maps.Keys(l.tablespaces)) {
		if l.remapped[oid] {
			res.Notes = append(res.Notes, fmt.Sprintf("tablespace %s restored to %s as asked", oid, l.tablespaces[oid]))
		} else {
			res.Notes = append(res.Notes, fmt.Sprintf("tablespace %s restored to its original location %s (it was empty; remap it with --tablespace %s=DIR)", oid, l.tablespaces[oid], oid))
		}
	}
	res.Files, res.BytesTotal = len(l.files)+1, l.totalBytes
	emit(Event{Phase: "plan", BackupID: m.ID, BytesTotal: l.totalBytes, FilesTotal: res.Files,
		Message: fmt.Sprintf("backup %s (%s, ends %s at %s)", m.ID, m.Kind, m.StopTime.UTC().Format(time.RFC3339), m.StopLSN)})

	w := &writer{r: opts.Repo, m: m, dir: opts.TargetDir, delta: opts.Delta && !st.empty, acct: opts.Account, window: windowFor(opts.Channels)}
	if opts.WriteLimit != nil {
		w.writeLimit = func(n int) error { return opts.WriteLimit(ctx, n) }
	}
	// A restore into an empty directory is planned block by block; the
	// plan refuses a backup whose blocks are missing before anything is
	// written.
	var filesPlan, controlPlan *fullPlan
	if !w.delta {
		if filesPlan, err = w.planFull(l.files); err != nil {
			return res, err
		}
		if controlPlan, err = w.planFull([]repo.FileEntry{*l.control}); err != nil {
			return res, err
		}
		// The plan's look-ups in a large index leave heap behind that
		// the windows, kept outside the heap, cannot reuse; the runtime
		// returns it to the kernel only slowly, and it stayed resident
		// beside the windows: 3-5 MiB of a restore's peak RSS over an
		// index of 400,000 blocks (TestBackupAndRestoreStayUnderAMemoryLimit).
		debug.FreeOSMemory()
	}

	// From here on the directory changes. Run as root, the restore
	// creates the target and the tablespace locations that are missing
	// (for the account), then writes beneath them only as the account.
	if w.rt, err = openRoots(opts.TargetDir, l, opts.Account); err != nil {
		return res, err
	}
	defer w.rt.close()
	if w.fs, err = privdrop.NewFS(opts.Account, opts.Channels); err != nil {
		return res, err
	}
	defer w.fs.Close()
	if err := w.makeDirs(l); err != nil {
		return res, err
	}
	if err := w.do(func() error { return writeMarker(w.rt.dir, marker{BackupID: m.ID, SystemID: m.SystemID}) }); err != nil {
		return res, fmt.Errorf("mark restore in progress: %w", err)
	}
	// pg_control goes last and is removed first: a directory whose restore
	// did not finish cannot be started by mistake.
	if err := w.do(func() error { return w.rt.dir.Remove(pgControlName) }); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("remove old pg_control: %w", err)
	}
	if w.delta {
		if res.Removed, err = w.removeExtras(l); err != nil {
			return res, err
		}
	}
	notes, err := w.makeLinks(l)
	res.Notes = append(res.Notes, notes...)
	if err != nil {
		return res, err
	}
	var filesDone atomic.Int64
	w.progress = func(path string, _ int64) {
		n := filesDone.Add(1)
		emit(Event{Phase: "files", BackupID: m.ID, Path: path, BytesDone: w.done.Load(), BytesTotal: l.totalBytes, FilesDone: int(n), FilesTotal: res.Files})
	}
	if err := w.restoreFiles(ctx, l.files, filesPlan, opts.Channels); err != nil {
		return res, err
	}
	// backup_label before pg_control: a directory with pg_control but no
	// label would start crash recovery from the wrong checkpoint.
	if err := w.do(func() error {
		return writeRecovery(w.rt.dir, label, spcmap, target, opts.RestoreCommand, m.ID, opts.ArchiveOff)
	}); err != nil {
		return res, err
	}
	if err := w.restoreFiles(ctx, []repo.FileEntry{*l.control}, controlPlan, 1); err != nil {
		return res, err
	}
	res.BytesWritten, res.BytesFetched, res.Unchanged = w.written.Load(), w.fetched.Load(), int(w.unchanged.Load())
	emit(Event{Phase: "recovery", BackupID: m.ID, BytesDone: l.totalBytes, BytesTotal: l.totalBytes, FilesDone: res.Files, FilesTotal: res.Files,
		Message: "recovery.signal and recovery settings written to postgresql.auto.conf"})
	// Nothing to hand over: what the restore wrote, it wrote as the
	// account.
	// One pass at the end instead of an fsync per file (each file's
	// writeback was started when it was complete): syncfs of each file
	// system written to, which unlike sync reports a failed writeback and
	// does not wait for other programs' writes elsewhere.
	durable := []string{opts.TargetDir}
	for _, loc := range l.tablespaces {
		durable = append(durable, loc)
	}
	if err := syncFilesystems(durable); err != nil {
		return res, fmt.Errorf("make the restored files durable: %w", err)
	}
	if err := w.do(func() error { return w.rt.dir.Remove(markerName) }); err != nil {
		return res, fmt.Errorf("clear restore marker: %w", err)
	}
	res.Duration = time.Since(began)
	emit(Event{Phase: "done", BackupID: m.ID, BytesDone: l.totalBytes, BytesTotal: l.totalBytes, FilesDone: res.Files, FilesTotal: res.Files,
		Message: fmt.Sprintf("restored in %s: %d bytes written, %d fetched", res.Duration.Round(time.Millisecond), res.BytesWritten, res.BytesFetched)})
	if !opts.Start {
		return res, nil
	}
	return startAndWait(ctx, opts, target, res, emit)
}

func startAndWait(ctx context.Context, opts Options, target parsedTarget, res Result, emit func(Event)) (Result, error) {
	started := time.Now()
	srv, err := startServer(pgbin.Tools{BinDir: opts.BinDir, Programs: opts.Programs}, opts.TargetDir, opts.Port, opts.Account)
	if err != nil {
		return res, err
	}
	emit(Event{Phase: "start", BackupID: res.BackupID, Message: fmt.Sprintf("postgres pid %d on 127.0.0.1:%d, log %s", srv.PID, srv.Port, srv.LogPath)})
	timeout := opts.OpenTimeout
	if timeout <= 0 {
		timeout = time.Hour
	}
	user := opts.User
	if user == "" {
		user = opts.Account.Name
	}
	if user == "" {
		user = "postgres"
	}
	db := opts.Database
	if db == "" {
		db = "postgres"
	}
	if err := waitOpen(ctx, srv, login{user, opts.Password, db}, target.Action, timeout); err != nil {
		_ = srv.Stop(time.Minute)
		return res, fmt.Errorf("restored server: %w", err)
	}
	res.OpenAfter = time.Since(started)
	emit(Event{Phase: "open", BackupID: res.BackupID, Message: fmt.Sprintf("recovery reached the target (%s) after %s", target.Action, res.OpenAfter.Round(time.Millisecond))})
	if opts.StopAfterOpen {
		if err := srv.Stop(5 * time.Minute); err != nil {
			return res, err
		}
		return res, nil
	}
	res.Server, res.PID, res.Port = srv, srv.PID, srv.Port
	return res, nil
}

// pickManifest loads the backups' headers, then the manifest to restore.
// With system non-zero and no id, only that system's backups are
// candidates.
func pickManifest(ctx context.Context, r *repo.Repository, id string, system uint64, t parsedTarget) (*repo.Manifest, error) {
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return nil, err
	}
	var hdrs []repo.Header
	for _, bid := range ids {
		h, err := r.LoadHeader(ctx, bid)
		if err != nil {
			return nil, err
		}
		if id == "" && system != 0 && h.SystemID != system {
			continue
		}
		hdrs = append(hdrs, h)
	}
	h, err := chooseBackup(hdrs, id, t)
	if err != nil {
		return nil, err
	}
	return r.LoadManifest(ctx, h.ID)
}

// writeRecovery writes backup_label, tablespace_map, the recovery settings
// and recovery.signal, and removes files that would mislead the start,
// beneath dir and through no link: a link in the place of one of these
// files is removed, not written through.
func writeRecovery(dir *os.Root, label, spcmap []byte, t parsedTarget, restoreCommand, backupID string, archiveOff bool) error {
	if err := writeNew(dir, backupLabelName, label); err != nil {
		return fmt.Errorf("write backup_label: %w", err)
	}
	if len(spcmap) > 0 {
		if err := writeNew(dir, tablespaceMapName, spcmap); err != nil {
			return fmt.Errorf("write tablespace_map: %w", err)
		}
	}
	const auto = "postgresql.auto.conf"
	var old []byte
	if fi, err := dir.Lstat(auto); err == nil && fi.Mode().IsRegular() {
		if old, err = dir.ReadFile(auto); err != nil {
			return fmt.Errorf("read postgresql.auto.conf: %w", err)
		}
	}
	if err := writeNew(dir, auto, []byte(recoveryConf(string(old), t, restoreCommand, backupID, archiveOff))); err != nil {
		return fmt.Errorf("write recovery settings: %w", err)
	}
	signal, stale := "recovery.signal", "standby.signal"
	if t.kind == "standby" {
		signal, stale = stale, signal
	}
	if err := writeNew(dir, signal, nil); err != nil {
		return fmt.Errorf("write %s: %w", signal, err)
	}
	for _, stale := range []string{stale, "postmaster.pid", "backup_label.old", "tablespace_map.old"} {
		if err := dir.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", stale, err)
		}
	}
	return nil
}

// writeNew replaces name beneath dir with a new file holding data (mode
// 0600): whatever was there, a link included, is removed first, and the
// file is created exclusively, so nothing is written through a link.
func writeNew(dir *os.Root, name string, data []byte) error {
	if err := dir.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
