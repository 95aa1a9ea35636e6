package local

import (
	"bufio"
	"io"
)

// SpreadOf exposes spreadOf to the tests of package local_test: the
// largest table, its share of the archive's data, and whether the archive
// said.
func SpreadOf(format, path, toc string) (table string, share float64, tables int, ok bool) {
	s, ok := spreadOf(format, path, toc)
	return s.Table, s.share(), s.Tables, ok
}

// ReadTOC exposes readTOC: the entries of a custom archive's table of
// contents, and how many of them have data.
func ReadTOC(r io.Reader) (entries, data int, err error) {
	t, err := readTOC(bufio.NewReader(r))
	return t.entries, len(t.data), err
}

// ChooseLoad exposes chooseLoad: whether an archive of format, entries
// entries and share of its data in one table loads in one transaction.
func ChooseLoad(format string, share float64, entries, jobs int) (single bool, args []string) {
	l := chooseLoad(format, dataSpread{Total: 100, Largest: int64(share * 100), Table: "t", Tables: 2}, true, entries, jobs)
	return l.single, l.args
}
