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
// they are made, and found, where the server's own settings put them
// (public here); options in the URL are honoured (not parallel: the
// environment).
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
	other := drilltest.NewDatabase(t)
	drilltest.Exec(t, other, "create schema elsewhere")
	t.Setenv("PGOPTIONS", "-c search_path=public")
	s, err := statedb.Open(ctx, other+" options='-c search_path=elsewhere'", statedb.Options{}) // a key=value URL
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var where string
	if err := s.Pool.QueryRow(ctx, "select table_schema from information_schema.tables where table_name = 'drill_runs'").Scan(&where); err != nil || where != "elsewhere" {
		t.Fatalf("options in the URL: drill_runs in %q (%v), want elsewhere", where, err)
	}
}
