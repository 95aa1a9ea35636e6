package drills

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// A Download is a backup being fetched into the file at Path, Size bytes
// in all. Readers from NewReader follow it: they read the bytes already
// there from the start of the file, wait for the rest, and end where the
// backup ends, so a restore can start before the download has finished.
type Download struct {
	Path string
	Size int64

	mu      sync.Mutex
	have    int64         // the bytes from the start that are all there
	changed chan struct{} // closed, and replaced, when have grows or the download ends
	done    bool
	err     error
}

// NewDownload is a download of size bytes into path, with nothing there yet.
func NewDownload(path string, size int64) *Download {
	return &Download{Path: path, Size: size, changed: make(chan struct{})}
}

// Advance says that the first n bytes are all in the file.
func (d *Download) Advance(n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n > d.have {
		d.have = n
		close(d.changed)
		d.changed = make(chan struct{})
	}
}

// Finish ends the download: err is why it failed, nil when every byte is
// in the file.
func (d *Download) Finish(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return
	}
	if err == nil && d.have != d.Size {
		err = fmt.Errorf("download ended with %d of %d bytes", d.have, d.Size)
	}
	d.done, d.err = true, err
	close(d.changed)
	d.changed = make(chan struct{})
}

// Wait waits for the download to end and returns why it failed.
func (d *Download) Wait() error {
	for {
		_, done, changed, err := d.state()
		if done {
			return err
		}
		<-changed
	}
}

// Failed returns why the download failed, or nil while it runs and when
// it succeeded.
func (d *Download) Failed() error {
	_, _, _, err := d.state()
	return err
}

// state returns how many bytes are there, whether the download has
// ended, a channel closed at the next change, and why the download failed.
func (d *Download) state() (int64, bool, <-chan struct{}, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.have, d.done, d.changed, d.err
}

// NewReader reads the backup from its start, waiting for bytes not yet
// downloaded. It fails with the download's error, or ctx's.
func (d *Download) NewReader(ctx context.Context) (io.ReadCloser, error) {
	f, err := OpenRegular(d.Path)
	if err != nil {
		return nil, err
	}
	return &follower{ctx: ctx, d: d, f: f}, nil
}

type follower struct {
	ctx context.Context
	d   *Download
	f   *os.File
	off int64
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		have, done, changed, err := r.d.state()
		switch {
		case r.off < have:
			n, rerr := r.f.ReadAt(p[:min(int64(len(p)), have-r.off)], r.off)
			r.off += int64(n)
			if errors.Is(rerr, io.EOF) && n > 0 {
				rerr = nil
			}
			return n, rerr
		case done && err != nil:
			return 0, fmt.Errorf("download: %w", err)
		case done:
			return 0, io.EOF
		}
		select {
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-changed:
		}
	}
}

func (r *follower) Close() error { return r.f.Close() }
