package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A table for a terminal fits its width: the last column (a path) keeps
// its end, or is left out when too little room is left; without a width
// (not a terminal) every column is whole.
func TestPrintTableFitsTheTerminal(t *testing.T) {
	rows := [][]string{{"ID", "STATUS", "BACKUP"}, {"1", "passed", "/var/backups/postgresql/orders/orders-20261128T030000Z.dump"}}
	var b strings.Builder
	printTable(&b, rows, 40)
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if n := utf8.RuneCountInString(line); n > 40 {
			t.Errorf("%d columns: %q", n, line)
		}
	}
	if !strings.Contains(b.String(), "…") || !strings.Contains(b.String(), "20261128T030000Z.dump") {
		t.Errorf("the path lost its end:\n%s", b.String())
	}
	b.Reset()
	printTable(&b, rows, 25)
	if strings.Contains(b.String(), "BACKUP") || strings.Contains(b.String(), "dump") {
		t.Errorf("too narrow for the path, yet it is there:\n%s", b.String())
	}
	b.Reset()
	printTable(&b, rows, 0)
	if !strings.Contains(b.String(), rows[1][2]) {
		t.Errorf("not a terminal, yet the path is cut:\n%s", b.String())
	}
}
