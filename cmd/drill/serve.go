package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"drill/drills"
	"drill/drills/evidence"
	"drill/jobs"
	"drill/web"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"
	"riverqueue.com/riverui"
)

type serveOpts struct {
	workerOpts
	addr       string
	noWorker   bool
	userHeader string
}

func newServeCommand(g *globalOpts) *cobra.Command {
	o := &serveOpts{workerOpts: workerOpts{globalOpts: g}}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the web page (drill history, schedule, run details, Run now) and run the workers",
		Long: `Serve the web page, the JSON API, /healthz, /metrics and river's UI at
/riverui/, and — unless --no-worker — run the workers too, so one process is
the whole system.

It binds to loopback by default. Binding to any other address requires
DRILL_WEB_TOKEN: every request must then carry it as a bearer token or as the
password of basic auth (any user name). /healthz is always open.

Evidence bundles downloaded from the page are signed with DRILL_EVIDENCE_KEY
when it is set.`,
		Example: `  drill serve
  DRILL_WEB_TOKEN=$(openssl rand -hex 24) drill serve --addr 0.0.0.0:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(cmd.Context(), o) },
	}
	cmd.Flags().StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	cmd.Flags().BoolVar(&o.noWorker, "no-worker", false, "serve only; run the workers elsewhere (drill worker)")
	cmd.Flags().StringVar(&o.userHeader, "trusted-user-header", "", "behind an authenticating proxy: the header naming the signed-in user (e.g. X-Forwarded-User), recorded with runs started from the page; off by default")
	o.addFlags(cmd)
	return cmd
}

func runServe(ctx context.Context, o *serveOpts) error {
	if err := o.validate(); err != nil {
		return err
	}
	token, key, err := o.access()
	if err != nil {
		return err
	}
	s, err := o.open(ctx, sessionOpts{needConfig: true})
	if err != nil {
		return err
	}
	defer s.close()
	jobs.Version = fullVersion()
	client, err := o.riverClient(ctx, s)
	if err != nil {
		return err
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{Endpoints: riverui.NewEndpoints(client, nil), Logger: s.log.With("component", "riverui"), Prefix: "/riverui"})
	if err != nil {
		return withCode(exitUnavailable, fmt.Errorf("river UI: %w", err))
	}
	if err := ui.Start(ctx); err != nil {
		return withCode(exitUnavailable, fmt.Errorf("river UI: %w", err))
	}
	srv := &web.Server{Store: s.store, Live: s.live, Logger: s.log.With("component", "web"), Token: token, EvidenceKey: key, TrustedUserHeader: o.userHeader,
		RiverUI: ui, Version: version,
		Enqueue: func(ctx context.Context, spec *drills.Spec, trigger drills.Trigger, who string) (*drills.Run, error) {
			return jobs.Enqueue(ctx, s.store, client, spec, drills.PolicyOf(spec, s.live.Get().Path, version), trigger, who)
		}}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return withCode(exitUnavailable, fmt.Errorf("listen on %s: %w", o.addr, err))
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	if !o.noWorker {
		if err := client.Start(context.WithoutCancel(ctx)); err != nil {
			_ = httpSrv.Close()
			return withCode(exitUnavailable, fmt.Errorf("start workers: %w", err))
		}
	}
	url := "http://" + ln.Addr().String() + "/"
	s.log.Info("serving", "url", url, "workers", !o.noWorker, "auth", token != "")
	fmt.Fprintf(os.Stderr, "drill: open %s in a browser (Ctrl-C to stop)\n", url)
	var applied func(*drills.Config)
	if !o.noWorker {
		applied = reschedule(client, &o.workerOpts, s.log)
	}
	go watchConfig(ctx, s.live, s.log, applied)

	select {
	case <-ctx.Done():
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			return withCode(exitUnavailable, err)
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(shutCtx)
	if o.noWorker {
		return nil
	}
	return stopWorkers(client, o.grace, s.log)
}

// access checks --addr and reads what guards the page: DRILL_WEB_TOKEN,
// required off loopback, and DRILL_EVIDENCE_KEY, which signs the evidence
// bundles (nil when not set).
func (o *serveOpts) access() (string, ed25519.PrivateKey, error) {
	token := os.Getenv("DRILL_WEB_TOKEN")
	if _, port, err := net.SplitHostPort(o.addr); err != nil || !validPort(port) {
		return "", nil, withCode(exitUsage, fmt.Errorf("--addr %q: want host:port, such as 127.0.0.1:8080", o.addr))
	}
	if !web.IsLoopback(o.addr) && token == "" {
		return "", nil, withCode(exitUsage, fmt.Errorf("refusing to serve on %s without authentication: set DRILL_WEB_TOKEN to a long random secret (e.g. export DRILL_WEB_TOKEN=$(openssl rand -hex 24)), or bind to 127.0.0.1", o.addr))
	}
	var key ed25519.PrivateKey
	if p := os.Getenv("DRILL_EVIDENCE_KEY"); p != "" {
		var err error
		if key, err = evidence.LoadPrivateKey(p); err != nil {
			return "", nil, withCode(exitUsage, fmt.Errorf("DRILL_EVIDENCE_KEY: %w", err))
		}
	}
	return token, key, nil
}

// riverClient is the river client the page enqueues drills with: with
// --no-worker one that only inserts jobs, else one whose workers run them
// too (and finish runs, which needs the sealing key).
func (o *serveOpts) riverClient(ctx context.Context, s *session) (*river.Client[pgx.Tx], error) {
	var client *river.Client[pgx.Tx]
	var err error
	if o.noWorker {
		client, err = jobs.NewInsertClient(s.store.Pool)
	} else {
		if err := requireSealingKey(ctx, s.store); err != nil { // its workers finish runs
			return nil, err
		}
		client, err = jobs.NewWorkerClient(o.jobsConfig(s))
	}
	if err != nil {
		return nil, withCode(exitUnavailable, err)
	}
	return client, nil
}

// validPort reports whether p is a port number (0 picks a free one).
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}
