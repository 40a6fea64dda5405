package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/jobs/schedule"
)

func TestCopyJobNeedsADestination(t *testing.T) {
	sched, err := schedule.Parse("daily@04:00", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	j := Job{ID: "offsite", Kind: KindCopy, Schedule: sched}
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "to-repo") {
		t.Fatalf("copy job without a destination: %v", err)
	}
	j.Options = Options{ToRepo: "s3://offsite/main", WAL: "covered"}
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "wal") {
		t.Fatalf("copy job with a prune WAL rule: %v", err)
	}
	j.Options = Options{ToRepo: "s3://offsite/main", Newest: 3, WAL: "needed"}
	if err := j.Validate(); err != nil {
		t.Fatalf("good copy job: %v", err)
	}
}
