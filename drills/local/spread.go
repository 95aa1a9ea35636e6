package local

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"drill/drills"
)

// dataSpread is how a pg_dump archive's data is spread over its tables:
// the bytes of table data in the archive (compressed, as stored), and the
// largest table's share of them.
type dataSpread struct {
	Total, Largest int64
	Table          string // the largest table
	Tables         int    // tables with data
}

// share is the largest table's part of all the data, 0 to 1.
func (s dataSpread) share() float64 {
	if s.Total <= 0 {
		return 0
	}
	return float64(s.Largest) / float64(s.Total)
}

// largest says which table holds what share of the data.
func (s dataSpread) largest() string {
	return fmt.Sprintf("table %s holds %.0f%% of the data", s.Table, 100*s.share())
}

// spreadOf measures the data of an archive: for a custom archive from the
// data offsets in its table of contents, for a directory archive from
// its data files' sizes. ok is false when the archive does not say (a
// custom archive written to a pipe has no offsets; tar archives are not
// measured).
func spreadOf(format, path, toc string) (dataSpread, bool) {
	switch format {
	case drills.FormatCustom:
		f, err := drills.OpenRegular(path)
		if err != nil {
			return dataSpread{}, false
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return dataSpread{}, false
		}
		t, err := readTOC(bufio.NewReaderSize(f, 64*1024))
		if err != nil {
			return dataSpread{}, false
		}
		return t.spread(fi.Size())
	case drills.FormatDirectory:
		var s dataSpread
		for id, table := range tableDataIDs(toc) {
			for _, ext := range []string{".dat", ".dat.gz", ".dat.lz4", ".dat.zst"} {
				if fi, err := os.Lstat(filepath.Join(path, id+ext)); err == nil && fi.Mode().IsRegular() {
					s.add(table, fi.Size())
					break
				}
			}
		}
		return s, s.Tables > 0
	}
	return dataSpread{}, false
}

// add counts a table's n bytes of data.
func (s *dataSpread) add(table string, n int64) {
	s.Total += n
	s.Tables++
	if n > s.Largest || n == s.Largest && table < s.Table {
		s.Largest, s.Table = n, table
	}
}

// dataOffset is where the data of a table of contents entry starts in a
// custom archive.
type dataOffset struct {
	id    string // dump id
	off   int64
	table string // schema.table of a table's data, else ""
}

// blockSizes turns the data offsets of an archive into each block's
// length (by dump id): up to the next block, or to the end of the file.
func blockSizes(offsets []dataOffset, fileSize int64) map[string]int64 {
	blocks := make([]dataOffset, len(offsets))
	copy(blocks, offsets)
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].off < blocks[j].off })
	sizes := make(map[string]int64, len(blocks))
	for i, b := range blocks {
		end := fileSize
		if i+1 < len(blocks) {
			end = blocks[i+1].off
		}
		sizes[b.id] = max(end-b.off, 0)
	}
	return sizes
}

// inFileOrder reports whether the data blocks come in the file in the
// order of the table of contents, which is the order pg_restore loads
// them in one connection: then pg_restore can read the archive from a
// stream.
func inFileOrder(offsets []dataOffset) bool {
	for i := 1; i < len(offsets); i++ {
		if offsets[i].off <= offsets[i-1].off {
			return false
		}
	}
	return len(offsets) > 0
}

// The archive versions whose table of contents readDataOffsets reads:
// those of pg_dump 11 (1.13) to 17 (1.16); any other is not measured.
const (
	minArchiveVersion = 1<<16 | 13<<8
	maxArchiveVersion = 1<<16 | 16<<8 | 0xff
)

// Limits on what a table of contents may claim, so that a corrupt or
// hostile archive cannot make drill allocate or loop without end.
const (
	maxTOCEntries = 1_000_000
	maxTOCString  = 64 << 20
	maxTOCBytes   = 256 << 20
	maxTOCName    = 1024 // the longest tag, kind or schema kept
)

var errNotMeasured = errors.New("the archive's table of contents does not give its data offsets")

// archiveTOC is what drill reads of a custom archive's table of
// contents: how many entries it has, and where the data of each entry
// that has data starts, in the order of the table of contents.
type archiveTOC struct {
	entries int
	data    []dataOffset
}

// readTOC reads the header and table of contents of a custom archive
// (pg_backup_archiver.c's ReadHead and ReadToc, and the custom format's
// offset of each entry's data). It reads nothing past the table of
// contents (but what r buffers), and returns errNotMeasured for an
// archive written without offsets.
func readTOC(r *bufio.Reader) (archiveTOC, error) {
	a := &tocReader{r: r}
	n, err := a.readHead()
	if err != nil {
		return archiveTOC{}, err
	}
	toc := archiveTOC{entries: n}
	for range n {
		d, hasData, err := a.readEntry()
		if err != nil {
			return archiveTOC{}, err
		}
		if hasData {
			toc.data = append(toc.data, d)
		}
	}
	if len(toc.data) == 0 {
		return archiveTOC{}, errNotMeasured
	}
	return toc, nil
}

// readHead reads the archive's header, up to the number of entries of its
// table of contents, which it returns. It refuses a version or integer
// sizes it does not read with errNotMeasured.
func (a *tocReader) readHead() (int, error) {
	magic := a.bytes(5)
	if a.err == nil && string(magic) != "PGDMP" {
		return 0, errors.New("not a custom archive")
	}
	vmaj, vmin, vrev := a.byte(), a.byte(), a.byte()
	a.version = int(vmaj)<<16 | int(vmin)<<8 | int(vrev)
	a.intSize, a.offSize = int(a.byte()), int(a.byte())
	format := a.byte()
	if a.err != nil {
		return 0, a.err
	}
	if a.version < minArchiveVersion || a.version > maxArchiveVersion || format != 1 ||
		a.intSize < 1 || a.intSize > 8 || a.offSize < 1 || a.offSize > 8 {
		return 0, fmt.Errorf("archive version %d.%d, format %d: %w", vmaj, vmin, format, errNotMeasured)
	}
	if a.version >= 1<<16|15<<8 {
		a.byte() // compression algorithm
	} else {
		a.int() // compression level
	}
	for range 7 { // creation time: sec, min, hour, mday, mon, year, isdst
		a.int()
	}
	a.skip() // database name
	a.skip() // server version
	a.skip() // pg_dump version
	n := a.int()
	if a.err != nil {
		return 0, a.err
	}
	if n < 0 || n > maxTOCEntries {
		return 0, fmt.Errorf("table of contents of %d entries", n)
	}
	return n, nil
}

// readEntry reads one entry of the table of contents and returns where
// its data starts, if it has data. It returns errNotMeasured for an entry
// of an archive written without offsets.
func (a *tocReader) readEntry() (dataOffset, bool, error) {
	id := a.int()
	a.int()  // had dumper
	a.skip() // table oid
	a.skip() // oid
	tag := a.name()
	desc := a.name()
	a.int()  // section
	a.skip() // definition
	a.skip() // drop statement
	a.skip() // copy statement
	schema := a.name()
	a.skip() // tablespace
	if a.version >= 1<<16|14<<8 {
		a.skip() // table access method
	}
	if a.version >= 1<<16|16<<8 {
		a.int() // relkind
	}
	a.skip() // owner
	a.skip() // with oids
	for a.err == nil {
		if a.skip() {
			break // end of the dependencies
		}
	}
	flag := a.byte()
	off := a.offset()
	if a.err != nil {
		return dataOffset{}, false, a.err
	}
	switch flag {
	case 1: // K_OFFSET_POS_NOT_SET: the archive was written to a pipe
		return dataOffset{}, false, errNotMeasured
	case 2: // K_OFFSET_POS_SET
		d := dataOffset{id: strconv.Itoa(id), off: off}
		if desc == "TABLE DATA" {
			d.table = schema + "." + tag
		}
		return d, true, nil
	case 3: // K_OFFSET_NO_DATA
		return dataOffset{}, false, nil
	default:
		return dataOffset{}, false, fmt.Errorf("entry %d: unknown data offset flag %d", id, flag)
	}
}

// spread is how the table data of the archive, size bytes in all, is
// spread over its tables.
func (t archiveTOC) spread(size int64) (dataSpread, bool) {
	sizes := blockSizes(t.data, size)
	var s dataSpread
	for _, d := range t.data {
		if d.table == "" {
			continue // large objects, and what is not a table's data
		}
		s.add(d.table, sizes[d.id])
	}
	return s, s.Tables > 0
}

// tocReader reads the integers, strings and offsets of an archive header,
// keeping the first error.
type tocReader struct {
	r                *bufio.Reader
	version          int
	intSize, offSize int
	read             int64
	err              error
	buf              [8]byte
}

func (a *tocReader) bytes(n int) []byte {
	if a.err != nil {
		return nil
	}
	if a.read += int64(n); a.read > maxTOCBytes {
		a.fail(errors.New("table of contents too large"))
		return nil
	}
	var b []byte
	if n <= len(a.buf) {
		b = a.buf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(a.r, b); err != nil {
		a.fail(fmt.Errorf("archive header cut short: %w", err))
		return nil
	}
	return b
}

func (a *tocReader) byte() byte {
	if b := a.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

// int reads a sign byte and intSize bytes, least significant first.
func (a *tocReader) int() int {
	sign := a.byte()
	v := a.unsigned(a.intSize)
	if v < 0 || v > 1<<40 {
		a.fail(fmt.Errorf("integer %d out of range in the archive header", v))
		return 0
	}
	if sign != 0 {
		v = -v
	}
	return int(v)
}

// offset reads offSize bytes, least significant first.
func (a *tocReader) offset() int64 {
	v := a.unsigned(a.offSize)
	if v < 0 {
		a.fail(errors.New("negative data offset in the archive header"))
	}
	return v
}

// unsigned reads an n-byte (n <= 8) little-endian number.
func (a *tocReader) unsigned(n int) int64 {
	b := a.bytes(n)
	var buf [8]byte
	copy(buf[:], b)
	return int64(binary.LittleEndian.Uint64(buf[:]))
}

func (a *tocReader) fail(err error) {
	if a.err == nil {
		a.err = err
	}
}

// skip skips a string: a length and that many bytes. It reports whether
// the string was NULL (a negative length).
func (a *tocReader) skip() (null bool) {
	n := a.length()
	if n < 0 {
		return true
	}
	if _, err := a.r.Discard(n); err != nil {
		a.fail(fmt.Errorf("archive header cut short: %w", err))
		return true
	}
	return false
}

// name reads a short string (a tag, a kind, a schema); a longer one is
// skipped and read as "".
func (a *tocReader) name() string {
	n := a.length()
	if n <= 0 {
		return ""
	}
	if n > maxTOCName {
		if _, err := a.r.Discard(n); err != nil {
			a.fail(fmt.Errorf("archive header cut short: %w", err))
		}
		return ""
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(a.r, b); err != nil {
		a.fail(fmt.Errorf("archive header cut short: %w", err))
		return ""
	}
	return string(b)
}

// length reads the length of a string, counting it against the limits;
// -1 for NULL or after an error.
func (a *tocReader) length() int {
	n := a.int()
	switch {
	case a.err != nil || n < 0:
		return -1
	case n > maxTOCString:
		a.fail(fmt.Errorf("string of %d bytes in the archive header", n))
		return -1
	}
	if a.read += int64(n); a.read > maxTOCBytes {
		a.fail(errors.New("table of contents too large"))
		return -1
	}
	return n
}
