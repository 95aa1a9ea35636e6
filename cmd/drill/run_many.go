package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"text/tabwriter"

	"drill/drills"
	"drill/drills/backends"
	"drill/jobs"
	"drill/verify"
)

// manyResult is one drill of drill run --all.
type manyResult struct {
	spec *drills.Spec
	run  *drills.Run
	err  error // the drill could not be carried out
}

// runMany runs every drill (--all) or every drill with a tag (--tag),
// --parallel at a time, prints a summary, and exits 1 when any failed, 3
// when any could not be carried out, 130 when interrupted.
func runMany(ctx context.Context, o *runOpts) error {
	if o.jobs < 1 {
		return withCode(exitUsage, errors.New("--parallel must be at least 1"))
	}
	if o.keep != 0 {
		return withCode(exitUsage, errors.New("--keep works for one drill at a time"))
	}
	cfg, err := o.loadConfig()
	if err != nil {
		return err
	}
	var specs []*drills.Spec
	for _, d := range cfg.Drills {
		if o.tag == "" || slices.Contains(d.Tags, o.tag) { // --all --tag T: the drills tagged T
			specs = append(specs, d)
		}
	}
	if len(specs) == 0 {
		return withCode(exitUsage, fmt.Errorf("no drill of %s has the tag %q", cfg.Path, o.tag))
	}
	log, err := o.logger(o.stderr, isTerminal(o.stderr))
	if err != nil {
		return err
	}
	store, client, closeStore, err := openForRuns(ctx, cfg, log, !o.enqueue)
	if err != nil {
		return err
	}
	defer closeStore()
	results := make([]manyResult, len(specs))
	if o.enqueue {
		for i, spec := range specs {
			results[i].spec = spec
			results[i].run, results[i].err = jobs.Enqueue(ctx, store, client, spec, drills.PolicyOf(spec, cfg.Path, version), drills.TriggerManual, whoAmI())
		}
		return o.summarize(results)
	}
	sem := make(chan struct{}, o.jobs)
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i].spec = spec
			src, tgt, err := backends.For(ctx, spec)
			if err != nil {
				results[i].err = err
				return
			}
			fmt.Fprintf(o.stderr, "%s: started\n", spec.Name)
			runner := &drills.Runner{Store: store, Logger: o.runnerLogger(log, isTerminal(o.stderr)), Worker: whoAmI(), Version: fullVersion(),
				OnIntent: jobs.DeadMan(client)}
			results[i].run, results[i].err = runner.Run(ctx, drills.RunParams{Spec: spec, Source: src, Target: tgt,
				Policy: drills.PolicyOf(spec, cfg.Path, version), Trigger: drills.TriggerManual, TriggeredBy: whoAmI()})
			if r := results[i].run; r != nil && r.FinishedAt != nil {
				line := fmt.Sprintf("%s: %s", spec.Name, r.Status)
				if r.Reason != "" {
					line += " (" + string(r.Reason) + "): " + oneLine(r.Error) // oneLine makes it safe
				}
				if isTerminal(o.stderr) {
					row(o.stderr, "", 0, line, lookOf(o.stderr).width)
				} else {
					fmt.Fprintln(o.stderr, line) // a log keeps one line per drill
				}
			}
		}()
	}
	wg.Wait()
	return o.summarize(results)
}

// summarize prints the runs (a table, or a JSON array) and picks the exit code.
func (o *runOpts) summarize(results []manyResult) error {
	var failed, unavailable, interrupted int
	out := make([]map[string]any, 0, len(results))
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DRILL\tRUN\tSTATUS\tRTO\tRPO\tREASON / ERROR")
	for _, r := range results {
		row := map[string]any{"drill": r.spec.Name}
		switch {
		case r.err != nil:
			unavailable++
			row["error"] = r.err.Error()
			fmt.Fprintf(tw, "%s\t-\tnot run\t-\t-\t%s\n", r.spec.Name, r.err)
		case r.run != nil:
			j := r.run.JSON()
			row["run"] = j
			switch {
			case needsOtherBinaries(r.run):
				unavailable++
			case r.run.Status == drills.StatusFailed:
				failed++
				if r.run.Reason == drills.ReasonInterrupted {
					interrupted++
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.spec.Name, r.run.ID, r.run.Status, short(r.run.RTO, r.run.RTOMet), short(r.run.RPO, r.run.RPOMet), r.run.Reason)
		}
		out = append(out, row)
	}
	if o.json {
		if err := writeJSON(o.stdout, out); err != nil {
			return err
		}
	} else if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case interrupted > 0:
		return withCode(exitInterrupted, errors.New("interrupted; the instances were torn down"))
	case failed > 0:
		return withCode(exitFailed, fmt.Errorf("%s of %s failed", verify.Plural(failed, "drill"), verify.Plural(len(results), "drill")))
	case unavailable > 0:
		return withCode(exitUnavailable, fmt.Errorf("%s could not be carried out", verify.Plural(unavailable, "drill")))
	}
	return nil
}
