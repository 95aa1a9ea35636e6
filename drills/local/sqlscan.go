package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// sqlScanner splits a plain-SQL script the way psql reads it: top-level
// statements (ended by a semicolon outside quotes, comments and
// parentheses), psql meta-commands (a backslash outside quotes), the lines
// between statements, and the data lines of COPY ... FROM stdin. It knows
// standard and E'...' strings, quoted identifiers, dollar quotes and nested
// comments; standard_conforming_strings is taken to be on, as pg_dump sets it.
//
// The scanner only classifies: psql itself, started with \restrict, refuses
// every meta-command, so a script the scanner misreads can make a restore
// fail but cannot run a command.
type sqlScanner struct {
	br   *bufio.Reader
	line int // number of the line last read, from 1

	buf     []byte // the statement being read
	first   int    // line where buf's statement started
	st      lexState
	tag     []byte // closing tag of the dollar quote being read
	depth   int    // nesting of block comments, or of parentheses
	escapes bool   // the single-quoted string being read is an E'' string
	paren   int

	filled  bool // buf holds more than whitespace
	copying bool // reading the data of COPY FROM stdin
	midLine bool // a copy data line is longer than the buffer
	pending []sqlEvent
}

type lexState int

const (
	lexNormal lexState = iota
	lexSingle
	lexDouble
	lexDollar
	lexComment
)

type eventKind int

const (
	// evText is whitespace and comments between statements: whole lines.
	evText eventKind = iota
	// evStatement is one statement with its semicolon (and whatever
	// whitespace and comments came before it).
	evStatement
	// evMeta is a psql meta-command: from the backslash to the line's end.
	evMeta
	// evData is copy data, up to and including the line "\.".
	evData
	// evVar is a psql variable reference (:name, :'name'): psql would
	// substitute text there.
	evVar
)

type sqlEvent struct {
	kind eventKind
	text []byte
	line int
}

// errTruncated says a script ends inside a statement, a quote or copy data.
var errTruncated = errors.New("the script ends in the middle of a statement or of COPY data")

// errNUL says a script holds a NUL byte, which no SQL text has and which
// psql reads as the end of a line.
var errNUL = errors.New("the script holds a NUL byte")

// maxStatement bounds the text of one statement held in memory.
const maxStatement = 512 << 20

func newSQLScanner(r io.Reader) *sqlScanner {
	return &sqlScanner{br: bufio.NewReaderSize(r, 256*1024)}
}

// startCopy makes the scanner read copy data up to "\." next.
func (s *sqlScanner) startCopy() { s.copying = true }

// next returns the next event, or io.EOF at a clean end of the script, or
// errTruncated when the script ends inside something.
func (s *sqlScanner) next() (sqlEvent, error) {
	for {
		if len(s.pending) > 0 {
			ev := s.pending[0]
			s.pending = s.pending[1:]
			return ev, nil
		}
		if s.copying {
			return s.copyData()
		}
		line, err := s.readLine()
		if len(line) == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				if s.st != lexNormal || s.filled {
					return sqlEvent{}, errTruncated
				}
				return sqlEvent{}, io.EOF
			}
			return sqlEvent{}, err
		}
		s.line++
		if bytes.IndexByte(line, 0) >= 0 {
			return sqlEvent{}, errNUL
		}
		if len(s.buf)+len(line) > maxStatement {
			return sqlEvent{}, fmt.Errorf("a statement longer than %d MiB starts at line %d", maxStatement>>20, s.first)
		}
		// psql ends a line at a carriage return too: a line with one
		// inside is read character by character.
		innerCR := bytes.IndexByte(bytes.TrimRight(line, "\r\n"), '\r') >= 0
		if s.st == lexNormal && !s.filled && !innerCR {
			t := bytes.TrimLeft(line, " \t")
			switch {
			case bytes.HasPrefix(t, []byte(`\`)):
				text := append(append([]byte{}, s.buf...), line...)
				s.buf = s.buf[:0]
				return sqlEvent{kind: evMeta, text: text, line: s.line}, nil
			case bytes.HasPrefix(t, []byte("--")) || len(bytes.TrimSpace(t)) == 0:
				text := append(append([]byte{}, s.buf...), line...)
				s.buf = s.buf[:0]
				return sqlEvent{kind: evText, text: text, line: s.line}, nil
			}
		}
		s.scan(line)
		if err != nil && !errors.Is(err, io.EOF) {
			return sqlEvent{}, err
		}
	}
}

// readLine reads one line with its newline (none at the end of input).
func (s *sqlScanner) readLine() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return append([]byte(nil), line...), err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = s.br.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

// copyData returns copy data: a buffer's worth of lines, ending after "\.".
func (s *sqlScanner) copyData() (sqlEvent, error) {
	var out []byte
	for len(out) < 128*1024 {
		line, err := s.br.ReadSlice('\n')
		full := err == nil || (errors.Is(err, io.EOF) && len(line) > 0)
		if !s.midLine {
			s.line++
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return sqlEvent{}, errNUL
		}
		if !s.midLine && isEndOfCopy(line) {
			out = append(out, line...)
			s.copying = false
			return sqlEvent{kind: evData, text: out, line: s.line}, nil
		}
		out = append(out, line...)
		s.midLine = errors.Is(err, bufio.ErrBufferFull)
		switch {
		case s.midLine:
		case errors.Is(err, io.EOF):
			return sqlEvent{}, errTruncated
		case err != nil:
			return sqlEvent{}, err
		case !full:
			return sqlEvent{}, errTruncated
		}
	}
	return sqlEvent{kind: evData, text: out, line: s.line}, nil
}

func isEndOfCopy(line []byte) bool {
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	return string(line) == `\.`
}

func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

func isIdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// scan reads one line of statement text, queueing each statement it ends.
func (s *sqlScanner) scan(line []byte) {
	if !s.filled {
		s.first = s.line
	}
	start := len(s.buf)
	s.buf = append(s.buf, line...)
	b := s.buf
	for i := start; i < len(b); i++ {
		c := b[i]
		switch s.st {
		case lexSingle:
			switch {
			case c == '\\' && s.escapes:
				i++
			case c == '\'' && i+1 < len(b) && b[i+1] == '\'':
				i++
			case c == '\'':
				s.st = lexNormal
			}
		case lexDouble:
			if c == '"' {
				if i+1 < len(b) && b[i+1] == '"' {
					i++
				} else {
					s.st = lexNormal
				}
			}
		case lexDollar:
			if c == '$' && bytes.HasPrefix(b[i:], s.tag) {
				i += len(s.tag) - 1
				s.st = lexNormal
			}
		case lexComment:
			switch {
			case c == '*' && i+1 < len(b) && b[i+1] == '/':
				i++
				if s.depth--; s.depth == 0 {
					s.st = lexNormal
				}
			case c == '/' && i+1 < len(b) && b[i+1] == '*':
				i++
				s.depth++
			}
		case lexNormal:
			var stop bool
			if b, i, stop = s.normal(b, i); stop {
				return
			}
		}
	}
	if len(b) != len(s.buf) { // statements ended on this line: keep the rest
		s.buf = append(s.buf[:0], b...)
		s.filled = !isBlank(s.buf)
	} else {
		s.filled = s.filled || !isBlank(line)
	}
	if s.st == lexNormal && !s.filled && len(s.buf) > 0 {
		s.queue(evText, s.buf)
		s.buf = s.buf[:0]
	}
}

// normal reads the character at b[i] outside quotes and comments. It
// returns the (possibly shortened) buffer and index, and stop when the
// rest of the line is a meta-command.
func (s *sqlScanner) normal(b []byte, i int) ([]byte, int, bool) {
	c := b[i]
	prevIdent := i > 0 && isIdentChar(b[i-1])
	switch {
	case c == '\'':
		s.st = lexSingle
		s.escapes = i > 0 && (b[i-1] == 'E' || b[i-1] == 'e') && (i < 2 || !isIdentChar(b[i-2]))
	case c == '"':
		s.st = lexDouble
	case c == '$' && !prevIdent:
		if tag := dollarTag(b[i:]); tag != nil {
			s.tag = tag
			s.st = lexDollar
			i += len(tag) - 1
		}
	case c == '-' && i+1 < len(b) && b[i+1] == '-':
		// a comment to the end of the line, which a carriage return ends too
		if end := bytes.IndexAny(b[i:], "\r\n"); end >= 0 {
			i += end
		} else {
			i = len(b) - 1
		}
	case c == ':' && i+1 < len(b) && b[i+1] == ':':
		i++ // a cast
	case c == ':' && i+1 < len(b) && (b[i+1] == '\'' || b[i+1] == '"' || b[i+1] == '{' || b[i+1] == '_' || b[i+1] >= 'a' && b[i+1] <= 'z' || b[i+1] >= 'A' && b[i+1] <= 'Z'):
		// psql substitutes a variable here: :name, :'name', :"name", :{?name}
		s.queue(evStatement, b[:i])
		s.queue(evVar, b[i:])
		s.buf, s.filled = s.buf[:0], false
		return b, i, true
	case c == '/' && i+1 < len(b) && b[i+1] == '*':
		i++
		s.st, s.depth = lexComment, 1
	case c == '(':
		s.paren++
	case c == ')':
		if s.paren > 0 {
			s.paren--
		}
	case c == '\\':
		// psql reads a backslash outside quotes as a meta-command,
		// wherever it is on the line.
		s.queue(evStatement, b[:i])
		s.queue(evMeta, b[i:])
		s.buf, s.filled = s.buf[:0], false
		return b, i, true
	case c == ';' && s.paren == 0:
		s.queue(evStatement, b[:i+1])
		b = b[i+1:]
		i = -1
		s.first = s.line
	}
	return b, i, false
}

func (s *sqlScanner) queue(kind eventKind, text []byte) {
	if kind == evStatement && isBlank(text) {
		return
	}
	line := s.first // a statement is named by the line it starts on
	if kind == evMeta || kind == evVar {
		line = s.line // a command or variable by its own
	}
	s.pending = append(s.pending, sqlEvent{kind: kind, text: append([]byte(nil), text...), line: line})
}

// dollarTag returns the opening dollar-quote tag at the start of b ("$$",
// "$body$"), or nil.
func dollarTag(b []byte) []byte {
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '$':
			return b[:i+1]
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || (i > 1 && c >= '0' && c <= '9'):
		default:
			return nil
		}
	}
	return nil
}

// sqlTokens returns the tokens of a statement (at most max; all when max
// is 0): words folded to lower case, quoted identifiers unquoted, a string
// literal as "'", any other character by itself. Comments are skipped.
func sqlTokens(stmt []byte, max int) []string {
	var out []string
	for i := 0; i < len(stmt) && (max <= 0 || len(out) < max); {
		c := stmt[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '-' && i+1 < len(stmt) && stmt[i+1] == '-':
			for i < len(stmt) && stmt[i] != '\n' && stmt[i] != '\r' {
				i++
			}
		case c == '/' && i+1 < len(stmt) && stmt[i+1] == '*':
			depth := 0
			for ; i < len(stmt); i++ {
				if stmt[i] == '/' && i+1 < len(stmt) && stmt[i+1] == '*' {
					depth++
					i++
				} else if stmt[i] == '*' && i+1 < len(stmt) && stmt[i+1] == '/' {
					i++
					if depth--; depth == 0 {
						i++
						break
					}
				}
			}
		case c == '"':
			var id strings.Builder
			for i++; i < len(stmt); i++ {
				if stmt[i] == '"' {
					if i+1 < len(stmt) && stmt[i+1] == '"' {
						id.WriteByte('"')
						i++
						continue
					}
					i++
					break
				}
				id.WriteByte(stmt[i])
			}
			out = append(out, id.String())
		case c == '\'':
			for i++; i < len(stmt); i++ {
				if stmt[i] == '\'' {
					if i+1 < len(stmt) && stmt[i+1] == '\'' {
						i++
						continue
					}
					i++
					break
				}
			}
			out = append(out, "'")
		case isIdentChar(c):
			j := i
			for j < len(stmt) && isIdentChar(stmt[j]) {
				j++
			}
			out = append(out, strings.ToLower(string(stmt[i:j])))
			i = j
		default:
			out = append(out, string(c))
			i++
		}
	}
	return out
}
