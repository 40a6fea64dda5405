package restore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// snapshot describes the trees under dirs as they are, links not
// followed: each path's type and mode, owner and group, size, content
// digest (files) or link target, so that a test can prove them unchanged.
func snapshot(t *testing.T, dirs ...string) string {
	t.Helper()
	var lines []string
	walkLstat(t, "snapshot", dirs, func(p string, fi fs.FileInfo, st *syscall.Stat_t) error {
		line := fmt.Sprintf("%s %v %d:%d %d", p, fi.Mode(), st.Uid, st.Gid, fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + to
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// notOwnedBy lists the paths under dirs (links not followed) that are not
// the account's.
func notOwnedBy(t *testing.T, uid, gid int, dirs ...string) []string {
	t.Helper()
	var bad []string
	walkLstat(t, "walk", dirs, func(p string, _ fs.FileInfo, st *syscall.Stat_t) error {
		if int(st.Uid) != uid || int(st.Gid) != gid {
			bad = append(bad, fmt.Sprintf("%s (%d:%d)", p, st.Uid, st.Gid))
		}
		return nil
	})
	return bad
}

// walkLstat calls fn for every path under dirs, links not followed, with
// its owner; what names the walk in a failure.
func walkLstat(t *testing.T, what string, dirs []string, fn func(p string, fi fs.FileInfo, st *syscall.Stat_t) error) {
	t.Helper()
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			return fn(p, fi, fi.Sys().(*syscall.Stat_t))
		})
		if err != nil {
			t.Fatalf("%s %s: %v", what, dir, err)
		}
	}
}

// outsideTree makes a directory beside the restore's with a file of
// root's and a file of the database account's, the places a link planted
// in a data directory would lead a restore run as root to.
func outsideTree(t *testing.T) (dir, rootFile, acctFile string) {
	t.Helper()
	dir = filepath.Join(scratch(t), "outside")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rootFile, acctFile = filepath.Join(dir, "roots-file"), filepath.Join(dir, "accounts-file")
	if err := os.WriteFile(rootFile, []byte("root's own\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acctFile, []byte("another cluster's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	acct := testcluster.Account(t)
	if err := os.Chown(acctFile, acct.UID, acct.GID); err != nil {
		t.Fatal(err)
	}
	return dir, rootFile, acctFile
}

// A backup run as root refuses a cluster whose pg_tblspc link was
// redirected to a root-owned empty directory (a database superuser can
// do that through COPY … PROGRAM), naming the link, and changes nothing
// there or in the tablespace (issue 13 item 4).
func TestRootRunBackupRefusesARedirectedTablespaceLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it checks what a backup run as root follows")
	}
	r, pg, _, tsDir, oid := tablespaceBackup(t) // a root-run backup of the tablespace works
	rootOwned := filepath.Join(scratch(t), "root-owned")
	if err := os.Mkdir(rootOwned, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(pg.DataDir(), "pg_tblspc", oid)
	before := snapshot(t, rootOwned, tsDir)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rootOwned, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link); os.Symlink(tsDir, link) })
	_, err := backup.Run(context.Background(), backup.Options{Repo: r, ConnString: pg.ConnString(), Kind: repo.KindFull, Channels: 4})
	if err == nil || !strings.Contains(err.Error(), "refusing to back it up") || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "owned by uid 0") {
		t.Fatalf("backup with pg_tblspc/%s redirected to a root-owned directory: %v; want a refusal naming the link and the owner", oid, err)
	}
	if after := snapshot(t, rootOwned, tsDir); after != before {
		t.Fatalf("the refused backup changed the directories:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	t.Logf("refused: %v", err)
}

// A restore run as root: into a root-owned target or tablespace
// directory it is refused, both left as they were; into new directories
// it gives every path it creates to the database account (it writes as
// the account), leaves a tree beside them untouched, and the restored
// server opens with the tablespace's rows. A delta restore over that copy
// where files and a directory were replaced by links to files outside (of
// root's and of the account's) and a link was added removes the links
// and writes nothing through them (issue 13 item 4).
func TestRootRunRestoreWritesOnlyItsOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it checks what a restore run as root writes and hands over")
	}
	acct := testcluster.Account(t)
	r, _, archive, _, oid := tablespaceBackup(t)
	outside, rootFile, acctFile := outsideTree(t)
	before := snapshot(t, outside)

	rootTarget := filepath.Join(scratch(t), "root-target")
	if err := os.Mkdir(rootTarget, 0o700); err != nil {
		t.Fatal(err)
	}
	refused, _ := remappedOpts(t, r, archive, oid)
	refused.TargetDir = rootTarget
	refuseUnchanged(t, "restore into a root-owned target directory", refused, "owned by uid 0")
	rootTS := filepath.Join(scratch(t), "root-ts")
	if err := os.Mkdir(rootTS, 0o700); err != nil {
		t.Fatal(err)
	}
	refused, _ = remappedOpts(t, r, archive, oid)
	refused.Tablespaces[oid] = rootTS
	refuseUnchanged(t, "restore of a tablespace into a root-owned directory", refused, "owned by uid 0")
	if got := notOwnedBy(t, 0, 0, rootTarget, rootTS); len(got) != 0 {
		t.Fatalf("refused restores handed root's directories over: %v", got)
	}

	opts, newTS := remappedOpts(t, r, archive, oid)
	opts.StopAfterOpen = true
	runRestore(t, opts)
	if bad := notOwnedBy(t, acct.UID, acct.GID, opts.TargetDir, newTS); len(bad) != 0 {
		t.Fatalf("%d restored paths are not the account's (%d:%d), e.g. %v", len(bad), acct.UID, acct.GID, bad[:min(len(bad), 5)])
	}

	// Files (one of them in the tablespace, one the recovery settings are
	// written into) and a directory become links to the outside; a link
	// to the outside directory is added where the backup has nothing.
	relFile := firstRelationFile(t, opts.TargetDir, "base")
	tsFile := firstRelationFile(t, opts.TargetDir, filepath.Join("pg_tblspc", oid))
	plant := map[string]string{
		relFile:                  rootFile,
		tsFile:                   acctFile,
		"postgresql.auto.conf":   acctFile,
		"backup_label":           acctFile,
		"tablespace_map":         rootFile,
		"PG_VERSION":             rootFile,
		"pg_xact":                outside,
		"base/planted-extra-dir": outside,
		serverLogName:            rootFile,
	}
	for rel, to := range plant {
		p := filepath.Join(opts.TargetDir, rel)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(to, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, acct.UID, acct.GID); err != nil { // as the account would make it
			t.Fatal(err)
		}
	}
	opts.Delta, opts.Start = true, false
	runRestore(t, opts)
	if after := snapshot(t, outside); after != before {
		t.Fatalf("the restores changed the tree outside:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for rel := range plant {
		fi, err := os.Lstat(filepath.Join(opts.TargetDir, rel))
		switch {
		case rel == serverLogName:
			// kept by a delta; the server's start replaces the link
		case rel == "base/planted-extra-dir":
			if err == nil {
				t.Errorf("the delta left %s (a link the backup does not have)", rel)
			}
		case err != nil || fi.Mode()&fs.ModeSymlink != 0:
			t.Errorf("after the delta %s is %v (%v), want the backup's file or directory again", rel, fi, err)
		}
	}
	if bad := notOwnedBy(t, acct.UID, acct.GID, opts.TargetDir, newTS); len(bad) != 0 {
		t.Fatalf("after the delta %d paths are not the account's, e.g. %v", len(bad), bad[:min(len(bad), 5)])
	}
	opts.Start, opts.StopAfterOpen = true, false
	target, _ := opts.Target.parse()
	res, err := startAndWait(context.Background(), opts, target, Result{}, func(Event) {})
	if err != nil {
		t.Fatalf("start the copy after the delta: %v", err)
	}
	t.Cleanup(func() { res.Server.Stop(time.Minute) })
	if after := snapshot(t, outside); after != before {
		t.Fatalf("the start after the delta changed the tree outside (through the log's place):\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if fi, err := os.Lstat(filepath.Join(opts.TargetDir, serverLogName)); err != nil || !fi.Mode().IsRegular() || int(fi.Sys().(*syscall.Stat_t).Uid) != acct.UID {
		t.Fatalf("the restored server's log is %v (%v), want a regular file of the account's", fi, err)
	}
	if got := query(t, opts.Port, "SELECT count(*) FROM in_ts"); got != "1000" {
		t.Fatalf("table in the tablespace has %s rows after the delta, want 1000", got)
	}
}

// firstRelationFile is the path (relative to dir) of the first non-empty
// relation file under dir/sub, with sub's links followed.
func firstRelationFile(t *testing.T, dir, sub string) string {
	t.Helper()
	var found string
	root := filepath.Join(dir, sub) + string(filepath.Separator)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			if _, ok := parseRelNumber(d.Name()); ok {
				rel, _ := filepath.Rel(root, p)
				found = filepath.Join(sub, rel)
			}
		}
		return nil
	})
	if err != nil || found == "" {
		t.Fatalf("no relation file under %s: %v", root, err)
	}
	return found
}

func parseRelNumber(name string) (int, bool) {
	n := 0
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, name != ""
}
