// Command drill restores backups into throwaway instances, verifies them,
// records RTO and RPO, and tears the instances down.
package main

import (
	"context"
	"drill/drills"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes, documented in `drill --help`.
const (
	exitPassed      = 0
	exitFailed      = 1   // the drill failed: a check, an objective, a restore error, no backup
	exitUsage       = 2   // bad flags, arguments or config file
	exitUnavailable = 3   // the drill could not be carried out (state database unreachable, no PostgreSQL binaries)
	exitInterrupted = 130 // interrupted by SIGINT/SIGTERM; the instance was torn down
)

const exitCodesHelp = `Exit codes:
  0    success (for run: the drill passed)
  1    the drill failed (a check, an objective, a restore error, no backup found)
  2    usage or config error (FILE:LINE: what is wrong)
  3    the drill could not be carried out (state database unreachable, PostgreSQL binaries missing)
  130  interrupted (Ctrl-C or SIGTERM); the instance was torn down`

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// version and revision are set at build time with -ldflags "-X
// main.version=… -X main.revision=…" (make build does).
var version, revision = "dev", ""

// fullVersion is the version with the VCS revision, as runs record it.
func fullVersion() string { return drills.BuildVersion(version, revision) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(execute(ctx, os.Args[1:]))
}

func execute(ctx context.Context, args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitPassed
	}
	var ee *exitError
	code := exitUsage // cobra's own errors are about flags and arguments
	if errors.As(err, &ee) {
		code = ee.code
	}
	if ee == nil || ee.err.Error() != "" {
		fmt.Fprintln(os.Stderr, "drill: "+err.Error())
	}
	return code
}
