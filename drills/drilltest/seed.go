package drilltest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"drill/drills"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/drills/statedb"
	"drill/verify"
)

// SeedOpts describe a finished run to record.
type SeedOpts struct {
	Spec    *drills.Spec
	Started time.Time
	// Failed makes the run fail its check with Error as the message.
	Failed bool
	Error  string
	// RTO and RPO of the run (zero: not measured).
	RTO, RPO time.Duration
	// Kept leaves the instance kept (drill run --keep) instead of destroyed.
	Kept bool
	// Dir, when set, is the directory the backup was chosen from and the
	// instance lives under, as real (long) paths.
	Dir string
}

// SeedSpec is a drill spec for seeding.
func SeedSpec(name string) *drills.Spec {
	return &drills.Spec{Name: name, Schedule: "quarterly", Timeout: time.Hour,
		Source:     pgdump.Spec("s3://backups/" + name + "/"),
		Target:     drills.TargetSpec{Type: local.TargetType},
		Objectives: drills.Objectives{RTO: 30 * time.Minute, RPO: 26 * time.Hour},
		Checks:     []verify.Check{{Type: verify.TypeSQL, Name: "no negatives", Query: "select count(*) from orders where total < 0", Expect: ptr("0")}},
	}
}

func ptr(s string) *string { return &s }

// SeedRun records a finished run through the store, the way the runner
// does: start, backup, target intent, phases, a check, teardown and the
// outcome (which seals it). It returns the run id.
func SeedRun(t testing.TB, store *statedb.Store, o SeedOpts) int64 {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	spec := o.Spec
	run, err := store.CreateRun(ctx, drills.CreateRunParams{Spec: spec, Policy: drills.PolicyOf(spec, "drill.yaml", "test"),
		Status: drills.StatusQueued, Trigger: drills.TriggerSchedule, TriggeredBy: "schedule@host"})
	must(err)
	must(store.StartRun(ctx, run.ID, o.Started, o.Started.Add(time.Hour), drills.Executor{Worker: "host/1", Host: "host", Version: "test (revision 0123456789ab)"}))
	backup := drills.Backup{ID: "s3://backups/" + spec.Name + "/x.dump", CreatedAt: o.Started.Add(-o.RPO), CreatedAtSource: "archive header", Format: "custom"}
	in := drills.Instance{Type: "local", ID: "/tmp/drill-" + spec.Name + "-seeded", RunID: run.ID, Drill: spec.Name, Details: map[string]string{"port": "5555"}}
	if o.Dir != "" {
		name := spec.Name + "_" + o.Started.UTC().Format("20060102T150405Z") + ".dump" // no hyphen to break a line at
		backup.ID = o.Dir + "/" + name
		backup.SHA256 = strings.Repeat("9f86d081884c7d65", 4)
		backup.Details = map[string]string{"fingerprint": backup.ID + ".fingerprint.json"}
		backup.Selection = drills.Select("the newest file in "+o.Dir+"/ by modification time (ties: the larger name)",
			[]drills.Candidate{{Name: name, Time: backup.CreatedAt}})
		in.ID = o.Dir + "/targets/drill-" + spec.Name + "-" + strconv.FormatInt(run.ID, 10) + "-3f9a2b7c4d5e6f708192a3b4c5d6e7f8"
	}
	must(store.SetBackup(ctx, run.ID, backup))
	tid, err := store.RecordTargetIntent(ctx, in, nil)
	must(err)
	for i, name := range []drills.Phase{drills.PhaseLocate, drills.PhaseProvision, drills.PhaseRestore, drills.PhaseVerify, drills.PhaseTeardown} {
		at := o.Started.Add(time.Duration(i) * o.RTO / 4)
		must(store.StartPhase(ctx, run.ID, i+1, name, at))
		must(store.FinishPhase(ctx, run.ID, i+1, at.Add(o.RTO/5), ""))
	}
	actual := "0"
	if o.Failed {
		actual = "3"
	}
	must(store.AddCheck(ctx, run.ID, 1, spec.Checks[0], verify.Result{Name: "no negatives", Type: "sql", Expected: "0", Actual: actual, Passed: !o.Failed, Duration: time.Second}))
	if o.Kept {
		in.Details["kept_until"] = o.Started.Add(o.RTO + time.Hour).UTC().Format(time.RFC3339)
		must(store.SetTargetState(ctx, tid, in, drills.TargetKept, o.Started.Add(o.RTO+time.Minute), ""))
	} else {
		must(store.SetTargetState(ctx, tid, in, drills.TargetDestroyed, o.Started.Add(o.RTO+time.Minute), ""))
	}
	out := drills.Outcome{Status: drills.StatusPassed, FinishedAt: o.Started.Add(o.RTO + time.Minute)}
	if o.RTO > 0 {
		out.RTO = &o.RTO
		if spec.Objectives.RTO > 0 {
			met := o.RTO <= spec.Objectives.RTO
			out.RTOMet = &met
		}
	}
	if o.RPO > 0 {
		out.RPO = &o.RPO
		if spec.Objectives.RPO > 0 {
			met := o.RPO <= spec.Objectives.RPO
			out.RPOMet = &met
		}
	}
	if o.Failed {
		out.Status, out.Reason, out.Error = drills.StatusFailed, drills.ReasonCheckFailed, o.Error
		// as the runner judges it: no verified copy, no RTO, and neither
		// objective met
		out.RTO = nil
		for _, met := range []**bool{&out.RTOMet, &out.RPOMet} {
			if *met != nil {
				*met = new(bool)
			}
		}
	}
	must(store.FinishRun(ctx, run.ID, out))
	return run.ID
}
