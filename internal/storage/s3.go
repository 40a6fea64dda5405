package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options say how to reach an S3-compatible service. Empty fields are
// filled from the environment by Open (see S3Options.WithEnv).
type S3Options struct {
	// Endpoint is "host[:port]" or a URL "http(s)://host[:port]"; a URL's
	// scheme decides TLS. Empty means Amazon S3 (s3.amazonaws.com).
	Endpoint string
	Region   string
	// AccessKey and SecretKey are static credentials. When both are empty
	// the AWS credentials file and the EC2/ECS instance role are tried.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// DisableTLS talks plain HTTP to an Endpoint given without a scheme.
	DisableTLS bool
	// PathStyle forces http://host/bucket/key addressing instead of
	// virtual-host style (most self-hosted servers need it).
	PathStyle bool
}

// defaultS3Endpoint is used when neither options nor environment name one.
const defaultS3Endpoint = "s3.amazonaws.com"

// s3ClientRetries bounds minio-go's own quick retries of one request; longer
// outages are the retry wrapper's business (WithRetry).
const s3ClientRetries = 3

// unknownSizePartSize is the multipart part size of a Save of unknown size.
const unknownSizePartSize = 32 << 20

// S3 is a Backend on a bucket of an S3-compatible object store. Object name
// n is stored under key prefix+n.
type S3 struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string // "" or ends with "/"
	endpoint string // for messages: scheme://host
}

// NewS3 returns a backend for bucket, storing objects under prefix. It does
// not contact the server; the first operation does (see Check).
func NewS3(bucket, prefix string, opts S3Options) (*S3, error) {
	if bucket == "" {
		return nil, errors.New("s3 repository: bucket name is empty")
	}
	host, secure, err := parseEndpoint(opts.Endpoint, opts.DisableTLS)
	if err != nil {
		return nil, err
	}
	var creds *credentials.Credentials
	if opts.AccessKey != "" || opts.SecretKey != "" {
		if opts.AccessKey == "" || opts.SecretKey == "" {
			return nil, errors.New("s3 repository: set both the access key and the secret key (or neither, to use the AWS credentials file or instance role)")
		}
		creds = credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, opts.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if opts.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       opts.Region,
		BucketLookup: lookup,
		MaxRetries:   s3ClientRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 repository at %s: %w", host, err)
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	return &S3{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   bucket,
		prefix:   normalizePrefix(prefix),
		endpoint: scheme + "://" + host,
	}, nil
}

// parseEndpoint splits an endpoint into host[:port] and whether to use TLS.
func parseEndpoint(endpoint string, disableTLS bool) (host string, secure bool, err error) {
	if endpoint == "" {
		return defaultS3Endpoint, !disableTLS, nil
	}
	if !strings.Contains(endpoint, "://") {
		if strings.ContainsAny(endpoint, "/?#") {
			return "", false, fmt.Errorf("s3 endpoint %q: expected host[:port] or http(s)://host[:port]", endpoint)
		}
		return endpoint, !disableTLS, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("s3 endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return "", false, fmt.Errorf("s3 endpoint %q: expected host[:port] or http(s)://host[:port]", endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}

func normalizePrefix(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

func (s *S3) Location() string {
	loc := "s3://" + s.bucket
	if s.prefix != "" {
		loc += "/" + strings.TrimSuffix(s.prefix, "/")
	}
	return fmt.Sprintf("%s (endpoint %s)", loc, s.endpoint)
}

func (s *S3) key(name string) string { return s.prefix + name }

// Check verifies that the bucket exists and the credentials may use it.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.classify("check bucket", s.bucket, err)
	}
	if !ok {
		return Permanent("check bucket", s.bucket, fmt.Errorf("bucket %q does not exist at %s: create it or fix the repository URL", s.bucket, s.endpoint))
	}
	return nil
}

func (s *S3) Save(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := validS3Name("save", name); err != nil {
		return err
	}
	src := &sourceReader{r: r}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if size < 0 {
		// Without a size minio-go would size its part buffer for a 5 TiB
		// object; this caps memory and allows objects up to 320 GiB.
		opts.PartSize = unknownSizePartSize
	}
	info, err := s.client.PutObject(ctx, s.bucket, s.key(name), src, size, opts)
	if err != nil {
		if ctx.Err() == nil {
			if src.err != nil {
				return Permanent("save", name, fmt.Errorf("read input: %w", src.err))
			}
			if src.eof && size >= 0 && src.n != size {
				return Permanent("save", name, fmt.Errorf("read %d bytes, expected %d", src.n, size))
			}
		}
		return s.classify("save", name, err)
	}
	if size >= 0 && info.Size != size {
		return Permanent("save", name, fmt.Errorf("stored %d bytes, expected %d", info.Size, size))
	}
	return nil
}

// sourceReader remembers how the caller's input ended: minio-go reports a
// failed or short input like any network failure. It also hides the input's
// io.ReaderAt, which minio-go would read from offset 0 rather than from the
// reader's current position.
type sourceReader struct {
	r   io.Reader
	n   int64
	eof bool
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil:
		s.err = err
	}
	return n, err
}

func (s *S3) Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := validS3Name("load", name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, Permanent("load", name, fmt.Errorf("negative offset %d", offset))
	}
	opts := minio.GetObjectOptions{}
	switch {
	case length > 0:
		if err := opts.SetRange(offset, offset+length-1); err != nil {
			return nil, Permanent("load", name, err)
		}
	case offset > 0:
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, Permanent("load", name, err)
		}
	}
	body, _, _, err := s.core.GetObject(ctx, s.bucket, s.key(name), opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return s.loadPastEnd(ctx, name, offset)
		}
		return nil, s.classify("load", name, err)
	}
	return &s3Reader{s: s, name: name, body: body}, nil
}

// loadPastEnd handles a range the server refused because it starts at or
// beyond the end: reading from exactly the end yields nothing, as for the
// other backends; beyond it is an error.
func (s *S3) loadPastEnd(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	fi, err := s.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if offset > fi.Size {
		return nil, Permanent("load", name, fmt.Errorf("offset %d outside object of %d bytes", offset, fi.Size))
	}
	return io.NopCloser(strings.NewReader("")), nil
}

type s3Reader struct {
	s    *S3
	name string
	body io.ReadCloser
}

func (r *s3Reader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.classify("load", r.name, err)
	}
	return n, err
}

func (r *s3Reader) Close() error { return r.body.Close() }

func (s *S3) Stat(ctx context.Context, name string) (FileInfo, error) {
	if err := validS3Name("stat", name); err != nil {
		return FileInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		return FileInfo{}, s.classify("stat", name, err)
	}
	return FileInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

func (s *S3) List(ctx context.Context, prefix string, fn func(FileInfo) error) error {
	// Cancelling stops minio-go's listing goroutine when fn stops early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:    s.prefix + prefix,
		Recursive: true,
	}) {
		if oi.Err != nil {
			return s.classify("list", prefix, oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, s.prefix)
		if name == "" || strings.HasSuffix(name, "/") {
			continue // directory markers some servers report
		}
		if err := fn(FileInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

func (s *S3) Remove(ctx context.Context, name string) error {
	if err := validS3Name("remove", name); err != nil {
		return err
	}
	// S3 deletes of missing keys succeed, but our contract reports them.
	if _, err := s.Stat(ctx, name); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{}); err != nil {
		return s.classify("remove", name, err)
	}
	return nil
}

func validS3Name(op, name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
		return Permanent(op, name, errors.New(`invalid object name: use "/"-separated relative names`))
	}
	return nil
}

// classify maps a minio-go or network error onto the storage error kinds,
// with advice for the errors a person must fix. It never includes secrets:
// minio-go's messages carry at most the access key id.
func (s *S3) classify(op, name string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		return NotExist(op, name, err)
	case "NoSuchBucket":
		return Permanent(op, name, fmt.Errorf("bucket %q does not exist at %s: create it or fix the repository URL: %w", s.bucket, s.endpoint, err))
	case "AccessDenied", "AllAccessDisabled", "AccountProblem":
		return Permanent(op, name, fmt.Errorf("access to bucket %q at %s denied: check the key's permissions on the bucket and prefix: %w", s.bucket, s.endpoint, err))
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
		"InvalidClientTokenId", "XAdminUserNotFound": // the last: versitygw's unknown access key
		return Permanent(op, name, fmt.Errorf("%s rejected the credentials: check the access key and secret key (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the clock of this host: %w", s.endpoint, err))
	case "AuthorizationHeaderMalformed", "InvalidRegion", "PermanentRedirect":
		return Permanent(op, name, fmt.Errorf("bucket %q is not in the configured region: check the region (AWS_REGION) and endpoint: %w", s.bucket, err))
	case "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
		"OperationAborted", "Throttling", "ThrottlingException", "RequestLimitExceeded":
		return Retryable(op, name, err)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return Retryable(op, name, err)
	}
	if resp.StatusCode == http.StatusNotFound && resp.Code == "" {
		return NotExist(op, name, err)
	}
	if resp.StatusCode != 0 {
		return Permanent(op, name, err)
	}
	if isCertificateError(err) {
		return Permanent(op, name, fmt.Errorf("TLS certificate of %s not trusted: fix the certificate or the CA bundle, or use the right host name in the endpoint: %w", s.endpoint, err))
	}
	if isNetworkError(err) {
		return Retryable(op, name, fmt.Errorf("cannot reach %s: %w", s.endpoint, err))
	}
	// Neither an S3 answer nor a recognised network failure: most often a
	// transport error minio-go did not wrap; treat it as transient so a
	// reconnect timeout still applies.
	return Retryable(op, name, err)
}

func isCertificateError(err error) bool {
	var unknownAuthority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownAuthority) || errors.As(err, &invalid) ||
		errors.As(err, &hostname) || errors.As(err, &verify)
}

func isNetworkError(err error) bool {
	var netErr net.Error
	var urlErr *url.Error
	var opErr *net.OpError
	return errors.As(err, &netErr) || errors.As(err, &urlErr) || errors.As(err, &opErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
