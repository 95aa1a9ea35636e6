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
	"sync/atomic"
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
	// Every GET names the version listed (its ETag): an object replaced
	// since fails the download, never mixes versions or sizes.
	obj := object{key: key, size: b.SizeBytes, etag: newest.ETag}
	b.Fetch = func(ctx context.Context, dir string, progress func(int64, int64)) (string, error) {
		return s.download(ctx, obj, dir, progress)
	}
	b.Stream = func(ctx context.Context, progress func(int64, int64)) (io.ReadCloser, error) {
		return s.stream(ctx, obj, progress)
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
		case "PreconditionFailed":
			return fmt.Errorf("an object under s3://%s/%s was replaced while drill read it (its ETag changed): run the drill again to restore the new one", s.bucket, s.prefix)
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

// object is one version of an object: its key, size and ETag as listed.
type object struct {
	key  string
	size int64
	etag *string
}

// download fetches an object into dir.
func (s *s3Source) download(ctx context.Context, obj object, dir string, progress func(int64, int64)) (string, error) {
	dst := filepath.Join(dir, safeName(path.Base(obj.key)))
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var done atomic.Int64
	var mu sync.Mutex
	var last time.Time
	report := func(n int64) {
		d := done.Add(n)
		if progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) > 500*time.Millisecond || d == obj.size {
			progress(d, obj.size)
			last = time.Now()
		}
	}
	if obj.size < rangedMin {
		err = s.getRange(ctx, obj, 0, obj.size, io.NewOffsetWriter(f, 0), report)
	} else {
		err = s.getRanges(ctx, obj, f, report)
	}
	if err != nil {
		return "", fmt.Errorf("download s3://%s/%s: %w", s.bucket, obj.key, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if got := done.Load(); got != obj.size {
		return "", fmt.Errorf("download s3://%s/%s: got %d of %d bytes", s.bucket, obj.key, got, obj.size)
	}
	return dst, nil
}

// getRanges fetches an object in parts, rangeWorkers at a time, each into
// its place in f.
func (s *s3Source) getRanges(ctx context.Context, obj object, f *os.File, report func(int64)) error {
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
				first = s.getRange(ctx, obj, off, min(rangeSize, obj.size-off), io.NewOffsetWriter(f, off), report)
				if first != nil {
					cancel()
				}
			}
			errs <- first
		}()
	}
	for off := int64(0); off < obj.size && ctx.Err() == nil; off += rangeSize {
		parts <- off
	}
	close(parts)
	var err error
	for range rangeWorkers {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}

// getRange streams n bytes of an object from off into w, and fails unless
// the server sent exactly those bytes of the version listed.
func (s *s3Source) getRange(ctx context.Context, obj object, off, n int64, w io.Writer, report func(int64)) error {
	if n == 0 {
		return nil
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(obj.key), IfMatch: obj.etag,
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))}, partOfObject)
	if err != nil {
		return s.explain(err)
	}
	defer out.Body.Close()
	if cl := aws.ToInt64(out.ContentLength); out.ContentLength != nil && cl != n {
		return fmt.Errorf("s3://%s/%s: asked for %d bytes at byte %d, the server sent %d", s.bucket, obj.key, n, off, cl)
	}
	got, err := io.Copy(countingWriter{w, report}, io.LimitReader(out.Body, n))
	if err == nil && got != n {
		err = fmt.Errorf("got %d of %d bytes", got, n)
	}
	if err != nil {
		return fmt.Errorf("s3://%s/%s at byte %d: %w", s.bucket, obj.key, off, err)
	}
	return nil
}

// countingWriter reports each write's size.
type countingWriter struct {
	w      io.Writer
	report func(int64)
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.report(int64(n))
	return n, err
}

// A stream reads an object in order while parts of streamPart bytes are
// fetched side by side, each into one of rangeWorkers+1 buffers used over
// and over (so up to rangeWorkers+1 parts are in flight): memory stays at
// (rangeWorkers+1) × streamPart whatever the object's size, and nothing is
// written to disk. A part is read whole before it is handed on, so no
// connection idles while the restore is busy elsewhere.
const streamPart = 8 << 20

// errStreamClosed is what a stream returns once closed.
var errStreamClosed = errors.New("read from a closed stream")

// stream reads an object from its start.
func (s *s3Source) stream(ctx context.Context, obj object, progress func(int64, int64)) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	nparts := int((obj.size + streamPart - 1) / streamPart)
	st := &objectStream{cancel: cancel, size: obj.size, progress: progress,
		parts: make(chan *streamedPart, rangeWorkers), free: make(chan []byte, rangeWorkers+1)}
	for range min(rangeWorkers+1, nparts) {
		st.free <- make([]byte, min(streamPart, obj.size))
	}
	st.wg.Add(1)
	go func() { // hands out the parts in order; each is fetched in a goroutine of its own
		defer st.wg.Done()
		defer close(st.parts)
		for off := int64(0); off < obj.size; off += streamPart {
			var buf []byte
			select {
			case buf = <-st.free:
			case <-ctx.Done():
				return
			}
			p := &streamedPart{buf: buf[:min(int64(len(buf)), obj.size-off)], done: make(chan struct{})}
			st.wg.Add(1)
			go func() {
				defer st.wg.Done()
				defer close(p.done)
				p.err = s.getRange(ctx, obj, off, int64(len(p.buf)), &sliceWriter{b: p.buf}, func(int64) {})
			}()
			select {
			case st.parts <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	return st, nil
}

// sliceWriter fills b, and fails rather than write past its end.
type sliceWriter struct {
	b []byte
	n int
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.b)-w.n {
		return 0, errors.New("more bytes than asked for")
	}
	w.n += copy(w.b[w.n:], p)
	return len(p), nil
}

// objectStream is an object read in order from parts fetched side by side.
type objectStream struct {
	cancel   context.CancelFunc
	size     int64
	progress func(int64, int64)
	said     time.Time

	parts chan *streamedPart // in order
	free  chan []byte
	cur   *streamedPart
	wg    sync.WaitGroup

	read   int64
	err    error
	closed atomic.Bool
}

type streamedPart struct {
	buf  []byte
	off  int // bytes of buf already read
	done chan struct{}
	err  error
}

func (st *objectStream) Read(b []byte) (int, error) {
	if st.closed.Load() {
		return 0, errStreamClosed
	}
	if st.err != nil {
		return 0, st.err
	}
	n, err := st.next(b)
	st.read += int64(n)
	if st.progress != nil && (time.Since(st.said) > 500*time.Millisecond || err == io.EOF) {
		st.progress(st.read, st.size)
		st.said = time.Now()
	}
	if err == io.EOF && st.read != st.size {
		err = fmt.Errorf("the object ended after %d of %d bytes", st.read, st.size)
	}
	if err != nil {
		st.err = err
	}
	return n, err
}

func (st *objectStream) next(b []byte) (int, error) {
	for st.cur == nil || st.cur.off == len(st.cur.buf) {
		if st.cur != nil {
			st.free <- st.cur.buf[:cap(st.cur.buf)]
			st.cur = nil
		}
		p, ok := <-st.parts
		if !ok {
			return 0, io.EOF
		}
		<-p.done
		if p.err != nil {
			return 0, p.err
		}
		st.cur = p
	}
	n := copy(b, st.cur.buf[st.cur.off:])
	st.cur.off += n
	return n, nil
}

// Close stops the parts still being fetched and waits for them.
func (st *objectStream) Close() error {
	if st.closed.Swap(true) {
		return nil
	}
	st.cancel()
	go func() { // lets the dispatcher see the cancellation, whatever it waits for
		for p := range st.parts {
			<-p.done
		}
	}()
	st.wg.Wait()
	return nil
}

// partOfObject is the option of a ranged GET: a whole object's checksum
// does not hold for a part of it (some servers send it with ranged
// answers); drill computes the sha256 of the whole download itself.
func partOfObject(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

func safeName(name string) string {
	if name == "" || name == "." || name == ".." || name == "/" {
		return "backup"
	}
	return name
}
