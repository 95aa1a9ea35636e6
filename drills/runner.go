package drills

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"drill/verify"
)

// teardownTimeout bounds teardown, which runs even after the drill's own
// context is cancelled or past its deadline.
const teardownTimeout = 10 * time.Minute

// Runner carries out drills: locate, provision, restore, verify, measure,
// teardown. Every transition is committed to the store as it happens.
type Runner struct {
	Store  Recorder
	Logger *slog.Logger
	// Events, when set, receives progress as it happens (for a terminal).
	Events func(Event)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Worker names the process carrying out runs (host/pid), for the record.
	Worker string
	// Version is drill's version with its VCS revision (BuildVersion), for
	// the record.
	Version string
	// HeartbeatEvery is how often a running run is marked alive (default
	// HeartbeatInterval); the sweeper fails runs whose heartbeat stops.
	HeartbeatEvery time.Duration
	// OnIntent runs in the transaction that records a target's intent
	// (the jobs package inserts the dead-man teardown job there).
	OnIntent func(ctx context.Context, tx any, run *Run, targetID int64) error
	// Snooze makes a run whose target must wait return *Waiting from
	// Execute (the job snoozes, holding no worker) instead of sleeping.
	Snooze bool
}

// HeartbeatInterval is how often a running run is marked alive.
const HeartbeatInterval = 10 * time.Second

// Event is progress of a run, for display.
type Event struct {
	Run     *Run
	Kind    EventKind
	Phase   Phase
	Message string
	Err     error
	Elapsed time.Duration
	Check   *CheckResult
}

// EventKind says what an Event reports.
type EventKind int

// Kinds of events.
const (
	EventPhaseStart EventKind = iota
	EventProgress
	EventPhaseEnd
	EventCheck
	EventFinished
)

// RunParams is one drill to carry out.
type RunParams struct {
	Spec   *Spec
	Source Source
	Target Target
	// Policy is stored with the run; see PolicyOf.
	Policy      Policy
	Trigger     Trigger
	TriggeredBy string
	// Keep leaves the instance running after the drill (for inspection),
	// for KeepFor (default DefaultKeep); then the sweeper removes it.
	Keep    bool
	KeepFor time.Duration
	// Inspect, when set, looks at the restored database (read-only, as
	// checks do) after the checks, before teardown (drill init).
	Inspect func(ctx context.Context, dsn string, b Backup) error
}

// ErrStore wraps failures to write the run record: the drill could not be
// carried out, as opposed to a drill that failed.
var ErrStore = errors.New("state database")

// Run records a new run and carries it out. The returned run is the final
// record. An error means the run could not be recorded (ErrStore); a failed
// drill is not an error, its Status says so.
func (r *Runner) Run(ctx context.Context, p RunParams) (*Run, error) {
	run, err := r.Store.CreateRun(ctx, CreateRunParams{Spec: p.Spec, Policy: p.Policy, Status: StatusRunning,
		Trigger: p.Trigger, TriggeredBy: p.TriggeredBy})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	return r.Execute(ctx, run, p)
}

// execution is the state of one run being carried out.
type execution struct {
	*Runner
	run      *Run
	p        RunParams
	log      *slog.Logger
	seq      int
	storeErr error
	start    time.Time
	verified time.Time
	backup   Backup
	inst     *Instance
	targetID int64
	// resumeFrom is the open phase of a run resumed after waiting.
	resumeFrom Phase
	// digest is the backup's digest being computed while it is restored.
	digest chan digestResult

	progressMu   sync.Mutex
	progressSaid time.Time
	// emitMu makes Events calls one at a time: a backup's download and
	// its restore report progress side by side.
	emitMu sync.Mutex
}

// progressEvery is how often, at most, a run's progress line is written to
// the store (for its page).
const progressEvery = 3 * time.Second

// saveProgress writes msg as the run's progress line, at most every
// progressEvery; lines in between are dropped.
func (e *execution) saveProgress(ctx context.Context, msg string) {
	e.progressMu.Lock()
	now := e.Now()
	if now.Sub(e.progressSaid) < progressEvery {
		e.progressMu.Unlock()
		return
	}
	e.progressSaid = now
	e.progressMu.Unlock()
	if err := e.Store.SetProgress(ctx, e.run.ID, msg, now); err != nil {
		e.log.Warn("could not write the run's progress", "error", err.Error()) // the record is not at stake
	}
}

// Execute carries out a run already recorded in the store.
func (r *Runner) Execute(ctx context.Context, run *Run, p RunParams) (*Run, error) {
	if r.Now == nil {
		// The clock the record keeps: wall time to the microsecond, as the
		// state database stores it, so that what a run prints and what is
		// read back later agree.
		r.Now = func() time.Time { return time.Now().Truncate(time.Microsecond) }
	}
	logger := r.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &execution{Runner: r, run: run, p: p, log: logger.With("run_id", run.ID, "drill", run.Drill)}
	if run.Status == StatusRunning && run.WaitingUntil != nil {
		if err := e.resume(ctx); err != nil {
			return run, fmt.Errorf("%w: %w", ErrStore, err)
		}
	} else {
		e.start = r.Now()
		deadline := e.start.Add(p.Spec.Timeout)
		run.StartedAt, run.Deadline, run.Status = &e.start, &deadline, StatusRunning
		host, _ := os.Hostname()
		run.DrillVersion, run.Host = r.Version, host
		if err := r.Store.StartRun(ctx, run.ID, e.start, deadline, Executor{Worker: r.Worker, Host: host, Version: r.Version}); err != nil {
			return run, fmt.Errorf("%w: %w", ErrStore, err)
		}
		e.log.Info("drill started", "timeout", p.Spec.Timeout.String(), "trigger", run.Trigger)
	}
	stopBeat := e.heartbeat(ctx)
	defer stopBeat()

	dctx, cancel := context.WithDeadline(ctx, *run.Deadline)
	defer cancel()
	failure := e.carryOut(dctx)
	if failure != nil && failure.wait != nil {
		until := e.Now().Add(failure.wait.After)
		if e.inst != nil { // keep what the target learnt (ids, status) for the resume
			e.record(e.Store.SetTargetState(context.WithoutCancel(ctx), e.targetID, *e.inst, e.run.Target.State, e.Now(), ""))
		}
		if err := e.Store.SetWaiting(context.WithoutCancel(ctx), run.ID, until); err != nil {
			return run, fmt.Errorf("%w: %w", ErrStore, err)
		}
		run.WaitingUntil = &until
		e.log.Info("waiting for the instance", "status", failure.wait.Status, "until", until)
		return run, &Waiting{After: failure.wait.After}
	}
	failure = e.teardown(ctx, failure)
	e.finish(ctx, failure)
	if e.storeErr != nil {
		return run, fmt.Errorf("%w: %w", ErrStore, e.storeErr)
	}
	return run, nil
}

// resume restores the state of a run that snoozed while waiting on its
// target: its start, deadline, backup, instance and open phase.
func (e *execution) resume(ctx context.Context) error {
	run := e.run
	if run.StartedAt == nil || run.Deadline == nil || len(run.Phases) == 0 {
		return fmt.Errorf("run %d cannot be resumed: it has no recorded start", run.ID)
	}
	e.start = *run.StartedAt
	e.seq = len(run.Phases)
	if last := run.Phases[len(run.Phases)-1]; last.FinishedAt == nil {
		e.resumeFrom = last.Name
	}
	if run.Backup != nil {
		e.backup = *run.Backup
		if ro, ok := e.p.Source.(Reopener); ok {
			b, err := ro.Reopen(ctx, e.backup)
			if err != nil {
				return err
			}
			e.backup = b
		}
	}
	if run.Target != nil {
		in := run.Target.Instance(run)
		e.inst, e.targetID = &in, run.Target.ID
	}
	if err := e.Store.ClearWaiting(ctx, run.ID, e.Now()); err != nil {
		return err
	}
	run.WaitingUntil = nil
	e.log.Info("drill resumed", "phase", e.resumeFrom)
	return nil
}

// heartbeat marks the run alive until the returned func is called.
func (e *execution) heartbeat(ctx context.Context) func() {
	every := e.HeartbeatEvery
	if every <= 0 {
		every = HeartbeatInterval
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := e.Store.Heartbeat(ctx, e.run.ID, e.Now()); err != nil && ctx.Err() == nil {
					e.log.Warn("heartbeat", "error", err.Error())
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// failure is why a run failed.
type failure struct {
	reason Reason
	err    error
	// wait is set when the run is not failing but snoozing (Runner.Snooze):
	// its target asked to be called again later.
	wait *WaitError
}

// carryOut runs the phases up to measuring; teardown follows separately.
// A resumed run skips the phases it finished and continues its open one.
func (e *execution) carryOut(ctx context.Context) *failure {
	phases := []struct {
		name Phase
		fn   func(context.Context, Progress) *failure
	}{{PhaseLocate, e.locate}, {PhaseProvision, e.provision}, {PhaseRestore, e.restore}, {PhaseVerify, e.verify}}
	skipping := e.resumeFrom != ""
	for _, ph := range phases {
		if skipping && ph.name != e.resumeFrom {
			continue
		}
		reopen := skipping
		skipping = false
		if e.storeErr != nil { // a run that cannot be recorded is not carried on
			return storeFailure(e.storeErr)
		}
		if f := e.phase(ctx, ph.name, reopen, ph.fn); f != nil {
			return f
		}
	}
	e.verified = *e.run.Phases[len(e.run.Phases)-1].FinishedAt // the end of verify, as committed
	return nil
}

// phase times one phase and commits its start and end; reopen continues
// the run's open phase after a snooze. A phase whose target must wait is
// called again after the wait (in this process), or, with Snooze, left
// open while the run sleeps.
func (e *execution) phase(ctx context.Context, name Phase, reopen bool, fn func(context.Context, Progress) *failure) *failure {
	var seq int
	var started time.Time
	if reopen {
		seq, started = e.seq, e.run.Phases[len(e.run.Phases)-1].StartedAt
	} else {
		e.seq++
		seq = e.seq
		started = e.Now()
		e.record(e.Store.StartPhase(ctx, e.run.ID, seq, name, started))
		e.run.Phases = append(e.run.Phases, PhaseRecord{Name: name, StartedAt: started})
		e.emit(Event{Kind: EventPhaseStart, Phase: name})
		e.log.Info("phase started", "phase", name)
	}
	progress := func(msg string) {
		if w, ok := strings.CutPrefix(msg, "warning: "); ok {
			e.log.Warn(w, "phase", name) // kept where progress lines are not
		}
		e.emit(Event{Kind: EventProgress, Phase: name, Message: msg})
		e.saveProgress(ctx, string(name)+": "+msg)
	}
	f := e.untilReady(ctx, fn, progress)
	if f != nil && f.wait != nil {
		return f // snoozing: the phase stays open
	}
	if f != nil {
		f = e.classify(ctx, f)
	}
	ended := e.Now()
	errText := ""
	if f != nil {
		errText = f.err.Error()
	}
	// The end of a phase is committed even when the drill's context is done.
	e.record(e.Store.FinishPhase(context.WithoutCancel(ctx), e.run.ID, seq, ended, errText))
	e.run.Phases[len(e.run.Phases)-1].FinishedAt, e.run.Phases[len(e.run.Phases)-1].Error = &ended, errText
	e.emit(Event{Kind: EventPhaseEnd, Phase: name, Elapsed: ended.Sub(started), Err: errOf(f)})
	if f != nil {
		e.log.Warn("phase failed", "phase", name, "reason", f.reason, "error", f.err.Error(), "seconds", ended.Sub(started).Seconds())
	} else {
		e.log.Info("phase finished", "phase", name, "seconds", ended.Sub(started).Seconds())
	}
	return f
}

// untilReady calls fn until its target stops asking to wait: sleeping in
// this process, or, with Snooze, handing the wait to the caller.
func (e *execution) untilReady(ctx context.Context, fn func(context.Context, Progress) *failure, progress Progress) *failure {
	for {
		f := fn(ctx, progress)
		var we *WaitError
		if f == nil || !errors.As(f.err, &we) {
			return f
		}
		if e.Snooze {
			return &failure{err: we, wait: we}
		}
		progress.Say(fmt.Sprintf("%s; checking again in %s", we.Status, we.After))
		if err := sleep(ctx, we.After); err != nil {
			return &failure{reason: ReasonProvisionFailed, err: err}
		}
	}
}

func errOf(f *failure) error {
	if f == nil {
		return nil
	}
	return f.err
}

// classify turns a cancelled or expired context into the reasons timeout
// and interrupted, whatever the phase made of it.
func (e *execution) classify(ctx context.Context, f *failure) *failure {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &failure{reason: ReasonTimeout, err: fmt.Errorf("timeout: the drill did not finish within %s (%s phase: %v)", e.p.Spec.Timeout, e.run.Phases[len(e.run.Phases)-1].Name, f.err)}
	case ctx.Err() != nil:
		return &failure{reason: ReasonInterrupted, err: fmt.Errorf("stopped in the %s phase (a signal, or its job was cancelled)", e.run.Phases[len(e.run.Phases)-1].Name)}
	}
	return f
}

// storeFailure is a run that cannot go on because its record cannot be
// written: no reason is recorded (the recorder is what failed), and the
// error wraps ErrStore.
func storeFailure(err error) *failure {
	return &failure{err: fmt.Errorf("%w: %w", ErrStore, err)}
}

func (e *execution) record(err error) {
	if err != nil && e.storeErr == nil {
		e.storeErr = err
		e.log.Error("could not write the run record", "error", err.Error())
	}
}

func (e *execution) emit(ev Event) {
	if e.Events != nil {
		// An Events callback must not call back into the runner.
		e.emitMu.Lock()
		defer e.emitMu.Unlock()
		ev.Run = e.run
		e.Events(ev)
	}
}

func (e *execution) locate(ctx context.Context, progress Progress) *failure {
	b, err := e.p.Source.Latest(ctx)
	if err != nil {
		if errors.Is(err, ErrNoBackup) {
			return &failure{reason: ReasonNoBackup, err: err}
		}
		return &failure{reason: ReasonLocateFailed, err: fmt.Errorf("locate backup: %w", err)}
	}
	e.backup = b
	e.run.Backup = &b
	progress.Say(fmt.Sprintf("backup %s (%s, created %s, from %s)", b.ID, b.Format, b.CreatedAt.UTC().Format(time.RFC3339), b.CreatedAtSource))
	e.log.Info("backup located", "backup", b.ID, "format", b.Format, "created_at", b.CreatedAt, "created_at_source", b.CreatedAtSource)
	e.record(e.Store.SetBackup(ctx, e.run.ID, b))
	return nil
}

func (e *execution) provision(ctx context.Context, progress Progress) *failure {
	if e.inst == nil { // not when called again after a wait
		if f := e.planTarget(ctx, progress); f != nil {
			return f
		}
	}
	if err := e.p.Target.Provision(ctx, e.inst, e.backup, progress); err != nil {
		return &failure{reason: ReasonProvisionFailed, err: fmt.Errorf("provision: %w", err)}
	}
	now := e.Now()
	e.run.Target.State, e.run.Target.CreatedAt = TargetCreated, &now
	e.record(e.Store.SetTargetState(ctx, e.targetID, *e.inst, TargetCreated, now, ""))
	return nil
}

// planTarget names the instance and records it before it exists.
func (e *execution) planTarget(ctx context.Context, progress Progress) *failure {
	storeID, err := e.Store.ID(ctx)
	if err != nil {
		e.record(err)
		return storeFailure(err)
	}
	in, err := e.p.Target.Plan(RunRef{ID: e.run.ID, Drill: e.run.Drill, Deadline: *e.run.Deadline, StoreID: storeID})
	if err != nil {
		return &failure{reason: ReasonProvisionFailed, err: err}
	}
	// Intent before action: the record exists before the instance does.
	var hook IntentHook
	if e.OnIntent != nil {
		hook = func(ctx context.Context, tx any, targetID int64) error {
			return e.OnIntent(ctx, tx, e.run, targetID)
		}
	}
	e.targetID, err = e.Store.RecordTargetIntent(ctx, in, hook)
	if err != nil {
		e.record(err)
		return storeFailure(err)
	}
	e.inst = &in
	e.run.Target = &TargetRecord{ID: e.targetID, Type: in.Type, InstanceID: in.ID, Details: in.Details, State: TargetIntended, RecordedAt: e.Now()}
	progress.Say(fmt.Sprintf("%s instance %s", in.Type, in.ID))
	return nil
}

// liveLogEvery is how often the log of a restore in progress is written
// to the state database, when it grew.
var liveLogEvery = 5 * time.Second

// liveRestoreLog writes what the restore programs printed so far, every
// liveLogEvery while the restore runs, for the run page; the returned func
// stops it. The log written when the restore ends (with its digest) is
// the record's; a live write that fails costs only the page its view.
func (e *execution) liveRestoreLog(ctx context.Context) (stop func()) {
	l, ok := e.p.Target.(LiveRestoreLogger)
	if !ok {
		return func() {}
	}
	in := *e.inst // Restore changes *e.inst as it goes: the log is by its id
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(liveLogEvery)
		defer tick.Stop()
		last := ""
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if log := l.RestoreLogSoFar(in); log != last {
				if err := e.Store.SetRestoreLog(ctx, e.run.ID, log); err != nil {
					e.log.Debug("could not write the restore log so far", "error", err.Error())
				}
				last = log
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (e *execution) restore(ctx context.Context, progress Progress) *failure {
	b := e.backup
	if b.Fetch != nil {
		b.Fetch = e.digestingFetch(b.Fetch, progress)
	}
	if b.Stream != nil && b.Fingerprint == nil {
		b.Stream = e.digestingStream(b.Stream)
	} else {
		b.Stream = nil // a backup with a fingerprint is hashed before it is restored
	}
	stopLog := e.liveRestoreLog(ctx)
	err := e.p.Target.Restore(ctx, e.inst, b, progress)
	stopLog()
	if derr := e.settleDigest(ctx); err == nil {
		err = derr
	}
	if l, ok := e.p.Target.(RestoreLogger); ok {
		if log := l.RestoreLog(*e.inst); log != "" {
			e.run.RestoreLogSHA256 = LogDigest(log)
			e.record(e.Store.SetRestoreLog(context.WithoutCancel(ctx), e.run.ID, log))
		}
	}
	if err != nil {
		return &failure{reason: ReasonRestoreFailed, err: err}
	}
	if rc, ok := e.p.Target.(Recoverer); ok && b.Physical != nil {
		if at := rc.RecoveredTo(*e.inst); !at.IsZero() {
			at = at.UTC().Truncate(time.Microsecond)
			e.backup.RecoveredTo = &at
			e.run.Backup.RecoveredTo = &at
			progress.Say("recovered to " + at.Format(time.RFC3339Nano))
			e.record(e.Store.SetBackup(ctx, e.run.ID, e.backup))
		}
	}
	e.record(e.Store.SetTargetState(ctx, e.targetID, *e.inst, TargetCreated, *e.run.Target.CreatedAt, ""))
	return nil
}

func (e *execution) verify(ctx context.Context, progress Progress) *failure {
	if err := e.prepareChecks(ctx); err != nil {
		return &failure{reason: ReasonVerifyFailed, err: err}
	}
	opts := verify.Opts{BackupCreatedAt: e.backup.CreatedAt, StatementTimeout: checkTimeout(ctx), DSN: e.inst.DSN,
		Jobs: VerifyJobs, Fingerprint: e.backup.Fingerprint, BackupSHA256: e.backup.SHA256}
	conn, err := verify.Connect(ctx, e.inst.DSN, opts)
	if err != nil {
		return &failure{reason: ReasonVerifyFailed, err: err}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := verify.TakeInventory(ctx, conn)
	if err != nil {
		return &failure{reason: ReasonVerifyFailed, err: fmt.Errorf("inventory of the restored database: %w", err)}
	}
	opts.Inventory = &verify.Inventory{RunID: e.run.ID, Tables: tables}
	if opts.Previous, err = e.Store.LastInventory(ctx, e.run.Drill, e.run.ID); err != nil {
		e.record(err)
		return storeFailure(err)
	}
	checks := e.p.Spec.Checks
	results := make([]*verify.Result, len(checks))
	var mu sync.Mutex
	done := func(i int, res verify.Result) {
		mu.Lock()
		defer mu.Unlock()
		exactCounts(opts.Inventory.Tables, res.Counted)
		results[i] = &res
		e.record(e.Store.AddCheck(ctx, e.run.ID, i+1, checks[i], res))
		e.emit(Event{Kind: EventCheck, Phase: PhaseVerify, Check: &res})
		e.log.Info("check finished", "check", res.Name, "type", res.Type, "passed", res.Passed, "actual", res.Actual, "error", res.Error)
	}
	// Checks run side by side on up to verify_jobs connections; drift
	// checks go last, to compare the exact row counts the others made.
	var first, last []int
	for _, i := range driftLast(checks) {
		if checks[i].Type == verify.TypeDrift {
			last = append(last, i)
		} else {
			first = append(first, i)
		}
	}
	jobs := e.p.Spec.VerifyJobs
	if jobs <= 0 {
		jobs = VerifyJobs
	}
	verify.SideBySide(ctx, conn, checks, first, jobs, opts, done)
	for _, i := range last {
		done(i, verify.RunOne(ctx, conn, checks[i], opts))
	}
	if ctx.Err() != nil {
		return &failure{reason: ReasonVerifyFailed, err: ctx.Err()}
	}
	failed := 0
	e.run.Checks = e.run.Checks[:0]
	for _, res := range results { // the record's order: the config's
		if res != nil {
			e.run.Checks = append(e.run.Checks, *res)
			if !res.Passed {
				failed++
			}
		}
	}
	e.run.Tables = opts.Inventory.Tables
	e.record(e.Store.SetTables(ctx, e.run.ID, e.run.Tables))
	if e.p.Inspect != nil {
		if err := e.p.Inspect(ctx, e.inst.DSN, e.backup); err != nil {
			return &failure{reason: ReasonVerifyFailed, err: fmt.Errorf("inspect the restored database: %w", err)}
		}
	}
	if failed > 0 {
		return &failure{reason: ReasonCheckFailed, err: fmt.Errorf("%d of %d checks failed", failed, len(e.p.Spec.Checks))}
	}
	return nil
}

// checkTimeout is the statement timeout of checks: 10 minutes, or less when
// the drill's deadline is nearer.
func checkTimeout(ctx context.Context) time.Duration {
	t := 10 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < t {
			t = max(left, time.Second)
		}
	}
	return t
}

// teardown destroys the instance on every path, with a context of its own:
// a cancelled or expired drill is still torn down.
func (e *execution) teardown(ctx context.Context, f *failure) *failure {
	if e.inst == nil {
		return f
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	keep := e.p.Keep && (f == nil || f.reason != ReasonInterrupted) // Ctrl-C means: clean up and go
	if k, ok := e.p.Target.(Keeper); keep && ok {
		if err := k.Keep(tctx, *e.inst); err != nil {
			e.log.Warn("the instance cannot be kept: tearing it down", "instance", e.inst.ID, "error", err.Error())
			keep = false
		}
	}
	if keep {
		now := e.Now()
		keepFor := e.p.KeepFor
		if keepFor <= 0 {
			keepFor = DefaultKeep
		}
		e.inst.Details[KeptUntilDetail] = now.Add(keepFor).UTC().Format(time.RFC3339)
		e.run.Target.Details = e.inst.Details
		e.run.Target.State = TargetKept
		e.record(e.Store.SetTargetState(tctx, e.targetID, *e.inst, TargetKept, now, ""))
		e.log.Warn("instance kept: remove it when done", "instance", e.inst.ID)
		return f
	}
	tf := e.phase(tctx, PhaseTeardown, false, func(ctx context.Context, _ Progress) *failure {
		if err := e.p.Target.Destroy(ctx, *e.inst); err != nil {
			e.record(e.Store.SetTargetState(ctx, e.targetID, *e.inst, TargetDestroyFailed, e.Now(), err.Error()))
			e.run.Target.State, e.run.Target.DestroyError = TargetDestroyFailed, err.Error()
			return &failure{reason: ReasonTeardownFailed, err: fmt.Errorf("teardown of %s: %w", e.inst.ID, err)}
		}
		now := e.Now()
		e.run.Target.State, e.run.Target.TornDownAt = TargetDestroyed, &now
		e.record(e.Store.SetTargetState(ctx, e.targetID, *e.inst, TargetDestroyed, now, ""))
		return nil
	})
	if f == nil {
		return tf
	}
	return f
}

// upToMillisecond rounds d up to a whole millisecond.
func upToMillisecond(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r > 0 {
		return d - r + time.Millisecond
	}
	return d - d%time.Millisecond
}

// finish measures RTO and RPO, judges the objectives and commits the outcome.
func (e *execution) finish(ctx context.Context, f *failure) {
	o := Outcome{Status: StatusPassed, FinishedAt: e.Now()}
	spec := e.p.Spec
	if e.run.Backup != nil {
		// A physical backup's RPO runs from the point its recovery reached.
		// Measures are kept to the millisecond, rounded up (an overrun is
		// never rounded into an objective met), and judged as kept: the
		// run's own output and the stored record read the same.
		rpo := upToMillisecond(e.start.Sub(e.backup.RPOFrom()))
		o.RPO = &rpo
		if spec.Objectives.RPO > 0 {
			// A backup that did not give a verified copy protects nothing:
			// its age meets no objective.
			met := rpo <= spec.Objectives.RPO && !e.verified.IsZero()
			o.RPOMet = &met
		}
	}
	if !e.verified.IsZero() {
		rto := upToMillisecond(e.verified.Sub(e.start))
		o.RTO = &rto
		if spec.Objectives.RTO > 0 {
			met := rto <= spec.Objectives.RTO
			o.RTOMet = &met
		}
	} else if spec.Objectives.RTO > 0 {
		met := false // no verified copy: the objective was not met
		o.RTOMet = &met
	}
	o.DataRPO = dataRPO(e.start, e.run.Checks)
	if f == nil {
		var missed []string
		if o.RTOMet != nil && !*o.RTOMet {
			missed = append(missed, fmt.Sprintf("RTO %s exceeds objective %s", *o.RTO, spec.Objectives.RTO))
		}
		if o.RPOMet != nil && !*o.RPOMet {
			missed = append(missed, fmt.Sprintf("RPO %s exceeds objective %s", *o.RPO, spec.Objectives.RPO))
		}
		if len(missed) > 0 {
			f = &failure{reason: ReasonObjectiveMissed, err: errors.New(strings.Join(missed, "; "))}
		}
	}
	if f != nil {
		o.Status, o.Reason, o.Error = StatusFailed, f.reason, f.err.Error()
	}
	e.run.Status, e.run.Reason, e.run.Error, e.run.FinishedAt = o.Status, o.Reason, o.Error, &o.FinishedAt
	e.run.RTO, e.run.RPO, e.run.DataRPO, e.run.RTOMet, e.run.RPOMet = o.RTO, o.RPO, o.DataRPO, o.RTOMet, o.RPOMet
	e.record(e.Store.FinishRun(context.WithoutCancel(ctx), e.run.ID, o))
	if st, err := e.Store.RunSeal(context.WithoutCancel(ctx), e.run); err == nil {
		e.run.Seal = st // what was sealed, as a reader of the record sees it
	}
	e.log.Info("drill finished", "status", o.Status, "reason", o.Reason, "error", o.Error,
		"rto_seconds", secondsOrNil(o.RTO), "rpo_seconds", secondsOrNil(o.RPO))
	e.emit(Event{Kind: EventFinished})
}

// dataRPO is the drill start minus the newest row any recency check saw.
func dataRPO(start time.Time, checks []CheckResult) *time.Duration {
	var newest *time.Time
	for _, c := range checks {
		if c.Newest != nil && (newest == nil || c.Newest.After(*newest)) {
			newest = c.Newest
		}
	}
	if newest == nil {
		return nil
	}
	d := upToMillisecond(start.Sub(*newest))
	return &d
}

func secondsOrNil(d *time.Duration) any {
	if d == nil {
		return nil
	}
	return d.Seconds()
}

// VerifyJobs is how many checks run side by side, and how many
// connections a check that works side by side (fingerprint) may use,
// unless a drill's verify_jobs says otherwise: the cores of this host,
// where the local target's cluster runs.
var VerifyJobs = max(runtime.NumCPU(), 1)

// driftLast is the order checks run in: as configured, drift checks last.
func driftLast(checks []Check) []int {
	var order, drift []int
	for i, c := range checks {
		if c.Type == verify.TypeDrift {
			drift = append(drift, i)
		} else {
			order = append(order, i)
		}
	}
	return append(order, drift...)
}

// exactCounts puts the row counts a check made into the inventory.
func exactCounts(tables []verify.TableInfo, counted map[string]int64) {
	for i := range tables {
		if n, ok := counted[tables[i].Name]; ok {
			tables[i].Rows, tables[i].RowsExact = n, true
		}
	}
}

// prepareChecks lets the target install what checks need (amcheck).
func (e *execution) prepareChecks(ctx context.Context) error {
	p, ok := e.p.Target.(CheckPreparer)
	if !ok {
		return nil
	}
	var types []string
	for _, c := range e.p.Spec.Checks {
		types = append(types, c.Type)
	}
	return p.PrepareChecks(ctx, *e.inst, types)
}

// digestingFetch wraps a backup's Fetch: the fetched backup is hashed
// (DigestPath) and its digest recorded. A backup with a fingerprint is
// hashed, and compared with the dump's digest in it, before anything is
// restored from it; a single-file backup without one is hashed while the
// target restores it, from a handle opened before the restore starts
// (settleDigest records it).
func (e *execution) digestingFetch(fetch func(context.Context, string, func(int64, int64)) (string, error), progress Progress) func(context.Context, string, func(int64, int64)) (string, error) {
	return func(ctx context.Context, dir string, report func(int64, int64)) (string, error) {
		path, err := fetch(ctx, dir, report)
		if err != nil {
			return path, err
		}
		if e.backup.Fingerprint == nil {
			if f, err := OpenRegular(path); err == nil {
				e.digest = make(chan digestResult, 1)
				go func() {
					defer f.Close()
					var r digestResult
					r.sum, r.size, r.err = DigestFile(ctx, f)
					e.digest <- r
				}()
				progress.Say("computing the backup's sha256 while it is restored")
				return path, nil
			}
		}
		progress.Say("computing the backup's sha256")
		sum, size, err := DigestPath(ctx, path)
		if err != nil {
			return path, fmt.Errorf("read the backup: %w", err)
		}
		e.recordDigest(ctx, sum, size)
		if fp := e.backup.Fingerprint; fp != nil && fp.Dump.SHA256 != sum {
			return path, fmt.Errorf("the backup's sha256 is %s but its fingerprint says %s: the backup is not the dump the fingerprint was taken with (nothing was restored)", sum, fp.Dump.SHA256)
		}
		return path, nil
	}
}

// digestingStream wraps a backup's Stream: the backup is hashed as it is
// read. The digest is recorded (settleDigest) when the stream was read to
// its end; a stream closed before its end records nothing.
func (e *execution) digestingStream(stream func(context.Context, func(int64, int64)) (io.ReadCloser, error)) func(context.Context, func(int64, int64)) (io.ReadCloser, error) {
	return func(ctx context.Context, report func(int64, int64)) (io.ReadCloser, error) {
		r, err := stream(ctx, report)
		if err != nil {
			return nil, err
		}
		return &hashingReader{ReadCloser: r, h: sha256.New(), done: func(res digestResult) {
			ch := make(chan digestResult, 1)
			ch <- res
			e.digest = ch
		}}, nil
	}
}

// hashingReader hashes what is read through it, and gives the digest to
// done at the end of the stream.
type hashingReader struct {
	io.ReadCloser
	h    hash.Hash
	n    int64
	done func(digestResult)
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if errors.Is(err, io.EOF) && r.done != nil {
		r.done(digestResult{sum: hex.EncodeToString(r.h.Sum(nil)), size: r.n})
		r.done = nil
	}
	return n, err
}

type digestResult struct {
	sum  string
	size int64
	err  error
}

// settleDigest waits for a digest computed during the restore and records
// it; a backup that could not be read to its end fails the restore.
func (e *execution) settleDigest(ctx context.Context) error {
	if e.digest == nil {
		return nil
	}
	r := <-e.digest
	e.digest = nil
	if r.err != nil {
		return fmt.Errorf("read the backup: %w", r.err)
	}
	e.recordDigest(context.WithoutCancel(ctx), r.sum, r.size) // recorded also when the restore was cut short
	return nil
}

func (e *execution) recordDigest(ctx context.Context, sum string, size int64) {
	e.backup.SHA256 = sum
	if e.backup.SizeBytes == 0 {
		e.backup.SizeBytes = size
	}
	e.run.Backup.SHA256, e.run.Backup.SizeBytes = sum, e.backup.SizeBytes
	e.record(e.Store.SetBackup(ctx, e.run.ID, e.backup))
}
