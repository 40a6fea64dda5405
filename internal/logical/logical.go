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
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/repo"
)

// dumpFile is the one file of a logical backup's manifest.
const dumpFile = "dump.pgcustom"

// targetOf says what a logical backup holds: its header's Logical field,
// or for a backup older than that field, the words of its label.
func targetOf(m *repo.Manifest) (repo.LogicalTarget, bool) {
	if m.Logical != nil {
		return *m.Logical, true
	}
	if !strings.HasPrefix(m.Label, "logical ") {
		return repo.LogicalTarget{}, false
	}
	var t repo.LogicalTarget
	for _, f := range strings.Fields(m.Label)[1:] {
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
	// Programs renames pg_dump and pg_restore (forks; see pgbin);
	// Database is where a new database is created from (default postgres).
	Programs map[string]string
	Database string
	Request  Request
	// Restore only: the backup (default the newest logical backup that
	// holds Request) and the database to restore into (default Request.DB).
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
	// How pg_dump and pg_restore check the server: as the connection
	// string says (the node's sslmode=verify-full and CA with TLS).
	for key, name := range map[string]string{"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"} {
		if v := conninfoSetting(conninfo, key); v != "" {
			out = append(out, name+"="+v)
		}
	}
	return out, nil
}

// conninfoSetting is key's value in a libpq connection string, keyword or
// URI form ("" when it is not set there).
func conninfoSetting(conninfo, key string) string {
	if strings.HasPrefix(conninfo, "postgres://") || strings.HasPrefix(conninfo, "postgresql://") {
		u, err := url.Parse(conninfo)
		if err != nil {
			return ""
		}
		return u.Query().Get(key)
	}
	found := ""
	rest := conninfo
	for {
		rest = strings.TrimLeft(rest, " \t\n")
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			return found
		}
		after = strings.TrimLeft(after, " \t\n")
		var v strings.Builder
		if strings.HasPrefix(after, "'") {
			i := 1
			for ; i < len(after) && after[i] != '\''; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				v.WriteByte(after[i])
			}
			rest = after[min(i+1, len(after)):]
		} else {
			end := strings.IndexAny(after, " \t\n")
			if end < 0 {
				end = len(after)
			}
			v.WriteString(after[:end])
			rest = after[end:]
		}
		if strings.TrimSpace(k) == key {
			found = v.String()
		}
	}
}

func connect(ctx context.Context, conninfo, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %w", err)
	}
	cfg.Database = db
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s: %w", db, err)
	}
	return conn, nil
}

// userTables lists the tables, views, sequences and foreign tables of the
// database (in schema, and named table, when not empty) that pg_dump would
// write, by exact name, each with its indexes that back no constraint and
// the sequences it owns.
func userTables(ctx context.Context, conn *pgx.Conn, schema, table string) ([]repo.HeldTable, error) {
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname,
		  coalesce((SELECT array_agg(ic.relname::text ORDER BY ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		            WHERE i.indrelid = c.oid AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = c.oid)), '{}'),
		  coalesce((SELECT array_agg(q.relname::text ORDER BY q.relname) FROM pg_depend d JOIN pg_class q ON q.oid = d.objid
		            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
		              AND d.deptype IN ('a', 'i') AND q.relkind = 'S'), '{}')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
		  AND n.nspname NOT LIKE 'pg\_temp\_%'
		  AND ($1 = '' OR n.nspname = $1) AND ($2 = '' OR c.relname = $2)
		ORDER BY 1, 2`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []repo.HeldTable
	for rows.Next() {
		var t repo.HeldTable
		if err := rows.Scan(&t.Schema, &t.Name, &t.Indexes, &t.Sequences); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// resolve turns a request into the exact target of a backup, from the
// database's catalog: an unqualified table must exist in exactly one schema.
func resolve(ctx context.Context, conn *pgx.Conn, req Request) (repo.LogicalTarget, []repo.HeldTable, error) {
	t := repo.LogicalTarget{DB: req.DB, Schema: req.Schema, Table: req.Table}
	if req.Schema != "" {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, req.Schema).Scan(&ok); err != nil {
			return t, nil, err
		}
		if !ok {
			return t, nil, fmt.Errorf("database %s has no schema %s (names are exact once parsed: quote capitals, '\"App\"')", req.DB, quoteIdent(req.Schema))
		}
	}
	held, err := userTables(ctx, conn, req.Schema, req.Table)
	if err != nil {
		return t, nil, err
	}
	if req.Table == "" {
		return t, held, nil
	}
	switch len(held) {
	case 0:
		where := "any schema"
		if req.Schema != "" {
			where = "schema " + quoteIdent(req.Schema)
		}
		return t, nil, fmt.Errorf("database %s has no table %s in %s", req.DB, quoteIdent(req.Table), where)
	case 1:
		t.Schema = held[0].Schema
		return t, held, nil
	}
	return t, nil, fmt.Errorf("database %s has a table %s in %d schemas (%s): name one, e.g. --table %s.%s",
		req.DB, quoteIdent(req.Table), len(held), joinNames(held, true), quoteIdent(held[0].Schema), quoteIdent(req.Table))
}

func joinNames(ts []repo.HeldTable, schemaOnly bool) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 8 {
			fmt.Fprintf(&b, "and %d more", len(ts)-i)
			break
		}
		if schemaOnly {
			b.WriteString(quoteIdent(t.Schema))
		} else {
			b.WriteString(t.String())
		}
	}
	return b.String()
}

// Backup runs pg_dump and streams its output into a new logical backup.
// The target is checked against the database first: a name that matches
// nothing is refused, not dumped as an empty backup.
func Backup(ctx context.Context, o Options) (*repo.Manifest, error) {
	req := o.Request
	if req.DB == "" {
		return nil, errors.New("logical backup: name the database (--db)")
	}
	conn, err := connect(ctx, o.ConnInfo, req.DB)
	if err != nil {
		return nil, err
	}
	target, held, err := resolve(ctx, conn, req)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	target.Holds = held
	e, err := env(o.ConnInfo, req.DB)
	if err != nil {
		return nil, err
	}
	args := []string{"--format=custom", "--compress=0", "--no-password"}
	switch {
	case target.Table != "":
		args = append(args, "--table="+quoteIdent(target.Schema)+"."+quoteIdent(target.Table))
	case target.Schema != "":
		args = append(args, "--schema="+quoteIdent(target.Schema))
	}
	start := time.Now()
	req.Schema = target.Schema
	b, err := o.Repo.NewBackup(repo.Header{Kind: repo.KindLogical, StartTime: start, Label: "logical " + req.String(), Logical: &target}, nil)
	if err != nil {
		return nil, err
	}
	w, err := b.CreateFile(ctx, repo.FileMeta{Path: dumpFile, Mode: 0o600, MTime: start})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, o.tool("pg_dump"), args...)
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
		return nil, fmt.Errorf("pg_dump of %s: %w: %s", req.DB, waitErr, strings.TrimSpace(stderr.String()))
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

// covers reports whether a backup of t can hold what req asks for, and
// (for a table asked without a schema) the schema it is in; holds is false
// when the backup's list of tables says it does not.
func covers(t repo.LogicalTarget, req Request) (schema string, ok bool, why string) {
	if t.DB != req.DB {
		return "", false, ""
	}
	switch {
	case req.Table == "" && req.Schema == "":
		return "", t.Schema == "" && t.Table == "", "holds only " + describe(t)
	case req.Table == "":
		if t.Table != "" || t.Schema != "" && t.Schema != req.Schema {
			return "", false, "holds only " + describe(t)
		}
		if t.Holds == nil {
			return req.Schema, true, ""
		}
		for _, h := range t.Holds {
			if h.Schema == req.Schema {
				return req.Schema, true, ""
			}
		}
		return "", false, fmt.Sprintf("holds no table in schema %s (its %d tables: %s)", quoteIdent(req.Schema), len(t.Holds), joinNames(t.Holds, false))
	}
	if t.Table != "" && t.Table != req.Table || req.Schema != "" && t.Schema != "" && t.Schema != req.Schema {
		return "", false, "holds only " + describe(t)
	}
	if t.Holds == nil { // an older backup: no list of tables to check
		return firstNonEmpty(req.Schema, t.Schema, "public"), true, ""
	}
	var in []string
	for _, h := range t.Holds {
		if h.Name == req.Table && (req.Schema == "" || h.Schema == req.Schema) {
			in = append(in, h.Schema)
		}
	}
	switch len(in) {
	case 0:
		return "", false, fmt.Sprintf("holds %d tables of %s (%s), not %s", len(t.Holds), describe(t), joinNames(t.Holds, false), req)
	case 1:
		return in[0], true, ""
	}
	return "", false, fmt.Sprintf("holds a table %s in schemas %s: name one, e.g. --table %s.%s", quoteIdent(req.Table), strings.Join(in, ", "), quoteIdent(in[0]), quoteIdent(req.Table))
}

func describe(t repo.LogicalTarget) string {
	return Request{DB: t.DB, Schema: t.Schema, Table: t.Table}.String()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Find returns the newest logical backup holding req (a backup of the
// whole database or schema also holds a table of it), or backupID, with
// req's schema filled in. When none does, the error says what the newest
// backup of the database holds.
func Find(ctx context.Context, r *repo.Repository, req Request, backupID string) (*repo.Manifest, Request, error) {
	if backupID != "" {
		m, err := r.LoadManifest(ctx, backupID)
		if err != nil {
			return nil, req, err
		}
		t, ok := targetOf(m)
		if m.Kind != repo.KindLogical || !ok {
			return nil, req, fmt.Errorf("backup %s is a %s backup, not a logical one", backupID, m.Kind)
		}
		schema, holds, why := covers(t, req)
		if !holds {
			if t.DB != req.DB {
				why = "is a backup of database " + t.DB
			}
			return nil, req, fmt.Errorf("backup %s %s: it cannot restore %s", backupID, why, req)
		}
		req.Schema = schema
		return m, req, nil
	}
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return nil, req, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	newest := ""
	for _, id := range ids {
		m, err := r.LoadManifest(ctx, id)
		if err != nil || m.Kind != repo.KindLogical {
			continue
		}
		t, ok := targetOf(m)
		if !ok || t.DB != req.DB {
			continue
		}
		schema, holds, why := covers(t, req)
		if holds {
			req.Schema = schema
			return m, req, nil
		}
		if newest == "" {
			newest = fmt.Sprintf("; the newest logical backup of database %s, %s, %s", req.DB, id, why)
		}
	}
	return nil, req, fmt.Errorf("no logical backup holds %s%s ('pgguard backups' lists them)", req, newest)
}

// Result is what a restore restored.
type Result struct {
	BackupID string
	Into     string
	// Restored names what the restore was asked for ("table "app"."orders"
	// of database shop"); Tables how many tables of it exist afterwards.
	Restored string
	Tables   int
	// Warnings name what was not restored although the restore succeeded
	// (a foreign key whose referenced table is missing).
	Warnings []string
}

// Restore restores a logical backup (or the part of it the request
// selects) into Into (created if missing) or the original database, and
// checks afterwards that what was asked for exists there: a restore that
// restored nothing is an error, never a success.
func Restore(ctx context.Context, o Options) (res Result, err error) {
	m, req, err := Find(ctx, o.Repo, o.Request, o.BackupID)
	if err != nil {
		return Result{}, err
	}
	t, _ := targetOf(m)
	res = Result{BackupID: m.ID, Into: firstNonEmpty(o.Into, req.DB), Restored: req.String()}
	if o.Into != "" {
		if err := createDatabase(ctx, o.ConnInfo, o.maintenanceDB(), o.Into); err != nil {
			return res, err
		}
		// A restore that fails leaves no half-filled database behind.
		defer func() {
			if err != nil {
				if derr := dropDatabase(context.WithoutCancel(ctx), o.ConnInfo, o.maintenanceDB(), o.Into); derr != nil {
					err = fmt.Errorf("%w (and the new database %s could not be dropped: %v)", err, o.Into, derr)
				} else {
					err = fmt.Errorf("%w (the new database %s was dropped again)", err, o.Into)
				}
			}
		}()
	}
	conn, err := connect(ctx, o.ConnInfo, res.Into)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// A table, or a schema out of a whole-database backup, lands in a
	// schema that pg_restore does not create (only a schema's own backup
	// holds its CREATE SCHEMA).
	schemaDump := t.Schema != "" && t.Table == ""
	if req.Schema != "" && !(schemaDump && req.Table == "") {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(req.Schema)); err != nil {
			return res, fmt.Errorf("create schema %s in %s: %w", quoteIdent(req.Schema), res.Into, err)
		}
	}
	e, err := env(o.ConnInfo, res.Into)
	if err != nil {
		return res, err
	}
	args := []string{"--no-password", "--no-owner", "--dbname=" + res.Into}
	if o.Into == "" {
		args = append(args, "--clean", "--if-exists")
	}
	var held *repo.HeldTable
	for i, h := range t.Holds {
		if h.Schema == req.Schema && h.Name == req.Table {
			held = &t.Holds[i]
		}
	}
	switch {
	case held != nil:
		// One table, out of any backup: pick its entries from the
		// archive's table of contents, so that its indexes, constraints,
		// defaults and sequences come along (pg_restore --table brings
		// the definition and data only). Foreign keys go last and may
		// fail: the tables they reference need not be there.
		toc, err := readTOC(ctx, o, m, e)
		if err != nil {
			return res, err
		}
		main, fks := selectTable(toc, *held)
		if len(main) == 0 {
			return res, fmt.Errorf("backup %s lists %s but its archive holds no entry for it", m.ID, held.TableName)
		}
		if err := pgRestore(ctx, o, m, e, append(args, "--exit-on-error"), main); err != nil {
			return res, fmt.Errorf("pg_restore into %s: %w", res.Into, err)
		}
		if len(fks) > 0 {
			if err := pgRestore(ctx, o, m, e, args, fks); err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%d foreign keys of %s not restored (the tables they reference must exist first; add them with ALTER TABLE): %v", len(fks), held.TableName, err))
			}
		}
	default:
		// pg_restore's --schema and --table take exact names, not
		// patterns. A backup of exactly the part asked for is restored
		// whole; from a larger backup, the filters pick the part.
		if !(t.Schema == req.Schema && t.Table == req.Table) {
			if req.Schema != "" {
				args = append(args, "--schema="+req.Schema)
			}
			if req.Table != "" {
				args = append(args, "--table="+req.Table)
			}
		}
		if err := pgRestore(ctx, o, m, e, append(args, "--exit-on-error"), nil); err != nil {
			return res, fmt.Errorf("pg_restore into %s: %w", res.Into, err)
		}
	}
	there, err := userTables(ctx, conn, req.Schema, req.Table)
	if err != nil {
		return res, fmt.Errorf("check what was restored: %w", err)
	}
	res.Tables = len(there)
	if len(there) == 0 && (req.Table != "" || req.Schema != "") {
		return res, fmt.Errorf("pg_restore ended without error, but %s does not exist in database %s afterwards: backup %s did not hold it", req, res.Into, m.ID)
	}
	if missing := missingTables(t, req, there); len(missing) > 0 {
		return res, fmt.Errorf("pg_restore ended without error, but %d tables of backup %s are missing from database %s afterwards: %s",
			len(missing), m.ID, res.Into, joinNames(missing, false))
	}
	return res, nil
}

// missingTables lists the tables the backup's list says it holds within
// the request that do not exist after the restore.
func missingTables(t repo.LogicalTarget, req Request, there []repo.HeldTable) []repo.HeldTable {
	have := map[repo.TableName]bool{}
	for _, n := range there {
		have[n.TableName] = true
	}
	var missing []repo.HeldTable
	for _, h := range t.Holds {
		if (req.Schema == "" || h.Schema == req.Schema) && (req.Table == "" || h.Name == req.Table) && !have[h.TableName] {
			missing = append(missing, h)
		}
	}
	return missing
}

func createDatabase(ctx context.Context, conninfo, maintenance, name string) error {
	conn, err := connect(ctx, conninfo, maintenance)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
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

func dropDatabase(ctx context.Context, conninfo, maintenance, name string) error {
	conn, err := connect(ctx, conninfo, maintenance)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func (o Options) tool(name string) string {
	return pgbin.Tools{BinDir: o.BinDir, Programs: o.Programs}.Path(name)
}

func (o Options) maintenanceDB() string {
	if o.Database == "" {
		return "postgres"
	}
	return o.Database
}
