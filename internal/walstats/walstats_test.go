package walstats_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/walstats"
)

func TestTheRecordLivesBesideTheDataDirectory(t *testing.T) {
	if got, want := walstats.Path("/srv/pg/15/main/"), "/srv/pg/15/"+walstats.FileName; got != want {
		t.Fatalf("Path = %s, want %s", got, want)
	}
}

func TestPushesAddUpInTheirBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), walstats.FileName)
	end := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, p := range []struct {
		took time.Duration
		ok   bool
	}{{30 * time.Millisecond, true}, {200 * time.Millisecond, true}, {3 * time.Second, false}, {5 * time.Minute, false}} {
		if err := walstats.Record(path, p.took, p.ok, end); err != nil {
			t.Fatal(err)
		}
	}
	s, err := walstats.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Count != 4 || s.Failures != 2 || !s.LastSuccess.Equal(end) {
		t.Fatalf("count %d failures %d last success %s, want 4, 2, %s", s.Count, s.Failures, s.LastSuccess, end)
	}
	if want := 0.03 + 0.2 + 3 + 300; s.Sum < want-1e-9 || s.Sum > want+1e-9 {
		t.Fatalf("sum %f, want %f", s.Sum, want)
	}
	cum := s.Cumulative()
	for le, want := range map[float64]uint64{0.05: 1, 0.1: 1, 0.25: 2, 2.5: 2, 5: 3, 120: 3} {
		if cum[le] != want {
			t.Errorf("bucket le=%g: %d, want %d (the 5-minute push only in +Inf)", le, cum[le], want)
		}
	}
}

// Pushes ahead run in parallel processes: none of their counts is lost.
func TestConcurrentPushesAreAllCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), walstats.FileName)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if err := walstats.Record(path, 10*time.Millisecond, true, time.Now()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	s, err := walstats.Read(path)
	if err != nil || s.Count != 200 {
		t.Fatalf("count %d (%v), want 200", s.Count, err)
	}
}

func TestADamagedRecordStartsAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), walstats.FileName)
	if err := os.WriteFile(path, []byte(`{"version":1,"buckets":[1,2`), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := walstats.Read(path); err == nil {
		t.Fatal("Read of a truncated record succeeded")
	}
	if err := walstats.Record(path, time.Second, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s, err := walstats.Read(path); err != nil || s.Count != 1 {
		t.Fatalf("after a push: count %d (%v), want 1", s.Count, err)
	}
}

func TestARecordOfAnotherLayoutStartsAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), walstats.FileName)
	if err := os.WriteFile(path, []byte(`{"version":1,"buckets":[1],"counts":[7],"count":7,"sum":3}`), 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := walstats.Read(path)
	if err != nil || s.Count != 0 || len(s.Counts) != len(walstats.Buckets()) {
		t.Fatalf("read %+v (%v), want a fresh record", s, err)
	}
}

func TestNoRecordYetIsNotExist(t *testing.T) {
	if _, err := walstats.Read(filepath.Join(t.TempDir(), walstats.FileName)); !os.IsNotExist(err) {
		t.Fatalf("err %v, want not exist", err)
	}
}
