// Package logical takes logical backups (pg_dump's custom format) of a
// database, a schema or a table into the repository — streamed into its
// blocks, so compressed, encrypted and deduplicated like everything else —
// and restores them into the original database or a new one. Connection
// settings reach pg_dump and pg_restore through the environment, never as
// arguments.
package logical

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/repo"
)

// dumpFile is the one file of a logical backup's manifest.
const dumpFile = "dump.pgcustom"

// Target names what a logical backup holds.
type Target struct {
	DB     string
	Schema string
	Table  string
}

func (t Target) label() string {
	return fmt.Sprintf("logical db=%s schema=%s table=%s", t.DB, t.Schema, t.Table)
}

func parseLabel(l string) (Target, bool) {
	if !strings.HasPrefix(l, "logical ") {
		return Target{}, false
	}
	var t Target
	for _, f := range strings.Fields(l)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "db":
			t.DB = v
		case "schema":
			t.Schema = v
		case "table":
			t.Table = v
		}
	}
	return t, true
}

// Options for Backup and Restore.
type Options struct {
	Repo     *repo.Repository
	ConnInfo string // libpq keyword or URI form; the database is replaced
	BinDir   string
	Target   Target
	// Restore only: the backup (default the newest logical backup of
	// Target.DB) and the database to restore into (default Target.DB).
	BackupID string
	Into     string
}

// env turns a connection string into libpq environment variables.
func env(conninfo, db string) ([]string, error) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %w", err)
	}
	out := append(os.Environ(), "PGHOST="+cfg.Host, fmt.Sprintf("PGPORT=%d", cfg.Port), "PGUSER="+cfg.User, "PGDATABASE="+db)
	if cfg.Password != "" {
		out = append(out, "PGPASSWORD="+cfg.Password)
	}
	return out, nil
}

// Backup runs pg_dump and streams its output into a new logical backup.
func Backup(ctx context.Context, o Options) (*repo.Manifest, error) {
	if o.Target.DB == "" {
		return nil, errors.New("logical backup: name the database (--db)")
	}
	e, err := env(o.ConnInfo, o.Target.DB)
	if err != nil {
		return nil, err
	}
	args := []string{"--format=custom", "--compress=0", "--no-password"}
	if o.Target.Schema != "" {
		args = append(args, "--schema="+o.Target.Schema)
	}
	if o.Target.Table != "" {
		t := o.Target.Table
		if o.Target.Schema != "" && !strings.Contains(t, ".") {
			t = o.Target.Schema + "." + t
		}
		args = append(args, "--table="+t)
	}
	start := time.Now()
	b, err := o.Repo.NewBackup(repo.Header{Kind: repo.KindLogical, StartTime: start, Label: o.Target.label()}, nil)
	if err != nil {
		return nil, err
	}
	w, err := b.CreateFile(ctx, repo.FileMeta{Path: dumpFile, Mode: 0o600, MTime: start})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(o.BinDir, "pg_dump"), args...)
	cmd.Env = e
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pg_dump: %w", err)
	}
	_, copyErr := io.Copy(w, stdout)
	waitErr := cmd.Wait()
	if waitErr != nil {
		return nil, fmt.Errorf("pg_dump of %s: %w: %s", o.Target.DB, waitErr, strings.TrimSpace(stderr.String()))
	}
	if copyErr != nil {
		return nil, fmt.Errorf("store the dump: %w", copyErr)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	hdr := b.Header()
	hdr.StopTime = time.Now()
	return b.Finish(ctx, hdr)
}

// Find returns the newest logical backup holding t (a backup of the whole
// database or schema also holds a table of it), or backupID.
func Find(ctx context.Context, r *repo.Repository, t Target, backupID string) (*repo.Manifest, error) {
	if backupID != "" {
		m, err := r.LoadManifest(ctx, backupID)
		if err != nil {
			return nil, err
		}
		if m.Kind != repo.KindLogical {
			return nil, fmt.Errorf("backup %s is a %s backup, not a logical one", backupID, m.Kind)
		}
		return m, nil
	}
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	for _, id := range ids {
		m, err := r.LoadManifest(ctx, id)
		if err != nil || m.Kind != repo.KindLogical {
			continue
		}
		got, ok := parseLabel(m.Label)
		if ok && got.DB == t.DB && (got.Schema == "" || got.Schema == t.Schema) && (got.Table == "" || got.Table == t.Table) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no logical backup holds database %q schema %q table %q ('pgguard backups' lists them)", t.DB, t.Schema, t.Table)
}

// Restore restores a logical backup (or the part of it Target selects)
// into Into (created if missing) or the original database.
func Restore(ctx context.Context, o Options) (string, error) {
	m, err := Find(ctx, o.Repo, o.Target, o.BackupID)
	if err != nil {
		return "", err
	}
	into := o.Into
	if into == "" {
		into = o.Target.DB
	}
	if o.Into != "" {
		if err := createDatabase(ctx, o.ConnInfo, into); err != nil {
			return "", err
		}
	}
	e, err := env(o.ConnInfo, into)
	if err != nil {
		return "", err
	}
	args := []string{"--no-password", "--no-owner", "--exit-on-error", "--dbname=" + into}
	if o.Into == "" {
		args = append(args, "--clean", "--if-exists")
	}
	if o.Target.Schema != "" {
		args = append(args, "--schema="+o.Target.Schema)
	}
	if o.Target.Table != "" {
		args = append(args, "--table="+o.Target.Table)
	}
	rc, err := o.Repo.ReadFile(ctx, m, dumpFile)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(o.BinDir, "pg_restore"), args...)
	cmd.Env, cmd.Stdin = e, rc
	out, err := cmd.CombinedOutput()
	if err != nil {
		return m.ID, fmt.Errorf("pg_restore into %s: %w: %s", into, err, strings.TrimSpace(string(out)))
	}
	return m.ID, nil
}

func createDatabase(ctx context.Context, conninfo, name string) error {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return err
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("database %s already exists: choose a new name for --into, or restore into the original without --into", name)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
