package pgdump

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"drill/drills"
	"drill/verify"
)

// contents is what a dump holds, by the table's OID (archive formats) or
// name (plain SQL): the tables it creates and those whose rows it holds.
type contents struct {
	tableOIDs, dataOIDs   map[uint32]bool
	tableNames, dataNames map[verify.Table]bool
}

func newContents() *contents {
	return &contents{tableOIDs: map[uint32]bool{}, dataOIDs: map[uint32]bool{},
		tableNames: map[verify.Table]bool{}, dataNames: map[verify.Table]bool{}}
}

func (c *contents) has(oid uint32, t verify.Table) bool { return c.tableOIDs[oid] || c.tableNames[t] }
func (c *contents) hasData(oid uint32, t verify.Table) bool {
	return c.dataOIDs[oid] || c.dataNames[t]
}

// tocLine matches the entries of pg_restore --list that create a table
// (catalog pg_class, 1259) or hold its rows.
var tocLine = regexp.MustCompile(`^\d+; (\d+) (\d+) (TABLE DATA|TABLE) `)

// listContents runs pg_restore --list on an archive (a file or a
// directory holding toc.dat).
func listContents(ctx context.Context, pgRestore, path string) (*contents, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgRestore, "--list", path)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 8 << 10}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_restore --list of the new dump: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	c := newContents()
	for _, line := range strings.Split(string(out), "\n") {
		m := tocLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		catalog, _ := strconv.ParseUint(m[1], 10, 32)
		oid, err := strconv.ParseUint(m[2], 10, 32)
		if err != nil {
			continue
		}
		switch {
		case m[3] == "TABLE" && catalog == 1259:
			c.tableOIDs[uint32(oid)] = true
		case m[3] == "TABLE DATA":
			c.dataOIDs[uint32(oid)] = true
		}
	}
	return c, nil
}

// prefixContents lists a custom or tar archive from its first bytes: a
// custom archive written to a pipe starts with its whole table of
// contents, a tar archive with toc.dat.
func prefixContents(ctx context.Context, pgRestore, format string, prefix []byte) (*contents, error) {
	dir, err := os.MkdirTemp("", "drill-toc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if format == drills.FormatCustom {
		p := filepath.Join(dir, "head.dump")
		if err := os.WriteFile(p, prefix, 0o600); err != nil {
			return nil, err
		}
		return listContents(ctx, pgRestore, p)
	}
	tr := tar.NewReader(bytes.NewReader(prefix))
	h, err := tr.Next()
	if err != nil || h.Name != "toc.dat" {
		return nil, errors.New("the tar archive does not start with toc.dat")
	}
	f, err := os.OpenFile(filepath.Join(dir, "toc.dat"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, tr); err != nil {
		f.Close()
		return nil, fmt.Errorf("read toc.dat of the tar archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return listContents(ctx, pgRestore, dir)
}

// plainScanner reads pg_dump's plain SQL as it streams past and notes the
// tables it creates (CREATE TABLE) and fills (COPY, INSERT INTO). Rows
// inside COPY data are skipped, so a value cannot pose as a statement.
type plainScanner struct {
	c      *contents
	line   []byte // the start of the current line
	inCopy bool
}

const scanLineMax = 16 << 10

func (s *plainScanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := scanLineMax - len(s.line); room > 0 {
			s.line = append(s.line, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			break
		}
		s.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (s *plainScanner) endLine() {
	line := string(s.line)
	s.line = s.line[:0]
	if s.inCopy {
		s.inCopy = line != `\.`
		return
	}
	for _, st := range []struct {
		prefix string
		data   bool
	}{{"CREATE TABLE ", false}, {"CREATE UNLOGGED TABLE ", false}, {"COPY ", true}, {"INSERT INTO ", true}} {
		rest, ok := strings.CutPrefix(line, st.prefix)
		if !ok {
			continue
		}
		t, err := verify.ParseTable(firstName(rest))
		if err != nil {
			return
		}
		if st.data {
			s.c.dataNames[t] = true
			s.inCopy = st.prefix == "COPY " && strings.HasSuffix(line, " FROM stdin;")
		} else {
			s.c.tableNames[t] = true
		}
		return
	}
}

// firstName returns the leading qualified name of s: up to the first space
// or parenthesis outside double quotes.
func firstName(s string) string {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case !quoted && (s[i] == ' ' || s[i] == '('):
			return s[:i]
		}
	}
	return s
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
