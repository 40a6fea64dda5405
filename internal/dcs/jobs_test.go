package dcs

import (
	"errors"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
)

func TestPutJobCreatesOnceAndReplacesOnlyTheVersionRead(t *testing.T) {
	st := stores(t, "ctl")
	s := st["ctl"]
	j := jobs.Job{ID: "nightly", Name: "nightly", Kind: jobs.KindFull, Enabled: true}
	must(t, "create", s.PutJob(tctx(t), j, true))
	if err := s.PutJob(tctx(t), j, true); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	list, err := s.Jobs(tctx(t))
	must(t, "list", err)
	if len(list) != 1 || list[0].Revision == 0 {
		t.Fatalf("jobs %+v, want nightly with its revision", list)
	}
	read := list[0]
	if err := s.PutJob(tctx(t), j, false); err == nil || errors.Is(err, ErrChanged) {
		t.Fatalf("replace without a revision: %v, want a refusal to guess", err)
	}
	edited := read
	edited.Enabled = false
	must(t, "edit on the version read", s.PutJob(tctx(t), edited, false))
	other := read
	other.Name = "renamed"
	ce := mustChange(t, "edit on a stale version", s.PutJob(tctx(t), other, false), "jobs/nightly")
	if ce.Read != read.Revision || ce.Now <= read.Revision {
		t.Errorf("change reported %+v", ce)
	}
	list, _ = s.Jobs(tctx(t))
	if list[0].Enabled || list[0].Name != "nightly" {
		t.Fatalf("job after the stale edit: %+v, want the first edit kept", list[0])
	}
	if ok, err := s.DeleteJob(tctx(t), "nightly"); err != nil || !ok {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	if ok, err := s.DeleteJob(tctx(t), "nightly"); err != nil || ok {
		t.Fatalf("second delete: %v, %v; want nothing deleted", ok, err)
	}
	ce = mustChange(t, "edit of a deleted job", s.PutJob(tctx(t), list[0], false), "jobs/nightly")
	if ce.Now != 0 {
		t.Errorf("change of a deleted job reported revision %d", ce.Now)
	}
	if list, _ := s.Jobs(tctx(t)); len(list) != 0 {
		t.Fatalf("an edit brought a deleted job back: %+v", list)
	}
}

func TestRunClaimIsOncePerTriggerAndUpdatesCompareTheRevision(t *testing.T) {
	st := stores(t, "a", "b")
	run := jobs.Run{Job: "nightly", Trigger: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), Attempt: 1, Node: "a", Status: jobs.Running}
	rev, ok, err := st["a"].ClaimRun(tctx(t), run)
	if err != nil || !ok || rev == 0 {
		t.Fatalf("claim by a: %d, %v, %v", rev, ok, err)
	}
	if _, ok, err := st["b"].ClaimRun(tctx(t), run); err != nil || ok {
		t.Fatalf("claim of the same trigger by b: %v, %v; want a refusal", ok, err)
	}
	stop := run
	stop.Status = jobs.Stopping
	rev2, ok, err := st["b"].UpdateRun(tctx(t), stop, rev)
	if err != nil || !ok {
		t.Fatalf("stop request on the revision read: %v, %v", ok, err)
	}
	done := run
	done.Status = jobs.Succeeded
	if _, ok, err := st["a"].UpdateRun(tctx(t), done, rev); err != nil || ok {
		t.Fatalf("update on a stale revision: %v, %v; want a refusal", ok, err)
	}
	runs, err := st["a"].Runs(tctx(t))
	must(t, "runs", err)
	if got := runs["nightly"]; len(got) != 1 || got[0].Status != jobs.Stopping || got[0].Revision != rev2 {
		t.Fatalf("runs %+v, want the stop request at revision %d", got, rev2)
	}
}
