package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"drill/drills"
	"drill/drills/backends"
	"drill/jobs"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// reloadPoll is how often a long-running process looks at its config
// file for changes.
const reloadPoll = 2 * time.Second

// watchConfig reloads the config on SIGHUP and when its file changes
// (its modification time or size), until ctx ends. A new config is
// validated first and put in force only when valid; otherwise the old one
// stays and the problems are logged. applied runs after a new config is
// in force.
func watchConfig(ctx context.Context, live *drills.LiveConfig, log *slog.Logger, applied func(*drills.Config)) {
	path := live.Get().Path
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	stamp := func() (time.Time, int64) {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, -1
		}
		return fi.ModTime(), fi.Size()
	}
	lastMod, lastSize := stamp()
	tick := time.NewTicker(reloadPoll)
	defer tick.Stop()
	for {
		why := ""
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-tick.C:
			mod, size := stamp()
			if mod.Equal(lastMod) && size == lastSize {
				continue
			}
			lastMod, lastSize, why = mod, size, "the file changed"
		}
		cfg, err := backends.LoadConfig(path)
		if err != nil {
			log.Error("config not reloaded: it has problems; the config in force stays", "config", path, "why", why, "error", err.Error())
			continue
		}
		live.Set(cfg)
		if applied != nil {
			applied(cfg)
		}
		log.Info("config reloaded", "config", path, "why", why, "drills", len(cfg.Drills))
	}
}

// reschedule replaces a worker client's periodic jobs with those of cfg.
func reschedule(client *river.Client[pgx.Tx], o *workerOpts, log *slog.Logger) func(*drills.Config) {
	return func(cfg *drills.Config) {
		periodic, err := jobs.PeriodicJobs(cfg, o.sweepEvery, o.staleAfter)
		if err != nil {
			log.Error("schedules not updated", "error", err.Error())
			return
		}
		client.PeriodicJobs().Clear()
		client.PeriodicJobs().AddMany(periodic)
	}
}
