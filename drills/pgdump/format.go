package pgdump

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"drill/drills"
)

// headerSize is how much of a backup is read to tell its format (and, for
// S3, to read the archive header).
const headerSize = 1 << 20

// ErrUnknownFormat means a file is not a pg_dump archive this tool reads.
var ErrUnknownFormat = errors.New("not a pg_dump archive (custom, tar, directory, plain SQL or gzipped plain SQL)")

// detectFormat tells the format from the first bytes of a file named name.
// Text counts as plain SQL when the name ends in .sql or the text starts
// like SQL (a comment, SET, CREATE, BEGIN or a psql command), as pg_dump's
// output does.
func detectFormat(name string, head []byte) (string, error) {
	switch {
	case len(head) == 0:
		return "", fmt.Errorf("empty file: %w", ErrUnknownFormat)
	case bytes.HasPrefix(head, []byte("PGDMP")):
		return drills.FormatCustom, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return drills.FormatTar, nil
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return drills.FormatPlainGzip, nil
	case isText(head) && (strings.HasSuffix(strings.ToLower(name), ".sql") || looksLikeSQL(head)):
		return drills.FormatPlain, nil
	}
	return "", ErrUnknownFormat
}

var sqlStarts = []string{"--", "/*", "set ", "create ", "begin", "start transaction", "\\", "select ", "insert ", "copy "}

func looksLikeSQL(head []byte) bool {
	t := strings.ToLower(strings.TrimLeft(string(head[:min(len(head), 64)]), " \t\r\n\ufeff"))
	for _, p := range sqlStarts {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// isText reports whether b looks like SQL text: no NUL bytes and valid
// UTF-8 (allowing a character cut at the end).
func isText(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	for i := 0; i < 4 && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	return utf8.Valid(b)
}

// readHead reads up to n bytes from the start of path.
func readHead(path string, n int) ([]byte, error) {
	f, err := drills.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:m], nil
}

// archiveHeader is what pg_restore --list tells about an archive.
type archiveHeader struct {
	CreatedAt time.Time
	Database  string
}

// readArchiveHeader runs pg_restore --list on an archive (custom, tar or
// directory format) and reads its creation time and database name.
//
// The archive stores the wall-clock time of the machine that ran pg_dump,
// without a zone; pg_restore and this function read it in this machine's
// local time zone, as PostgreSQL's own tools do.
func readArchiveHeader(ctx context.Context, pgRestore, path string) (archiveHeader, error) {
	if pgRestore == "" {
		pgRestore = "pg_restore"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgRestore, "--list", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return archiveHeader{}, err
	}
	if err := cmd.Start(); err != nil {
		return archiveHeader{}, err
	}
	h := parseListHeader(out)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil && h.CreatedAt.IsZero() {
		if msg := newerArchive(pgRestore, stderr.String()); msg != "" {
			return archiveHeader{}, fmt.Errorf("%s: %s", filepath.Base(path), msg)
		}
		return archiveHeader{}, fmt.Errorf("pg_restore --list %s: %v: %s", filepath.Base(path), err, strings.TrimSpace(stderr.String()))
	}
	if h.CreatedAt.IsZero() {
		return h, fmt.Errorf("pg_restore --list %s: no creation time in the archive header", filepath.Base(path))
	}
	return h, nil
}

// parseListHeader reads the comment header of pg_restore --list output:
//
//	;     Archive created at 2026-11-27 03:00:01 UTC
//	;     dbname: orders
func parseListHeader(r io.Reader) archiveHeader {
	var h archiveHeader
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), ";"))
		if !strings.HasPrefix(sc.Text(), ";") {
			break // end of the header: TOC entries follow
		}
		switch {
		case strings.HasPrefix(line, "Archive created at "):
			v := strings.TrimPrefix(line, "Archive created at ")
			if len(v) >= 19 {
				if t, err := time.ParseInLocation("2006-01-02 15:04:05", v[:19], time.Local); err == nil {
					h.CreatedAt = t
				}
			}
		case strings.HasPrefix(line, "dbname: "):
			h.Database = strings.TrimPrefix(line, "dbname: ")
		}
	}
	return h
}

var unsupportedArchive = regexp.MustCompile(`unsupported version \((\d+)\.(\d+)\) in file header`)

// archiveVersions maps an archive format version to the first PostgreSQL
// release whose pg_dump writes it.
var archiveVersions = map[string]int{"1.14": 14, "1.15": 16, "1.16": 17}

// NewerArchive is in the error of a run whose pg_dump archive this host's
// pg_restore is too old to read: the drill cannot be carried out here.
const NewerArchive = "newer than the pg_restore here reads"

// newerArchive explains pg_restore's "unsupported version" error: the
// archive was written by a newer pg_dump than this pg_restore reads.
func newerArchive(pgRestore, stderr string) string {
	m := unsupportedArchive.FindStringSubmatch(stderr)
	if m == nil {
		return ""
	}
	version := m[1] + "." + m[2]
	need := "a newer PostgreSQL"
	pkg := "a newer postgresql-client"
	if v, ok := archiveVersions[version]; ok {
		need, pkg = fmt.Sprintf("PostgreSQL %d or later", v), fmt.Sprintf("postgresql-client-%d", v)
	}
	have := ""
	if out, err := exec.Command(pgRestore, "--version").Output(); err == nil {
		have = " (this host's pg_restore: " + strings.TrimSpace(string(out)) + ")"
	}
	return fmt.Sprintf("the archive (format %s) was made by the pg_dump of %s, %s%s; install %s (Debian/Ubuntu: apt-get install %s) or set DRILL_PG_BIN to its bin directory",
		version, need, NewerArchive, have, need, pkg)
}
