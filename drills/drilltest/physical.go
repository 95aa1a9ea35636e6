package drilltest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"drill/drills/local"

	"github.com/jackc/pgx/v5"
)

// PhysicalSource is a PostgreSQL cluster that archives its WAL into a
// pgBackRest repository (stanza "main"), run as the postgres OS user as
// a self-hosted production server would be.
type PhysicalSource struct {
	Dir     string // everything: data, socket, repo, config
	Repo    string
	Config  string // pgbackrest.conf
	Cluster *local.Cluster
	runAs   local.RunAs
}

// PgBackRestSource starts such a cluster with a table t(id, at) and a
// stanza, without a backup yet.
func PgBackRestSource(t *testing.T) *PhysicalSource {
	t.Helper()
	runAs, err := local.LookupRunAs(local.DefaultRunAs)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "drill-physical-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	p := &PhysicalSource{Dir: dir, Repo: filepath.Join(dir, "repo"), Config: filepath.Join(dir, "pgbackrest.conf"), runAs: runAs}
	port, err := local.FreePort()
	must(t, err)
	c := &local.Cluster{Dir: filepath.Join(dir, "pg"), Bin: Binaries(t), RunAs: runAs, Port: port}
	p.Cluster = c
	conf := fmt.Sprintf("[global]\nrepo1-path=%s\nlog-level-file=off\nlock-path=%s\nstart-fast=y\narchive-timeout=30\n\n[main]\npg1-path=%s\npg1-port=%d\npg1-socket-path=%s\n",
		p.Repo, filepath.Join(dir, "lock"), c.DataDir(), port, c.SocketDir())
	must(t, os.WriteFile(p.Config, []byte(conf), 0o644))
	for _, d := range []string{p.Repo, filepath.Join(dir, "lock")} {
		must(t, os.Mkdir(d, 0o750))
		must(t, os.Chown(d, int(runAs.UID), int(runAs.GID)))
	}
	// The repository is readable by the OS user drill's clusters run as
	// (its group, inherited by everything pgBackRest writes there), as the
	// docs ask; that user cannot write there.
	if sandbox, err := local.LookupRunAs(local.SandboxUser); err == nil && sandbox.Name == local.SandboxUser {
		must(t, os.Chown(p.Repo, int(runAs.UID), int(sandbox.GID)))
		must(t, os.Chmod(p.Repo, 0o750|os.ModeSetgid))
	}
	c.Settings = map[string]string{
		"wal_level":       "replica",
		"archive_mode":    "on",
		"archive_command": "'pgbackrest --config=" + p.Config + " --stanza=main archive-push %p'",
		"fsync":           "off",
		"max_wal_senders": "2",
	}
	ctx := context.Background()
	must(t, c.Init(ctx))
	must(t, c.StartAttached(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background(), "immediate") })
	p.Exec(t, "create table t (id int primary key, at timestamptz not null default clock_timestamp())")
	p.Backrest(t, "stanza-create")
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Backrest runs pgbackrest with the source's config as the postgres user.
func (p *PhysicalSource) Backrest(t testing.TB, args ...string) string {
	t.Helper()
	cmd := p.runAs.Command(context.Background(), p.Dir, "pgbackrest", append([]string{"--config=" + p.Config, "--stanza=main"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbackrest %v: %v: %s", args, err, out)
	}
	return string(out)
}

// URL connects to the source's postgres database over its socket.
func (p *PhysicalSource) URL() string { return p.Cluster.SocketDSN("postgres") }

// Exec runs statements on the source.
func (p *PhysicalSource) Exec(t testing.TB, sql ...string) {
	t.Helper()
	Exec(t, p.URL(), sql...)
}

// Insert adds rows from..to to t and returns the commit time of the last.
func (p *PhysicalSource) Insert(t testing.TB, from, to int) time.Time {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), p.URL())
	must(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), "insert into t (id) select generate_series($1::int, $2::int)", from, to)
	must(t, err)
	var at time.Time
	must(t, conn.QueryRow(context.Background(), "select max(at) from t").Scan(&at))
	return at
}

// SwitchWAL closes the current WAL segment, waits until it is archived,
// and returns its name.
func (p *PhysicalSource) SwitchWAL(t testing.TB) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), p.URL())
	must(t, err)
	defer conn.Close(context.Background())
	var seg string
	must(t, conn.QueryRow(context.Background(), "select pg_walfile_name(pg_switch_wal())").Scan(&seg))
	WaitFor(t, 30*time.Second, "WAL segment "+seg+" archived", func() bool {
		var last string
		_ = conn.QueryRow(context.Background(), "select coalesce(last_archived_wal, '') from pg_stat_archiver").Scan(&last)
		return last >= seg
	})
	return seg
}

// Checksum digests every file under dir (names, sizes, contents, modes):
// equal digests mean nothing was written there.
func Checksum(t testing.TB, dir string) string {
	t.Helper()
	b := sha256.New()
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "%s %v %d", strings.TrimPrefix(path, dir), fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(b, " %x", data)
		}
		fmt.Fprintln(b)
		return nil
	})
	must(t, err)
	return hex.EncodeToString(b.Sum(nil))
}

// BarmanSource is a PostgreSQL cluster that archives its WAL with
// barman-cloud-wal-archive to s3://Bucket/Prefix (server "orders") on the
// test's S3 server, run as the postgres OS user.
type BarmanSource struct {
	PhysicalSource
	S3       S3Server
	Location string // s3://bucket/prefix
	Server   string
}

// NewBarmanSource starts such a cluster with a table t(id, at), without a
// base backup yet. The bucket must exist.
func NewBarmanSource(t *testing.T, s3 S3Server, bucket string) *BarmanSource {
	t.Helper()
	runAs, err := local.LookupRunAs(local.DefaultRunAs)
	must(t, err)
	dir, err := os.MkdirTemp("", "drill-barman-")
	must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	port, err := local.FreePort()
	must(t, err)
	c := &local.Cluster{Dir: filepath.Join(dir, "pg"), Bin: Binaries(t), RunAs: runAs, Port: port}
	b := &BarmanSource{PhysicalSource: PhysicalSource{Dir: dir, Cluster: c, runAs: runAs}, S3: s3,
		Location: "s3://" + bucket + "/barman", Server: "orders"}
	c.Settings = map[string]string{
		"wal_level":       "replica",
		"archive_mode":    "on",
		"archive_command": "'barman-cloud-wal-archive --endpoint-url " + s3.URL + " " + b.Location + " " + b.Server + " %p'",
		"fsync":           "off",
	}
	ctx := context.Background()
	must(t, c.Init(ctx))
	// The server's HOME is its directory: the archive command finds its
	// credentials there, as a production server's would in ~/.aws.
	aws := filepath.Join(c.Dir, ".aws")
	must(t, os.Mkdir(aws, 0o755))
	must(t, os.WriteFile(filepath.Join(aws, "credentials"), []byte("[default]\naws_access_key_id = test\naws_secret_access_key = test\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(aws, "config"), []byte("[default]\nregion = eu-west-1\n"), 0o644))
	must(t, c.StartAttached(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background(), "immediate") })
	b.Exec(t, "create table t (id int primary key, at timestamptz not null default clock_timestamp())")
	return b
}

// Backup takes a base backup with barman-cloud-backup as the postgres user.
func (b *BarmanSource) Backup(t testing.TB) {
	t.Helper()
	cmd := b.runAs.Command(context.Background(), b.Cluster.Dir, "barman-cloud-backup", "--endpoint-url", b.S3.URL,
		"-h", b.Cluster.SocketDir(), "-p", fmt.Sprint(b.Cluster.Port), "-U", "postgres", "--immediate-checkpoint", b.Location, b.Server)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("barman-cloud-backup: %v: %s", err, out)
	}
}
