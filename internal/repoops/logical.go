package repoops

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/logical"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// LogicalRequest names a database, schema or table, and for a restore the
// backup and the database to restore into.
type LogicalRequest struct {
	DB, Schema, Table string
	Label             string // backup: a label for the new backup
	BackupRef         string // restore: id or label:TEXT ("": the newest that holds the target)
	Into              string // restore: a new database to create and restore into
}

// LogicalBackupResult is a logical backup made (`-o json`; the fields are
// in the order the keys always had).
type LogicalBackupResult struct {
	DumpSize int64     `json:"dump_size"`
	ID       string    `json:"id"`
	Kind     repo.Kind `json:"kind"`
	Label    string    `json:"label"`
	Seconds  float64   `json:"seconds"`

	What     string        `json:"-"` // the database, schema or table dumped
	Tables   int           `json:"-"` // tables in the dump
	Duration time.Duration `json:"-"`
}

// LogicalRestoreResult is a logical restore done.
type LogicalRestoreResult struct {
	BackupID string   `json:"backup_id"`
	Into     string   `json:"into"`
	Restored string   `json:"restored"`
	Seconds  float64  `json:"seconds"`
	Tables   int      `json:"tables"`
	Warnings []string `json:"warnings"`

	Duration time.Duration `json:"-"`
}

// logicalOptions checks the request, opens the repository and calls fn
// with the options of a logical backup or restore.
func logicalOptions(ctx context.Context, s reposettings.Settings, req LogicalRequest, fn func(r *repo.Repository, o logical.Options) error) error {
	if req.DB == "" {
		return badinput.Errorf("--db is required")
	}
	lr, err := logical.ParseRequest(req.DB, req.Schema, req.Table)
	if err != nil {
		return badinput.Errorf("%s", err)
	}
	if err := repo.CheckLabel(req.Label); err != nil {
		return badinput.Errorf("--label: %v", err)
	}
	return s.With(ctx, func(r *repo.Repository) error {
		if err := s.RequireConn(); err != nil {
			return err
		}
		id, err := ResolveBackupRef(ctx, r, req.BackupRef)
		if err != nil {
			return err
		}
		return fn(r, logical.Options{Repo: r, ConnInfo: s.ConnStr, BinDir: firstNonEmpty(s.BinDir, config.DetectBinDir()),
			Programs: s.Programs, Database: s.Database, Request: lr, BackupID: id, Into: req.Into})
	})
}

// LogicalBackup dumps a database, schema or table (pg_dump custom format)
// into the repository, under a shared repository lock.
func LogicalBackup(ctx context.Context, s reposettings.Settings, req LogicalRequest) (LogicalBackupResult, error) {
	var res LogicalBackupResult
	err := logicalOptions(ctx, s, req, func(r *repo.Repository, o logical.Options) error {
		started := time.Now()
		lk, err := r.Lock(ctx, false)
		if err != nil {
			return err
		}
		defer lk.Unlock(context.WithoutCancel(ctx))
		m, err := logical.Backup(ctx, o)
		if err != nil {
			return err
		}
		if req.Label != "" {
			if err := r.SetAnnotation(ctx, m.ID, repo.Annotation{Label: req.Label}); err != nil {
				return fmt.Errorf("logical backup %s made, but its label was not saved (set it with 'pgguard backups label %s TEXT'): %w", m.ID, m.ID, err)
			}
		}
		res = LogicalBackupResult{ID: m.ID, Kind: m.Kind, Label: m.Label, What: strings.TrimPrefix(m.Label, "logical ")}
		for _, f := range m.Files {
			res.DumpSize += f.Size
		}
		if m.Logical != nil {
			res.Tables = len(m.Logical.Holds)
		}
		res.Duration = time.Since(started)
		res.Seconds = res.Duration.Seconds()
		return nil
	})
	return res, err
}

// LogicalRestore restores a database, schema or table from a logical
// backup, into the original database or a new one.
func LogicalRestore(ctx context.Context, s reposettings.Settings, req LogicalRequest) (LogicalRestoreResult, error) {
	var res LogicalRestoreResult
	err := logicalOptions(ctx, s, req, func(_ *repo.Repository, o logical.Options) error {
		started := time.Now()
		lr, err := logical.Restore(ctx, o)
		res = LogicalRestoreResult{BackupID: lr.BackupID, Into: lr.Into, Restored: lr.Restored, Tables: lr.Tables,
			Warnings: lr.Warnings, Duration: time.Since(started)}
		res.Seconds = res.Duration.Seconds()
		return err
	})
	return res, err
}
