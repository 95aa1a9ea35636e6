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
	plan  load
	headF *os.File
	body  *errorReader
}

// openArchiveStream opens the backup's stream and reads its table of
// contents. It returns nil (the stream closed, nothing left on disk)
// when the archive is not one to load in one pass from a stream: no
// data offsets (written to a pipe), data blocks out of load order, or
// data spread over tables (--jobs is chosen; it needs the whole file).
func openArchiveStream(ctx context.Context, b drills.Backup, spool string, report func(int64, int64)) (*archiveStream, error) {
	s, err := openStream(ctx, b, filepath.Join(spool, "archive-head"), report)
	if err != nil {
		return nil, err
	}
	toc, err := readTOC(bufio.NewReaderSize(io.TeeReader(s.body, s.headF), 64*1024))
	if serr := s.body.failed(); serr != nil {
		s.discard()
		return nil, serr
	}
	if err != nil || !inFileOrder(toc.data) {
		s.discard()
		return nil, nil
	}
	spread, ok := toc.spread(b.SizeBytes)
	if s.plan = chooseLoad(drills.FormatCustom, spread, ok, toc.entries, 0); !s.plan.single {
		s.discard()
		return nil, nil
	}
	s.plan.why += ", reading the archive as it downloads"
	if _, err := s.headF.Seek(0, io.SeekStart); err != nil {
		s.discard()
		return nil, err
	}
	s.r = io.MultiReader(s.headF, s.body)
	return s, nil
}

// openStream opens the backup's stream, and the file head its start is
// to be kept in.
func openStream(ctx context.Context, b drills.Backup, head string, report func(int64, int64)) (*archiveStream, error) {
	body, err := b.Stream(ctx, report)
	if err != nil {
		return nil, err
	}
	s := &archiveStream{head: head, body: &errorReader{r: body}}
	if s.headF, err = os.OpenFile(head, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
		body.Close()
		return nil, err
	}
	return s, nil
}

// openPlainStream opens the backup's stream of a plain (or gzipped plain)
// dump and reads the start of its SQL (scanPlain), keeping what it read
// in the file head: psql reads the whole dump as it downloads.
func openPlainStream(ctx context.Context, b drills.Backup, spool string, report func(int64, int64)) (*archiveStream, plainFacts, error) {
	s, err := openStream(ctx, b, filepath.Join(spool, "dump-head"), report)
	if err != nil {
		return nil, plainFacts{}, err
	}
	var facts plainFacts
	in, err := plainReader(b.Format, io.TeeReader(s.body, s.headF))
	if err == nil {
		facts, err = scanPlain(in)
	}
	if serr := s.body.failed(); serr != nil {
		err = serr
	}
	if err == nil {
		_, err = s.headF.Seek(0, io.SeekStart)
	}
	if err != nil {
		s.discard()
		return nil, plainFacts{}, err
	}
	s.r = io.MultiReader(s.headF, s.body)
	return s, facts, nil
}

// finish reads what pg_restore left of the archive (it stops after the
// last data block it needs): the download is then whole and hashed.
func (s *archiveStream) finish() error {
	_, err := io.Copy(io.Discard, s.r)
	return err
}

// failed returns the download's error, if it failed.
func (s *archiveStream) failed() error { return s.body.failed() }

// Close stops the download and removes the file of its start. What the
// stream says after that is not the download's failure.
func (s *archiveStream) Close() error {
	s.body.mu.Lock()
	s.body.closed = true
	s.body.mu.Unlock()
	err := s.body.r.Close()
	s.headF.Close()
	os.Remove(s.head)
	return err
}

func (s *archiveStream) discard() { _ = s.Close() }

// feeder copies a reader into a pipe a program reads as its standard
// input. Unlike os/exec's own copy, it is stopped, and waited for, when
// the program has ended, so that what is left of the reader can be read
// after it.
type feeder struct {
	pr   *os.File
	done chan struct{}
}

func (*feeder) start(r io.Reader) (*feeder, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	f := &feeder{pr: pr, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		_, _ = io.Copy(pw, r) // ends at the reader's end, or when the program's end closes the pipe
		pw.Close()
	}()
	return f, nil
}

// stop closes drill's end of the pipe (a write still pending fails) and
// waits for the copy to end.
func (f *feeder) stop() {
	f.pr.Close()
	<-f.done
}

// errorReader keeps the first error other than io.EOF its reader returned
// before it was closed.
type errorReader struct {
	r      io.ReadCloser
	mu     sync.Mutex
	err    error
	closed bool // by drill: errors from then on are not kept
}

func (e *errorReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.mu.Lock()
		if e.err == nil && !e.closed {
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
