package pg_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pgguard/pgguard/internal/pg"
)

func TestRemoveHistoryAboveKeepsTheLeadersTimelineFindable(t *testing.T) {
	dir := t.TempDir()
	wal := filepath.Join(dir, "pg_wal")
	if err := os.MkdirAll(wal, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00000002.history", "00000003.history", "00000004.history", "00000005.history",
		"000000030000000000000005", "archive_status"} {
		if err := os.WriteFile(filepath.Join(wal, name), []byte("1\t0/3000000\tx\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	i := pg.New(pg.Options{DataDir: dir})
	have, err := i.HistoryTimelines()
	if err != nil || !reflect.DeepEqual(have, []int{2, 3, 4, 5}) {
		t.Fatalf("history timelines = %v (err %v), want [2 3 4 5]", have, err)
	}
	// The leader is on 4; 3, though maybe a stray, must stay: recovery
	// stops looking at the first missing timeline.
	removed, err := i.RemoveHistoryAbove(4)
	if err != nil || !reflect.DeepEqual(removed, []int{5}) {
		t.Fatalf("removed %v (err %v), want [5]", removed, err)
	}
	if have, _ := i.HistoryTimelines(); !reflect.DeepEqual(have, []int{2, 3, 4}) {
		t.Fatalf("left %v, want [2 3 4]", have)
	}
	if _, err := os.Stat(filepath.Join(wal, "000000030000000000000005")); err != nil {
		t.Fatalf("a WAL segment was touched: %v", err)
	}
}
