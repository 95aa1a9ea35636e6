package main_test

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"drill/drills/drilltest"
)

// The done-when of the compare check: the drill of a backup passes while
// the live source has only gained rows since, and fails naming the key of
// one old row changed on the source; the source's password is nowhere in
// drill's output, its record or an evidence export.
func TestCompareAgainstLiveSource(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	shop := drilltest.Shop(t)
	drilltest.DumpAs(t, shop, "custom", filepath.Join(b.backups, "shop.dump"))
	const secret = "live-replica-pw-7f3a"
	yaml := fmt.Sprintf(`drills:
  - name: shop
    timeout: 5m
    source:
      type: pgdump
      location: %s
    target:
      type: local
      dir: %s
    checks:
      - type: compare
        table: public.orders
        source_url: ${SHOP_REPLICA_URL}
`, b.backups, b.targetDir)
	if err := os.WriteFile(b.config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(b.env, "SHOP_REPLICA_URL="+shop+" password="+secret)
	all := func(r result) string { return r.stdout + r.stderr }
	noSecret := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) {
			t.Fatalf("%s holds the source's password:\n%s", what, s)
		}
	}

	drilltest.Exec(t, shop, "insert into orders select g, 1, 9.99, now() from generate_series(2001, 2500) g")
	r := drill(t, env, "run", "shop", "--json")
	noSecret("run --json", all(r))
	if r.code != 0 || !strings.Contains(r.stdout, "2,000 rows compared, 0 differences") {
		t.Fatalf("source that only gained rows: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	drilltest.Exec(t, shop, "update orders set total = 0 where id = 1234")
	r = drill(t, env, "run", "shop")
	noSecret("run", all(r))
	if r.code != 1 || !strings.Contains(r.stdout, "id 1234 changed") {
		t.Fatalf("source with a changed row: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"show", "2", "--json"}, {"show", "2"}, {"history", "--json"}, {"validate", "--json"}} {
		noSecret(strings.Join(args, " "), all(drill(t, env, args...)))
	}
	key := filepath.Join(t.TempDir(), "k")
	if r := drill(t, nil, "evidence", "keygen", "--out", key); r.code != 0 {
		t.Fatal(r.stderr)
	}
	out := filepath.Join(t.TempDir(), "e.zip")
	if r := drill(t, env, "evidence", "export", "--out", out, "--key", key); r.code != 0 {
		t.Fatalf("export: %s", r.stderr)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		noSecret("evidence "+f.Name, string(data))
	}

	// An unreachable source fails the check, naming neither password nor URL.
	env = append(b.env, "SHOP_REPLICA_URL=host=127.0.0.1 port=1 dbname=x user=y password="+secret)
	r = drill(t, env, "run", "shop")
	noSecret("unreachable", all(r))
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "compare: connect to the source 127.0.0.1:1/x") {
		t.Fatalf("unreachable source: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
