package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"drill/drills"
	"drill/verify"
)

// printRun writes a run for people: outcome, RTO/RPO against objectives,
// backup, target, phases and checks.
// printTarget says where the run restored to and what became of it.
func printTarget(w io.Writer, r *drills.Run) {
	t := r.Target
	if t == nil {
		return
	}
	state := string(t.State)
	if t.TornDownAt != nil {
		state += " at " + t.TornDownAt.UTC().Format(time.RFC3339)
	}
	if u := t.Details[drills.KeptUntilDetail]; t.State == drills.TargetKept && u != "" {
		state += " until " + u + "; drill discard " + strconv.FormatInt(r.ID, 10) + " removes it sooner"
	}
	fmt.Fprintf(w, "  target:  %s %s (%s)\n", t.Type, t.InstanceID, state)
}

// printAltered says, first, when a run's row no longer says what was sealed.
func printAltered(w io.Writer, st *drills.SealState) {
	if st == nil || st.Integrity != drills.IntegrityAltered {
		return
	}
	fmt.Fprintf(w, "  INTEGRITY: ALTERED — %s\n", st.Problem)
	if status, reason, _ := st.Sealed(); status != "" {
		fmt.Fprintf(w, "             the sealed record says: %s", strings.ToUpper(string(status)))
		if reason != "" {
			fmt.Fprintf(w, " (%s)", reason)
		}
		fmt.Fprintln(w)
	}
}

func printRun(w io.Writer, r *drills.Run) {
	status := strings.ToUpper(string(r.Status))
	fmt.Fprintf(w, "drill %s — run %d — %s", r.Drill, r.ID, status)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	printAltered(w, r.Seal)
	if r.Error != "" {
		fmt.Fprintf(w, "  error:   %s\n", r.Error)
	}
	fmt.Fprintf(w, "  RTO:     %s\n", measure(r.RTO, r.Objectives.RTO, r.RTOMet))
	fmt.Fprintf(w, "  RPO:     %s\n", measure(r.RPO, r.Objectives.RPO, r.RPOMet))
	if r.DataRPO != nil {
		fmt.Fprintf(w, "  data RPO: %s (drill start − newest row)\n", dur(*r.DataRPO))
	}
	if b := r.Backup; b != nil {
		fmt.Fprintf(w, "  backup:  %s (%s, created %s from %s)\n", b.ID, b.Format, b.CreatedAt.UTC().Format(time.RFC3339), b.CreatedAtSource)
		if len(b.Details) > 0 {
			keys := make([]string, 0, len(b.Details))
			for k := range b.Details {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, k+"="+b.Details[k])
			}
			fmt.Fprintf(w, "           %s\n", strings.Join(parts, " "))
		}
		if sel := b.Selection; sel != nil && sel.Considered > 1 {
			fmt.Fprintf(w, "  chosen:  %s, of %d\n", sel.Rule, sel.Considered)
		}
		if b.SHA256 != "" {
			fmt.Fprintf(w, "  sha256:  %s (%s)\n", b.SHA256, drills.HumanBytes(b.SizeBytes))
		}
	}
	if len(r.Tables) > 0 {
		var rows, size int64
		for _, t := range r.Tables {
			rows += t.Rows
			size += t.Bytes
		}
		fmt.Fprintf(w, "  tables:  %s restored (%s rows, %s)\n", plural(len(r.Tables), "table"), verify.GroupDigits(rows), drills.HumanBytes(size))
	}
	printTarget(w, r)
	for _, so := range r.Signoffs {
		fmt.Fprintf(w, "  %-8s %s by %s on %s\n", so.Kind+":", so.Note, so.SignedBy, so.SignedAt.UTC().Format("2006-01-02"))
	}
	if r.DrillVersion != "" {
		fmt.Fprintf(w, "  drill:   %s on %s\n", r.DrillVersion, r.Host)
	}
	fmt.Fprintf(w, "  trigger: %s by %s", r.Trigger, r.TriggeredBy)
	if r.StartedAt != nil {
		fmt.Fprintf(w, ", started %s", r.StartedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if st := r.Seal; st != nil && st.Integrity != drills.IntegrityAltered {
		fmt.Fprintf(w, "  record:  %s (chain hash %.12s…)\n", st.Integrity, st.ChainHash)
	}
	if len(r.Phases) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PHASE\tSECONDS\tRESULT")
		for _, p := range r.Phases {
			result := "ok"
			if p.Error != "" {
				result = "FAILED: " + oneLine(p.Error)
			} else if p.FinishedAt == nil {
				result = "running"
			}
			fmt.Fprintf(tw, "  %s\t%.1f\t%s\n", p.Name, p.Duration().Seconds(), result)
		}
		tw.Flush()
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CHECK\tTYPE\tEXPECTED\tACTUAL\tRESULT")
		for _, c := range r.Checks {
			result := "pass"
			if !c.Passed {
				result = "FAIL"
				if c.Error != "" {
					result += ": " + oneLine(c.Error)
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Name, c.Type, c.Expected, c.Actual, result)
		}
		tw.Flush()
		printFindings(w, r.ID, r.Checks)
	}
}

// printFindings lists, under the checks, each failed check's tables.
func printFindings(w io.Writer, runID int64, checks []verify.Result) {
	const most = 20
	for _, c := range checks {
		var bad []verify.TableResult
		for _, d := range c.Details {
			switch d.Status {
			case "match", "ok", "excluded":
			default:
				bad = append(bad, d)
			}
		}
		if len(bad) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n  %s: %s\n", c.Name, plural(len(bad), "table"))
		for i, d := range bad {
			if i == most {
				fmt.Fprintf(w, "    … and %d more (drill show %d --json)\n", len(bad)-most, runID)
				break
			}
			fmt.Fprintf(w, "    %-10s %s: %s\n", d.Status, d.Name, d.Problem)
		}
	}
}

func measure(d *time.Duration, objective time.Duration, met *bool) string {
	if d == nil {
		if objective > 0 {
			return "not measured (objective " + dur(objective) + ": not met)"
		}
		return "not measured"
	}
	s := dur(*d)
	if objective > 0 {
		verdict := "met"
		if met != nil && !*met {
			verdict = "MISSED"
		}
		s += fmt.Sprintf(" (objective %s: %s)", dur(objective), verdict)
	}
	return s
}

// dur renders a duration for people.
func dur(d time.Duration) string { return drills.HumanDuration(d) }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// progress renders runner events on a terminal.
type progress struct {
	w     *os.File
	start time.Time
}

func newProgress(w *os.File) *progress { return &progress{w: w, start: time.Now()} }

func (p *progress) event(e drills.Event) {
	switch e.Kind {
	case drills.EventPhaseStart:
		fmt.Fprintf(p.w, "▸ %-9s …\n", e.Phase)
	case drills.EventProgress:
		fmt.Fprintf(p.w, "    %s\n", e.Message)
	case drills.EventPhaseEnd:
		if e.Err != nil {
			fmt.Fprintf(p.w, "✗ %-9s failed after %s: %s\n", e.Phase, dur(e.Elapsed), oneLine(e.Err.Error()))
		} else {
			fmt.Fprintf(p.w, "✓ %-9s %s\n", e.Phase, dur(e.Elapsed))
		}
	case drills.EventCheck:
		mark := "✓"
		if !e.Check.Passed {
			mark = "✗"
		}
		fmt.Fprintf(p.w, "    %s %s: %s\n", mark, e.Check.Name, e.Check.Actual)
	case drills.EventFinished:
		fmt.Fprintf(p.w, "done in %s\n\n", dur(time.Since(p.start)))
	}
}
