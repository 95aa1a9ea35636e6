// Package pgdump is the Source of pg_dump archives: a file, a directory
// (the newest backup in it) or s3://bucket/prefix/ (the newest object).
// Formats: custom (-Fc), tar (-Ft), directory (-Fd, local only), plain SQL
// and gzipped plain SQL.
package pgdump

import (
	"context"
	"fmt"
	"strings"

	"drill/drills"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// SourceType is the source type of this package in drill.yaml.
const SourceType = "pgdump"

// SourceConfig configures a pgdump source.
type SourceConfig struct {
	// Location is a file, a directory or s3://bucket/prefix/.
	Location string
	// Pattern, when set, is a glob (path.Match) the base name of a backup
	// must match; other files are ignored.
	Pattern string
	// Region and Endpoint override the AWS environment for S3.
	Region   string
	Endpoint string
	// PGRestore is the pg_restore program used to read archive headers
	// (default: pg_restore on $PATH).
	PGRestore string
}

// NewSource returns the Source for cfg.Location.
func NewSource(ctx context.Context, cfg SourceConfig) (drills.Source, error) {
	if cfg.Location == "" {
		return nil, fmt.Errorf("pgdump source needs location")
	}
	if strings.HasPrefix(cfg.Location, "s3://") {
		return newS3Source(ctx, cfg)
	}
	return &fileSource{cfg: cfg}, nil
}

// notBackups are name endings of files that live next to backups but are
// never backups themselves: uploads in progress, checksums and signatures,
// configs, logs and notes.
var notBackups = []string{".tmp", ".part", ".partial", ".inprogress", ".sha256", ".sha1", ".md5", ".sig", ".asc",
	".yaml", ".yml", ".json", ".toml", ".ini", ".conf", ".txt", ".md", ".log", ".sh", ".pid", ".lock"}

// skipName reports names that are never backups: hidden files and the
// endings above.
func skipName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	lower := strings.ToLower(name)
	for _, suffix := range notBackups {
		if strings.HasSuffix(lower, suffix) {
			return true
		}
	}
	return false
}

var (
	_ drills.Reopener = (*fileSource)(nil)
	_ drills.Reopener = (*s3Source)(nil)
)

// Reopen gives a recorded backup its Fetch again.
func (s *fileSource) Reopen(_ context.Context, b drills.Backup) (drills.Backup, error) {
	path := b.ID
	if err := reopenFingerprint(&b, func() ([]byte, error) { return readLocalFingerprint(path) }); err != nil {
		return b, err
	}
	b.Fetch = func(context.Context, string, func(int64, int64)) (string, error) { return path, nil }
	return b, nil
}

// Reopen gives a recorded backup its Fetch again.
func (s *s3Source) Reopen(ctx context.Context, b drills.Backup) (drills.Backup, error) {
	key, ok := strings.CutPrefix(b.ID, "s3://"+s.bucket+"/")
	if !ok {
		return b, fmt.Errorf("backup %s is not in s3://%s", b.ID, s.bucket)
	}
	if err := reopenFingerprint(&b, func() ([]byte, error) { return s.readFingerprint(ctx, key) }); err != nil {
		return b, err
	}
	size := b.SizeBytes
	b.Fetch = func(ctx context.Context, dir string, progress func(int64, int64)) (string, error) {
		head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
		if err != nil {
			return "", s.explain(err)
		}
		if n := aws.ToInt64(head.ContentLength); n != size {
			return "", fmt.Errorf("s3://%s/%s is %d bytes, not the %d it was when located: it was replaced", s.bucket, key, n, size)
		}
		return s.download(ctx, object{key: key, size: size, etag: head.ETag}, dir, progress)
	}
	return b, nil
}
