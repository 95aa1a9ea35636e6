package local_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"drill/drills/drilltest"
	"drill/drills/local"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(drilltest.Main(m)) }

// Two users of the embedded state database share one server; the last to
// leave stops it, and the data survives for the next command.
func TestStateServerSharedAndStopped(t *testing.T) {
	t.Parallel()
	home := drilltest.SharedDir(t)
	ctx := context.Background()
	a, err := local.StartState(ctx, home, "")
	if err != nil {
		t.Fatal(err)
	}
	exec1(t, a.DSN(), "create table kept (v int)", "insert into kept values (42)")
	b, err := local.StartState(ctx, home, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	exec1(t, b.DSN(), "select 1") // still up for b
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if procs := drilltest.ProcessesMentioning(home); len(procs) != 0 {
		t.Fatalf("state server still running after the last user left: %v", procs)
	}
	c, err := local.StartState(ctx, home, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v int
	conn, err := pgx.Connect(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "select v from kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("data lost across restarts: %v %v", v, err)
	}
}

func exec1(t *testing.T, dsn string, sql ...string) {
	t.Helper()
	drilltest.Exec(t, dsn, sql...)
}

func TestStateServerListensOnNoTCPPort(t *testing.T) {
	t.Parallel()
	home := drilltest.SharedDir(t)
	s, err := local.StartState(context.Background(), home, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	conf, err := os.ReadFile(filepath.Join(home, "state", "data", "postgresql.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "listen_addresses = ''") {
		t.Fatal("the embedded state database listens on TCP")
	}
}

func TestRunAs(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if _, err := local.LookupRunAs("somebody-else"); err == nil || !strings.Contains(err.Error(), "only when run as root") {
			t.Fatalf("non-root run_as: %v", err)
		}
		return
	}
	_, err := local.LookupRunAs("drill-no-such-user")
	if err == nil || !strings.Contains(err.Error(), "no such OS user") || !strings.Contains(err.Error(), "useradd") {
		t.Fatalf("missing user: %v", err)
	}
	if _, err := local.LookupRunAs("root"); err == nil || !strings.Contains(err.Error(), "refuses to run as root") {
		t.Fatalf("root as run_as: %v", err)
	}
	if u, err := local.LookupRunAs(""); err != nil || u.Name != local.DefaultRunAs {
		t.Fatalf("default: %+v %v", u, err)
	}
}

func TestClusterDirectoryTooDeepForSocket(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(drilltest.SharedDir(t), strings.Repeat("d", 100))
	c := &local.Cluster{Dir: dir, Bin: drilltest.Binaries(t), Port: 5432}
	err := c.Init(context.Background())
	if err == nil || !strings.Contains(err.Error(), "too deep for a Unix socket") {
		t.Fatalf("got %v", err)
	}
}

// The throwaway cluster takes passwords over TCP only with the random
// password nobody knows; the socket is reachable only by its owner and root.
func TestThrowawayClusterRefusesTCPWithoutPassword(t *testing.T) {
	t.Parallel()
	dir := drilltest.SharedDir(t)
	runAs, err := local.LookupRunAs("")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := local.FreePort()
	c := &local.Cluster{Dir: filepath.Join(dir, "c"), Bin: drilltest.Binaries(t), RunAs: runAs, Port: port, ListenTCP: true,
		Settings: local.ThrowawaySettings(), Password: local.RandomPassword()}
	ctx := context.Background()
	if err := c.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(ctx, "immediate"); err != nil {
			t.Error(err)
		}
		if procs := drilltest.ProcessesMentioning(c.DataDir()); len(procs) > 0 {
			t.Errorf("still running: %v", procs)
		}
	}()
	out, err := exec.Command(drilltest.Binaries(t).Path("psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-w", "-c", "select 1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "password") {
		t.Fatalf("TCP without password: %v %s", err, out)
	}
	conn, err := pgx.Connect(ctx, c.TCPDSN("postgres"))
	if err != nil {
		t.Fatalf("TCP with the password: %v", err)
	}
	conn.Close(ctx)
	fi, err := os.Stat(c.SocketDir())
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "pwfile")); !os.IsNotExist(err) {
		t.Fatalf("password file left on disk: %v", err)
	}
}

// Programs run as the clusters' user have its supplementary groups (a
// pgBackRest repository is read through one), and none of root's.
func TestRunAsKeepsSupplementaryGroups(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	r, err := local.LookupRunAs(local.DefaultRunAs)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Command(context.Background(), "/", "id", "-G").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(out))
	want := []string{strconv.FormatUint(uint64(r.GID), 10)}
	for _, g := range r.Groups {
		want = append(want, strconv.FormatUint(uint64(g), 10))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("id -G as %s: %v, want %v", r.Name, got, want)
	}
}
