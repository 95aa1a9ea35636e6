package drills

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// ContextReader returns a reader of r that fails with ctx's error once ctx
// is done: a long copy stops when its drill does.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// SpecialFile says what path is when it exists and is neither a regular
// file nor a directory (after following links): "a named pipe (FIFO)", "a
// socket", "a device". It is empty otherwise.
func SpecialFile(path string) string {
	if strings.HasPrefix(path, "s3://") {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return SpecialMode(fi.Mode())
}

// SpecialMode names what a file of mode m is when it is neither a regular
// file nor a directory ("a socket"), else "".
func SpecialMode(m fs.FileMode) string {
	switch {
	case m.IsRegular() || m.IsDir():
		return ""
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// OpenRegular opens path for reading, without blocking on a named pipe
// and without following a symbolic link, and fails unless it is a regular
// file. A backup's path is its real one (the source resolves links when
// it locates it): a link found there later was put in its place.
func OpenRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link: drill reads a backup by its real name and follows no link put in its place", path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if kind := SpecialMode(fi.Mode()); kind != "" || fi.IsDir() {
		f.Close()
		if fi.IsDir() {
			kind = "a directory"
		}
		return nil, fmt.Errorf("%s is %s: drill reads backups from regular files only", path, kind)
	}
	return f, nil
}
