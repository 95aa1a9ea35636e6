package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// dumpComplete is the comment pg_dump writes at the end of a complete
// plain-SQL dump.
const dumpComplete = "-- PostgreSQL database dump complete"

// ErrTruncated means a backup ends before its end: a plain dump without
// pg_dump's completion trailer, an archive whose table data was not all
// restored.
var ErrTruncated = errors.New("backup is truncated")

// ErrUnsafeBackup means a backup holds something drill does not run: a psql
// meta-command, or a second database.
var ErrUnsafeBackup = errors.New("backup holds a command drill does not run")

// extension is a CREATE EXTENSION of a backup.
type extension struct{ Name, Schema string }

// plainFacts is what a first look at a plain dump tells: the database a
// `pg_dump -C` dump creates, and the extensions it creates.
type plainFacts struct {
	Database   string
	Extensions []extension
}

// preScanLimit bounds how much of a plain dump the first look reads: the
// statements before the first table data, where pg_dump puts extensions.
const preScanLimit = 256 << 20

// scanPlain reads the start of a plain dump, up to its first table data.
func scanPlain(r io.Reader) (plainFacts, error) {
	var f plainFacts
	cr := &countingReader{r: r}
	sc := newSQLScanner(cr)
	for cr.n < preScanLimit {
		ev, err := sc.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errTruncated) {
			return f, nil // the restore itself tells a truncated dump
		}
		if err != nil {
			return f, err
		}
		if ev.kind != evStatement {
			continue
		}
		t := sqlTokens(ev.text, 16)
		switch {
		case words(t, "create", "database") && len(t) > 2 && f.Database == "":
			f.Database = t[2]
		case words(t, "create", "extension"):
			f.Extensions = append(f.Extensions, parseCreateExtension(t))
		case words(t, "copy"), words(t, "insert"):
			return f, nil
		}
	}
	return f, nil
}

// parseCreateExtension reads CREATE EXTENSION [IF NOT EXISTS] name
// [WITH] [SCHEMA schema] from the tokens of the statement.
func parseCreateExtension(t []string) extension {
	t = t[2:]
	if words(t, "if", "not", "exists") {
		t = t[3:]
	}
	var e extension
	if len(t) > 0 {
		e.Name = t[0]
	}
	if i := slices.Index(t, "schema"); i > 0 && i+1 < len(t) {
		e.Schema = t[i+1]
	}
	return e
}

// copyFromStdin reports whether a COPY statement reads its data from the
// script that follows it: COPY target FROM STDIN, where the first FROM or
// TO outside parentheses decides (COPY (SELECT ... FROM stdin) TO STDOUT
// reads nothing).
func copyFromStdin(t []string) bool {
	if !words(t, "copy") {
		return false
	}
	depth := 0
	for i := 1; i < len(t); i++ {
		switch t[i] {
		case "(":
			depth++
		case ")":
			depth--
		case "from", "to":
			if depth == 0 {
				return t[i] == "from" && i+1 < len(t) && t[i+1] == "stdin"
			}
		}
	}
	return false
}

// words reports whether the tokens start with want.
func words(t []string, want ...string) bool {
	if len(t) < len(want) {
		return false
	}
	for i, w := range want {
		if t[i] != w {
			return false
		}
	}
	return true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// plainFilter turns a plain-SQL dump into the script psql runs:
//
//   - it starts with \restrict and a key nobody else knows, so psql refuses
//     every meta-command that follows; the filter itself stops at the first
//     meta-command other than pg_dump's own \restrict, \unrestrict and (for
//     a `pg_dump -C` dump) its one \connect;
//   - it leaves out what `pg_restore --no-owner --no-privileges
//     --no-publications --no-subscriptions --no-security-labels
//     --no-tablespaces` leaves out, and the database-level statements of a
//     -C dump, which the restore role has no right to run;
//   - it leaves out the extensions drill made beforehand (see
//     plainFacts) or will not make, and their comments;
//   - it fails with ErrTruncated when the dump ends before pg_dump's
//     completion trailer.
type plainFilter struct {
	key        string
	connect    bool            // a -C dump: drop everything up to its \connect
	premade    map[string]bool // extensions made beforehand
	skipped    map[string]bool // extensions not made at all
	schemas    map[string]bool // schemas made beforehand
	complete   bool
	connected  string // the \connect line of a -C dump, once seen
	inPreamble bool
}

func (f *plainFilter) run(in io.Reader, out io.Writer) error {
	w := bufio.NewWriterSize(out, 256*1024)
	fmt.Fprintf(w, "\\restrict %s\n", f.key)
	f.inPreamble = f.connect
	sc := newSQLScanner(in)
	for {
		ev, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errTruncated) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %v (line %d)", ErrTruncated, err, sc.line)
		}
		if errors.Is(err, errNUL) {
			return fmt.Errorf("%w: backup line %d: %v", ErrUnsafeBackup, sc.line, err)
		}
		if err != nil {
			return fmt.Errorf("read backup at line %d: %w", sc.line, err)
		}
		var text []byte
		switch ev.kind {
		case evText:
			if strings.HasPrefix(strings.TrimSpace(string(ev.text)), dumpComplete) {
				f.complete = true
			}
			text = ev.text
		case evData:
			text = ev.text
		case evMeta:
			if err := f.meta(ev); err != nil {
				return err
			}
			text = newlines(ev.text)
		case evVar:
			return fmt.Errorf("%w: backup line %d: psql variable reference %.20q (pg_dump writes none; psql would substitute text there)", ErrUnsafeBackup, ev.line, ev.text)
		case evStatement:
			t := sqlTokens(ev.text, 0)
			if f.inPreamble {
				text = newlines(ev.text)
				break
			}
			text = f.statement(t, ev.text)
			if copyFromStdin(t) {
				sc.startCopy()
			}
		}
		if _, err := w.Write(text); err != nil {
			return writeErr{err}
		}
	}
	if f.inPreamble {
		return fmt.Errorf("%w: the dump creates a database but never connects to it", ErrTruncated)
	}
	if !f.complete {
		return fmt.Errorf("%w: it ends without pg_dump's completion trailer (%q)", ErrTruncated, dumpComplete)
	}
	if err := w.Flush(); err != nil {
		return writeErr{err}
	}
	return nil
}

// writeErr is a failure to hand the script to psql: psql has stopped, and
// its own error tells why.
type writeErr struct{ error }

func (f *plainFilter) meta(ev sqlEvent) error {
	cmd := strings.Fields(strings.TrimSpace(string(ev.text)))
	name := ""
	if len(cmd) > 0 {
		name = cmd[0]
	}
	switch {
	case name == `\restrict` || name == `\unrestrict`:
		return nil // pg_dump's own; drill's key is already in force
	case (name == `\connect` || name == `\c`) && f.inPreamble && f.connected == "":
		f.connected, f.inPreamble = strings.TrimSpace(string(ev.text)), false
		return nil
	case (name == `\connect` || name == `\c`) && f.connected != "" && strings.TrimSpace(string(ev.text)) == f.connected:
		return nil // pg_dump connects again (after ALTER DATABASE ... SET): the same database
	case name == `\connect` || name == `\c`:
		return fmt.Errorf("%w: backup line %d: %s: the backup connects to another database (drill restores one database: a pg_dump, not a pg_dumpall)", ErrUnsafeBackup, ev.line, name)
	}
	if len(name) > 20 {
		name = name[:20] + "…"
	}
	return fmt.Errorf("%w: backup line %d: psql meta-command %s (drill runs no psql command from a backup)", ErrUnsafeBackup, ev.line, name)
}

// newlines returns as many newlines as text has: what is left out of the
// script keeps its lines, so psql's line numbers are the backup's (plus
// one, for the \restrict line).
func newlines(text []byte) []byte { return bytes.Repeat([]byte("\n"), bytes.Count(text, []byte("\n"))) }

// statement returns what to send for a statement with tokens t: the
// statement, a replacement, or nothing (as newlines).
func (f *plainFilter) statement(t []string, text []byte) []byte {
	n := len(t)
	if n > 0 && t[n-1] == ";" {
		t, n = t[:n-1], n-1
	}
	drop := func() []byte { return newlines(text) }
	switch {
	case words(t, "alter") && n >= 3 && t[n-3] == "owner" && t[n-2] == "to":
		return drop()
	case words(t, "grant"), words(t, "revoke"), words(t, "alter", "default", "privileges"):
		return drop()
	case words(t, "set", "session", "authorization"), words(t, "reset", "session", "authorization"),
		words(t, "set", "role"), words(t, "reset", "role"):
		return drop()
	case words(t, "security", "label"):
		return drop()
	case n >= 2 && (t[0] == "create" || t[0] == "alter" || t[0] == "drop") && (t[1] == "publication" || t[1] == "subscription"),
		words(t, "comment", "on", "publication"), words(t, "comment", "on", "subscription"):
		return drop()
	case words(t, "alter", "database"), words(t, "comment", "on", "database"), words(t, "create", "database"), words(t, "alter", "role"):
		return drop()
	case words(t, "comment", "on", "extension"):
		return drop()
	case words(t, "create", "extension"):
		if e := parseCreateExtension(t); f.premade[e.Name] || f.skipped[e.Name] {
			return drop()
		}
	case words(t, "set", "default_tablespace"):
		return append(newlines(text), "SET default_tablespace = '';"...)
	case words(t, "create", "schema") && n == 3 && f.schemas[t[2]]:
		return append(newlines(text), "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{t[2]}.Sanitize()+";"...)
	}
	return text
}

// isWriteErr reports whether err is a failure to feed psql.
func isWriteErr(err error) bool {
	var w writeErr
	return errors.As(err, &w)
}
