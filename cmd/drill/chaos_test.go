//go:build chaos

package main_test

// make chaos: crash drill at random moments and count what is left. Not
// part of make test (it takes minutes): go test -tags chaos -run TestChaos.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"drill/drills/drilltest"
)

type chaosResult struct {
	trial              int
	victim, phase      string
	nonTerminal, procs int
	dirs               int
	recovered          time.Duration
}

// TestChaos runs DRILL_CHAOS_TRIALS trials (default 20), DRILL_CHAOS_PARALLEL
// at a time (default 4). Each starts a worker with default flags (or a
// drill run), kills it with SIGKILL in a random phase of a drill of a
// 1.5M-row backup, starts a new worker with default flags, and counts after
// 90 s: runs not yet terminal, processes left in the target directory,
// directories left.
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
			results[i] = chaosTrial(t, i+1, victim, phases[rand.IntN(len(phases))])
		}()
	}
	wg.Wait()
	var bad [3]int
	fmt.Printf("\n%-6s %-7s %-10s %-12s %-10s %-6s %s\n", "trial", "killed", "phase", "non-terminal", "processes", "dirs", "recovered")
	for _, r := range results {
		fmt.Printf("%-6d %-7s %-10s %-12d %-10d %-6d %s\n", r.trial, r.victim, r.phase, r.nonTerminal, r.procs, r.dirs, r.recovered.Round(time.Second))
		bad[0] += r.nonTerminal
		bad[1] += r.procs
		bad[2] += r.dirs
	}
	fmt.Printf("\n%d trials: runs non-terminal after 90 s: %d; processes left: %d; directories left: %d\n", trials, bad[0], bad[1], bad[2])
	if bad != [3]int{} {
		t.Errorf("left behind: %v", bad)
	}
}

func chaosTrial(t *testing.T, trial int, victim, phase string) chaosResult {
	res := chaosResult{trial: trial, victim: victim}
	b := setup(t, 1)
	drilltest.BigDump(t, b.backups)
	db := stateDB(t, b.env)
	ctx := context.Background()
	var cmd *exec.Cmd
	if victim == "worker" {
		w := start(t, b.env, "worker")
		cmd = w.cmd
		if r := drill(t, b.env, "run", "shop", "--enqueue"); r.code != 0 {
			t.Errorf("trial %d: enqueue: %d %s", trial, r.code, r.stderr)
			return res
		}
	} else {
		cmd = exec.Command(drillBin, "run", "shop")
		cmd.Env = append(os.Environ(), b.env...)
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
	_ = cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	start(t, b.env, "worker")
	for time.Since(killed) < 90*time.Second {
		var open int
		_ = db.QueryRow(ctx, "select count(*) from drill_runs where finished_at is null").Scan(&open)
		entries, _ := os.ReadDir(b.targetDir)
		if open == 0 && len(drilltest.ProcessesMentioning(b.targetDir)) == 0 && len(entries) == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.recovered = time.Since(killed)
	_ = db.QueryRow(ctx, "select count(*) from drill_runs where finished_at is null").Scan(&res.nonTerminal)
	res.procs = len(drilltest.ProcessesMentioning(b.targetDir))
	entries, _ := os.ReadDir(b.targetDir)
	res.dirs = len(entries)
	if res.dirs > 0 {
		t.Logf("trial %d left %s", trial, filepath.Join(b.targetDir, entries[0].Name()))
	}
	return res
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
