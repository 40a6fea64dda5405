package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// restores restores the newest backup with each tool (files and recovery
// settings only, the timed part), twice: with the page cache as the
// previous steps left it (full of the database and the repositories, as
// on a busy host) and after dropping it (as on a fresh one, reading the
// repository from disk). Throughput is of the restored bytes. Each copy
// is then started, timed to its first committed write and checked against
// the source (checkRestored). On the last pass each copy then takes
// writes of its own (it has diverged from the backup), and each tool
// restores the backup over it with its delta mode, timed, and the copy is
// opened and checked again.
func (bn *bench) restores(prefix string) {
	random := prefix != ""
	want := bn.fingerprint(bn.sql, random)
	bn.pushBackupWALToPgBackRest()
	passes := []bool{false}
	if *dropCaches {
		passes = append(passes, true)
	}
	cacheNote := "page cache as left by the previous steps"
	if *dropCaches {
		cacheNote = "page cache dropped first"
	}
	for i, cold := range passes {
		last := i == len(passes)-1
		step, note := prefix+"restore newest", "page cache as left by the previous steps, written back"
		if cold {
			step, note = prefix+"restore newest, cold", "page cache dropped first"
		}
		for _, tool := range bn.restoreTools() {
			dir := filepath.Join(bn.dir, tool.dir)
			os.RemoveAll(dir)
			bn.acct.MkdirAll(dir, 0o700)
			if cold {
				bn.cold()
			} else {
				// Dirty pages of the steps before written back, as
				// before every other timed restore: a restore's own
				// final sync would otherwise wait for them, and only
				// the first tool's came right after those steps.
				syscall.Sync()
			}
			d, _ := bn.timed(tool.name+" restore", tool.bin, tool.args(dir, false)...)
			bn.row(step, tool.name, bn.wallCPU(d), bn.throughput(dirSize(dir), d), bn.rss(), "", "", note)
			open := bn.checkRestored(tool.name+" restore", dir, want, random, last)
			bn.row(step+", then open for writes", tool.name, restorePlusOpen(d, open), "", "", "", "", openNote(tool.name))
			if last {
				bn.cold()
				d, _ = bn.timed(tool.name+" delta restore", tool.bin, tool.args(dir, true)...)
				bn.row(prefix+"delta restore over the diverged copy", tool.name, bn.wallCPU(d), "", bn.rss(), "", "", cacheNote+"; "+divergeNote)
				open = bn.checkRestored(tool.name+" delta restore", dir, want, random, false)
				bn.row(prefix+"delta restore over the diverged copy, then open for writes", tool.name, restorePlusOpen(d, open), "", "", "", "", openNote(tool.name))
			}
			os.RemoveAll(dir)
			syscall.Sync()
		}
	}
}

// restoreTool is how one tool restores the newest backup into a directory.
type restoreTool struct {
	name, bin, dir string
	args           func(dir string, delta bool) []string
}

func (bn *bench) restoreTools() []restoreTool {
	return []restoreTool{
		{name: "pgguard", bin: bn.pgguard, dir: "restore-pgguard", args: func(dir string, delta bool) []string {
			args := []string{"restore", "-c", bn.cfg, "--target-dir", dir, "--immediate", "--channels", strconv.Itoa(*channels)}
			if delta {
				args = append(args, "--delta")
			}
			return args
		}},
		{name: "pgBackRest", bin: "pgbackrest", dir: "restore-pgbr", args: func(dir string, delta bool) []string {
			args := []string{"--config=" + bn.pgbrCfg, "--stanza=bench", "--pg1-path=" + dir, "--type=immediate", "--target-action=promote"}
			if delta {
				args = append(args, "--delta")
			}
			return append(args, "restore")
		}},
	}
}

// divergeTx is how many pgbench transactions each of 4 clients runs on a
// copy before the delta restores: a count, not a time, so that both
// tools' copies differ from the backup by the same work.
const divergeTx = 2500

// divergeNote says how a copy diverged before the delta restores.
var divergeNote = fmt.Sprintf("the copy had been promoted and then run pgbench -c 4 -t %d (TPC-B, %d transactions) of its own", divergeTx, 4*divergeTx)

func openNote(tool string) string {
	fetch := "pgguard-wal wal-fetch (the first call pgguard wal-fetch, which starts a wal-serve for the later ones)"
	if tool == "pgBackRest" {
		fetch = "pgbackrest archive-get"
	}
	return "restore's wall time + open: postgres started on the copy → first write committed (replay to the end of the backup with restore_command = " + fetch + ", as the tool wrote it, then promotion)"
}

func restorePlusOpen(restore, open time.Duration) string {
	return fmt.Sprintf("%.1f s + %.1f s = %.1f s", restore.Seconds(), open.Seconds(), (restore + open).Seconds())
}

// pushBackupWALToPgBackRest copies the WAL that pgBackRest's newest backup
// needs into its repository with pgbackrest archive-push (untimed): the
// server archives into pgguard's repository only, so that archive_command
// times pgguard alone, and each restored copy must replay with its own
// tool's restore_command.
func (bn *bench) pushBackupWALToPgBackRest() {
	out := bn.run("pgbackrest", "--config="+bn.pgbrCfg, "--stanza=bench", "--output=json", "info")
	var info []struct {
		Backup []struct {
			Archive struct{ Start, Stop string }
		}
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) == 0 || len(info[0].Backup) == 0 {
		bn.b.Fatalf("pgbackrest info: %v: %s", err, out)
	}
	a := info[0].Backup[len(info[0].Backup)-1].Archive
	segs, err := walSegmentsBetween(a.Start, a.Stop)
	if err != nil {
		bn.b.Fatal(err)
	}
	for _, seg := range segs {
		bn.run("pgbackrest", "--config="+bn.pgbrCfg, "--stanza=bench", "archive-push", filepath.Join(bn.data, "pg_wal", seg))
	}
	bn.b.Logf("pushed %d WAL segments (%s to %s) into pgBackRest's repository", len(segs), a.Start, a.Stop)
}

// walSegmentsBetween lists the names of the 16 MiB WAL segments of one
// timeline from start to stop, both included.
func walSegmentsBetween(start, stop string) ([]string, error) {
	parse := func(name string) (tli string, n uint64, err error) {
		if len(name) != 24 {
			return "", 0, fmt.Errorf("%q is not a WAL segment name", name)
		}
		log, err1 := strconv.ParseUint(name[8:16], 16, 32)
		seg, err2 := strconv.ParseUint(name[16:], 16, 32)
		if err1 != nil || err2 != nil || seg > 0xFF {
			return "", 0, fmt.Errorf("%q is not a WAL segment name of 16 MiB segments", name)
		}
		return name[:8], log<<8 | seg, nil
	}
	tli, from, err := parse(start)
	if err != nil {
		return nil, err
	}
	tli2, to, err := parse(stop)
	if err != nil {
		return nil, err
	}
	if tli2 != tli || to < from {
		return nil, fmt.Errorf("WAL range %s to %s is not one timeline in order", start, stop)
	}
	var names []string
	for n := from; n <= to; n++ {
		names = append(names, fmt.Sprintf("%s%08X%08X", tli, n>>8, n&0xFF))
	}
	return names, nil
}

// checkRestored starts PostgreSQL on a restored copy on its own port and
// socket with archiving off and the recovery settings the tool wrote
// (replay to the end of the backup with the tool's own restore_command;
// promote), and returns the time from starting postgres to the first
// committed write on it, polled every 20 ms. It fails the benchmark unless
// the copy opens and shows the source's fingerprint. With diverge, the
// copy then runs pgbench of its own (divergeNote) before it is stopped.
func (bn *bench) checkRestored(what, dir, want string, random, diverge bool) time.Duration {
	bn.b.Helper()
	sock := filepath.Join(bn.dir, "sock-restored")
	bn.acct.MkdirAll(sock, 0o700)
	port := strconv.Itoa(testcluster.FreePort(bn.b))
	bn.copies++
	logPath := filepath.Join(bn.dir, fmt.Sprintf("copy-%d-postgres.log", bn.copies))
	logf, _ := os.Create(logPath)
	defer logf.Close()
	cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "postgres"), "-D", dir, "-p", port,
		"-c", "listen_addresses=", "-c", "unix_socket_directories="+sock, "-c", "shared_buffers=128MB",
		"-c", "archive_mode=off", "-c", "recovery_target_action=promote")
	bn.acct.Apply(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		bn.b.Fatalf("%s: start PostgreSQL on the copy: %v", what, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		<-exited
	}()
	ctx := context.Background()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(ctx)
		}
	}()
	var last error
	for deadline := time.Now().Add(10 * time.Minute); ; {
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			bn.b.Fatalf("%s: PostgreSQL exited on the restored copy; its log:\n%s", what, log)
		default:
		}
		if conn == nil {
			conn, last = pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres connect_timeout=5", sock, port))
		}
		if conn != nil {
			_, last = conn.Exec(ctx, "CREATE TABLE bench_opened AS SELECT now() AS at")
			if last == nil {
				break
			}
			if conn.IsClosed() {
				conn = nil
			}
		}
		if time.Now().After(deadline) {
			bn.b.Fatalf("%s: no write committed on the copy after 10 minutes (last error: %v); see %s", what, last, logPath)
		}
		time.Sleep(20 * time.Millisecond) // polling the restored server
	}
	opened := time.Since(start)
	query := func(q string) (string, error) {
		out, err := exec.Command(filepath.Join(testcluster.PGBinDir, "psql"), "-h", sock, "-p", port, "-U", "postgres", "-XAtc", q, "postgres").CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	got := bn.fingerprint(func(q string) string {
		out, err := query(q)
		if err != nil {
			bn.b.Fatalf("%s: read the copy: %v: %s", what, err, out)
		}
		return out
	}, random)
	if got != want {
		bn.b.Fatalf("%s: the copy shows %q, the source %q", what, got, want)
	}
	bn.b.Logf("%s: the copy took its first write %s after postgres started and matches the source (%s); its log: %s", what, opened.Round(10*time.Millisecond), got, logPath)
	if diverge {
		args := []string{"-h", sock, "-p", port, "-U", "postgres", "-n", "-c", "4", "-t", strconv.Itoa(divergeTx), "postgres"}
		bn.cmds = append(bn.cmds, "pgbench "+strings.Join(shorten(bn.dir, args), " ")+"   # on the copy, before the delta restore")
		bn.run(filepath.Join(testcluster.PGBinDir, "pgbench"), args...)
	}
	return opened
}
