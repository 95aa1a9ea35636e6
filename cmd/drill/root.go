package main

import (
	"io"

	"github.com/spf13/cobra"
)

// globalOpts are the flags every command has.
type globalOpts struct {
	configPath string
	logLevel   string
	logFormat  string
}

func newRootCommand() *cobra.Command {
	g := &globalOpts{}
	root := &cobra.Command{
		Use:   "drill",
		Short: "Restore drills for PostgreSQL backups: prove your backups restore",
		Long: `drill finds the newest backup of a database, restores it into an isolated,
throwaway instance, verifies it, records RTO and RPO against your objectives,
and tears the instance down.

Config: --config FILE, else $DRILL_CONFIG, else ./drill.yaml.
State: PostgreSQL at $DRILL_DATABASE_URL (or database_url: in the config);
without one, an embedded PostgreSQL under $DRILL_HOME.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "", "config file (default $DRILL_CONFIG or ./drill.yaml)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default info; warn on a terminal)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "json or text (default json, text on a terminal)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return withCode(exitUsage, err) })
	// A bad --log-level or --log-format is refused by every command, also
	// those that log nothing (and those with hooks of their own).
	cobra.EnableTraverseRunHooks = true
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		_, err := g.logger(io.Discard, false)
		return err
	}
	root.AddCommand(
		newRunCommand(g),
		newHistoryCommand(g),
		newShowCommand(g),
		newValidateCommand(g),
		newMigrateCommand(g),
		newWorkerCommand(g),
		newSweepCommand(g),
		newScheduleCommand(g),
		newEvidenceCommand(g),
		newServeCommand(g),
		newVersionCommand(),
		newDiscardCommand(g),
		newDumpCommand(),
		newInitCommand(g),
	)
	return root
}
