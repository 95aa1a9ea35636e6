// Command fakerds serves an RDS Query API emulator backed by real
// PostgreSQL, for tests and demos:
//
//	fakerds --addr 127.0.0.1:PORT --snapshot INSTANCE=DUMPFILE [--snapshot ...] [--cluster NAME=DUMPFILE ...] [--create-delay D] [--throttle-rate F]
//
// Point the AWS SDK at it with AWS_ENDPOINT_URL_RDS=http://127.0.0.1:PORT
// (any credentials work). GET /_fakerds/instances lists restored instances
// and Aurora clusters.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"drill/drills/rds/fakerds"
)

type snapshots []string

func (s *snapshots) String() string     { return strings.Join(*s, ",") }
func (s *snapshots) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fakerds:", err)
		os.Exit(1)
	}
}

func run() error {
	var snaps, clusters snapshots
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	dir := flag.String("dir", "", "where restored instances' clusters go (default: a new temp dir)")
	delay := flag.Duration("create-delay", 5*time.Second, "how long a restore stays creating at least")
	throttle := flag.Float64("throttle-rate", 0, "fraction of requests answered with Throttling (0 to 1)")
	flag.Var(&snaps, "snapshot", "INSTANCE=DUMPFILE: a source instance with one automated snapshot holding the dump (repeatable)")
	flag.Var(&clusters, "cluster", "NAME=DUMPFILE: an Aurora PostgreSQL cluster with one automated cluster snapshot holding the dump and a point-in-time window (repeatable)")
	flag.Parse()
	if len(snaps) == 0 && len(clusters) == 0 {
		return errors.New("want at least one --snapshot INSTANCE=DUMPFILE or --cluster NAME=DUMPFILE")
	}
	if *throttle < 0 || *throttle >= 1 {
		return errors.New("--throttle-rate must be at least 0 and below 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dir == "" {
		d, err := os.MkdirTemp("", "fakerds-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := fakerds.New(*dir)
	if err != nil {
		return err
	}
	srv.CreateDelay, srv.ThrottleRate, srv.Logger = *delay, *throttle, log
	for _, s := range snaps {
		id, path, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("--snapshot %q: want INSTANCE=DUMPFILE", s)
		}
		if err := srv.AddSource(ctx, id, path); err != nil {
			return err
		}
	}
	for _, c := range clusters {
		id, path, ok := strings.Cut(c, "=")
		if !ok {
			return fmt.Errorf("--cluster %q: want NAME=DUMPFILE", c)
		}
		if err := srv.AddClusterSource(ctx, id, path); err != nil {
			return err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_fakerds/instances", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"instances": srv.Instances(), "clusters": srv.Clusters()})
	})
	mux.Handle("/", srv)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("fakerds listening on http://%s\n", ln.Addr())
	<-ctx.Done()
	_ = hs.Close()
	left, leftClusters := srv.Instances(), srv.Clusters()
	srv.Close()
	log.Info("stopped", "instances_left_at_stop", left, "clusters_left_at_stop", leftClusters)
	return nil
}
