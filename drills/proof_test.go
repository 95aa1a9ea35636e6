package drills_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drill/drills"
	"drill/drills/drilltest"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/verify"

	"github.com/jackc/pgx/v5"
)

// corruptingTarget restores as the local target does, then damages a page
// of a table and of an index on disk, between restore and verify.
type corruptingTarget struct {
	*local.Target
	t *testing.T
}

func (c corruptingTarget) Restore(ctx context.Context, in *drills.Instance, b drills.Backup, p drills.Progress) error {
	if err := c.Target.Restore(ctx, in, b, p); err != nil {
		return err
	}
	cl := c.Target.Cluster(*in)
	conn, err := pgx.Connect(ctx, cl.SocketDSN(in.Details["database"]))
	if err != nil {
		return err
	}
	var heap, index string
	err = conn.QueryRow(ctx, "select pg_relation_filepath('public.orders'), pg_relation_filepath('public.orders_created_at')").Scan(&heap, &index)
	if err == nil {
		_, err = conn.Exec(ctx, "checkpoint")
	}
	conn.Close(ctx)
	if err != nil {
		return err
	}
	// Stopped, so that the damaged pages are read from disk, not from
	// shared buffers.
	if err := cl.Stop(ctx, "fast"); err != nil {
		return err
	}
	data := filepath.Join(cl.DataDir())
	// Heap block 0: line pointers 5 to 20.
	damage(c.t, filepath.Join(data, heap), 24+4*4, 64)
	// Index block 1 (the first leaf page after the metapage): the same.
	damage(c.t, filepath.Join(data, index), 8192+24+4*4, 64)
	return cl.StartAttached(ctx)
}

func damage(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Line pointers in use (flags 1) to an item of 100 bytes at offset
	// 8190: past the end of the page.
	lp := uint32(8190) | 1<<15 | 100<<17
	junk := make([]byte, n)
	for i := 0; i+4 <= n; i += 4 {
		binary.LittleEndian.PutUint32(junk[i:], lp)
	}
	if _, err := f.WriteAt(junk, off); err != nil {
		t.Fatal(err)
	}
}

// A table page and an index page damaged after the restore fail the
// amcheck check, naming both; the same backup restored cleanly passes it.
func TestAmcheckFindsCorruption(t *testing.T) {
	t.Parallel()
	b := setup(t)
	drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump"))
	spec := shopSpec(b.backups)
	spec.Checks = []verify.Check{{Type: verify.TypeAmcheck, Name: "amcheck"}}
	ctx := context.Background()

	clean := b.drill(t, ctx, spec, nil)
	if clean.Status != drills.StatusPassed || !strings.Contains(clean.Checks[0].Actual, "no corruption") {
		t.Fatalf("clean restore: %s %+v", clean.Status, clean.Checks)
	}

	run := b.drillWith(t, ctx, spec, corruptingTarget{Target: b.target, t: t}, nil)
	c := run.Checks[0]
	if run.Status != drills.StatusFailed || c.Passed {
		t.Fatalf("corrupt restore: %s %+v", run.Status, c)
	}
	if c.Error != "" {
		t.Fatalf("amcheck did not run to the end: %s", c.Error)
	}
	for _, want := range []string{"public.orders (table)", "public.orders_created_at (index)"} {
		if !strings.Contains(c.Actual, want) {
			t.Errorf("amcheck result %q does not name %s", c.Actual, want)
		}
	}
	// orders_pkey may be reported too: heapallindexed reads the damaged heap.
	if len(c.Details) < 2 || c.Details[0].Name != "public.orders" || c.Details[0].Status != "corrupt" {
		t.Errorf("details: %+v", c.Details)
	}
}

// A fingerprint check fails, before anything is restored, when the backup
// is not the dump its fingerprint was taken with; drift names a table that
// is gone since the last passing run.
func TestFingerprintMismatchAndDrift(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	dump := filepath.Join(b.backups, "shop.dump")
	if _, err := dumpWithFingerprint(ctx, b.shop, dump); err != nil {
		t.Fatal(err)
	}
	spec := shopSpec(b.backups)
	spec.Checks = []verify.Check{{Type: verify.TypeFingerprint, Name: "fingerprint"}, {Type: verify.TypeDrift, Name: "drift"}}
	first := b.drill(t, ctx, spec, nil)
	if first.Status != drills.StatusPassed || first.Backup.SHA256 == "" || len(first.Tables) != 2 {
		t.Fatalf("first run: %s %s %+v tables %+v", first.Status, first.Error, first.Checks, first.Tables)
	}

	// Another dump under the same name, the fingerprint left as it was.
	fp, err := os.ReadFile(dump + verify.FingerprintSuffix)
	if err != nil {
		t.Fatal(err)
	}
	drilltest.Exec(t, b.shop, "insert into customers values (1000, 'new', null)")
	drilltest.DumpAs(t, b.shop, "custom", dump)
	if err := os.WriteFile(dump+verify.FingerprintSuffix, fp, 0o644); err != nil {
		t.Fatal(err)
	}
	swapped := b.drill(t, ctx, spec, nil)
	if swapped.Status != drills.StatusFailed || swapped.Reason != drills.ReasonRestoreFailed ||
		!strings.Contains(swapped.Error, "fingerprint says") || len(swapped.Checks) != 0 {
		t.Fatalf("swapped dump: %s %s %q checks %d", swapped.Status, swapped.Reason, swapped.Error, len(swapped.Checks))
	}

	// A fresh dump without the customers table: the fingerprint matches
	// the dump, drift finds the table gone.
	drilltest.Exec(t, b.shop, "alter table orders drop constraint orders_customer_id_fkey", "drop table customers")
	if _, err := dumpWithFingerprint(ctx, b.shop, dump); err != nil {
		t.Fatal(err)
	}
	dropped := b.drill(t, ctx, spec, nil)
	if dropped.Status != drills.StatusFailed || !dropped.Checks[0].Passed || dropped.Checks[1].Passed ||
		!strings.Contains(dropped.Checks[1].Actual, "public.customers gone: had") {
		t.Fatalf("dropped table: %s %+v", dropped.Status, dropped.Checks)
	}
}

func dumpWithFingerprint(ctx context.Context, url, out string) (*pgdump.DumpResult, error) {
	bin, err := local.FindBinaries()
	if err != nil {
		return nil, err
	}
	return pgdump.Dump(ctx, pgdump.DumpOptions{URL: url, Out: out, Jobs: 2, PGDump: bin.Path("pg_dump"), PGRestore: bin.Path("pg_restore")})
}

// Checks run side by side (verify_jobs) are recorded in config order,
// drift among them though it runs last; the record still seals.
func TestChecksSideBySideKeepConfigOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	drilltest.DumpAs(t, b.shop, "custom", filepath.Join(b.backups, "shop.dump"))
	spec := shopSpec(b.backups)
	spec.VerifyJobs = 3
	spec.Checks = append([]verify.Check{{Type: verify.TypeDrift, Name: "drift"}}, spec.Checks...)
	run := b.drill(t, context.Background(), spec, nil)
	if run.Status != drills.StatusPassed {
		t.Fatalf("%s: %s %+v", run.Status, run.Error, run.Checks)
	}
	for i, c := range run.Checks {
		if c.Name != spec.Checks[i].Name {
			t.Fatalf("check %d is %q, want %q (config order)", i, c.Name, spec.Checks[i].Name)
		}
	}
	if run.Seal == nil || run.Seal.Integrity == drills.IntegrityAltered {
		t.Fatalf("seal: %+v", run.Seal)
	}
	// drift ran last: it saw the exact count the row_count check made.
	for _, tb := range run.Tables {
		if tb.Name == "public.orders" && !tb.RowsExact {
			t.Errorf("public.orders not counted exactly: %+v", tb)
		}
	}
}
