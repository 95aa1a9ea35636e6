package drills

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// DigestPath is the SHA-256 of a backup and its size. A file's digest is
// that of its bytes. A directory's (a directory-format dump) is that of
// its manifest: a line "SHA256  NAME" per file, in name order, as
// `sha256sum` prints them; `cd DIR && sha256sum * | sort -k2 | sha256sum`
// gives the same digest.
func DigestPath(ctx context.Context, path string) (string, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	if !fi.IsDir() {
		h := sha256.New()
		n, err := digestFile(ctx, h, path)
		if err != nil {
			return "", 0, err
		}
		return hex.EncodeToString(h.Sum(nil)), n, nil
	}
	var names []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(path, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	sort.Strings(names)
	var manifest bytes.Buffer
	var total int64
	for _, name := range names {
		h := sha256.New()
		n, err := digestFile(ctx, h, filepath.Join(path, filepath.FromSlash(name)))
		if err != nil {
			return "", 0, err
		}
		total += n
		fmt.Fprintf(&manifest, "%x  %s\n", h.Sum(nil), name)
	}
	sum := sha256.Sum256(manifest.Bytes())
	return hex.EncodeToString(sum[:]), total, nil
}

// DigestFile is the hex SHA-256 and size of an open regular file, read
// from its start whatever its offset.
func DigestFile(ctx context.Context, f *os.File) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, ContextReader(ctx, io.NewSectionReader(f, 0, math.MaxInt64)))
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func digestFile(ctx context.Context, w io.Writer, path string) (int64, error) {
	f, err := OpenRegular(path) // never blocks on a FIFO put in a backup's place
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, ContextReader(ctx, f))
}

// LogDigest is the hex SHA-256 of a log's text.
func LogDigest(log string) string {
	sum := sha256.Sum256([]byte(log))
	return hex.EncodeToString(sum[:])
}
