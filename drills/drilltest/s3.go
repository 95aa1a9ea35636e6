package drilltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Server is gofakes3 over real HTTP. NewS3 points the standard AWS
// environment (credentials, region, AWS_ENDPOINT_URL_S3) at it, so tests
// using it cannot run in parallel.
type S3Server struct {
	URL    string
	Client *s3.Client
}

// NewS3 starts an S3 server for the test.
func NewS3(t testing.TB) S3Server {
	t.Helper()
	return NewS3With(t, nil)
}

// NewS3With starts an S3 server whose handler wrap wraps (when not nil):
// a test makes the server fail some requests.
func NewS3With(t testing.TB, wrap func(http.Handler) http.Handler) S3Server {
	t.Helper()
	var h http.Handler = gofakes3.New(s3mem.New()).Server()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL_S3", ts.URL)
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return S3Server{URL: ts.URL, Client: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })}
}

// Bucket creates a bucket.
func (s S3Server) Bucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
}

// Put stores an object.
func (s S3Server) Put(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	_, err := s.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

// Digest digests every object of a bucket (key, size, ETag): equal digests
// mean nothing was written there.
func (s S3Server) Digest(t *testing.T, bucket string) string {
	t.Helper()
	h := sha256.New()
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			fmt.Fprintf(h, "%s %d %s\n", aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag))
			n++
		}
	}
	return fmt.Sprintf("%d objects %x", n, h.Sum(nil))
}

// Delete removes an object, failing the test when it does not exist.
func (s S3Server) Delete(t *testing.T, bucket, key string) {
	t.Helper()
	if _, err := s.Client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if _, err := s.Client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
}

// IfMatch wraps an S3 server's handler so that a GET or HEAD with an
// If-Match header whose ETag is not the object's is refused with 412
// PreconditionFailed, as S3 does (the test server honours If-Match on PUT
// only).
func IfMatch(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := r.Header.Get("If-Match")
		if want == "" || r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		head := httptest.NewRecorder()
		probe := r.Clone(r.Context())
		probe.Method = http.MethodHead
		probe.Header.Del("If-Match")
		probe.Header.Del("Range")
		h.ServeHTTP(head, probe)
		if got := head.Header().Get("ETag"); head.Code == http.StatusOK && got != want {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusPreconditionFailed)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>`)
			return
		}
		h.ServeHTTP(w, r)
	})
}
