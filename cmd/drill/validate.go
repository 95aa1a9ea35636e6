package main

import (
	"fmt"
	"io"

	"drill/drills"

	"github.com/spf13/cobra"
)

type validateOpts struct {
	*globalOpts
	json   bool
	stdout io.Writer
}

func newValidateCommand(g *globalOpts) *cobra.Command {
	o := &validateOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file; report each problem as FILE:LINE: what is wrong",
		Long: `Check a config file without running anything. Every problem is reported as
FILE:LINE: what is wrong, and the exit code is 2.`,
		Example: "  drill validate\n  drill validate --config /etc/drill/drill.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.stdout = cmd.OutOrStdout()
			return runValidate(o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the parsed drills as JSON")
	return cmd
}

func runValidate(o *validateOpts) error {
	cfg, err := o.loadConfig()
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(o.stdout, cfg)
	}
	fmt.Fprintf(o.stdout, "%s: ok, %d drill(s)\n", cfg.Path, len(cfg.Drills))
	for _, d := range cfg.Drills {
		where := ""
		if w := d.Source.Describe(); w != "" {
			where = " " + w
		}
		fmt.Fprintf(o.stdout, "  %s: %s%s → %s target, %d check(s)", d.Name, d.Source.Type, where, d.Target.Type, len(d.Checks))
		if d.Objectives.RTO > 0 || d.Objectives.RPO > 0 {
			fmt.Fprintf(o.stdout, ", objectives rto %s rpo %s", orNone(d.Objectives.RTO.String(), d.Objectives.RTO > 0), orNone(d.Objectives.RPO.String(), d.Objectives.RPO > 0))
		}
		if len(d.Checks) == 0 {
			fmt.Fprint(o.stdout, " (no checks: only the restore itself is verified)")
		}
		fmt.Fprintln(o.stdout)
		if m, ok := d.Source.Settings.(drills.ToolChecker); ok {
			if missing := m.Missing(); missing != "" {
				fmt.Fprintf(o.stdout, "    warning: %s: this drill cannot run here\n", missing)
			}
		}
		if w, ok := d.Source.Settings.(drills.Warner); ok {
			for _, msg := range w.Warnings() {
				fmt.Fprintf(o.stdout, "    warning: %s\n", msg)
			}
		}
	}
	return nil
}

func orNone(s string, ok bool) string {
	if ok {
		return s
	}
	return "none"
}
