package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/backends"
	"drill/drills/config"
	"drill/jobs"
	"drill/verify"

	"github.com/spf13/cobra"
)

type initOpts struct {
	*globalOpts
	from, name, out, dir string
	json                 bool
	stdout, stderr       io.Writer
}

func newInitCommand(g *globalOpts) *cobra.Command {
	o := &initOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "init --from LOCATION",
		Short: "Write a starter drill.yaml from a real restore of the newest backup",
		Long: `Restore the newest backup at LOCATION (a pg_dump file, a directory of them,
or s3://bucket/prefix/) once into a throwaway local cluster, look at what
came back, and write a commented drill.yaml whose checks pass on it: a
row_count for each large table, a recency check where a table has an obvious
timestamp column, a fingerprint check (when the backup was made with drill
dump) or a checksum, amcheck and drift. The restore is a real drill run,
recorded in the history with trigger init (evidence of nothing: coverage
and controls leave it out), and torn down after.

drill init never overwrites a file: it exits 2 when --out exists.`,
		Example: `  drill init --from /backups/orders/
  drill init --from s3://backups/orders/ --name orders --out /etc/drill/drill.yaml`,
		Args: exactArgs(0, "no arguments (use --from LOCATION)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.stdout, o.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runInit(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "", "where the backups are: a file, a directory or s3://bucket/prefix/ (required)")
	cmd.Flags().StringVar(&o.name, "name", "", "the drill's name (default: from the location)")
	cmd.Flags().StringVar(&o.out, "out", "drill.yaml", "the config file to write; never overwritten")
	cmd.Flags().StringVar(&o.dir, "dir", "", "where the throwaway cluster goes (target.dir; default: the local target's)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was written as JSON")
	return cmd
}

var nameChars = regexp.MustCompile(`[^a-z0-9]+`)

// initName derives a drill name from a location: its last part, lower
// case, other characters as hyphens.
func initName(location string) string {
	base := strings.TrimSuffix(location, "/")
	base = base[strings.LastIndex(base, "/")+1:]
	for _, ext := range []string{".gz", ".sql", ".dump", ".tar", ".backup"} {
		base = strings.TrimSuffix(base, ext)
	}
	name := strings.Trim(nameChars.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(name) > 40 {
		name = strings.Trim(name[:40], "-")
	}
	if drills.ValidName(name) != nil {
		return "main"
	}
	return name
}

func runInit(ctx context.Context, o *initOpts) error {
	location, err := o.location()
	if err != nil {
		return err
	}
	// The drill as it will be written, without checks yet: what it
	// restores is what the file will drill.
	draft := initYAML(o.name, location, o.dir, nil)
	cfg, err := config.Parse(o.out, []byte(draft))
	if err != nil {
		return withCode(exitUsage, err)
	}
	spec := cfg.Drill(o.name)
	terminal := isTerminal(os.Stderr)
	log, err := o.logger(o.stderr, terminal)
	if err != nil {
		return err
	}
	src, tgt, err := backends.For(ctx, spec)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	store, client, closeStore, err := openForRuns(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer closeStore()
	var suggestions []verify.Suggestion
	inspect := func(ctx context.Context, dsn string, b drills.Backup) error {
		conn, err := verify.Connect(ctx, dsn, verify.Opts{StatementTimeout: 10 * time.Minute})
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		inv, err := verify.TakeInventory(ctx, conn)
		if err != nil {
			return err
		}
		suggestions, err = verify.Suggest(ctx, conn, inv, b.CreatedAt, b.Fingerprint != nil)
		return err
	}
	runner := &drills.Runner{Store: store, Logger: o.runnerLogger(log, terminal), Worker: whoAmI(), Version: fullVersion(), OnIntent: jobs.DeadMan(client)}
	if terminal {
		runner.Events = newProgress(os.Stderr).event
	}
	run, err := runner.Run(ctx, drills.RunParams{Spec: spec, Source: src, Target: tgt, Policy: drills.PolicyOf(spec, cfg.Path, version),
		Trigger: drills.TriggerInit, TriggeredBy: whoAmI(), Inspect: inspect})
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if run.Status != drills.StatusPassed || suggestions == nil {
		return withCode(exitFailed, fmt.Errorf("drill init: the restore of the newest backup at %s failed (%s): %s; nothing was written (drill show %d)", o.from, run.Reason, run.Error, run.ID))
	}
	text := initYAML(o.name, location, o.dir, suggestions)
	if _, err := config.Parse(o.out, []byte(text)); err != nil {
		return withCode(exitUnavailable, fmt.Errorf("drill init wrote a config it cannot read (a bug): %w", err))
	}
	if err := writeNew(o.out, text); err != nil {
		return err
	}
	if o.json {
		return writeJSON(o.stdout, map[string]any{"out": o.out, "drill": o.name, "checks": len(suggestions), "run_id": run.ID})
	}
	fmt.Fprintf(o.stdout, "wrote %s: drill %s with %s, from a restore of %s (run %d)\nnext: drill validate --config %s && drill run %s --config %s\n",
		o.out, o.name, verify.Plural(len(suggestions), "check"), run.Backup.ID, run.ID, o.out, o.name, o.out)
	return nil
}

// location checks the flags, names the drill when --name does not, and
// returns the location of the backups: absolute, unless on S3.
func (o *initOpts) location() (string, error) {
	if o.from == "" {
		return "", withCode(exitUsage, errors.New("drill init: --from LOCATION is required (a pg_dump file, a directory or s3://bucket/prefix/)"))
	}
	if _, err := os.Lstat(o.out); err == nil {
		return "", withCode(exitUsage, fmt.Errorf("%s exists: drill init never overwrites a file (give --out another name)", o.out))
	}
	if o.name == "" {
		o.name = initName(o.from)
	}
	if err := drills.ValidName(o.name); err != nil {
		return "", withCode(exitUsage, fmt.Errorf("--name: %w", err))
	}
	if strings.HasPrefix(o.from, "s3://") {
		return o.from, nil
	}
	abs, err := filepath.Abs(o.from)
	if err != nil {
		return "", withCode(exitUsage, err)
	}
	return abs, nil
}

// writeNew writes text to a file at path that it creates: a file there,
// even one made since runInit looked, is left alone. A file it could not
// write whole is removed.
func writeNew(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("write %s: %w", path, err))
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		os.Remove(path)
		return withCode(exitUnavailable, err)
	}
	if err := f.Close(); err != nil {
		return withCode(exitUnavailable, err)
	}
	return nil
}

// commentLine makes s safe in a YAML comment: it holds table names from
// the backup and a location from the command line, and no line break may
// end the comment early.
func commentLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
}

// initYAML renders the starter config: the drill, and each suggested
// check under a comment that says why.
func initYAML(name, location, dir string, suggestions []verify.Suggestion) string {
	var b bytes.Buffer
	q := strconv.Quote
	fmt.Fprintf(&b, `# Written by drill init on %s from a restore of the newest backup at
# %s. Every check below passed on that restore; tighten them to what your
# data must be. Fields: docs/configuration.md; what each check proves: docs/proving.md.
drills:
  - name: %s
    schedule: quarterly           # or monthly, weekly, a cron expression; run by drill worker
    timeout: 2h
    source:
      type: pgdump
      location: %s
    target:
      type: local                 # a private throwaway cluster on this host
`, time.Now().UTC().Format("2006-01-02"), commentLine(location), name, q(location))
	if dir != "" {
		fmt.Fprintf(&b, "      dir: %s\n", q(dir))
	}
	b.WriteString("    # objectives: { rto: 30m, rpo: 26h }   # a missed objective fails the drill\n")
	if len(suggestions) == 0 {
		return b.String()
	}
	b.WriteString("    checks:\n")
	for _, s := range suggestions {
		c := s.Check
		why := commentLine(s.Why)
		fmt.Fprintf(&b, "      # %s\n      - type: %s\n", why, c.Type)
		if c.Table != "" {
			fmt.Fprintf(&b, "        table: %s\n", q(c.Table))
		}
		if c.Column != "" {
			fmt.Fprintf(&b, "        column: %s\n", q(c.Column))
		}
		if c.Min != nil {
			fmt.Fprintf(&b, "        min: %d\n", *c.Min)
		}
		if c.MaxAge > 0 {
			fmt.Fprintf(&b, "        max_age: %s\n", initDuration(c.MaxAge))
		}
		if c.MaxShrinkPercent != nil {
			fmt.Fprintf(&b, "        max_shrink: %g%%\n", *c.MaxShrinkPercent)
		}
	}
	return b.String()
}

// initDuration writes whole hours as days and hours: 49h as 2d1h.
func initDuration(d time.Duration) string {
	h := int64(d.Hours())
	switch {
	case h >= 24 && h%24 == 0:
		return fmt.Sprintf("%dd", h/24)
	case h >= 24:
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	}
	return fmt.Sprintf("%dh", max(h, 1))
}
