package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// StateServer is the embedded state database: a private cluster under a
// data directory, started for the duration of a command when no database
// URL is configured. It listens on its private socket only.
//
// Several drill processes may share it: each holds a shared lock on
// users.lock while it uses the server, and the last to leave stops it.
// Start and stop are serialised by an exclusive lock on start.lock.
type StateServer struct {
	cluster *Cluster
	users   *os.File
}

// statePort names the socket; the server listens on no TCP port.
const statePort = 5432

// DefaultHome is where the embedded state database lives without
// $DRILL_HOME: ~/.local/share/drill, or /var/lib/drill for root (the
// cluster runs as an unprivileged user, which cannot enter /root).
func DefaultHome() string {
	if h := os.Getenv("DRILL_HOME"); h != "" {
		return h
	}
	if os.Geteuid() == 0 {
		return "/var/lib/drill"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "drill")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "drill")
	}
	return filepath.Join(home, ".local", "share", "drill")
}

// StartState starts (or joins) the embedded state database under home.
// runAs is the OS user for the cluster when running as root.
func StartState(ctx context.Context, home, runAs string) (*StateServer, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, fmt.Errorf("embedded state database: %w (or set DRILL_DATABASE_URL to an existing PostgreSQL)", err)
	}
	user, err := LookupRunAs(runAs)
	if err != nil {
		return nil, err
	}
	home, err = filepath.Abs(home)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("embedded state database: %w", err)
	}
	if user.set {
		// The cluster's user must pass through home to reach its own directory.
		if err := os.Chmod(home, 0o711); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(home, "state")
	c := &Cluster{Dir: dir, Bin: bin, RunAs: user, Port: statePort}

	startLock, err := lockFile(filepath.Join(home, "start.lock"), syscall.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer startLock.Close() // releases the lock
	users, err := lockFile(filepath.Join(home, "users.lock"), syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	s := &StateServer{cluster: c, users: users}
	if _, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION")); err != nil {
		if err := os.RemoveAll(dir); err != nil { // a half-made cluster from an interrupted first start
			users.Close()
			return nil, err
		}
		if err := c.Init(ctx); err != nil {
			users.Close()
			return nil, fmt.Errorf("embedded state database: %w", err)
		}
	}
	if !c.Running() {
		if err := c.Start(ctx); err != nil {
			users.Close()
			return nil, fmt.Errorf("embedded state database: %w", err)
		}
	}
	return s, nil
}

// DSN connects to the state database.
func (s *StateServer) DSN() string { return s.cluster.SocketDSN("postgres") }

// Dir is the state cluster's directory.
func (s *StateServer) Dir() string { return s.cluster.Dir }

// Close leaves the server, and stops it when no other drill process uses it.
func (s *StateServer) Close(ctx context.Context) error {
	startLock, err := lockFile(filepath.Join(filepath.Dir(s.cluster.Dir), "start.lock"), syscall.LOCK_EX)
	if err != nil {
		s.users.Close()
		return err
	}
	defer startLock.Close()
	s.users.Close()
	last, err := tryLock(filepath.Join(filepath.Dir(s.cluster.Dir), "users.lock"))
	if err != nil || last == nil {
		return err // others still use it
	}
	defer last.Close()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return s.cluster.Stop(ctx, "fast")
}

func lockFile(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// tryLock takes an exclusive lock without waiting; nil when others hold it.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, nil
	}
	return f, nil
}
