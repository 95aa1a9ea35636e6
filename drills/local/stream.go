package local

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	"drill/drills"
)

// archiveStream is a custom archive restored as it downloads. Its start —
// the header and table of contents, and what was read with them — is kept
// in the file head, which pg_restore --list reads; r is the whole archive
// from its start (that file, then the rest of the download), which
// pg_restore reads on its standard input. Nothing else of it reaches the
// disk.
type archiveStream struct {
	head  string
	r     io.Reader
	sizes map[string]int64 // each data block's length, by dump id
	headF *os.File
	body  *errorReader
}

// openArchiveStream opens the backup's stream and reads its table of
// contents. It returns nil (the stream closed, nothing left on disk)
// when the archive is not one to load in one pass from a stream: no
// data offsets (written to a pipe), data blocks out of load order, or
// data spread over tables (--jobs is chosen; it needs the whole file).
func openArchiveStream(ctx context.Context, b drills.Backup, spool string, report func(int64, int64)) (*archiveStream, error) {
	body, err := b.Stream(ctx, report)
	if err != nil {
		return nil, err
	}
	s := &archiveStream{head: filepath.Join(spool, "archive-head"), body: &errorReader{r: body}}
	if s.headF, err = os.OpenFile(s.head, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
		body.Close()
		return nil, err
	}
	offsets, err := readDataOffsets(bufio.NewReaderSize(io.TeeReader(s.body, s.headF), 64*1024))
	if serr := s.body.failed(); serr != nil {
		s.discard()
		return nil, serr
	}
	if err != nil || !inFileOrder(offsets) {
		s.discard()
		return nil, nil
	}
	s.sizes = blockSizes(offsets, b.SizeBytes)
	if !chooseLoad(drills.FormatCustom, blockSpread(s.sizes), true, 0).single {
		s.discard()
		return nil, nil
	}
	if _, err := s.headF.Seek(0, io.SeekStart); err != nil {
		s.discard()
		return nil, err
	}
	s.r = io.MultiReader(s.headF, s.body)
	return s, nil
}

// blockSpread is the spread of data blocks of sizes, by dump id.
func blockSpread(sizes map[string]int64) dataSpread {
	var s dataSpread
	for id, n := range sizes {
		s.Total += n
		s.Tables++
		if n > s.Largest {
			s.Largest, s.Table = n, id
		}
	}
	return s
}

// finish reads what pg_restore left of the archive (it stops after the
// last data block it needs): the download is then whole and hashed.
func (s *archiveStream) finish() error {
	_, err := io.Copy(io.Discard, s.r)
	return err
}

// failed returns the download's error, if it failed.
func (s *archiveStream) failed() error { return s.body.failed() }

// Close stops the download and removes the file of its start.
func (s *archiveStream) Close() error {
	err := s.body.r.Close()
	s.headF.Close()
	os.Remove(s.head)
	return err
}

func (s *archiveStream) discard() { _ = s.Close() }

// errorReader keeps the first error other than io.EOF its reader returned.
type errorReader struct {
	r   io.ReadCloser
	mu  sync.Mutex
	err error
}

func (e *errorReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.mu.Lock()
		if e.err == nil {
			e.err = err
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *errorReader) failed() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}
