package local

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"drill/drills"
)

// tableDataIDs returns the dump ids of the TABLE DATA entries of a table
// of contents (`pg_restore --list`), with the table each loads.
func tableDataIDs(toc string) map[string]string {
	ids := map[string]string{}
	for _, line := range strings.Split(toc, "\n") {
		if desc, rest := tocEntry(line); desc == "TABLE DATA" && len(rest) >= 2 {
			id, _, _ := strings.Cut(line, ";")
			ids[strings.TrimSpace(id)] = rest[0] + "." + rest[1]
		}
	}
	return ids
}

// checkArchiveData makes sure every table's data of a directory or tar
// archive is there, whole: pg_restore loads a data file cut short without
// a word. Custom archives carry the length of each block, and pg_restore
// fails on a short one itself.
// ids are the archive's TABLE DATA entries (tableDataIDs).
func checkArchiveData(format, path string, ids map[string]string) error {
	switch format {
	case drills.FormatDirectory:
		return checkDirectoryData(path, ids)
	case drills.FormatTar:
		return checkTarData(path, ids)
	}
	return nil
}

func checkDirectoryData(dir string, ids map[string]string) error {
	for id, table := range ids {
		base := filepath.Join(dir, id+".dat")
		if _, err := os.Lstat(base); err == nil {
			f, err := drills.OpenRegular(base)
			if err != nil {
				return err
			}
			err = dataComplete(f, table)
			f.Close()
			if err != nil {
				return err
			}
			continue
		}
		// compressed data files: checkCompressedData reads them while
		// pg_restore loads them
		found := false
		for _, ext := range []string{".gz", ".lz4", ".zst"} {
			if _, err := os.Lstat(base + ext); err == nil {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%w: the data file of table %s (%s.dat) is missing", ErrTruncated, table, id)
		}
	}
	return nil
}

// checkCompressedData checks the gzip data files of a directory archive
// as checkDirectoryData checks plain ones: pg_restore loads a file cut at
// a line and compressed again ("zcat | head | gzip") without a word, and
// gzip says nothing either (the stream is whole, only short). It
// decompresses each file, so it runs beside the restore: the result comes
// on the channel once every file was read, or ctx ended. lz4 and zstd data
// files (PostgreSQL 16 and later) are left to their decompressor, which
// finds a stream cut short but not one shortened and compressed again.
func checkCompressedData(ctx context.Context, dir string, ids map[string]string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			for id, table := range ids {
				path := filepath.Join(dir, id+".dat.gz")
				if _, err := os.Lstat(path); err != nil {
					continue
				}
				f, err := drills.OpenRegular(path)
				if err != nil {
					return err
				}
				err = gzipDataComplete(ctx, f, table)
				f.Close()
				if err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	return done
}

func gzipDataComplete(ctx context.Context, f io.Reader, table string) error {
	zr, err := gzip.NewReader(drills.ContextReader(ctx, f))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: the data of table %s is not a whole gzip stream (%v)", ErrTruncated, table, err)
	}
	defer zr.Close()
	if err := dataComplete(zr, table); err != nil && ctx.Err() != nil {
		return ctx.Err()
	} else if err != nil {
		return err
	}
	return nil
}

func checkTarData(path string, ids map[string]string) error {
	f, err := drills.OpenRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: the tar archive ends in the middle (%v)", ErrTruncated, err)
		}
		id := strings.TrimSuffix(h.Name, ".dat")
		table, isData := ids[id]
		if !isData || !strings.HasSuffix(h.Name, ".dat") {
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return fmt.Errorf("%w: member %s of the tar archive is cut short (%v)", ErrTruncated, h.Name, err)
			}
			continue
		}
		if err := dataComplete(tr, table); err != nil {
			return err
		}
		seen[id] = true
	}
	for id, table := range ids {
		if !seen[id] {
			return fmt.Errorf("%w: the data of table %s (%s.dat) is not in the tar archive", ErrTruncated, table, id)
		}
	}
	return nil
}

// dataComplete reads one table's data (COPY text ending in a line "\.", or
// INSERT statements ending in ";") and fails when it stops short.
func dataComplete(r io.Reader, table string) error {
	tailBuf := make([]byte, 0, 64)
	buf := make([]byte, 256*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			tailBuf = append(tailBuf, buf[:n]...)
			if len(tailBuf) > 64 {
				tailBuf = append(tailBuf[:0], tailBuf[len(tailBuf)-64:]...)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: the data of table %s is cut short (%v)", ErrTruncated, table, err)
		}
	}
	end := bytes.TrimRight(tailBuf, "\n")
	if bytes.Equal(end, []byte(`\.`)) || bytes.HasSuffix(end, []byte("\n\\.")) || bytes.HasSuffix(end, []byte(";")) {
		return nil
	}
	return fmt.Errorf("%w: the data of table %s stops before its end", ErrTruncated, table)
}
