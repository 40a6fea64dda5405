package backup_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadPageFailsTheBackupUnlessIgnored: a page with a wrong checksum is
// named (file and block) and makes the backup exit 1, though the backup is
// stored; --ignore-checksum-errors makes it exit 0 and still lists the page.
func TestBadPageFailsTheBackupUnlessIgnored(t *testing.T) {
	e, pg := newRepoEnv(t, nil)
	pg.Exec(t, `CREATE TABLE c AS SELECT i, repeat('x', 100) AS pad FROM generate_series(1, 3000) i; CHECKPOINT`)
	rel := pg.QueryString(t, "pg_relation_filepath('c')")
	pg.Stop()
	f, err := os.OpenFile(filepath.Join(pg.DataDir(), rel), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	const off = 2*8192 + 8192 - 200 // block 2, inside the tuple data
	f.ReadAt(b, off)
	b[0] ^= 0x5A
	f.WriteAt(b, off)
	f.Close()
	pg.Start()

	res := e.run(nil, "backup", "full", "-o", "json", "-c", e.cfgPath)
	if res.code != 1 || !strings.Contains(res.stderr, rel+" block 2") || !strings.Contains(res.stderr, "was stored") {
		t.Errorf("backup over a bad page: exit %d, stderr %q; want exit 1 naming %s block 2 and saying the backup was stored", res.code, lastLines(res.stderr, 3), rel)
	}
	res = e.run(nil, "backup", "full", "-o", "json", "--ignore-checksum-errors", "-c", e.cfgPath)
	var rep struct {
		BadPages     int64    `json:"bad_pages"`
		BadPagesList []string `json:"bad_pages_list"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("backup printed %q (stderr %q): %v", res.stdout, lastLines(res.stderr, 3), err)
	}
	if res.code != 0 || rep.BadPages != 1 || len(rep.BadPagesList) != 1 || !strings.HasPrefix(rep.BadPagesList[0], rel+" block 2") {
		t.Errorf("--ignore-checksum-errors: exit %d, bad pages %d %v; want exit 0 and the page listed", res.code, rep.BadPages, rep.BadPagesList)
	}
	list := e.ok("backups", "-o", "json")
	if n := strings.Count(list.stdout, `"id"`); n != 2 {
		t.Errorf("backups lists %d backups, want both (a bad page does not discard the backup)", n)
	}
}
