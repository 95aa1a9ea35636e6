package local

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"drill/drills"
)

// restoreLog keeps what a restore program printed, for the run's record:
// the first and the last logHalf lines (each cut at logLine bytes),
// secrets redacted.
type restoreLog struct {
	mu      sync.Mutex
	head    []string
	tail    []string
	skipped int
}

const (
	logHalf = 400
	logLine = 1000
)

// secretLike matches what could be a credential in a restore program's
// output: a password in a connection string (password=…) or in SQL it
// echoes (OPTIONS (password '…'), PASSWORD '…'), or a URL's user:password.
var secretLike = regexp.MustCompile(`(?i)(password\s*=?\s*)('(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.)*"?|[^\s,)]+)|(://[^:/@\s]+:)\S*`)

// redact replaces what looks like a password with [redacted]. A URL's
// password is cut with everything after it on the line: an @ may be
// missing from a cut line.
func redact(line string) string {
	return secretLike.ReplaceAllStringFunc(line, func(m string) string {
		sub := secretLike.FindStringSubmatch(m)
		if sub[1] != "" {
			return sub[1] + "[redacted]"
		}
		return sub[3] + "[redacted]"
	})
}

func (l *restoreLog) add(line string) {
	if l == nil {
		return
	}
	line = redact(line) // before the cut, which could leave half a secret
	if len(line) > logLine {
		line = line[:logLine] + "…"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.head) < logHalf {
		l.head = append(l.head, line)
		return
	}
	l.tail = append(l.tail, line)
	if len(l.tail) > logHalf {
		l.tail = l.tail[1:]
		l.skipped++
	}
}

func (l *restoreLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, s := range l.head {
		b.WriteString(s + "\n")
	}
	if l.skipped > 0 {
		fmt.Fprintf(&b, "[… %d lines left out …]\n", l.skipped)
	}
	for _, s := range l.tail {
		b.WriteString(s + "\n")
	}
	return b.String()
}

// restoreLogs holds each instance's restore log until the runner asks.
var restoreLogs sync.Map // instance id → *restoreLog

var (
	_ drills.RestoreLogger     = (*Target)(nil)
	_ drills.LiveRestoreLogger = (*Target)(nil)
)

// RestoreLogSoFar is what the restore programs printed so far.
func (t *Target) RestoreLogSoFar(in drills.Instance) string {
	v, ok := restoreLogs.Load(in.ID)
	if !ok {
		return ""
	}
	return v.(*restoreLog).String()
}

// RestoreLog returns, once, what the restore programs printed while
// restoring into in (pg_restore's verbose output, psql's messages).
func (t *Target) RestoreLog(in drills.Instance) string {
	v, ok := restoreLogs.LoadAndDelete(in.ID)
	if !ok {
		return ""
	}
	return v.(*restoreLog).String()
}
