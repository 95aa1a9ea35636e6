package local

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"drill/drills"
)

func numCPU() int { return runtime.NumCPU() }

// version returns the major version of the binaries, from pg_restore --version.
func (b Binaries) version() string {
	out, err := exec.Command(b.Path("pg_restore"), "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// RestoreArchive loads the archive at path (of format, see drills.Format*)
// into the database dsn names, with pg_restore or psql from bin.
func RestoreArchive(ctx context.Context, bin Binaries, dsn, format, path string, jobs int, progress drills.Progress) error {
	return restoreCmd{bin: bin, dsn: dsn, jobs: jobs, progress: progress}.run(ctx, format, path)
}

// restoreCmd loads one archive into a database.
type restoreCmd struct {
	bin      Binaries
	dsn      string
	jobs     int
	progress drills.Progress
}

func (r restoreCmd) run(ctx context.Context, format, path string) error {
	switch format {
	case drills.FormatCustom, drills.FormatDirectory, drills.FormatTar:
		args := []string{"--dbname", r.dsn, "--no-owner", "--no-privileges", "--verbose"}
		if format != drills.FormatTar && r.jobs > 1 { // pg_restore cannot run tar archives in parallel
			args = append(args, "--jobs", strconv.Itoa(r.jobs))
		}
		r.progress.Say(fmt.Sprintf("pg_restore (%s format, %d jobs)", format, max(r.jobs, 1)))
		return r.exec(ctx, exec.CommandContext(ctx, r.bin.Path("pg_restore"), append(args, path)...), nil)
	case drills.FormatPlain, drills.FormatPlainGzip:
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var in io.Reader = f
		if format == drills.FormatPlainGzip {
			gz, err := gzip.NewReader(f)
			if err != nil {
				return fmt.Errorf("restore: %s is not a valid gzip file: %w", path, err)
			}
			defer gz.Close()
			in = gz
		}
		r.progress.Say("psql (plain SQL)")
		cmd := exec.CommandContext(ctx, r.bin.Path("psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1",
			"--dbname", r.dsn, "--file", "-")
		return r.exec(ctx, cmd, in)
	default:
		return fmt.Errorf("restore: unsupported backup format %q", format)
	}
}

// exec runs a restore program, turning its verbose output into progress
// and its errors into the returned error.
func (r restoreCmd) exec(ctx context.Context, cmd *exec.Cmd, stdin io.Reader) error {
	// Statements of a restore may run as long as the drill has left.
	timeout := 24 * time.Hour
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Second)
	}
	cmd.Env = append(os.Environ(), "PGTZ=UTC", "PGAPPNAME=drill",
		fmt.Sprintf("PGOPTIONS=-c statement_timeout=%d", timeout.Milliseconds()))
	cmd.Stdin = stdin
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	// A gzip stream fed to psql is read in another goroutine by exec;
	// WaitDelay keeps a cancelled restore from hanging on it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var out restoreOutput
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); out.read(stderr, r.progress) }()
	wg.Wait()
	err = cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("restore failed (%s): %s", err, out.summary())
	}
	return nil
}

// restoreOutput keeps the error lines and the last lines of a restore
// program's output.
type restoreOutput struct {
	errors []string
	nerr   int
	last   []string
}

func (o *restoreOutput) read(r io.Reader, progress drills.Progress) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var lastSaid time.Time
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "error:") || strings.HasPrefix(line, "ERROR:") || strings.Contains(line, "FATAL:"):
			o.nerr++
			if len(o.errors) < 5 {
				o.errors = append(o.errors, line)
			}
		case strings.Contains(line, "processing data for table"), strings.Contains(line, "creating INDEX"):
			if time.Since(lastSaid) > 500*time.Millisecond {
				progress.Say(strings.TrimPrefix(line, "pg_restore: "))
				lastSaid = time.Now()
			}
		}
		o.last = append(o.last, line)
		if len(o.last) > 5 {
			o.last = o.last[1:]
		}
	}
}

func (o *restoreOutput) summary() string {
	if len(o.errors) == 0 {
		return strings.Join(o.last, "; ")
	}
	s := strings.Join(o.errors, "; ")
	if o.nerr > len(o.errors) {
		s += fmt.Sprintf("; and %d more errors", o.nerr-len(o.errors))
	}
	return s
}
