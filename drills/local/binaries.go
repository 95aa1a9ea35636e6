package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Binaries is a directory holding the PostgreSQL server and client programs
// (initdb, pg_ctl, postgres, pg_restore, psql).
type Binaries struct {
	Dir string
}

// ErrNoBinaries is returned by FindBinaries when no PostgreSQL installation is found.
var ErrNoBinaries = errors.New("PostgreSQL binaries (initdb, pg_ctl, pg_restore) not found")

// searchDirs are the usual places of PostgreSQL installations, newest major
// version first within each pattern.
var searchDirs = []string{
	"/usr/lib/postgresql/*/bin",
	"/usr/pgsql-*/bin",
	"/opt/homebrew/opt/postgresql@*/bin",
	"/usr/local/opt/postgresql@*/bin",
	"/usr/local/pgsql/bin",
	"/opt/homebrew/bin",
	"/usr/local/bin",
}

// FindBinaries locates a PostgreSQL installation: $DRILL_PG_BIN when set,
// else the newest of the usual install locations, else the directory of
// pg_ctl on $PATH. The newest version matters: pg_restore reads archives
// of its own and older versions only.
func FindBinaries() (Binaries, error) {
	if dir := os.Getenv("DRILL_PG_BIN"); dir != "" {
		b := Binaries{Dir: dir}
		if err := b.check(); err != nil {
			return Binaries{}, fmt.Errorf("DRILL_PG_BIN=%s: %w", dir, err)
		}
		return b, nil
	}
	for _, pattern := range searchDirs {
		matches, _ := filepath.Glob(pattern)
		sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
		for _, dir := range matches {
			if b := (Binaries{Dir: dir}); b.check() == nil {
				return b, nil
			}
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if b := (Binaries{Dir: filepath.Dir(p)}); b.check() == nil {
			return b, nil
		}
	}
	return Binaries{}, fmt.Errorf("%w: install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or set DRILL_PG_BIN to its bin directory", ErrNoBinaries)
}

// Path returns the full path of program name.
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

func (b Binaries) check() error {
	for _, name := range []string{"initdb", "pg_ctl", "postgres", "pg_restore", "psql"} {
		fi, err := os.Stat(b.Path(name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s missing in %s", name, b.Dir)
		}
	}
	return nil
}

// versionOf extracts the major version from a path like /usr/lib/postgresql/15/bin.
func versionOf(path string) int {
	best := 0
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r < '0' || r > '9' }) {
		if n, err := strconv.Atoi(part); err == nil && n > best && n < 1000 {
			best = n
		}
	}
	return best
}

// FindBinariesFor locates the binaries of PostgreSQL major version major:
// $DRILL_PG_BIN when it holds that version, else the usual install
// locations, else pg_ctl on $PATH. A physical backup runs only on the
// version that took it.
func FindBinariesFor(major int) (Binaries, error) {
	var dirs []string
	if dir := os.Getenv("DRILL_PG_BIN"); dir != "" {
		dirs = append(dirs, dir)
	}
	for _, pattern := range searchDirs {
		matches, _ := filepath.Glob(pattern)
		dirs = append(dirs, matches...)
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	var seen []string
	for _, dir := range dirs {
		b := Binaries{Dir: dir}
		if b.check() != nil {
			continue
		}
		v := b.version()
		if m, _, _ := strings.Cut(v, "."); m == strconv.Itoa(major) {
			return b, nil
		}
		seen = append(seen, v+" in "+dir)
	}
	found := "none found"
	if len(seen) > 0 {
		found = "found " + strings.Join(seen, ", ")
	}
	return Binaries{}, fmt.Errorf("%w: the backup was taken by PostgreSQL %d and restores only on that major version (%s); install it (Debian/Ubuntu: apt-get install postgresql-%d) or set DRILL_PG_BIN to its bin directory",
		ErrNoBinaries, major, found, major)
}
