package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"drill/drills"
)

// Cluster is a PostgreSQL cluster this tool runs: a data directory, a
// socket directory and a port. It serves the throwaway restore targets, the
// embedded state database and the RDS emulator's instances.
type Cluster struct {
	// Dir holds everything of the cluster: data/, the socket directory s/
	// and server.log.
	Dir   string
	Bin   Binaries
	RunAs RunAs
	// Port is the TCP port, and names the Unix socket.
	Port int
	// ListenTCP makes the server listen on 127.0.0.1:Port (password
	// authentication) besides its private socket (trust, reachable only by
	// root and the run_as user).
	ListenTCP bool
	// Settings are written to postgresql.conf at Init.
	Settings map[string]string
	// Superuser is the name of the cluster's superuser (default postgres).
	Superuser string
	// Password of the superuser over TCP. Never written anywhere but
	// initdb's password file, which is removed straight after.
	Password string
}

// ThrowawaySettings tune a cluster for a fast restore whose data may be lost:
// no durability, no WAL beyond the minimum, no autovacuum.
func ThrowawaySettings() map[string]string {
	return map[string]string{
		"fsync":                "off",
		"full_page_writes":     "off",
		"synchronous_commit":   "off",
		"wal_level":            "minimal",
		"max_wal_senders":      "0",
		"archive_mode":         "off",
		"autovacuum":           "off",
		"maintenance_work_mem": "'512MB'",
		"work_mem":             "'64MB'",
		"max_wal_size":         "'8GB'",
		"checkpoint_timeout":   "'1h'",
		"shared_buffers":       "'256MB'",
		"jit":                  "off",
		// A restore in one transaction holds a lock on every table,
		// index and sequence it makes (see maxSingleEntries).
		"max_locks_per_transaction": "256",
	}
}

// DataDir is where the cluster's data lives.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir, "data") }

// SocketDir is the directory of the cluster's Unix socket.
func (c *Cluster) SocketDir() string { return filepath.Join(c.Dir, "s") }

func (c *Cluster) logFile() string { return filepath.Join(c.Dir, "server.log") }

func (c *Cluster) superuser() string {
	if c.Superuser == "" {
		return "postgres"
	}
	return c.Superuser
}

// maxSocketPath is the longest Unix socket path Linux accepts, less the terminator.
const maxSocketPath = 107

// Init creates the data directory with initdb and writes the settings.
// Dir must exist.
func (c *Cluster) Init(ctx context.Context) error {
	if err := c.prepareDirs(true); err != nil {
		return err
	}
	args := append([]string{"-D", c.DataDir(), "-U", c.superuser()}, initdbOptions(c.Password != "")...)
	if c.Password != "" {
		pwfile := filepath.Join(c.Dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
			return err
		}
		defer os.Remove(pwfile)
		if err := c.RunAs.chown(pwfile); err != nil {
			return err
		}
		args = append(args, "--pwfile="+pwfile)
	}
	if err := c.run(ctx, c.Bin.Path("initdb"), args...); err != nil {
		if c.RunAs.set {
			return fmt.Errorf("initdb as OS user %s (every directory above %s must be reachable by that user): %w", c.RunAs.Name, c.Dir, err)
		}
		return fmt.Errorf("initdb: %w", err)
	}
	return c.writeSettings()
}

// prepareDirs makes Dir (drill's own) and, inside it, the socket directory,
// the server log and, with data, the empty data directory (the cluster's
// user's). Without data the caller makes the data directory.
func (c *Cluster) prepareDirs(data bool) error {
	sock := filepath.Join(c.SocketDir(), ".s.PGSQL."+strconv.Itoa(c.Port))
	if len(sock) > maxSocketPath {
		return fmt.Errorf("cluster directory %s is too deep for a Unix socket path (%d > %d bytes); choose a shorter directory", c.Dir, len(sock), maxSocketPath)
	}
	// Dir stays this process's own (the cluster's user may pass, not
	// write): what drill writes there (a backup's copy, a restore list) is
	// out of reach of anything running as the cluster's user. The data and
	// socket directories and the server log are the cluster's.
	dirMode := os.FileMode(0o700)
	if c.RunAs.set {
		dirMode = 0o711
	}
	if err := os.MkdirAll(c.Dir, dirMode); err != nil {
		return err
	}
	if err := os.Chmod(c.Dir, dirMode); err != nil {
		return err
	}
	dirs := []string{c.SocketDir()}
	if data {
		dirs = append(dirs, c.DataDir())
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if err := c.RunAs.chown(d); err != nil {
			return fmt.Errorf("give %s to %s: %w", d, c.RunAs.Name, err)
		}
	}
	logf, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	logf.Close()
	if err := c.RunAs.chown(c.logFile()); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) writeSettings() error {
	settings := map[string]string{
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": quoteConf(c.SocketDir()),
		"listen_addresses":        "''",
		"logging_collector":       "off",
	}
	if c.ListenTCP {
		settings["listen_addresses"] = "'127.0.0.1'"
	}
	for k, v := range c.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteString("\n# written by drill\n")
	for _, k := range keys {
		fmt.Fprintf(&buf, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SetPort changes the port of an initialised cluster.
func (c *Cluster) SetPort(port int) error {
	c.Port = port
	return c.writeSettings() // later lines win in postgresql.conf
}

func quoteConf(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	err := c.run(ctx, c.Bin.Path("pg_ctl"), "start", "-D", c.DataDir(), "-l", c.logFile(), "-w", "-t", "120", "-s")
	if err != nil {
		return fmt.Errorf("start PostgreSQL in %s: %w%s", c.Dir, err, c.logTail())
	}
	return nil
}

// StartAttached starts the server as a child of this process that dies
// with it (a parent-death signal): a throwaway cluster never outlives the
// drill that made it, even when no drill runs on this host again. It waits
// until the server accepts connections.
func (c *Cluster) StartAttached(ctx context.Context) error {
	return c.startAttached(ctx, baseEnv(c.Dir), 2*time.Minute, nil)
}

// startAttached starts the server attached, with env, and waits at most
// maxWait (0: as long as ctx lets it) until it accepts connections,
// calling tick now and then meanwhile.
func (c *Cluster) startAttached(ctx context.Context, env []string, maxWait time.Duration, tick func()) error {
	logf, err := os.OpenFile(c.logFile(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.Bin.Path("postgres"), "-D", c.DataDir())
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = c.Dir, env, logf, logf
	c.RunAs.apply(cmd)
	attach(cmd, false)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start PostgreSQL in %s: %w", c.Dir, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	var deadline <-chan time.Time
	if maxWait > 0 {
		deadline = time.After(maxWait)
	}
	lastTick := time.Now()
	for !c.ready() {
		select {
		case <-exited:
			return fmt.Errorf("start PostgreSQL in %s: the server exited%s", c.Dir, c.logTail())
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return ctx.Err()
		case <-deadline:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("start PostgreSQL in %s: not ready after %s%s", c.Dir, maxWait, c.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if tick != nil && time.Since(lastTick) > 2*time.Second {
			tick()
			lastTick = time.Now()
		}
	}
	return nil
}

// ready reports whether postmaster.pid says the server accepts connections.
func (c *Cluster) ready() bool {
	b, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) > 7 && strings.TrimSpace(lines[7]) == "ready"
}

// Stop stops the server. mode is "fast" (clean shutdown) or "immediate".
// Stopping a server that is not running is not an error.
func (c *Cluster) Stop(ctx context.Context, mode string) error {
	if !c.Running() {
		return nil
	}
	pid := c.PID()
	err := c.run(ctx, c.Bin.Path("pg_ctl"), "stop", "-D", c.DataDir(), "-m", mode, "-w", "-t", "60", "-s")
	if err != nil && c.Running() {
		return fmt.Errorf("stop PostgreSQL in %s: %w", c.Dir, err)
	}
	// pg_ctl returns once the postmaster removed its pid file, a moment
	// before the process is gone: stopped means gone.
	for deadline := time.Now().Add(10 * time.Second); pid > 0 && processAlive(pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Running reports whether a server process for the data directory is alive.
func (c *Cluster) Running() bool {
	pid := c.PID()
	return pid > 0 && processAlive(pid)
}

// PID returns the postmaster's process id from postmaster.pid, or 0.
func (c *Cluster) PID() int {
	b, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// SocketDSN connects as the superuser over the private socket.
func (c *Cluster) SocketDSN(database string) string { return c.SocketDSNAs(c.superuser(), database) }

// SocketDSNAs connects as role over the private socket.
func (c *Cluster) SocketDSNAs(role, database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", drills.DSNValue(c.SocketDir()), c.Port, drills.DSNValue(role), drills.DSNValue(database))
}

// TCPDSN connects as the superuser over 127.0.0.1 with the password.
func (c *Cluster) TCPDSN(database string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", c.Port, drills.DSNValue(c.superuser()), drills.DSNValue(c.Password), drills.DSNValue(database))
}

// run runs a program as the cluster's user and returns its output in the
// error when it fails.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.Dir
	// The server inherits this environment: nothing of drill's own.
	cmd.Env = baseEnv(c.Dir)
	c.RunAs.apply(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s", err, tail(out, 2000))
	}
	return nil
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile())
	if err != nil || len(b) == 0 {
		return ""
	}
	return "\nserver log:\n" + tail(b, 2000)
}

// tail returns at most the last n bytes of b, trimmed.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomPassword returns 26 random characters (a–z, 2–7: 130 bits) from
// crypto/rand, fit for a password, a psql \restrict key or a name.
func RandomPassword() string { return strings.ToLower(rand.Text()) }

// waitGone waits until no process runs for the data directory.
func (c *Cluster) waitGone(ctx context.Context) error {
	for c.Running() {
		select {
		case <-ctx.Done():
			return errors.New("server still running")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// WriteDataFile writes a file into the data directory, owned by the
// cluster's user (server certificates, for instance).
//
// The data directory is the cluster's user's: what is there by the name
// (a link it made) is removed first, the file is made new and never
// through a link, and given away by its descriptor.
func (c *Cluster) WriteDataFile(name string, data []byte) error {
	path := filepath.Join(c.DataDir(), name)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if c.RunAs.set {
		if err := f.Chown(int(c.RunAs.UID), int(c.RunAs.GID)); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
