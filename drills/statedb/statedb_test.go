package statedb_test

import (
	"context"
	"os"
	"testing"

	"drill/drills/drilltest"
	"drill/drills/statedb"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

// A search_path in the shell's PGOPTIONS does not move drill's tables:
// they are made, and found, in public (not parallel: the environment).
func TestPGOPTIONSDoesNotMoveTheState(t *testing.T) {
	url := drilltest.NewDatabase(t)
	drilltest.Exec(t, url, "create schema elsewhere")
	ctx := context.Background()
	for _, options := range []string{"-c search_path=elsewhere", "-c search_path=nonexistent", ""} {
		t.Setenv("PGOPTIONS", options)
		s, err := statedb.Open(ctx, url, statedb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			t.Fatalf("PGOPTIONS=%q: migrate: %v", options, err)
		}
		var where string
		err = s.Pool.QueryRow(ctx, "select table_schema from information_schema.tables where table_name = 'drill_runs'").Scan(&where)
		s.Close()
		if err != nil || where != "public" {
			t.Fatalf("PGOPTIONS=%q: drill_runs in %q (%v), want public", options, where, err)
		}
	}
}
