package pgdump

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"drill/verify"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// sink is where a dump goes. Nothing appears under the backup's name
// until commit; abort removes whatever was written.
type sink interface {
	io.Writer
	// commit publishes the dump, then its fingerprint, under their names.
	// Nothing is replaced until the dump is whole; an error after the dump
	// is in place wraps ErrDumpWritten.
	commit(ctx context.Context, fingerprint []byte) error
	abort(ctx context.Context)
}

// ErrDumpWritten marks an error that came after the dump was in place
// under its name (its fingerprint could not be written).
var ErrDumpWritten = errors.New("the dump was written, but not its fingerprint")

func tempSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return ".drill-tmp-" + hex.EncodeToString(b)
}

// A dump's temporary name (file or directory) is claimed by a lock file
// beside it, TMP.lock, held (flock) while the dump runs: the kernel lets
// go of it when the process ends, however it ends. The next dump to the
// same path removes what a dump that is gone left behind.
const (
	lockSuffix = ".lock"
	staleAfter = time.Minute // a younger lock file may not be locked yet
)

// tempLock matches the name of a temporary name's lock file.
var tempLock = regexp.MustCompile(`^\..+\.drill-tmp-[0-9a-f]{12}\.lock$`)

// claimTemp makes and locks tmp's lock file.
func claimTemp(tmp string) (*os.File, error) {
	f, err := os.OpenFile(tmp+lockSuffix, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// releaseTemp removes and lets go of a lock file; gone says that its
// temporary file or directory is gone (else the lock file stays, for
// the next dump to remove it with what is left).
func releaseTemp(lock *os.File, gone bool) {
	if lock != nil {
		if gone {
			os.Remove(lock.Name())
		}
		lock.Close()
	}
}

// removeStale removes, in the directory of path, the temporary files and
// directories of dumps that are no longer running (killed, or on a
// machine that lost power), and returns what it removed. A lock file
// still held, one too young to tell, and a temporary file or directory
// written to within staleAfter (pg_dump's workers finish the table they
// are on after drill is gone) are left alone.
func removeStale(path string) []string {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !tempLock.MatchString(e.Name()) {
			continue
		}
		lock := filepath.Join(dir, e.Name())
		tmp := strings.TrimSuffix(lock, lockSuffix)
		if fi, err := e.Info(); err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < staleAfter || writtenSince(tmp, time.Now().Add(-staleAfter)) {
			continue
		}
		f, err := os.OpenFile(lock, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && syscall.Fstat(int(f.Fd()), &st) == nil && st.Nlink > 0 {
			_, statErr := os.Lstat(tmp)
			if err := os.RemoveAll(tmp); err == nil { // else tried again by the next dump
				if statErr == nil {
					removed = append(removed, tmp)
				}
				os.Remove(lock)
			}
		}
		f.Close()
	}
	return removed
}

// writtenSince reports whether path, or anything in it, was modified
// after t.
func writtenSince(path string, t time.Time) bool {
	recent := false
	_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().After(t) {
			recent = true
			return filepath.SkipAll
		}
		return nil
	})
	return recent
}

// fileSink writes a file under a hidden temporary name in the directory
// of the backup, renamed into place by commit: a source never takes a
// hidden name for a backup.
type fileSink struct {
	path string
	tmp  string
	f    *os.File
	lock *os.File
}

// parentExists refuses an --out whose directory does not exist, as
// pg_dump -f does.
func parentExists(path string) error {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: --out %s: directory %s does not exist", ErrDumpUsage, path, dir)
	}
	return nil
}

func newFileSink(path string) (*fileSink, error) {
	if strings.HasSuffix(path, string(os.PathSeparator)) {
		return nil, fmt.Errorf("%w: --out %s names a directory; give a file name", ErrDumpUsage, path)
	}
	if err := parentExists(path); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: --out %s exists and is not a file; give a file name (or --format directory for a directory)", ErrDumpUsage, path)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+tempSuffix())
	lock, err := claimTemp(tmp)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		releaseTemp(lock, true)
		return nil, err
	}
	return &fileSink{path: path, tmp: tmp, f: f, lock: lock}, nil
}

func (s *fileSink) Write(p []byte) (int, error) { return s.f.Write(p) }

func (s *fileSink) commit(_ context.Context, fingerprint []byte) error {
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	err := publish(s.tmp, s.path, fingerprint)
	releaseTemp(s.lock, notThere(s.tmp))
	return err
}

// notThere reports whether nothing is at path any more.
func notThere(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// publish renames a finished dump into place, then puts its fingerprint
// beside it by a rename too, so that a reader never sees half of either
// and a failure before the dump is in place replaces nothing.
func publish(tmp, path string, fingerprint []byte) error {
	fp := path + verify.FingerprintSuffix
	fpTmp := filepath.Join(filepath.Dir(fp), "."+filepath.Base(fp)+tempSuffix())
	if err := os.WriteFile(fpTmp, fingerprint, 0o644); err != nil {
		_ = os.Remove(fpTmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(fpTmp)
		return err
	}
	if err := os.Rename(fpTmp, fp); err != nil {
		_ = os.Remove(fpTmp)
		return fmt.Errorf("%w: %v", ErrDumpWritten, err)
	}
	return syncDir(filepath.Dir(path))
}

func (s *fileSink) abort(context.Context) {
	_ = s.f.Close()
	_ = os.Remove(s.tmp)
	releaseTemp(s.lock, notThere(s.tmp))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// dirSink is a directory-format dump: pg_dump writes it into a hidden
// temporary directory, renamed into place by commit.
type dirSink struct {
	path string
	tmp  string
	lock *os.File
}

func newDirSink(path string) (*dirSink, error) {
	path = filepath.Clean(path)
	if err := parentExists(path); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%w: --out %s exists and is not a directory (the directory format writes a directory)", ErrDumpUsage, path)
	}
	if entries, err := os.ReadDir(path); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%w: --out %s exists and is not empty (pg_dump's directory format writes a new directory)", ErrDumpUsage, path)
	} else if err == nil {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+tempSuffix())
	lock, err := claimTemp(tmp)
	if err != nil {
		return nil, err
	}
	return &dirSink{path: path, tmp: tmp, lock: lock}, nil
}

func (s *dirSink) Write(p []byte) (int, error) { return len(p), nil } // pg_dump writes the files itself

func (s *dirSink) commit(_ context.Context, fingerprint []byte) error {
	err := publish(s.tmp, s.path, fingerprint)
	releaseTemp(s.lock, notThere(s.tmp))
	return err
}

func (s *dirSink) abort(context.Context) {
	_ = os.RemoveAll(s.tmp)
	releaseTemp(s.lock, notThere(s.tmp))
}

// s3PartSize is the size of each part of a multipart upload: S3 wants at
// least 5 MiB (but the last) and at most 10,000 parts, so 16 MiB parts
// carry dumps up to 156 GiB; parts grow for larger dumps.
const s3PartSize = 16 << 20

// s3Sink streams a dump into a multipart upload, completed by commit and
// aborted on any failure: no object appears under the key until the dump
// is whole.
type s3Sink struct {
	client      *s3.Client
	bucket, key string
	uploadID    string
	ctx         context.Context
	buf         []byte
	parts       []types.CompletedPart
	partSize    int
}

func newS3Sink(ctx context.Context, client *s3.Client, bucket, key string) (*s3Sink, error) {
	out, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("start the upload to s3://%s/%s: %w", bucket, key, err)
	}
	return &s3Sink{client: client, bucket: bucket, key: key, uploadID: aws.ToString(out.UploadId), ctx: ctx, partSize: s3PartSize}, nil
}

func (s *s3Sink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := s.partSize - len(s.buf)
		take := min(room, len(p))
		s.buf = append(s.buf, p[:take]...)
		p = p[take:]
		if len(s.buf) == s.partSize {
			if err := s.flush(s.ctx); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (s *s3Sink) flush(ctx context.Context) error {
	num := int32(len(s.parts) + 1)
	out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key),
		UploadId: aws.String(s.uploadID), PartNumber: aws.Int32(num), Body: bytes.NewReader(s.buf)})
	if err != nil {
		return fmt.Errorf("upload part %d to s3://%s/%s: %w", num, s.bucket, s.key, err)
	}
	s.parts = append(s.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	s.buf = s.buf[:0]
	if len(s.parts)%1000 == 0 { // keep within 10,000 parts
		s.partSize *= 2
	}
	return nil
}

func (s *s3Sink) commit(ctx context.Context, fingerprint []byte) error {
	if len(s.buf) > 0 || len(s.parts) == 0 {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key),
		UploadId: aws.String(s.uploadID), MultipartUpload: &types.CompletedMultipartUpload{Parts: s.parts}})
	if err != nil {
		return fmt.Errorf("complete the upload to s3://%s/%s: %w", s.bucket, s.key, err)
	}
	s.uploadID = ""
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key + verify.FingerprintSuffix),
		Body: bytes.NewReader(fingerprint), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("%w: upload s3://%s/%s%s: %v", ErrDumpWritten, s.bucket, s.key, verify.FingerprintSuffix, err)
	}
	return nil
}

// abort cancels an upload that did not complete.
func (s *s3Sink) abort(ctx context.Context) {
	if s.uploadID == "" {
		return
	}
	_, _ = s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key), UploadId: aws.String(s.uploadID)})
}
