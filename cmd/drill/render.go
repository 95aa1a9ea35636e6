package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/verify"

	"golang.org/x/term"
)

// printTarget says where the run restored to and what became of it.
func printTarget(w io.Writer, r *drills.Run, l look) {
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
	row(w, "  target:  ", 11, safe(fmt.Sprintf("%s %s (%s)", t.Type, t.InstanceID, state)), l.width)
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

// look is how output for people is laid out: its width, whether it may
// use colour, and whether the checks were already shown as they ran.
type look struct {
	width       int
	color       bool
	checksShown bool
}

// lookOf fits output to f when it is a terminal: its width and colour
// (unless NO_COLOR is set); else 100 columns, no colour.
func lookOf(w io.Writer) look {
	l := look{width: 100}
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return l
	}
	if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols >= 40 {
		l.width = cols
	} else if cols, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && cols >= 40 {
		l.width = cols // a terminal that does not say its size
	}
	_, noColor := os.LookupEnv("NO_COLOR")
	l.color = !noColor && os.Getenv("TERM") != "dumb"
	return l
}

func (l look) paint(code, s string) string {
	if !l.color {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

func (l look) pass(s string) string { return l.paint("32", s) }
func (l look) fail(s string) string { return l.paint("1;31", s) }

// wrap breaks s into lines of at most width columns, at spaces where it can.
func wrap(s string, width int) []string {
	width = max(width, 20)
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for len([]rune(word)) > width { // a word longer than a line is cut
				if line != "" {
					lines, line = append(lines, line), ""
				}
				r := []rune(word)
				lines, word = append(lines, string(r[:width])), string(r[width:])
			}
			switch {
			case line == "":
				line = word
			case len([]rune(line))+1+len([]rune(word)) <= width:
				line += " " + word
			default:
				lines, line = append(lines, line), word
			}
		}
		lines = append(lines, line)
	}
	return lines
}

// row writes prefix, which takes prefixWidth columns (it may hold colour
// codes), and value wrapped to width with its further lines under the first.
func row(w io.Writer, prefix string, prefixWidth int, value string, width int) {
	pad := strings.Repeat(" ", prefixWidth)
	for i, line := range wrap(value, width-prefixWidth) {
		if i == 0 {
			fmt.Fprintf(w, "%s%s\n", prefix, line)
		} else {
			fmt.Fprintf(w, "%s%s\n", pad, line)
		}
	}
}

// safe replaces control characters — a backup or a fingerprint may hold
// terminal escapes in a name — with '?'.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}

func printRun(w io.Writer, r *drills.Run, l look) {
	status := strings.ToUpper(string(r.Status))
	fmt.Fprintf(w, "drill %s — run %d — %s", r.Drill, r.ID, status)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	printAltered(w, r.Seal)
	if r.Error != "" {
		row(w, "  error:   ", 11, safe(r.Error), l.width)
	}
	rto := measure(r.RTO, r.Objectives.RTO, r.RTOMet)
	if d := r.RestoredAfter(); r.RTO == nil && d != nil {
		rto += "; a restored copy after " + dur(*d) + ", not verified"
	}
	row(w, "  RTO:     ", 11, rto, l.width)
	rpo := measure(r.RPO, r.Objectives.RPO, r.RPOMet)
	if rpoUnproven(r) {
		rpo += " — no verified copy, so no recovery point was proven"
	}
	row(w, "  RPO:     ", 11, rpo, l.width)
	if b := r.Backup; b != nil && b.RecoveredTo != nil {
		fmt.Fprintf(w, "           from the recovery point %s (where the restore reached)\n", b.RecoveredTo.UTC().Format(time.RFC3339))
	}
	if r.DataRPO != nil {
		fmt.Fprintf(w, "  data RPO: %s (drill start − newest row)\n", dur(*r.DataRPO))
	}
	printBackup(w, r.Backup, l)
	if len(r.Tables) > 0 {
		var rows, size int64
		for _, t := range r.Tables {
			rows += t.Rows
			size += t.Bytes
		}
		fmt.Fprintf(w, "  tables:  %s restored (%s rows, %s)\n", verify.Plural(len(r.Tables), "table"), verify.GroupDigits(rows), drills.HumanBytes(size))
	}
	printTarget(w, r, l)
	for _, so := range r.Signoffs {
		row(w, fmt.Sprintf("  %-8s ", safe(so.Kind)+":"), 11, safe(so.Note)+" by "+safe(so.SignedBy)+" on "+so.SignedAt.UTC().Format("2006-01-02"), l.width)
	}
	if r.DrillVersion != "" {
		fmt.Fprintf(w, "  drill:   %s on %s\n", safe(r.DrillVersion), safe(r.Host))
	}
	fmt.Fprintf(w, "  trigger: %s by %s", safe(string(r.Trigger)), safe(r.TriggeredBy))
	if r.StartedAt != nil {
		fmt.Fprintf(w, ", started %s", r.StartedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if st := r.Seal; st != nil && st.Integrity != drills.IntegrityAltered {
		fmt.Fprintf(w, "  record:  %s (chain hash %.12s…)\n", st.Integrity, st.ChainHash)
	}
	printPhases(w, r.Phases, l)
	printChecks(w, r, l)
}

// printBackup describes the backup a run restored, if any: its name,
// format and creation time, the details its source gave, why it was
// chosen and its digest.
func printBackup(w io.Writer, b *drills.Backup, l look) {
	if b == nil {
		return
	}
	row(w, "  backup:  ", 11, safe(fmt.Sprintf("%s (%s, created %s from %s)", b.ID, b.Format, b.CreatedAt.UTC().Format(time.RFC3339), b.CreatedAtSource)), l.width)
	keys := make([]string, 0, len(b.Details))
	for k := range b.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row(w, "           ", 11, safe(k+": "+b.Details[k]), l.width)
	}
	if sel := b.Selection; sel != nil && sel.Considered > 1 {
		row(w, "  chosen:  ", 11, safe(fmt.Sprintf("%s; %s considered", sel.Rule, verify.Plural(sel.Considered, "candidate"))), l.width)
	}
	if b.SHA256 != "" {
		row(w, "  sha256:  ", 11, b.SHA256+" ("+drills.HumanBytes(b.SizeBytes)+")", l.width)
	}
}

// printPhases lists a run's phases, if any: each one's duration and
// result, with its error when it failed.
func printPhases(w io.Writer, phases []drills.PhaseRecord, l look) {
	if len(phases) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %-10s %7s  %s\n", "PHASE", "SECONDS", "RESULT")
	for _, p := range phases {
		status, text := l.pass("ok    "), ""
		switch {
		case p.Error != "":
			status, text = l.fail("FAILED"), safe(p.Error)
		case p.FinishedAt == nil:
			status = "running"
		}
		prefix := fmt.Sprintf("  %-10s %7.1f  %s  ", p.Name, p.Duration().Seconds(), status)
		row(w, prefix, 2+10+1+7+2+6+2, text, l.width)
	}
}

// printChecks lists each check once: its result and value, wrapped to the
// width, with what it expected and its error under a failed one. When the
// checks were shown as they ran, only a count and the failures are.
func printChecks(w io.Writer, r *drills.Run, l look) {
	if len(r.Checks) == 0 {
		return
	}
	passed := 0
	nameWidth := 5
	for _, c := range r.Checks {
		if c.Passed {
			passed++
		}
		nameWidth = max(nameWidth, min(len([]rune(c.Name)), max(20, min(40, l.width/3))))
	}
	fmt.Fprintln(w)
	if l.checksShown {
		fmt.Fprintf(w, "  checks: %d of %d passed (shown above as they ran)\n", passed, len(r.Checks))
	} else {
		fmt.Fprintf(w, "        %-*s  %s\n", nameWidth, "CHECK", "ACTUAL")
	}
	for _, c := range r.Checks {
		if l.checksShown && c.Passed {
			continue
		}
		mark := l.pass("pass")
		if !c.Passed {
			mark = l.fail("FAIL")
		}
		name := safe(c.Name)
		if len([]rune(name)) > nameWidth {
			name = string([]rune(name)[:nameWidth-1]) + "…"
		}
		value := safe(c.Actual)
		if !c.Passed {
			if c.Error != "" {
				value = strings.TrimSpace(value + "\nerror: " + safe(c.Error))
			}
			value += "\nexpected: " + c.Expected
		}
		prefix := fmt.Sprintf("  %s  %-*s  ", mark, nameWidth, name)
		row(w, prefix, 2+4+2+nameWidth+2, value, l.width)
	}
	printFindings(w, r.ID, r.Checks, l)
}

// printFindings lists, under the checks, each failed check's tables.
func printFindings(w io.Writer, runID int64, checks []verify.Result, l look) {
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
		what := "table"
		if c.Type == verify.TypeCompare {
			what = "row" // its details are rows, by key
		}
		fmt.Fprintf(w, "\n  %s: %s\n", c.Name, verify.Plural(len(bad), what))
		for i, d := range bad {
			if i == most {
				fmt.Fprintf(w, "    … and %d more (drill show %d --json)\n", len(bad)-most, runID)
				break
			}
			row(w, fmt.Sprintf("    %-10s ", safe(d.Status)), 15, safe(d.Name)+": "+safe(d.Problem), l.width)
		}
	}
}

// rpoUnproven says the RPO objective is missed only because the run never
// reached a verified copy (the backup's age was within it).
func rpoUnproven(r *drills.Run) bool {
	return r.RPO != nil && r.RTO == nil && r.RPOMet != nil && !*r.RPOMet && *r.RPO <= r.Objectives.RPO
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
	s = safe(strings.Join(strings.Fields(s), " "))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// progress renders runner events on a terminal, fitted to its width and
// coloured as the result is (lookOf).
type progress struct {
	w     *os.File
	start time.Time
	look  look
}

func newProgress(w *os.File) *progress { return &progress{w: w, start: time.Now(), look: lookOf(w)} }

func (p *progress) event(e drills.Event) {
	switch e.Kind {
	case drills.EventPhaseStart:
		fmt.Fprintf(p.w, "▸ %-9s …\n", e.Phase)
	case drills.EventProgress:
		row(p.w, "    ", 4, safe(e.Message), p.look.width)
	case drills.EventPhaseEnd:
		if e.Err != nil {
			row(p.w, p.look.fail("✗")+fmt.Sprintf(" %-9s ", e.Phase), 12, "failed after "+dur(e.Elapsed)+": "+oneLine(e.Err.Error()), p.look.width)
		} else {
			fmt.Fprintf(p.w, "%s %-9s %s\n", p.look.pass("✓"), e.Phase, dur(e.Elapsed))
		}
	case drills.EventCheck:
		mark, text := p.look.pass("✓"), safe(e.Check.Name)+": "+safe(e.Check.Actual)
		if !e.Check.Passed {
			mark = p.look.fail("✗")
			if e.Check.Expected != "" && e.Check.Error == "" {
				text += " (want " + safe(e.Check.Expected) + ")"
			}
		}
		if e.Check.Error != "" {
			text = strings.TrimSpace(text + " — error: " + oneLine(e.Check.Error))
		}
		row(p.w, "    "+mark+" ", 6, text, p.look.width)
	case drills.EventFinished:
		fmt.Fprintf(p.w, "done in %s\n\n", dur(time.Since(p.start)))
	}
}
