package pgdump

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"drill/drills"
	"drill/verify"
)

// fileSource finds backups on a local (or mounted) file system.
type fileSource struct {
	cfg SourceConfig
}

// Latest returns the location itself when it is a backup (a file, or a
// directory-format archive), else the newest backup in the directory: by
// modification time, ties broken by the larger name. A symbolic link in
// the directory counts only when it leads inside it.
func (s *fileSource) Latest(ctx context.Context) (drills.Backup, error) {
	loc := s.cfg.Location
	fi, err := os.Stat(loc)
	if errors.Is(err, fs.ErrNotExist) {
		return drills.Backup{}, fmt.Errorf("%w: %s does not exist", drills.ErrNoBackup, loc)
	}
	if err != nil {
		return drills.Backup{}, err
	}
	if kind := drills.SpecialFile(loc); kind != "" {
		return drills.Backup{}, fmt.Errorf("%w: %s is %s: drill reads backups from regular files and directories only", drills.ErrNoBackup, loc, kind)
	}
	if !fi.IsDir() || isDirectoryArchive(loc) {
		b, err := s.describe(ctx, loc, fi)
		if err == nil {
			b.Selection = drills.Select("the location is the backup", []drills.Candidate{{Name: b.ID, Time: fi.ModTime()}})
		}
		return b, err
	}
	found, err := s.newest(loc)
	if err != nil {
		return drills.Backup{}, err
	}
	b, err := s.describe(ctx, found[0].path, found[0].fi)
	if err != nil {
		return b, err
	}
	candidates := make([]drills.Candidate, len(found))
	for i, c := range found {
		candidates[i] = drills.Candidate{Name: filepath.Base(c.path), Time: c.fi.ModTime()}
	}
	b.Selection = drills.Select("the newest file in "+loc+" by modification time (ties: the larger name)"+patternNote(s.cfg.Pattern), candidates)
	return b, nil
}

func patternNote(pattern string) string {
	if pattern == "" {
		return ""
	}
	return fmt.Sprintf(", among names matching %q", pattern)
}

type candidate struct {
	path string
	fi   fs.FileInfo
}

// newest lists the backups in dir, newest first.
func (s *fileSource) newest(dir string) ([]candidate, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	var found []candidate
	for _, e := range entries {
		if skipName(e.Name()) || !matches(s.cfg.Pattern, e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if e.Type()&fs.ModeSymlink != 0 && !linksWithin(path, realDir) {
			continue
		}
		fi, err := os.Stat(path) // follows links
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() || (fi.IsDir() && isDirectoryArchive(path)) {
			found = append(found, candidate{path, fi})
		}
	}
	if len(found) == 0 {
		what := "no backup files"
		if s.cfg.Pattern != "" {
			what = fmt.Sprintf("no backup files matching %q", s.cfg.Pattern)
		}
		return nil, fmt.Errorf("%w: %s in %s", drills.ErrNoBackup, what, dir)
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if !a.fi.ModTime().Equal(b.fi.ModTime()) {
			return a.fi.ModTime().After(b.fi.ModTime())
		}
		return a.path > b.path
	})
	return found, nil
}

// linksWithin reports whether the link at path leads to a file inside
// dir (itself resolved): whoever can write the backup directory may link
// to a backup beside it (latest.dump → 2026-11-28.dump), never to a file
// elsewhere on the host, which drill would read as root.
func linksWithin(path, dir string) bool {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(dir, target)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

func matches(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := filepath.Match(pattern, name)
	return ok
}

func isDirectoryArchive(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "toc.dat"))
	return err == nil && fi.Mode().IsRegular()
}

// describe tells the format and creation time of the backup at path.
func (s *fileSource) describe(ctx context.Context, path string, fi fs.FileInfo) (drills.Backup, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return drills.Backup{}, err
	}
	// The backup is the file a link leads to, and drill reads it by that
	// name without following links (drills.OpenRegular): a link put in its
	// place after it was chosen is refused, not followed.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return drills.Backup{}, err
	}
	b := drills.Backup{ID: abs, SizeBytes: fi.Size()}
	if fi.IsDir() {
		b.Format = drills.FormatDirectory
		b.SizeBytes = dirSize(abs)
	} else {
		head, err := readHead(abs, headerSize)
		if err != nil {
			return drills.Backup{}, err
		}
		if b.Format, err = detectFormat(abs, head); err != nil {
			return drills.Backup{}, fmt.Errorf("newest backup %s: %w", abs, err)
		}
	}
	b.CreatedAt, b.CreatedAtSource = fi.ModTime().UTC(), "file mtime"
	if b.Format != drills.FormatPlain && b.Format != drills.FormatPlainGzip {
		h, err := readArchiveHeader(ctx, s.cfg.PGRestore, abs)
		if err != nil {
			return drills.Backup{}, fmt.Errorf("newest backup %s is unreadable: %w", abs, err)
		}
		b.CreatedAt, b.CreatedAtSource, b.Database = h.CreatedAt.UTC(), "archive header", h.Database
	}
	err = addFingerprint(&b, abs+verify.FingerprintSuffix, func() ([]byte, error) { return readLocalFingerprint(abs) })
	if err != nil {
		return drills.Backup{}, err
	}
	b.Fetch = func(context.Context, string, func(int64, int64)) (string, error) { return abs, nil }
	return b, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
