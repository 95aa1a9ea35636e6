package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

type migrateOpts struct {
	*globalOpts
	json   bool
	stdout io.Writer
}

func newMigrateCommand(g *globalOpts) *cobra.Command {
	o := &migrateOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the state database's migrations (drill's and river's)",
		Long: `Apply pending migrations to the state database. Commands that need the
store apply them themselves; run this to migrate ahead of a deploy.`,
		Example: "  DRILL_DATABASE_URL=postgres://drill@db/drill drill migrate",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.stdout = cmd.OutOrStdout()
			return runMigrate(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was applied as JSON")
	return cmd
}

func runMigrate(ctx context.Context, o *migrateOpts) error {
	s, err := o.open(ctx, sessionOpts{noMigrate: true})
	if err != nil {
		return err
	}
	defer s.close()
	store := s.store
	res, err := store.Migrate(ctx)
	if err != nil {
		return withCode(exitUnavailable, fmt.Errorf("migrate state database: %w", err))
	}
	if o.json {
		return writeJSON(o.stdout, res)
	}
	if len(res.Applied) == 0 && len(res.RiverApplied) == 0 {
		fmt.Fprintln(o.stdout, "state database is up to date")
		return nil
	}
	for _, name := range res.Applied {
		fmt.Fprintf(o.stdout, "applied %s\n", name)
	}
	for _, v := range res.RiverApplied {
		fmt.Fprintf(o.stdout, "applied river migration %03d\n", v)
	}
	return nil
}
