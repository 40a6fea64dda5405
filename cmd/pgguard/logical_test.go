package main

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// A logical backup of one table, the table dropped, then restored into a
// new database with the same rows — and into the original database.
func TestLogicalBackupOfATableRestoredIntoANewDatabase(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, c.Layout.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE DATABASE shop`); err != nil {
		t.Fatal(err)
	}
	shopDSN := c.NodeDSN("n1") + " dbname=shop"
	count := func(dsn, table string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		return n
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
