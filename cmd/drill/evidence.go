package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/drills/evidence"
	"drill/drills/statedb"
	"drill/verify"

	"github.com/spf13/cobra"
)

func newEvidenceCommand(g *globalOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Compliance evidence: signed bundles, offline verification, sign-offs",
		Long: `Export the record of drill runs as a bundle an auditor can verify offline
(SOC 2 A1.3, ISO 27001 A.8.13, HIPAA 164.308(a)(7)(ii)(D)): every run's sealed
record, a CSV, a printable report, and a manifest of SHA-256 hashes signed
with ed25519. Each finished run is sealed into a hash chain per drill, so an
edited or deleted run shows.`,
	}
	cmd.AddCommand(newKeygenCommand(), newExportCommand(g), newVerifyCommand(), newSignoffCommand(g))
	return cmd
}

func newKeygenCommand() *cobra.Command {
	var out string
	var asJSON, sealing bool
	cmd := &cobra.Command{
		Use:   "keygen --out KEYFILE [--sealing]",
		Short: "Make an ed25519 signing key (KEYFILE, mode 0600) and its public key (KEYFILE.pub)",
		Long: `Make an ed25519 key pair. Without --sealing it signs exported bundles
(--key, DRILL_EVIDENCE_KEY). With --sealing it seals each run as it finishes
(DRILL_SEALING_KEY for drill run, worker and sweep): a key kept outside the
state database, so that whoever can write to the database cannot rewrite a run
undetected. Use two different keys.`,
		Example: "  drill evidence keygen --out /etc/drill/evidence.key\n  drill evidence keygen --sealing --out /etc/drill/sealing.key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return withCode(exitUsage, errors.New("--out KEYFILE is required"))
			}
			pub, err := evidence.GenerateKey(out)
			if err != nil {
				return withCode(exitUsage, err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"key_file": out, "public_key_file": out + ".pub", "public_key": string(evidence.PublicKeyPEM(pub))})
			}
			if sealing {
				fmt.Fprintf(cmd.OutOrStdout(), "sealing key: %s (keep it secret, and off the state database's host)\npublic key:  %s.pub\nkey id:      %s\nset DRILL_SEALING_KEY=%s for drill run, worker, sweep and serve\n",
					out, out, drills.KeyID(pub), out)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signing key: %s (keep it secret)\npublic key:  %s.pub (give it to your auditors)\n\n%s",
				out, out, evidence.PublicKeyPEM(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the signing key")
	cmd.Flags().BoolVar(&sealing, "sealing", false, "make the key that seals runs (DRILL_SEALING_KEY), not one that signs bundles")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the files and public key as JSON")
	return cmd
}

type exportOpts struct {
	*globalOpts
	out, drill, since, until, key string
	json                          bool
}

func newExportCommand(g *globalOpts) *cobra.Command {
	o := &exportOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "export --out FILE.zip",
		Short: "Export runs as a signed evidence bundle",
		Long: `Export finished runs as a zip bundle: runs/<id>.json (each run's sealed record
and sign-offs), runs.csv, report.html (self-contained, printable), manifest.json
(SHA-256 of every file) and manifest.sig (ed25519, with --key or
$DRILL_EVIDENCE_KEY). --since and --until take a date (2026-01-01) or an
RFC 3339 time and select runs by start time (--until is exclusive).`,
		Example: `  drill evidence export --out evidence-2026.zip --since 2026-01-01 --until 2027-01-01 --key evidence.key
  drill evidence export --out orders.zip --drill orders`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runExport(cmd.Context(), o, cmd.OutOrStdout()) },
	}
	cmd.Flags().StringVar(&o.out, "out", "", "bundle to write (FILE.zip)")
	cmd.Flags().StringVar(&o.drill, "drill", "", "only this drill")
	cmd.Flags().StringVar(&o.since, "since", "", "only runs started at or after this date/time")
	cmd.Flags().StringVar(&o.until, "until", "", "only runs started before this date/time")
	cmd.Flags().StringVar(&o.key, "key", "", "signing key (default $DRILL_EVIDENCE_KEY; none: unsigned)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the bundle's manifest as JSON")
	return cmd
}

func parseWhen(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, withCode(exitUsage, fmt.Errorf("--%s %q: want a date (2026-01-01) or an RFC 3339 time", flag, v))
}

func runExport(ctx context.Context, o *exportOpts, stdout io.Writer) error {
	if o.out == "" {
		return withCode(exitUsage, errors.New("--out FILE.zip is required"))
	}
	var f statedb.SealedFilter
	var err error
	f.Drill = o.drill
	if f.Since, err = parseWhen("since", o.since); err != nil {
		return err
	}
	if f.Until, err = parseWhen("until", o.until); err != nil {
		return err
	}
	keyPath := o.key
	if keyPath == "" {
		keyPath = os.Getenv("DRILL_EVIDENCE_KEY")
	}
	var key ed25519.PrivateKey
	if keyPath != "" {
		if key, err = evidence.LoadPrivateKey(keyPath); err != nil {
			return withCode(exitUsage, err)
		}
	}
	s, err := o.open(ctx, sessionOpts{})
	if err != nil {
		return err
	}
	defer s.close()
	tmp, err := os.CreateTemp(filepath.Dir(o.out), ".drill-evidence-*")
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer os.Remove(tmp.Name())
	var scheduled []evidence.ScheduledDrill
	if s.cfg != nil {
		for _, d := range s.cfg.Drills {
			scheduled = append(scheduled, evidence.ScheduledDrill{Name: d.Name, Schedule: d.Schedule, Timezone: d.ScheduleTimezone})
		}
	}
	m, err := evidence.Export(ctx, s.store, tmp, evidence.ExportOpts{Filter: f, Key: key, Version: version, Scheduled: scheduled})
	if err != nil {
		tmp.Close()
		return withCode(exitUnavailable, err)
	}
	if err := tmp.Close(); err != nil {
		return withCode(exitUnavailable, err)
	}
	if err := os.Rename(tmp.Name(), o.out); err != nil {
		return withCode(exitUnavailable, err)
	}
	if o.json {
		return writeJSON(stdout, map[string]any{"out": o.out, "manifest": m})
	}
	signed := "unsigned (pass --key to sign)"
	if m.Signed {
		signed = "signed"
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %s\nverify with: drill evidence verify %s", o.out, verify.Plural(m.Runs, "run"), signed, o.out)
	if m.Signed {
		fmt.Fprintf(stdout, " --pubkey %s.pub", keyPath)
	}
	fmt.Fprintln(stdout)
	return nil
}

func newVerifyCommand() *cobra.Command {
	var pubPath, previous string
	var asJSON, unsignedOK bool
	cmd := &cobra.Command{
		Use:   "verify FILE.zip|DIR",
		Short: "Verify an evidence bundle offline (no database, no network)",
		Long: `Check every file of a bundle against its manifest, the manifest against the
signature (with --pubkey), every run against its chain hash, and each drill's
chain for missing runs. Exit 0 and a summary when intact; exit 1 naming every
file or run that fails. A bundle whose signature is not checked (no --pubkey)
or that has none fails too, unless --unsigned-ok says that is accepted.
Duplicate file names and bundles over 1 GiB uncompressed are refused.

What is checked is content, not zip bytes: a bundle unzipped and zipped
again by hand (folder entries, a top folder, __MACOSX/) still verifies, and
so does the unzipped directory itself.`,
		Example: "  drill evidence verify evidence-2026.zip --pubkey evidence.key.pub",
		Args:    exactArgs(1, "FILE.zip or DIR: the bundle to verify, zipped or unzipped"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(args[0], pubPath, previous, unsignedOK, asJSON, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&pubPath, "pubkey", "", "public key of the signer (KEYFILE.pub)")
	cmd.Flags().StringVar(&previous, "previous", "", "an earlier bundle (OLD.zip) this one must extend: no run of it deleted or rewritten")
	cmd.Flags().BoolVar(&unsignedOK, "unsigned-ok", false, "accept a bundle whose signature is not checked or that has none")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func runVerify(path, pubPath, previous string, unsignedOK, asJSON bool, stdout io.Writer) error {
	var pub ed25519.PublicKey
	if pubPath != "" {
		var err error
		if pub, err = evidence.LoadPublicKey(pubPath); err != nil {
			return withCode(exitUsage, err)
		}
	}
	opts := evidence.VerifyOpts{PubKey: pub, UnsignedOK: unsignedOK}
	if previous != "" {
		pf, err := os.Open(previous)
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("--previous: %w", err))
		}
		defer pf.Close()
		pfi, err := pf.Stat()
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("--previous: %w", err))
		}
		opts.Previous, opts.PreviousSize = pf, pfi.Size()
	}
	rep, err := verifyPath(path, opts)
	if err != nil {
		var usage *usageError
		if errors.As(err, &usage) {
			return withCode(exitUsage, usage.err)
		}
		return withCode(exitFailed, fmt.Errorf("%s: %w", path, err))
	}
	if asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else if rep.Intact {
		fmt.Fprintf(stdout, "%s: intact — %s of %s (%s); every file matches the manifest and every chain is complete\n",
			path, verify.Plural(rep.Runs, "run"), verify.Plural(len(rep.Drills), "drill"), strings.Join(rep.Drills, ", "))
		if rep.SignatureChecked {
			fmt.Fprintln(stdout, "signature: valid for", pubPath)
		}
		if rep.SealedRuns > 0 {
			fmt.Fprintf(stdout, "seals: %d run(s) carry a valid seal of the sealing key\n", rep.SealedRuns)
		}
		if previous != "" {
			fmt.Fprintln(stdout, "extends:", previous, "(no run of it deleted or rewritten)")
		}
	} else {
		fmt.Fprintf(stdout, "%s: NOT intact — %d problem(s):\n", path, len(rep.Problems))
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "  "+p)
		}
	}
	if !asJSON {
		for _, n := range rep.Notes {
			fmt.Fprintln(stdout, "note: "+n)
		}
	}
	if !rep.Intact {
		return withCode(exitFailed, errors.New(""))
	}
	return nil
}

type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }

// verifyPath verifies a zipped bundle, or one unzipped into a directory.
func verifyPath(path string, opts evidence.VerifyOpts) (*evidence.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &usageError{err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &usageError{err}
	}
	if fi.IsDir() {
		return evidence.VerifyDir(path, opts)
	}
	return evidence.Verify(f, fi.Size(), opts)
}

type signoffOpts struct {
	*globalOpts
	by, note   string
	corrective bool
	json       bool
}

func newSignoffCommand(g *globalOpts) *cobra.Command {
	o := &signoffOpts{globalOpts: g}
	cmd := &cobra.Command{
		Use:   "signoff RUN_ID --by \"Name <email>\"",
		Short: "Record a management review (or, with --corrective, a corrective note) on a run",
		Example: `  drill evidence signoff 42 --by "Dana Lee <dana@example.com>" --note "Reviewed Q3 drill"
  drill evidence signoff 43 --by "Dana Lee <dana@example.com>" --corrective --note "Backup job fixed in INC-123"`,
		Args: exactArgs(1, "RUN_ID: a finished run"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 1 {
				return withCode(exitUsage, fmt.Errorf("run id %q: want a positive number from drill history", args[0]))
			}
			return runSignoff(cmd.Context(), o, id, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.by, "by", "", `who signs: "Name <email>" (required)`)
	cmd.Flags().StringVar(&o.note, "note", "", "what was reviewed or corrected")
	cmd.Flags().BoolVar(&o.corrective, "corrective", false, "a corrective note on a failed run rather than a review")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the sign-off as JSON")
	return cmd
}

func runSignoff(ctx context.Context, o *signoffOpts, runID int64, stdout io.Writer) error {
	if strings.TrimSpace(o.by) == "" {
		return withCode(exitUsage, errors.New(`--by "Name <email>" is required`))
	}
	s, err := o.open(ctx, sessionOpts{})
	if err != nil {
		return err
	}
	defer s.close()
	kind := drills.SignoffReview
	if o.corrective {
		kind = drills.SignoffCorrective
	}
	so, err := s.store.AddSignoff(ctx, runID, drills.Signoff{Kind: kind, SignedBy: strings.TrimSpace(o.by), Note: o.note})
	if errors.Is(err, drills.ErrRunNotFound) {
		return withCode(exitUsage, fmt.Errorf("no run %d (see drill history)", runID))
	}
	if err != nil {
		return withCode(exitUsage, err)
	}
	if o.json {
		return writeJSON(stdout, map[string]any{"run_id": runID, "signoff": so})
	}
	fmt.Fprintf(stdout, "%s of run %d by %s recorded at %s\n", kind, runID, so.SignedBy, so.SignedAt.UTC().Format(time.RFC3339))
	return nil
}
