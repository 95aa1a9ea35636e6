package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/verify"

	"github.com/spf13/cobra"
)

type dumpOpts struct {
	pgdump.DumpOptions
	json bool
}

func newDumpCommand() *cobra.Command {
	o := &dumpOpts{}
	cmd := &cobra.Command{
		Use:   "dump DATABASE_URL --out PATH|s3://bucket/key [-- PG_DUMP_ARGS...]",
		Short: "Back up a database with pg_dump and write its fingerprint beside it",
		Long: `Dump a database with pg_dump, read-only, and fingerprint it in the same
snapshot: every table the dump holds, with its row count and checksum, and a
digest of the schema. The fingerprint goes beside the dump as
PATH.fingerprint.json; a drill's fingerprint check compares the restored
database with it, proving the restored rows are the rows that were dumped.

The dump and its fingerprint appear under their names only when both are
complete: a failed or interrupted dump leaves nothing there (a temporary
file is removed, an S3 multipart upload aborted).

The password may be in DATABASE_URL, in PGPASSWORD or in ~/.pgpass; it is
given to pg_dump in its environment, never on its command line. drill's
own command line is visible to other users of the host (ps): write
env:NAME for DATABASE_URL to read the URL from the environment variable
NAME instead.

Partitioned tables are fingerprinted as a whole (a partitioned table's
entry covers all its partitions). Arguments after -- go to pg_dump
(table selection, compression…); drill sets --file, --format, --jobs,
--snapshot and the connection itself.`,
		Example: `  drill dump postgres://backup@db.internal/orders --out /backups/orders-$(date +%F).dump
  drill dump env:DATABASE_URL --out s3://backups/orders/$(date +%F).dump --jobs 4
  drill dump env:DATABASE_URL --out orders.dump -- --exclude-table-data=public.sessions`,
		Args: func(cmd *cobra.Command, args []string) error {
			before := len(args)
			if d := cmd.ArgsLenAtDash(); d >= 0 {
				before = d
			}
			if before != 1 {
				return withCode(exitUsage, fmt.Errorf("drill dump: want one DATABASE_URL before -- (see drill dump --help)"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.URL, o.Args = args[0], args[1:]
			if name, ok := strings.CutPrefix(o.URL, "env:"); ok {
				if o.URL = os.Getenv(name); o.URL == "" {
					return withCode(exitUsage, fmt.Errorf("drill dump: DATABASE_URL env:%s: $%s is not set", name, name))
				}
			}
			return runDump(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Out, "out", "o", "", "where to write the dump: a path or s3://bucket/key (required)")
	f.StringVarP(&o.Format, "format", "F", "custom", "custom, directory, tar or plain")
	f.IntVarP(&o.Jobs, "jobs", "j", runtime.NumCPU(), "connections fingerprinting tables side by side (and pg_dump --jobs for the directory format)")
	f.DurationVar(&o.Timeout, "timeout", 24*time.Hour, "statement timeout of every connection")
	f.StringVar(&o.Region, "region", "", "AWS region for s3:// (default: the AWS environment)")
	f.StringVar(&o.Endpoint, "endpoint", "", "S3 endpoint URL (default: the AWS environment, e.g. AWS_ENDPOINT_URL_S3)")
	f.BoolVar(&o.json, "json", false, "print a summary as JSON")
	return cmd
}

// dumpJSON is the summary `drill dump --json` prints.
type dumpJSON struct {
	*pgdump.DumpResult
	Format          string `json:"format"`
	SHA256          string `json:"sha256"`
	SizeBytes       int64  `json:"size_bytes"`
	SchemaSHA256    string `json:"schema_sha256"`
	SnapshotTakenAt string `json:"snapshot_taken_at"`
	Database        string `json:"database"`
}

func runDump(ctx context.Context, o *dumpOpts, stdout, stderr io.Writer) error {
	if bin, err := local.FindBinaries(); err == nil {
		o.PGDump, o.PGRestore = bin.Path("pg_dump"), bin.Path("pg_restore")
	}
	o.DrillVersion = version
	o.Notice = func(msg string) { fmt.Fprintln(stderr, "drill dump: "+msg) }
	terminal := false
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		terminal = true
		o.Progress = func(p pgdump.DumpProgress) {
			fmt.Fprintf(stderr, "\r\033[Kdump: %s written, %d/%d tables fingerprinted", drills.HumanBytes(p.Bytes), p.TablesDone, p.TablesTotal)
		}
	}
	res, err := pgdump.Dump(ctx, o.DumpOptions)
	if terminal {
		fmt.Fprint(stderr, "\r\033[K")
	}
	switch {
	case err == nil:
	case errors.Is(err, pgdump.ErrDumpUsage):
		return withCode(exitUsage, errors.New(trimUsage(err.Error())))
	case errors.Is(err, pgdump.ErrDumpWritten):
		return withCode(exitUnavailable, fmt.Errorf("dump: %w", err))
	case ctx.Err() != nil:
		return withCode(exitInterrupted, fmt.Errorf("interrupted: nothing was written to %s", o.Out))
	default:
		return withCode(exitUnavailable, fmt.Errorf("dump: %w (nothing was written to %s)", err, o.Out))
	}
	fp := res.Facts
	if o.json {
		return writeJSON(stdout, dumpJSON{DumpResult: res, Format: fp.Dump.Format, SHA256: fp.Dump.SHA256, SizeBytes: fp.Dump.SizeBytes,
			SchemaSHA256: fp.SchemaSHA256, SnapshotTakenAt: fp.SnapshotTakenAt.Format(time.RFC3339), Database: fp.Database})
	}
	fmt.Fprintf(stdout, "wrote %s (%s, %s, sha256 %s)\n", res.Out, fp.Dump.Format, drills.HumanBytes(fp.Dump.SizeBytes), fp.Dump.SHA256)
	fmt.Fprintf(stdout, "wrote %s: %s, %s rows, snapshot taken %s, in %s\n", res.Fingerprint, verify.Plural(res.Tables, "table"),
		verify.GroupDigits(res.Rows), fp.SnapshotTakenAt.Format(time.RFC3339), drills.HumanDuration(time.Duration(res.Seconds*float64(time.Second))))
	return nil
}

func trimUsage(s string) string {
	const p = "usage: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
