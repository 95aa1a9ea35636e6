package local

// SpreadOf exposes spreadOf to the tests of package local_test: the
// largest table, its share of the archive's data, and whether the archive
// said.
func SpreadOf(format, path, toc string) (table string, share float64, tables int, ok bool) {
	s, ok := spreadOf(format, path, toc)
	return s.Table, s.share(), s.Tables, ok
}

// ReadDataOffsets exposes readDataOffsets.
var ReadDataOffsets = readDataOffsets
