package pgdump

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"drill/drills"
	"drill/verify"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Keys of Backup.Details about the fingerprint.
const (
	detailFingerprint       = "fingerprint"
	detailFingerprintSHA256 = "fingerprint_sha256"
)

// withFingerprint reads the fingerprint beside a backup, when there is
// one, into b: the backup's creation time becomes the time of the snapshot
// it was dumped from. open returns the file's bytes, or an error wrapping
// fs.ErrNotExist when there is none. A fingerprint that is there but
// invalid is an error: it may be a forgery.
func withFingerprint(b *drills.Backup, where string, data []byte) error {
	fp, err := verify.ReadFingerprint(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	sum := sha256.Sum256(data)
	b.Fingerprint = fp
	b.CreatedAt, b.CreatedAtSource = fp.SnapshotTakenAt.UTC(), "fingerprint"
	if b.Details == nil {
		b.Details = map[string]string{}
	}
	b.Details[detailFingerprint] = where
	if fp.ServerVersion != "" {
		b.Details["source_server_version"] = fp.ServerVersion
	}
	b.Details[detailFingerprintSHA256] = hex.EncodeToString(sum[:])
	return nil
}

// reopenFingerprint reads a recorded backup's fingerprint again and checks
// it is the one the run started with.
func reopenFingerprint(b *drills.Backup, read func() ([]byte, error)) error {
	where, want := b.Details[detailFingerprint], b.Details[detailFingerprintSHA256]
	if where == "" {
		return nil
	}
	data, err := read()
	if err != nil {
		return fmt.Errorf("fingerprint %s: %w", where, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want {
		return fmt.Errorf("fingerprint %s changed since the run located its backup", where)
	}
	created, source := b.CreatedAt, b.CreatedAtSource
	err = withFingerprint(b, where, data)
	b.CreatedAt, b.CreatedAtSource = created, source
	return err
}

// readLocalFingerprint reads PATH.fingerprint.json; fs.ErrNotExist when absent.
func readLocalFingerprint(path string) ([]byte, error) {
	f, err := drills.OpenRegular(path + verify.FingerprintSuffix)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f)
}

func readCapped(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, verify.MaxFingerprintBytes+1))
	if err == nil && len(data) > verify.MaxFingerprintBytes {
		err = fmt.Errorf("larger than %d MiB", verify.MaxFingerprintBytes>>20)
	}
	return data, err
}

// readS3Fingerprint reads KEY.fingerprint.json; fs.ErrNotExist when absent.
func (s *s3Source) readFingerprint(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key + verify.FingerprintSuffix)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound") {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, s.explain(err)
	}
	defer out.Body.Close()
	return readCapped(out.Body)
}

// addFingerprint looks for the fingerprint beside a backup.
func addFingerprint(b *drills.Backup, where string, read func() ([]byte, error)) error {
	data, err := read()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fingerprint %s: %w", where, err)
	}
	return withFingerprint(b, where, data)
}
