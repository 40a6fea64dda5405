// Package drill proves a backup restorable: it restores a backup into a
// scratch directory, starts it on a free loopback port, checks it (it
// opens, pg_amcheck passes, the user's SQL checks return what they expect),
// records timings, and removes the scratch instance whatever the outcome.
// It never touches the cluster's own data directories.
package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/restore"
)

// Check is one user SQL check: the first column of the first row, as
// text, must equal Expect.
type Check struct {
	SQL    string `json:"sql"`
	Expect string `json:"expect"`
}

// ParseCheck reads "SQL=EXPECTED" (the last '=' splits).
func ParseCheck(s string) (Check, error) {
	i := strings.LastIndex(s, "=")
	if i <= 0 {
		return Check{}, fmt.Errorf("check %q: write it as SQL=EXPECTED, e.g. 'SELECT count(*) FROM accounts=100000'", s)
	}
	return Check{SQL: strings.TrimSpace(s[:i]), Expect: strings.TrimSpace(s[i+1:])}, nil
}

// Options configure one drill.
type Options struct {
	Repo          *repo.Repository
	BackupID      string // "" = newest
	ScratchParent string // a fresh directory is made inside it
	Port          int    // 0 = a free loopback port below 32768
	BinDir        string
	// Programs renames PostgreSQL's programs (forks; see pgbin); Database
	// is the database the checks connect to (default postgres).
	Programs map[string]string
	Database string
	Account  osuser.Account
	User     string // superuser role of the restored cluster
	// Password is User's (the restored copy trusts no one on loopback);
	// it reaches pg_amcheck through a password file in the scratch
	// directory, never an argument.
	Password       string
	RestoreCommand string
	Channels       int
	Checks         []Check
	// Amcheck runs pg_amcheck over every database (default true).
	SkipAmcheck bool
	// WriteLimit paces the restore's writes (see restore.Options).
	WriteLimit func(ctx context.Context, n int) error
}

// Result is the record of a drill.
type Result struct {
	BackupID       string        `json:"backup_id"`
	Passed         bool          `json:"passed"`
	Reason         string        `json:"reason,omitempty"`
	RestoreSeconds float64       `json:"restore_seconds"`
	OpenSeconds    float64       `json:"open_seconds"`
	CheckSeconds   float64       `json:"check_seconds"`
	TotalSeconds   float64       `json:"total_seconds"`
	Checks         []CheckResult `json:"checks"`
	Bytes          int64         `json:"bytes"`
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Run performs the drill. A failed drill is a Result with Passed false and
// the reason; an error means the drill itself could not run (bad options).
func Run(ctx context.Context, o Options) (Result, error) {
	started := time.Now()
	var res Result
	if o.Repo == nil || o.ScratchParent == "" || o.BinDir == "" {
		return res, errors.New("drill: a repository, a scratch directory and PostgreSQL's bin directory are required")
	}
	if err := o.Account.MkdirAll(o.ScratchParent, 0o755); err != nil {
		return res, fmt.Errorf("drill scratch directory: %w", err)
	}
	scratch, err := os.MkdirTemp(o.ScratchParent, "drill-")
	if err != nil {
		return res, fmt.Errorf("drill scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	if err := o.Account.ChownTree(scratch); err != nil {
		return res, err
	}
	port := o.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return res, err
		}
	}
	user := o.User
	if user == "" {
		user = o.Account.Name
	}
	fail := func(reason string) (Result, error) {
		res.Passed, res.Reason = false, reason
		res.TotalSeconds = time.Since(started).Seconds()
		return res, nil
	}
	rr, err := restore.Run(ctx, restore.Options{
		Repo: o.Repo, BackupID: o.BackupID, TargetDir: filepath.Join(scratch, "data"),
		Target: restore.Target{Immediate: true, Action: "promote"}, Channels: max(o.Channels, 1),
		RestoreCommand: o.RestoreCommand, ArchiveOff: true, Account: o.Account,
		Start: true, BinDir: o.BinDir, Programs: o.Programs, Database: o.database(), Port: port, User: user, Password: o.Password, OpenTimeout: 30 * time.Minute,
		WriteLimit: o.WriteLimit,
	})
	res.BackupID, res.Bytes = rr.BackupID, rr.BytesTotal
	res.RestoreSeconds = rr.Duration.Seconds()
	res.OpenSeconds = rr.OpenAfter.Seconds()
	if rr.Server != nil {
		defer rr.Server.Stop(60 * time.Second)
	}
	if err != nil {
		res.Checks = append(res.Checks, CheckResult{Name: "restore and open", Detail: err.Error()})
		return fail("restore: " + err.Error())
	}
	res.Checks = append(res.Checks, CheckResult{Name: "restore and open", OK: true,
		Detail: fmt.Sprintf("%d files, open after %s", rr.Files, rr.OpenAfter.Round(time.Millisecond))})
	checkStart := time.Now()
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s connect_timeout=5", port, user, o.database())
	for _, c := range o.Checks {
		cr := runCheck(ctx, conninfo, o.Password, c)
		res.Checks = append(res.Checks, cr)
		if !cr.OK {
			res.CheckSeconds = time.Since(checkStart).Seconds()
			return fail(cr.Name + ": " + cr.Detail)
		}
	}
	if !o.SkipAmcheck {
		cr := amcheck(ctx, o, scratch, port, user)
		res.Checks = append(res.Checks, cr)
		if !cr.OK {
			res.CheckSeconds = time.Since(checkStart).Seconds()
			return fail("pg_amcheck: " + cr.Detail)
		}
	}
	res.CheckSeconds = time.Since(checkStart).Seconds()
	res.Passed = true
	res.TotalSeconds = time.Since(started).Seconds()
	return res, nil
}

func runCheck(ctx context.Context, conninfo, password string, c Check) CheckResult {
	cr := CheckResult{Name: "check " + c.SQL}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		cr.Detail = err.Error()
		return cr
	}
	if password != "" {
		cfg.Password = password
	}
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		cr.Detail = "connect: " + err.Error()
		return cr
	}
	defer conn.Close(context.Background())
	var got *string
	if err := conn.QueryRow(cctx, "SELECT ("+c.SQL+")::text").Scan(&got); err != nil {
		cr.Detail = err.Error()
		return cr
	}
	v := "NULL"
	if got != nil {
		v = *got
	}
	cr.OK = v == c.Expect
	cr.Detail = fmt.Sprintf("returned %q, expected %q", v, c.Expect)
	return cr
}

// amcheck runs pg_amcheck over every database, installing the amcheck
// extension in the scratch copy where it is missing.
func amcheck(ctx context.Context, o Options, scratch string, port int, user string) CheckResult {
	cr := CheckResult{Name: "pg_amcheck --all"}
	cmd := exec.CommandContext(ctx, pgbin.Tools{BinDir: o.BinDir, Programs: o.Programs}.Path("pg_amcheck"), "--all", "--install-missing",
		"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", user, "--no-password", "--maintenance-db", o.database())
	cmd.SysProcAttr = nil
	if o.Password != "" {
		passfile, err := writePassFile(o.Account, scratch, port, user, o.Password)
		if err != nil {
			cr.Detail = err.Error()
			return cr
		}
		cmd.Env = append(os.Environ(), "PGPASSFILE="+passfile)
	}
	o.Account.Apply(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 6 {
			lines = lines[len(lines)-6:]
		}
		cr.Detail = fmt.Sprintf("%v: %s", err, strings.Join(lines, " | "))
		return cr
	}
	cr.OK, cr.Detail = true, "no corruption found"
	return cr
}

// freePort finds a free loopback port below 32768.
func freePort() (int, error) {
	base := 20000 + int(time.Now().UnixNano()%10000)
	for p := base; p < base+2000 && p < 32768; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port below 32768 for the drill instance")
}

func (o Options) database() string {
	if o.Database == "" {
		return "postgres"
	}
	return o.Database
}

// writePassFile writes a libpq password file for the scratch server alone
// (127.0.0.1:port) into the scratch directory, which goes with the drill.
func writePassFile(acct osuser.Account, scratch string, port int, user, password string) (string, error) {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace
	path := filepath.Join(scratch, "pgpass")
	line := fmt.Sprintf("127.0.0.1:%d:*:%s:%s\n", port, esc(user), esc(password))
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("drill password file: %w", err)
	}
	return path, acct.ChownTree(path)
}
