package repoops

import (
	"context"
	"os"
	"path/filepath"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/drill"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// DrillRequest is a drill as a person asks for it.
type DrillRequest struct {
	BackupID    string   // "": the newest
	Scratch     string   // default: beside the data directory, or the system temp dir
	Port        int      // 0: a free loopback port
	Checks      []string // SQL=EXPECTED
	SkipAmcheck bool
	WriteLimit  string // write limit of the scratch restore
}

// Drill restores a backup into a scratch instance, starts it, checks it
// and removes it. A failed drill is a Result with Passed false; an error
// means the drill could not run.
func Drill(ctx context.Context, s reposettings.Settings, req DrillRequest) (drill.Result, error) {
	var checks []drill.Check
	for _, c := range req.Checks {
		dc, err := drill.ParseCheck(c)
		if err != nil {
			return drill.Result{}, badinput.Wrap(err)
		}
		checks = append(checks, dc)
	}
	user, password := "postgres", ""
	if s.Config != nil {
		user, password = s.Config.Postgres.Superuser.Username, s.Config.Postgres.Superuser.Password
	}
	acct, err := osuser.Resolve(s.RunAs())
	if err != nil {
		return drill.Result{}, badinput.Wrap(err)
	}
	scratch := req.Scratch
	if scratch == "" {
		scratch = filepath.Join(os.TempDir(), "pgguard-drill")
		if s.DataDir != "" {
			scratch = filepath.Join(filepath.Dir(filepath.Clean(s.DataDir)), "drill")
		}
	}
	restoreCmd, err := s.RestoreCommand()
	if err != nil {
		return drill.Result{}, err
	}
	writeLimit, err := reposettings.RateWait(req.WriteLimit)
	if err != nil {
		return drill.Result{}, badinput.Errorf("--write-limit: %v", err)
	}
	var res drill.Result
	err = s.With(ctx, func(r *repo.Repository) error {
		res, err = drill.Run(ctx, drill.Options{
			Repo: r, BackupID: req.BackupID, ScratchParent: scratch, Port: req.Port,
			BinDir: firstNonEmpty(s.BinDir, config.DetectBinDir()), Programs: s.Programs, Database: s.Database, Account: acct, User: user, Password: password,
			RestoreCommand: restoreCmd, Channels: s.Channels, Checks: checks, SkipAmcheck: req.SkipAmcheck, WriteLimit: writeLimit,
		})
		return err
	})
	return res, err
}
