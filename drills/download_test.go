package drills_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"drill/drills"
)

// A reader of a download gets the bytes as they arrive, waits for the
// rest, and ends with the download: at its end, or with its error, or
// with its own context's.
func TestDownloadReader(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "backup")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := drills.NewDownload(path, 6)
	r, err := d.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan []byte)
	go func() {
		b, err := io.ReadAll(r)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	// The second half arrives first: nothing is read past the first half
	// until the bytes between are there.
	if _, err := f.WriteAt([]byte("def"), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	d.Advance(6)
	d.Finish(nil)
	select {
	case b := <-got:
		if string(b) != "abcdef" {
			t.Fatalf("read %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end with the download")
	}

	failed := drills.NewDownload(path, 100)
	failed.Advance(6)
	fr, err := failed.NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	go failed.Finish(errors.New("connection reset"))
	if b, err := io.ReadAll(fr); string(b) != "abcdef" || err == nil || err.Error() != "download: connection reset" {
		t.Fatalf("read %q, %v; want the first 6 bytes and the download's error", b, err)
	}
	if err := failed.Wait(); err == nil {
		t.Fatal("Wait: no error")
	}

	ctx, cancel := context.WithCancel(context.Background())
	stalled := drills.NewDownload(path, 100)
	sr, err := stalled.NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := io.ReadAll(sr); !errors.Is(err, context.Canceled) {
		t.Fatalf("a reader of a stalled download whose context ended: %v", err)
	}

	short := drills.NewDownload(path, 100)
	short.Advance(6)
	short.Finish(nil)
	if err := short.Wait(); err == nil {
		t.Fatal("a download that ended short of its size succeeded")
	}
}
