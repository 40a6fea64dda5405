package repoops

import (
	"context"
	"fmt"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// VerifyRequest names what to verify: one backup, or every backup and
// pack.
type VerifyRequest struct {
	BackupID string
	All      bool
}

// VerifyProblem is one problem found (`pgguard verify -o json` lists them).
type VerifyProblem struct {
	Backup string `json:"backup,omitempty"`
	File   string `json:"file,omitempty"`
	Block  string `json:"block,omitempty"`
	Pack   string `json:"pack,omitempty"`
	Error  string `json:"error"`
}

// VerifyResult is what a verify checked and found.
type VerifyResult struct {
	What     string // "backup ID" or "every backup and pack"
	Problems []VerifyProblem
}

// Err is the error of a verify that found problems (nil when none).
func (v VerifyResult) Err() error {
	if len(v.Problems) == 0 {
		return nil
	}
	first := v.Problems[0]
	return fmt.Errorf("verify %s: %d problems, first: backup %s, file %s: %s", v.What, len(v.Problems), first.Backup, first.File, first.Error)
}

// Verify reads every block of a backup (or of every backup and pack) and
// checks every checksum. Problems are the result, not an error: see Err.
func Verify(ctx context.Context, s reposettings.Settings, req VerifyRequest) (VerifyResult, error) {
	res := VerifyResult{What: "backup " + req.BackupID, Problems: []VerifyProblem{}}
	if req.All {
		res.What = "every backup and pack"
	}
	if (req.BackupID == "") == !req.All {
		return res, badinput.Errorf("give either --backup ID or --all")
	}
	err := s.With(ctx, func(r *repo.Repository) error {
		if hp := r.HeadProblem(); hp != "" && req.All {
			res.Problems = append(res.Problems, VerifyProblem{Error: "repository head: " + hp})
		}
		return r.Verify(ctx, req.BackupID, func(p repo.Problem) {
			vp := VerifyProblem{Backup: p.BackupID, File: p.Path, Pack: p.Pack, Error: p.String()}
			if p.Block != (repo.BlockID{}) {
				vp.Block = p.Block.String()
			}
			res.Problems = append(res.Problems, vp)
		})
	})
	return res, err
}
