package main

import (
	"drill/drills"
	"fmt"

	"github.com/spf13/cobra"
)

func newVersionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print drill's version and the VCS revision it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rev := drills.BuildRevision(revision)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"version": version, "revision": rev})
			}
			if rev != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "drill %s (revision %s)\n", version, rev)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "drill %s\n", version)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	return cmd
}
