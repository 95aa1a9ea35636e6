package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"

	"drill/drills"
	"drill/drills/backends"
	"drill/drills/evidence"
	"drill/drills/local"
	"drill/drills/statedb"

	"golang.org/x/term"
)

// resolveConfigPath applies --config, then $DRILL_CONFIG, then ./drill.yaml.
// explicit is false for the last fallback.
func (g *globalOpts) resolveConfigPath() (path string, explicit bool) {
	if g.configPath != "" {
		return g.configPath, true
	}
	if p := os.Getenv("DRILL_CONFIG"); p != "" {
		return p, true
	}
	return "drill.yaml", false
}

// loadConfig reads and validates the config file; errors exit 2.
func (g *globalOpts) loadConfig() (*drills.Config, error) {
	path, _ := g.resolveConfigPath()
	cfg, err := backends.LoadConfig(path)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return cfg, nil
}

// optionalConfig reads the config when there is one: commands that only
// read the history work without it.
func (g *globalOpts) optionalConfig() (*drills.Config, error) {
	path, explicit := g.resolveConfigPath()
	if _, err := os.Stat(path); !explicit && errors.Is(err, os.ErrNotExist) {
		return &drills.Config{}, nil
	}
	return g.loadConfig()
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// logger builds the one logger of the process: JSON on stderr unless
// stderr is a terminal.
func (g *globalOpts) logger(stderr io.Writer, terminal bool) (*slog.Logger, error) {
	level := slog.LevelInfo
	if terminal {
		level = slog.LevelWarn // progress lines tell the story on a terminal
	}
	if g.logLevel != "" {
		if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel))
		}
	}
	format := g.logFormat
	if format == "" {
		format = "json"
		if terminal {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	}
	return nil, withCode(exitUsage, fmt.Errorf("--log-format %q: want json or text", format))
}

// runnerLogger is the runner's logger. On a terminal, unless --log-level
// says otherwise, the runner's lines below error are left out: the
// progress lines and the result tell the same, and a log line in their
// midst breaks them.
func (g *globalOpts) runnerLogger(log *slog.Logger, terminal bool) *slog.Logger {
	if terminal && g.logLevel == "" {
		log = slog.New(quietBelowError{log.Handler()})
	}
	return log.With("component", "runner")
}

// quietBelowError passes only errors on to its handler.
type quietBelowError struct{ slog.Handler }

func (h quietBelowError) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}

func (h quietBelowError) WithAttrs(as []slog.Attr) slog.Handler {
	return quietBelowError{h.Handler.WithAttrs(as)}
}

func (h quietBelowError) WithGroup(name string) slog.Handler {
	return quietBelowError{h.Handler.WithGroup(name)}
}

// openStore connects to the state database (DRILL_DATABASE_URL, else the
// config's database_url, else the embedded one) and applies migrations.
// Failures exit 3. The returned func closes everything.
func openStore(ctx context.Context, cfg *drills.Config, log *slog.Logger) (*statedb.Store, func(), error) {
	store, closeAll, err := connectStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	res, err := store.Migrate(ctx)
	if err != nil {
		closeAll()
		return nil, nil, withCode(exitUnavailable, fmt.Errorf("migrate state database: %w", err))
	}
	if len(res.Applied) > 0 || len(res.RiverApplied) > 0 {
		log.Info("state database migrated", "applied", res.Applied, "river_applied", res.RiverApplied)
	}
	return store, closeAll, nil
}

// connectStore connects to the state database without migrating it.
func connectStore(ctx context.Context, cfg *drills.Config, log *slog.Logger) (*statedb.Store, func(), error) {
	url := os.Getenv("DRILL_DATABASE_URL")
	if url == "" {
		url = cfg.DatabaseURL
	}
	closeAll := func() {}
	if url == "" {
		home := local.DefaultHome()
		log.Debug("starting embedded state database", "home", home)
		srv, err := local.StartState(ctx, home, os.Getenv("DRILL_RUN_AS"))
		if err != nil {
			return nil, nil, withCode(exitUnavailable, err)
		}
		url = srv.DSN()
		closeAll = func() {
			if err := srv.Close(context.Background()); err != nil {
				log.Warn("stopping the embedded state database", "error", err.Error())
			}
		}
	}
	store, err := statedb.Open(ctx, url, statedb.Options{})
	if err != nil {
		closeAll()
		return nil, nil, withCode(exitUnavailable, err)
	}
	if err := loadSealingKeys(store); err != nil {
		store.Close()
		closeAll()
		return nil, nil, withCode(exitUsage, err)
	}
	return store, func() { store.Close(); closeAll() }, nil
}

// loadSealingKeys gives the store the sealing key (DRILL_SEALING_KEY, a
// file made by `drill evidence keygen --sealing`), or only its public half
// (DRILL_SEALING_PUBKEY) where runs are read but not sealed, and the public
// halves of the keys it replaced (DRILL_SEALING_PREVIOUS_PUBKEYS, a comma-
// separated list of files): runs they sealed still check.
func loadSealingKeys(store *statedb.Store) error {
	if p := os.Getenv("DRILL_SEALING_KEY"); p != "" {
		key, err := evidence.LoadPrivateKey(p)
		if err != nil {
			return fmt.Errorf("DRILL_SEALING_KEY: %w", err)
		}
		store.SealingKey = key
	}
	if p := os.Getenv("DRILL_SEALING_PUBKEY"); p != "" {
		pub, err := evidence.LoadPublicKey(p)
		if err != nil {
			return fmt.Errorf("DRILL_SEALING_PUBKEY: %w", err)
		}
		store.SealingPub = pub
	}
	for p := range strings.SplitSeq(os.Getenv("DRILL_SEALING_PREVIOUS_PUBKEYS"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pub, err := evidence.LoadPublicKey(p)
		if err != nil {
			return fmt.Errorf("DRILL_SEALING_PREVIOUS_PUBKEYS: %w", err)
		}
		store.PreviousSealingPubs = append(store.PreviousSealingPubs, pub)
	}
	return nil
}

// requireSealingKey refuses to record runs without the sealing key in a
// state database whose runs are sealed: a run recorded without a seal
// there reads, rightly, as one whose seal was removed. Commands that
// finish runs (run, init, worker, sweep) call it.
func requireSealingKey(ctx context.Context, store *statedb.Store) error {
	if store.SealingKey != nil {
		return nil
	}
	id, err := store.SealKeyID(ctx)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if id == "" {
		return nil
	}
	return withCode(exitUsage, fmt.Errorf("the runs in this state database are sealed (key %s), and DRILL_SEALING_KEY is not set: set it to that sealing key (the file `drill evidence keygen --sealing` made) — a run recorded without a seal would read as one whose seal was removed", id))
}

// whoAmI names who triggered a manual run: user@host.
func whoAmI() string {
	name := fmt.Sprint(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return strings.TrimSuffix(name+"@"+host, "@")
}

// session is what most commands start with: the config, the logger and
// the state database.
type session struct {
	cfg *drills.Config
	// live is cfg as a long-running command reloads it.
	live  *drills.LiveConfig
	log   *slog.Logger
	store *statedb.Store
	close func()
}

// sessionOpts say what a command needs.
type sessionOpts struct {
	needConfig bool // the config file must exist (else it is optional)
	noMigrate  bool // connect without applying migrations
	// historyOnly: the command reads the recorded history only, and works
	// (with a warning) when the config's drills cannot be loaded, say for
	// a ${VAR} not set where it runs: only database_url is read then.
	historyOnly bool
}

// open reads the config, sets up logging and opens the state database.
func (g *globalOpts) open(ctx context.Context, so sessionOpts) (*session, error) {
	load := g.optionalConfig
	if so.needConfig {
		load = g.loadConfig
	}
	log, err := g.logger(os.Stderr, isTerminal(os.Stderr))
	if err != nil {
		return nil, err
	}
	cfg, err := load()
	if err != nil && so.historyOnly && backends.OnlyUnsetVariables(err) {
		path, _ := g.resolveConfigPath()
		url, uerr := backends.StateURL(path)
		if uerr != nil && os.Getenv("DRILL_DATABASE_URL") != "" {
			url, uerr = "", nil // DRILL_DATABASE_URL is used in its place
		}
		if uerr == nil {
			log.Warn("the config's drills were not read: only the recorded history is shown", "config", path, "problems", err.Error())
			cfg, err = &drills.Config{Path: path, DatabaseURL: url, HistoryOnly: true}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	connect := openStore
	if so.noMigrate {
		connect = connectStore
	}
	store, closeStore, err := connect(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	sess := &session{cfg: cfg, log: log, store: store, close: closeStore}
	if cfg != nil {
		sess.live = drills.NewLiveConfig(cfg)
	}
	return sess, nil
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
