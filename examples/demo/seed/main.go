// Command seed makes the demo's "production" database and its backup: a
// private PostgreSQL cluster with a shop (pgbench's tables plus customers
// and a month of orders), dumped with drill dump (pg_dump -Fc and a fingerprint) into a backup folder.
// The cluster is removed afterwards; only the backup stays.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "drill-demo"), "demo folder (the backups go to DIR/backups)")
	flag.Parse()
	if err := seed(context.Background(), *dir); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func seed(ctx context.Context, dir string) error {
	bin, err := local.FindBinaries()
	if err != nil {
		return err
	}
	runAs, err := local.LookupRunAs("")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "backups"), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	port, err := local.FreePort()
	if err != nil {
		return err
	}
	prod := &local.Cluster{Dir: filepath.Join(dir, "production"), Bin: bin, RunAs: runAs, Port: port}
	_ = prod.Stop(ctx, "immediate") // a leftover from an interrupted demo
	if err := os.RemoveAll(prod.Dir); err != nil {
		return err
	}
	defer os.RemoveAll(prod.Dir)
	fmt.Println("  starting a sample production PostgreSQL in", prod.Dir)
	if err := prod.Init(ctx); err != nil {
		return err
	}
	if err := prod.Start(ctx); err != nil {
		return err
	}
	defer prod.Stop(context.Background(), "fast") //nolint:errcheck

	if err := sql(ctx, prod.SocketDSN("postgres"), "create database shop"); err != nil {
		return err
	}
	shop := prod.SocketDSN("shop")
	fmt.Println("  loading pgbench tables (200,000 accounts) and a month of orders")
	pgbench := exec.CommandContext(ctx, bin.Path("pgbench"), "-i", "-s", "2", "-q", "-h", prod.SocketDir(), "-p", strconv.Itoa(port), "-U", "postgres", "shop")
	if out, err := pgbench.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %v: %s", err, out)
	}
	if err := sql(ctx, shop,
		`create table customers (id int primary key, name text not null, email text not null, created_at timestamptz not null)`,
		`insert into customers select g, 'Customer ' || g, 'customer' || g || '@example.com', now() - interval '90 days' + g * interval '1 hour'
			from generate_series(1, 2000) g`,
		`create table orders (id bigint primary key, customer_id int not null references customers, total numeric(12,2) not null check (total >= 0),
			status text not null, created_at timestamptz not null)`,
		// one order every 20 seconds over the last 30 days; the newest a few minutes old
		`insert into orders select g, 1 + (g::bigint * 7919) % 2000, round(((g::bigint * 104729) % 50000) / 100.0, 2),
			(array['paid', 'shipped', 'delivered', 'refunded'])[1 + g % 4], now() - interval '3 minutes' - g * interval '20 seconds'
			from generate_series(1, 129600) g`,
		`create index orders_customer on orders (customer_id)`,
		`create index orders_created_at on orders (created_at)`,
	); err != nil {
		return err
	}
	backup := filepath.Join(dir, "backups", "shop-"+time.Now().UTC().Format("20060102T150405Z")+".dump")
	// What `drill dump SHOP --out BACKUP` does: pg_dump -Fc on a snapshot,
	// and the fingerprint of every table in that snapshot beside it.
	fmt.Println("  drill dump →", backup, "(and its .fingerprint.json)")
	res, err := pgdump.Dump(ctx, pgdump.DumpOptions{URL: shop, Out: backup, Jobs: runtime.NumCPU(),
		PGDump: bin.Path("pg_dump"), PGRestore: bin.Path("pg_restore")})
	if err != nil {
		return fmt.Errorf("drill dump: %w", err)
	}
	fmt.Printf("  fingerprint: %d tables, %s rows\n", res.Tables, verify.GroupDigits(res.Rows))
	return nil
}

func sql(ctx context.Context, dsn string, statements ...string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range statements {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
