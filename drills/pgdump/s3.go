package pgdump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"drill/drills"
	"drill/verify"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3Source finds the newest object under s3://bucket/prefix.
type s3Source struct {
	cfg    SourceConfig
	bucket string
	prefix string
	client *s3.Client
}

func newS3Source(ctx context.Context, cfg SourceConfig) (*s3Source, error) {
	u, err := url.Parse(cfg.Location)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("location %q: want s3://bucket/prefix/", cfg.Location)
	}
	s := &s3Source{cfg: cfg, bucket: u.Host, prefix: strings.TrimPrefix(u.Path, "/")}
	if s.client, err = NewS3Client(ctx, cfg.Region, cfg.Endpoint, cfg.Location); err != nil {
		return nil, err
	}
	return s, nil
}

// NewS3Client is an S3 client for the AWS environment, with region and
// endpoint (when set) overriding it; what names the location in errors.
func NewS3Client(ctx context.Context, region, endpoint, what string) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	custom := endpoint != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		if !custom {
			return nil, fmt.Errorf("%s: no AWS region: set AWS_REGION or source.region", what)
		}
		awsCfg.Region = "us-east-1" // S3-compatible servers mostly ignore it
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		// Custom endpoints (MinIO, Ceph, test servers) seldom serve
		// virtual-hosted buckets.
		o.UsePathStyle = custom
	}), nil
}

// Latest lists every object under the prefix and returns the newest (by
// LastModified, ties broken by the larger key). Its first MiB tells the
// format and, for archives, the creation time from the archive header.
func (s *s3Source) Latest(ctx context.Context) (drills.Backup, error) {
	found, err := s.newest(ctx)
	if err != nil {
		return drills.Backup{}, err
	}
	newest := found[0]
	key := aws.ToString(newest.Key)
	id := "s3://" + s.bucket + "/" + key
	b := drills.Backup{ID: id, SizeBytes: aws.ToInt64(newest.Size),
		CreatedAt: aws.ToTime(newest.LastModified).UTC(), CreatedAtSource: "object last-modified"}
	head, err := s.head(ctx, key)
	if err != nil {
		return drills.Backup{}, err
	}
	if b.Format, err = detectFormat(key, head); err != nil {
		return drills.Backup{}, fmt.Errorf("newest backup %s: %w", id, err)
	}
	if b.Format == drills.FormatCustom || b.Format == drills.FormatTar {
		// The header of a custom or tar archive sits at its start; a
		// header too long for the first MiB leaves LastModified in place.
		if h, err := s.headerOf(ctx, head); err == nil {
			b.CreatedAt, b.CreatedAtSource, b.Database = h.CreatedAt.UTC(), "archive header", h.Database
		}
	}
	err = addFingerprint(&b, id+verify.FingerprintSuffix, func() ([]byte, error) { return s.readFingerprint(ctx, key) })
	if err != nil {
		return drills.Backup{}, err
	}
	candidates := make([]drills.Candidate, len(found))
	for i, o := range found {
		candidates[i] = drills.Candidate{Name: aws.ToString(o.Key), Time: aws.ToTime(o.LastModified)}
	}
	b.Selection = drills.Select("the newest object under s3://"+s.bucket+"/"+s.prefix+" by last-modified time (ties: the larger key)"+patternNote(s.cfg.Pattern), candidates)
	b.Fetch = func(ctx context.Context, dir string, progress func(int64, int64)) (string, error) {
		return s.download(ctx, key, b.SizeBytes, dir, progress)
	}
	b.Start = func(ctx context.Context, dir string, progress func(int64, int64)) (*drills.Download, error) {
		return s.start(ctx, key, b.SizeBytes, dir, progress)
	}
	return b, nil
}

// newest lists the backups under the prefix, newest first.
func (s *s3Source) newest(ctx context.Context) ([]types.Object, error) {
	var found []types.Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.explain(err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			name := path.Base(key)
			if strings.HasSuffix(key, "/") || aws.ToInt64(o.Size) == 0 && strings.HasSuffix(name, "$folder$") ||
				skipName(name) || !matches(s.cfg.Pattern, name) {
				continue
			}
			found = append(found, o)
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: no objects under s3://%s/%s", drills.ErrNoBackup, s.bucket, s.prefix)
	}
	sort.Slice(found, func(i, j int) bool { return newer(found[i], found[j]) })
	return found, nil
}

func newer(a, b types.Object) bool {
	ta, tb := aws.ToTime(a.LastModified), aws.ToTime(b.LastModified)
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return aws.ToString(a.Key) > aws.ToString(b.Key)
}

// explain turns the S3 errors users meet into messages that say what to do.
func (s *s3Source) explain(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("%w: bucket %q does not exist (check source.location and the region/endpoint)", drills.ErrNoBackup, s.bucket)
		case "AccessDenied", "Forbidden":
			return fmt.Errorf("access denied to s3://%s/%s: the credentials need s3:ListBucket on the bucket and s3:GetObject on the prefix", s.bucket, s.prefix)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken":
			return fmt.Errorf("S3 rejected the credentials (%s): check AWS_PROFILE / AWS_ACCESS_KEY_ID", apiErr.ErrorCode())
		}
	}
	return fmt.Errorf("s3://%s/%s: %w", s.bucket, s.prefix, err)
}

// head reads the first headerSize bytes of an object.
func (s *s3Source) head(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=0-%d", headerSize-1))}, partOfObject)
	if err != nil {
		return nil, s.explain(err)
	}
	defer out.Body.Close()
	return io.ReadAll(io.LimitReader(out.Body, headerSize))
}

// headerOf runs pg_restore --list on the first bytes of an archive.
func (s *s3Source) headerOf(ctx context.Context, head []byte) (archiveHeader, error) {
	f, err := os.CreateTemp("", "drill-header-*")
	if err != nil {
		return archiveHeader{}, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(head); err != nil {
		f.Close()
		return archiveHeader{}, err
	}
	if err := f.Close(); err != nil {
		return archiveHeader{}, err
	}
	return readArchiveHeader(ctx, s.cfg.PGRestore, f.Name())
}

// Parallel download: objects larger than rangedMin are fetched in parts of
// rangeSize bytes, rangeWorkers at a time (ranged GETs, as the SDK's
// transfer manager does), each streamed into its place in the file:
// memory use does not grow with the object's size, and one slow
// connection does not bound the download.
const (
	rangeSize    = 16 << 20
	rangeWorkers = 4
	rangedMin    = 2 * rangeSize
)

// download fetches an object into dir.
func (s *s3Source) download(ctx context.Context, key string, size int64, dir string, progress func(int64, int64)) (string, error) {
	d, err := s.start(ctx, key, size, dir, progress)
	if err != nil {
		return "", err
	}
	if err := d.Wait(); err != nil {
		return "", err
	}
	return d.Path, nil
}

// start begins fetching an object into dir, and returns the download at
// once.
func (s *s3Source) start(ctx context.Context, key string, size int64, dir string, progress func(int64, int64)) (*drills.Download, error) {
	dst := filepath.Join(dir, safeName(path.Base(key)))
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	d := drills.NewDownload(dst, size)
	go func() {
		err := s.fetchInto(ctx, key, f, d, progress)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("download s3://%s/%s: %w", s.bucket, key, err)
		}
		d.Finish(err)
	}()
	return d, nil
}

// fetchInto writes the object into f, telling d (and progress) how far
// the bytes from its start have arrived.
func (s *s3Source) fetchInto(ctx context.Context, key string, f *os.File, d *drills.Download, progress func(int64, int64)) error {
	size := d.Size
	var mu sync.Mutex
	var last time.Time
	var done int64
	parts := newPrefix(size, rangeSize)
	report := func(off, n int64) {
		mu.Lock()
		defer mu.Unlock()
		done += n
		d.Advance(parts.add(off, n))
		if progress != nil && (time.Since(last) > 500*time.Millisecond || done == size) {
			progress(done, size)
			last = time.Now()
		}
	}
	var err error
	if size < rangedMin {
		err = s.getRange(ctx, key, 0, -1, nil, f, report)
	} else {
		err = s.getRanges(ctx, key, size, f, report)
	}
	if err == nil && done != size {
		err = fmt.Errorf("got %d of %d bytes", done, size)
	}
	return err
}

// prefix tracks the parts of a download written side by side, and how
// many bytes from the start are all there.
type prefix struct {
	size, part int64
	written    []int64 // bytes written of each part
	first      int     // the first part not yet whole
}

func newPrefix(size, part int64) *prefix {
	return &prefix{size: size, part: part, written: make([]int64, size/part+1)}
}

// add records n bytes written at off (each part's bytes are written in
// order) and returns the bytes from the start that are all there.
func (p *prefix) add(off, n int64) int64 {
	for n > 0 {
		i := int(off / p.part)
		if i >= len(p.written) {
			break
		}
		in := min(n, int64(i+1)*p.part-off)
		p.written[i] += in
		off, n = off+in, n-in
	}
	for p.first < len(p.written) && p.written[p.first] >= p.partLen(p.first) {
		p.first++
	}
	if p.first >= len(p.written) {
		return p.size
	}
	return int64(p.first)*p.part + p.written[p.first]
}

func (p *prefix) partLen(i int) int64 {
	return max(min(p.part, p.size-int64(i)*p.part), 0)
}

// getRanges fetches an object of size bytes in parts, rangeWorkers at a
// time, each into its place in f. Every part must come from the same
// version of the object (its ETag): one replaced meanwhile fails.
func (s *s3Source) getRanges(ctx context.Context, key string, size int64, f *os.File, report func(off, n int64)) error {
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return s.explain(err)
	}
	etag := head.ETag
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make(chan int64)
	errs := make(chan error, rangeWorkers)
	for range rangeWorkers {
		go func() {
			var first error
			for off := range parts {
				if first != nil {
					continue
				}
				end := min(off+rangeSize, size) - 1
				first = s.getRange(ctx, key, off, end, etag, f, report)
				if first != nil {
					cancel()
				}
			}
			errs <- first
		}()
	}
	for off := int64(0); off < size && ctx.Err() == nil; off += rangeSize {
		parts <- off
	}
	close(parts)
	for range rangeWorkers {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}

// partOfObject is the option of a ranged GET: a whole object's checksum
// does not hold for a part of it (some servers send it with ranged
// answers); drill computes the sha256 of the whole download itself.
func partOfObject(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// getRange streams bytes from..to of an object (the whole object when to
// is negative) into their place in f.
func (s *s3Source) getRange(ctx context.Context, key string, from, to int64, etag *string, f *os.File, report func(off, n int64)) error {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), IfMatch: etag}
	var opts []func(*s3.Options)
	if to >= 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", from, to))
		opts = append(opts, partOfObject)
	}
	out, err := s.client.GetObject(ctx, in, opts...)
	if err != nil {
		return s.explain(err)
	}
	defer out.Body.Close()
	_, err = io.Copy(&placedWriter{f: f, off: from, report: report}, out.Body)
	return err
}

// placedWriter writes what it is given at its place in f, in order, and
// reports each write.
type placedWriter struct {
	f      *os.File
	off    int64
	report func(off, n int64)
}

func (w *placedWriter) Write(b []byte) (int, error) {
	n, err := w.f.WriteAt(b, w.off)
	w.report(w.off, int64(n))
	w.off += int64(n)
	return n, err
}

func safeName(name string) string {
	if name == "" || name == "." || name == ".." || name == "/" {
		return "backup"
	}
	return name
}
