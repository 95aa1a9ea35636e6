//go:build chaos

package main_test

// make chaos: crash drill at random moments and count what is left. Not
// part of make test (it takes minutes): go test -tags chaos -run TestChaos.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"drill/drills/drilltest"
	"drill/drills/local"
	"drill/drills/pgdump"
	"drill/drills/rds/fakerds"
)

type chaosResult struct {
	trial                 int
	target, victim, phase string
	nonTerminal, procs    int
	dirs, instances       int
	recovered             time.Duration
}

// chaosTarget is where a trial's drill restores to, and how to count what
// is left of it.
type chaosTarget struct {
	env []string
	// left counts processes, directories and emulator instances left.
	left func() (procs, dirs, instances int)
}

// TestChaos runs DRILL_CHAOS_TRIALS trials (default 20), DRILL_CHAOS_PARALLEL
// at a time (default 4). Each starts a worker with default flags (or a
// drill run), kills it with SIGKILL in a random phase of a drill of a
// 1.5M-row backup, starts a new worker with default flags, and counts after
// 90 s: runs not yet terminal, processes left in the target directory,
// directories left, instances left in the RDS emulator. Trials alternate
// between the victims (worker, drill run) and, every other pair, between
// the targets (a local cluster; an RDS instance of the emulator, whose
// restore takes a few seconds, so that kills land while drill waits on it).
func TestChaos(t *testing.T) {
	trials := envInt("DRILL_CHAOS_TRIALS", 20)
	parallel := envInt("DRILL_CHAOS_PARALLEL", 4)
	phases := []string{"locate", "provision", "restore", "verify", "teardown"}
	results := make([]chaosResult, trials)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range trials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			victim := []string{"worker", "run"}[i%2]
			target := []string{"local", "rds"}[(i/2)%2]
			results[i] = chaosTrial(t, i+1, target, victim, phases[rand.IntN(len(phases))])
		}()
	}
	wg.Wait()
	var bad [4]int
	fmt.Printf("\n%-6s %-7s %-7s %-10s %-12s %-10s %-5s %-10s %s\n", "trial", "target", "killed", "phase", "non-terminal", "processes", "dirs", "instances", "recovered")
	for _, r := range results {
		fmt.Printf("%-6d %-7s %-7s %-10s %-12d %-10d %-5d %-10d %s\n", r.trial, r.target, r.victim, r.phase, r.nonTerminal, r.procs, r.dirs, r.instances, r.recovered.Round(time.Second))
		bad[0] += r.nonTerminal
		bad[1] += r.procs
		bad[2] += r.dirs
		bad[3] += r.instances
	}
	fmt.Printf("\n%d trials: runs non-terminal after 90 s: %d; processes left: %d; directories left: %d; emulator instances left: %d\n",
		trials, bad[0], bad[1], bad[2], bad[3])
	if bad != [4]int{} {
		t.Errorf("left behind: %v", bad)
	}
}

func chaosTrial(t *testing.T, trial int, target, victim, phase string) chaosResult {
	res := chaosResult{trial: trial, target: target, victim: victim}
	b := setup(t, 1)
	dump := drilltest.BigDump(t, b.backups)
	tgt := localChaosTarget(b)
	if target == "rds" {
		tgt = rdsChaosTarget(t, b, dump)
	}
	env := append(b.env, tgt.env...)
	db := stateDB(t, env)
	ctx := context.Background()
	var cmd *exec.Cmd
	if victim == "worker" {
		w := start(t, env, "worker")
		cmd = w.cmd
		if r := drill(t, env, "run", "shop", "--enqueue"); r.code != 0 {
			t.Errorf("trial %d: enqueue: %d %s", trial, r.code, r.stderr)
			return res
		}
	} else {
		cmd = exec.Command(drillBin, "run", "shop")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return res
		}
		go func() { _ = cmd.Wait() }()
	}
	// kill once the phase has started, at a random moment of it
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var n int
		_ = db.QueryRow(ctx, "select count(*) from drill_phases where name = $1", phase).Scan(&n)
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
	_ = db.QueryRow(ctx, "select coalesce((select name from drill_phases order by seq desc limit 1), 'none')").Scan(&res.phase)
	var open int
	_ = db.QueryRow(ctx, "select count(*) from drill_runs where finished_at is null").Scan(&open)
	if open == 0 {
		res.phase = "finished" // the kill lands after the drill: nothing to recover
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	start(t, env, "worker")
	for time.Since(killed) < 90*time.Second {
		var open int
		_ = db.QueryRow(ctx, "select count(*) from drill_runs where finished_at is null").Scan(&open)
		if procs, dirs, instances := tgt.left(); open == 0 && procs+dirs+instances == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.recovered = time.Since(killed)
	_ = db.QueryRow(ctx, "select count(*) from drill_runs where finished_at is null").Scan(&res.nonTerminal)
	res.procs, res.dirs, res.instances = tgt.left()
	if res.dirs > 0 {
		entries, _ := os.ReadDir(b.targetDir)
		t.Logf("trial %d left %s", trial, filepath.Join(b.targetDir, entries[0].Name()))
	}
	return res
}

func localChaosTarget(b bundle) chaosTarget {
	return chaosTarget{left: func() (int, int, int) {
		entries, _ := os.ReadDir(b.targetDir)
		return len(drilltest.ProcessesMentioning(b.targetDir)), len(entries), 0
	}}
}

// rdsChaosTarget points the trial's drill at an RDS emulator whose source
// instance holds the dump and whose restores stay "creating" for 8 s.
func rdsChaosTarget(t *testing.T, b bundle, dump string) chaosTarget {
	bin, err := local.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	src, err := pgdump.NewSource(context.Background(), pgdump.SourceConfig{Location: dump, PGRestore: bin.Path("pg_restore")})
	if err != nil {
		t.Fatal(err)
	}
	backup, err := src.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	emu, err := fakerds.New(drilltest.SharedDir(t))
	if err != nil {
		t.Fatal(err)
	}
	emu.CreateDelay = 8 * time.Second
	if err := emu.AddSource(context.Background(), "shop-prod", dump); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(emu)
	t.Cleanup(func() { ts.Close(); emu.Close() })
	yaml := fmt.Sprintf(`drills:
  - name: shop
    timeout: 5m
    source:
      type: rds-snapshot
      instance: shop-prod
    target:
      type: rds
      instance_class: db.t4g.micro
      subnet_group: drill-isolated
      security_groups: [sg-0123456789abcdef0]
      database: %s
      poll_interval: 1s
    checks:
      - type: row_count
        table: public.events
        min: 1
      - type: checksum
        table: public.events
`, backup.Database)
	if err := os.WriteFile(b.config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return chaosTarget{
		env: []string{"AWS_ENDPOINT_URL_RDS=" + ts.URL, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=chaos",
			"AWS_SECRET_ACCESS_KEY=chaos", "AWS_EC2_METADATA_DISABLED=true"},
		left: func() (int, int, int) {
			entries, _ := os.ReadDir(emu.Dir)
			return len(drilltest.ProcessesMentioning(emu.Dir)), len(entries), len(emu.Instances())
		},
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
