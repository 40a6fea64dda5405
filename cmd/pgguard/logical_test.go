package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// startWithShop starts a one-node cluster with a backup repository and
// an empty database "shop", and returns a connection to its postgres
// database.
func startWithShop(t *testing.T, timeout time.Duration) (*testcluster.Cluster, context.Context, *pgx.Conn) {
	t.Helper()
	c, ctx, admin := testcluster.StartRepoNode(t, timeout)
	if _, err := admin.Exec(ctx, `CREATE DATABASE shop`); err != nil {
		t.Fatal(err)
	}
	return c, ctx, admin
}

// withDB runs fn on a new connection to dsn and closes it.
func withDB(t *testing.T, ctx context.Context, dsn string, fn func(*pgx.Conn)) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	fn(conn)
}

// tableRows returns the rows of table in the database at dsn, or -1 when
// the table does not exist.
func tableRows(t *testing.T, ctx context.Context, dsn, table string) int {
	t.Helper()
	n := -1
	withDB(t, ctx, dsn, func(conn *pgx.Conn) {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			return
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
	})
	return n
}

// A logical backup of one table, the table dropped, then restored into a
// new database with the same rows — and into the original database.
func TestLogicalBackupOfATableRestoredIntoANewDatabase(t *testing.T) {
	c, ctx, _ := startWithShop(t, 2*time.Minute)
	shopDSN := c.NodeDSN("n1") + " dbname=shop"
	count := func(dsn, table string) int {
		t.Helper()
		return tableRows(t, ctx, dsn, table)
	}
	shop, err := pgx.Connect(ctx, shopDSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shop.Exec(ctx, `CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS item FROM generate_series(1, 1000) g;
		CREATE TABLE customers AS SELECT g AS id FROM generate_series(1, 50) g`); err != nil {
		t.Fatal(err)
	}
	cfg := c.Layout.ConfigPath("n1")
	pgguard := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(c.Exe, append(args, "-c", cfg)...).CombinedOutput(); err != nil {
			t.Fatalf("pgguard %v: %v\n%s", args, err, out)
		}
	}
	pgguard("backup", "logical", "--db", "shop", "--table", "orders")
	if _, err := shop.Exec(ctx, `DROP TABLE orders`); err != nil {
		t.Fatal(err)
	}
	shop.Close(ctx)

	pgguard("restore", "logical", "--db", "shop", "--table", "orders", "--into", "shop_copy")
	if n := count(c.NodeDSN("n1")+" dbname=shop_copy", "orders"); n != 1000 {
		t.Fatalf("shop_copy.orders has %d rows, want 1000", n)
	}
	pgguard("restore", "logical", "--db", "shop", "--table", "orders")
	if n := count(shopDSN, "orders"); n != 1000 {
		t.Fatalf("shop.orders has %d rows after restoring into the original, want 1000", n)
	}
	if n := count(shopDSN, "customers"); n != 50 {
		t.Fatalf("restoring one table touched another: customers has %d rows", n)
	}
	// Restoring into an existing database name is refused.
	if out, err := exec.Command(c.Exe, "restore", "logical", "--db", "shop", "--table", "orders", "--into", "shop_copy", "-c", cfg).CombinedOutput(); err == nil {
		t.Fatalf("restore into an existing database accepted:\n%s", out)
	}
}

// Tables outside public, and names that need quoting (capitals, dots,
// spaces), backed up and restored by a schema-qualified --table or by
// --schema with --table; a request that matches nothing fails, names what
// the backup holds, and changes nothing (issue 18's bug: a restore of
// "app.orders" used to restore nothing and say it succeeded).
func TestLogicalRestoreOutsidePublicAndQuotedNames(t *testing.T) {
	c, ctx, admin := startWithShop(t, 3*time.Minute)
	dsn := func(db string) string { return c.NodeDSN("n1") + " dbname=" + db }
	exec1 := func(db, sql string) {
		t.Helper()
		withDB(t, ctx, dsn(db), func(conn *pgx.Conn) {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		})
	}
	// count returns the rows of table in db, or -1 when it does not exist.
	count := func(db, table string) int {
		t.Helper()
		return tableRows(t, ctx, dsn(db), table)
	}
	dbExists := func(name string) bool {
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	exec1("shop", `CREATE SCHEMA app; CREATE SCHEMA "Sales Dept";
		CREATE TABLE app.customers (id int PRIMARY KEY); INSERT INTO app.customers VALUES (1);
		CREATE TABLE app.orders (id int PRIMARY KEY, item text DEFAULT 'x', seq serial, cust int DEFAULT 1 REFERENCES app.customers);
		CREATE INDEX "Orders by item" ON app.orders (item);
		INSERT INTO app.orders (id, item) SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
		CREATE TABLE public.orders AS SELECT g AS id FROM generate_series(1, 7) g;
		CREATE TABLE "Sales Dept"."Q1.Results" AS SELECT g AS id FROM generate_series(1, 42) g;
		CREATE TABLE app."MixedCase" AS SELECT g AS id FROM generate_series(1, 3) g`)

	cfg := c.Layout.ConfigPath("n1")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(c.Exe, append(args, "-c", cfg)...).CombinedOutput()
		return string(out), err
	}
	ok := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("pgguard %q: %v\n%s", args, err, out)
		}
		return out
	}
	refused := func(want string, args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err == nil {
			t.Fatalf("pgguard %q succeeded, want a refusal naming %q:\n%s", args, want, out)
		}
		if !strings.Contains(out, want) {
			t.Fatalf("pgguard %q refused without naming %q:\n%s", args, want, out)
		}
		return out
	}
	backups := func() int {
		var list []map[string]any
		if err := json.Unmarshal([]byte(ok("backups", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		return len(list)
	}

	// Backups: a qualified table, a quoted one, a whole schema, the whole
	// database. An unqualified name in two schemas, and a name that
	// matches nothing, are refused without a backup.
	ok("backup", "logical", "--db", "shop", "--table", "app.orders")
	ok("backup", "logical", "--db", "shop", "--table", `"Sales Dept"."Q1.Results"`)
	ok("backup", "logical", "--db", "shop", "--schema", "app")
	ok("backup", "logical", "--db", "shop")
	before := backups()
	refused(`"app", "public"`, "backup", "logical", "--db", "shop", "--table", "orders")
	refused(`no table "nosuch"`, "backup", "logical", "--db", "shop", "--table", "app.nosuch")
	refused(`no schema "App"`, "backup", "logical", "--db", "shop", "--schema", `"App"`)
	if n := backups(); n != before {
		t.Fatalf("refused backups left %d new backups in the repository", n-before)
	}

	exec1("shop", `DROP TABLE app.orders; DROP TABLE "Sales Dept"."Q1.Results"`)

	// The commands, both spellings.
	out := ok("restore", "logical", "--db", "shop", "--table", "app.orders", "--into", "r1")
	if n := count("r1", "app.orders"); n != 1000 {
		t.Fatalf("r1: app.orders has %d rows (-1: missing), want 1000; pgguard said:\n%s", n, out)
	}
	ok("restore", "logical", "--db", "shop", "--schema", "app", "--table", "orders", "--into", "r2")
	if n := count("r2", "app.orders"); n != 1000 {
		t.Fatalf("r2: app.orders has %d rows, want 1000", n)
	}
	// The table comes back with its primary key, index, default and
	// sequence; its foreign key cannot (app.customers is not in r1), and
	// the output says so.
	if !strings.Contains(out, "foreign keys of") {
		t.Fatalf("restore into r1 did not warn about the foreign key it could not restore:\n%s", out)
	}
	shape := func(db string) (s string) {
		t.Helper()
		withDB(t, ctx, dsn(db), func(conn *pgx.Conn) {
			if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.orders'::regclass AND contype = 'p')::text
			|| ' pk, ' || (SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.orders'::regclass AND contype = 'f')::text
			|| ' fk, ' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'app' AND indexname = 'Orders by item')::text
			|| ' index, next seq ' || nextval('app.orders_seq_seq')::text`).Scan(&s); err != nil {
				t.Fatalf("%s: read app.orders' shape: %v", db, err)
			}
		})
		return s
	}
	if got, want := shape("r1"), "1 pk, 0 fk, 1 index, next seq 1001"; got != want {
		t.Fatalf("r1: app.orders has %s, want %s", got, want)
	}
	if got, want := shape("r2"), "1 pk, 0 fk, 1 index, next seq 1001"; got != want {
		t.Fatalf("r2: app.orders has %s, want %s", got, want)
	}

	// Quoted names, from the table's own backup and out of the whole
	// database's (which must create the schema first).
	ok("restore", "logical", "--db", "shop", "--table", `"Sales Dept"."Q1.Results"`, "--into", "r3")
	if n := count("r3", `"Sales Dept"."Q1.Results"`); n != 42 {
		t.Fatalf(`r3: "Sales Dept"."Q1.Results" has %d rows, want 42`, n)
	}
	newest := ok("restore", "logical", "--db", "shop", "--table", `app."MixedCase"`, "--into", "r4")
	if n := count("r4", `app."MixedCase"`); n != 3 {
		t.Fatalf(`r4: app."MixedCase" has %d rows, want 3; pgguard said:\n%s`, n, newest)
	}
	if n := count("r4", "app.orders"); n != -1 {
		t.Fatalf("r4: restoring one table out of a database backup also restored app.orders (%d rows)", n)
	}

	// Requests that match nothing: refused, naming what the backups hold,
	// and no database created.
	refused(`"app"."orders"`, "restore", "logical", "--db", "shop", "--table", "app.nosuch", "--into", "r5")
	refused("no logical backup holds", "restore", "logical", "--db", "shop", "--schema", "nosuch", "--into", "r6")
	for _, db := range []string{"r5", "r6"} {
		if dbExists(db) {
			t.Fatalf("a refused restore created database %s", db)
		}
	}
	// Two different schemas for one table: refused before anything runs.
	refused("--table", "restore", "logical", "--db", "shop", "--table", "app.orders", "--schema", "public", "--into", "r7")

	// Into the original database: the dropped table comes back, the
	// other "orders" is untouched.
	ok("restore", "logical", "--db", "shop", "--table", "app.orders")
	if n := count("shop", "app.orders"); n != 1000 {
		t.Fatalf("shop: app.orders has %d rows after restoring into the original, want 1000", n)
	}
	if n := count("shop", "public.orders"); n != 7 {
		t.Fatalf("shop: public.orders has %d rows, want 7 (untouched)", n)
	}
	if got, want := shape("shop"), "1 pk, 1 fk, 1 index, next seq 1001"; got != want {
		t.Fatalf("shop: app.orders has %s after restoring into the original (app.customers there), want %s", got, want)
	}
}
