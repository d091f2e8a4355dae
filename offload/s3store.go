package offload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Defaults and limits of S3Options.
const (
	// DefaultS3PartSize is the multipart part size when S3Options.PartSize
	// is 0. With S3's 10,000-part limit it allows objects up to ~156 GiB.
	DefaultS3PartSize = 16 << 20
	// MinS3PartSize is S3's minimum size of every part but the last.
	MinS3PartSize = 5 << 20
	// DefaultS3UploadConcurrency is how many parts upload at once when
	// S3Options.UploadConcurrency is 0.
	DefaultS3UploadConcurrency = 2
	// DefaultS3Region is the region used when S3Options.Region is empty.
	DefaultS3Region = "us-east-1"
)

// S3Options configures the S3 driver. Only Bucket is required.
type S3Options struct {
	// Endpoint is "host[:port]" or a URL "http(s)://host[:port]"; a URL's
	// scheme decides TLS. Empty means AWS S3 (s3.amazonaws.com).
	Endpoint string
	// Region of the bucket; default DefaultS3Region.
	Region string
	// Bucket holds every object of this store.
	Bucket string
	// AccessKey and SecretKey are static credentials. When both are empty
	// the driver tries, in order: env AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
	// (and AWS_SESSION_TOKEN), env MINIO_ROOT_USER/MINIO_ROOT_PASSWORD, the
	// AWS shared credentials file, then the EC2/ECS/EKS IAM role endpoints.
	AccessKey, SecretKey string
	// SessionToken goes with temporary static credentials; optional.
	SessionToken string
	// PathStyle forces path-style requests (http://host/bucket/key), which
	// most non-AWS stores (MinIO, versitygw, Ceph) need. Otherwise the
	// client picks virtual-host style for AWS and path style elsewhere.
	PathStyle bool
	// TLS uses https when Endpoint has no scheme.
	TLS bool
	// CAFile is a PEM bundle trusted in addition to the system roots
	// (a private CA); it implies TLS.
	CAFile string
	// InsecureSkipVerify disables certificate checks. Tests only.
	InsecureSkipVerify bool
	// PartSize is the multipart part size in bytes for uploads of unknown
	// length (every part but the last has exactly this size), at least
	// MinS3PartSize; default DefaultS3PartSize. Memory per upload is
	// PartSize × UploadConcurrency.
	PartSize int64
	// UploadConcurrency is the number of parts uploaded in parallel;
	// default DefaultS3UploadConcurrency.
	UploadConcurrency int
	// MaxRetries is how many times a failed request is tried (1 = no
	// retry); 0 keeps minio-go's default (10, with backoff).
	MaxRetries int
	// DisableCreateBucket makes Check fail with ErrBucketNotFound instead
	// of creating a missing bucket.
	DisableCreateBucket bool
	// Transport overrides the HTTP transport (tests, proxies). When set,
	// TLS settings other than the scheme are the transport's business.
	Transport http.RoundTripper
}

// EnsureDefaults fills zero fields with their defaults.
func (o *S3Options) EnsureDefaults() {
	if o.Region == "" {
		o.Region = DefaultS3Region
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultS3PartSize
	}
	if o.UploadConcurrency == 0 {
		o.UploadConcurrency = DefaultS3UploadConcurrency
	}
}

// Validate reports the first invalid field.
func (o *S3Options) Validate() error {
	if o.Bucket == "" {
		return fmt.Errorf("%w: s3: Bucket is required", ErrInvalidArgument)
	}
	if err := s3utils.CheckValidBucketName(o.Bucket); err != nil {
		return fmt.Errorf("%w: s3: Bucket %q: %v", ErrInvalidArgument, o.Bucket, err)
	}
	if o.PartSize < MinS3PartSize {
		return fmt.Errorf("%w: s3: PartSize %d is below S3's minimum part size %d", ErrInvalidArgument, o.PartSize, MinS3PartSize)
	}
	if o.UploadConcurrency < 1 {
		return fmt.Errorf("%w: s3: UploadConcurrency must be >= 1", ErrInvalidArgument)
	}
	if o.MaxRetries < 0 {
		return fmt.Errorf("%w: s3: MaxRetries must be >= 0", ErrInvalidArgument)
	}
	if (o.AccessKey == "") != (o.SecretKey == "") {
		return fmt.Errorf("%w: s3: set both AccessKey and SecretKey, or neither", ErrInvalidArgument)
	}
	if _, _, err := o.endpoint(); err != nil {
		return err
	}
	return nil
}

// endpoint returns host[:port] and whether to use TLS.
func (o *S3Options) endpoint() (host string, secure bool, err error) {
	ep := o.Endpoint
	if ep == "" {
		ep = "s3.amazonaws.com"
		secure = true
	}
	secure = secure || o.TLS || o.CAFile != ""
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return "", false, fmt.Errorf("%w: s3: Endpoint %q: %v", ErrInvalidArgument, ep, err)
		}
		switch u.Scheme {
		case "https":
			secure = true
		case "http":
			if o.TLS || o.CAFile != "" {
				return "", false, fmt.Errorf("%w: s3: Endpoint %q is http but TLS/CAFile is set", ErrInvalidArgument, ep)
			}
			secure = false
		default:
			return "", false, fmt.Errorf("%w: s3: Endpoint %q: scheme must be http or https", ErrInvalidArgument, ep)
		}
		if u.Path != "" && u.Path != "/" {
			return "", false, fmt.Errorf("%w: s3: Endpoint %q must not have a path", ErrInvalidArgument, ep)
		}
		ep = u.Host
	}
	if ep == "" || strings.ContainsAny(ep, "/ ") {
		return "", false, fmt.Errorf("%w: s3: bad Endpoint %q", ErrInvalidArgument, o.Endpoint)
	}
	return ep, secure, nil
}

// S3Store is a BlobStore on an S3-compatible object store via minio-go.
type S3Store struct {
	opts   S3Options
	client *minio.Client
	core   minio.Core
	host   string
}

var _ BlobStore = (*S3Store)(nil)

// NewS3Store builds an S3 store. It does not contact the server; call Check
// at start-up.
func NewS3Store(opts S3Options) (*S3Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	host, secure, _ := opts.endpoint()
	transport := opts.Transport
	if transport == nil {
		t, err := minio.DefaultTransport(secure)
		if err != nil {
			return nil, fmt.Errorf("offload: s3 transport: %w", err)
		}
		if secure {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			t.TLSClientConfig.InsecureSkipVerify = opts.InsecureSkipVerify
			if opts.CAFile != "" {
				pem, err := os.ReadFile(opts.CAFile)
				if err != nil {
					return nil, fmt.Errorf("offload: s3 CA file: %w", err)
				}
				pool, err := x509.SystemCertPool()
				if err != nil || pool == nil {
					pool = x509.NewCertPool()
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("%w: s3 CA file %q holds no PEM certificate", ErrInvalidArgument, opts.CAFile)
				}
				t.TLSClientConfig.RootCAs = pool
			}
		}
		transport = t
	}
	lookup := minio.BucketLookupAuto
	if opts.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        s3Credentials(opts),
		Secure:       secure,
		Transport:    transport,
		Region:       opts.Region,
		BucketLookup: lookup,
		MaxRetries:   opts.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("offload: s3 client for %q: %w", host, err)
	}
	return &S3Store{opts: opts, client: client, core: minio.Core{Client: client}, host: host}, nil
}

// s3Credentials: static keys when given, else the environment/IAM chain.
func s3Credentials(o S3Options) *credentials.Credentials {
	if o.AccessKey != "" {
		return credentials.NewStaticV4(o.AccessKey, o.SecretKey, o.SessionToken)
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	})
}

// Bucket returns the store's bucket.
func (s *S3Store) Bucket() string { return s.opts.Bucket }

// Client returns the underlying minio client (benchmarks and tests compare
// against raw requests).
func (s *S3Store) Client() *minio.Client { return s.client }

// Put implements BlobStore. Objects of unknown size, or larger than
// PartSize, go up as a multipart upload whose parts are PartSize bytes
// except the last; minio-go aborts the upload when it fails.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := validateMetadata(meta); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{
		UserMetadata: lowerKeys(meta),
		ContentType:  "application/octet-stream",
		PartSize:     uint64(s.opts.PartSize),
	}
	if s.opts.UploadConcurrency > 1 {
		opts.ConcurrentStreamParts = true
		opts.NumThreads = uint(s.opts.UploadConcurrency)
	}
	info, err := s.client.PutObject(ctx, s.opts.Bucket, key, r, size, opts)
	if err != nil {
		return s.err("put", key, err)
	}
	if size >= 0 && info.Size != size {
		// minio-go checks this too; keep the invariant explicit.
		_ = s.Delete(context.WithoutCancel(ctx), key)
		return fmt.Errorf("%w: put %q: uploaded %d bytes, size says %d", ErrInvalidArgument, key, info.Size, size)
	}
	return nil
}

// GetRange implements BlobStore with a ranged GET.
func (s *S3Store) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 || length < -1 {
		return nil, fmt.Errorf("%w: get %q: bad range off=%d length=%d", ErrInvalidArgument, key, off, length)
	}
	if length == 0 {
		if _, err := s.Head(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	var err error
	switch {
	case length == -1 && off == 0:
		// The whole object: no Range header (also works for empty objects).
	case length == -1:
		err = opts.SetRange(off, 0) // "bytes=off-"
	default:
		err = opts.SetRange(off, off+length-1)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: get %q: %v", ErrInvalidArgument, key, err)
	}
	body, _, _, err := s.core.GetObject(ctx, s.opts.Bucket, key, opts)
	if err != nil {
		return nil, s.err("get", key, err)
	}
	return body, nil
}

// Head implements BlobStore.
func (s *S3Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	st, err := s.client.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.err("head", key, err)
	}
	return ObjectInfo{Key: key, Size: st.Size, Metadata: lowerKeys(st.UserMetadata)}, nil
}

// List implements BlobStore.
func (s *S3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's lister goroutine if we return early
	var out []ObjectInfo
	for o := range s.client.ListObjects(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, s.err("list", prefix, o.Err)
		}
		out = append(out, ObjectInfo{Key: o.Key, Size: o.Size})
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete implements BlobStore.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.opts.Bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(s.err("delete", key, err), ErrNotFound) {
		return s.err("delete", key, err)
	}
	return nil
}

// Check implements BlobStore: the endpoint answers, the credentials are
// accepted and the bucket exists; a missing bucket is created unless
// DisableCreateBucket is set.
func (s *S3Store) Check(ctx context.Context) error {
	where := fmt.Sprintf("s3 endpoint %s bucket %q", s.host, s.opts.Bucket)
	ok, err := s.client.BucketExists(ctx, s.opts.Bucket)
	if err != nil {
		switch s3Code(err) {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
			return fmt.Errorf("offload: %s: credentials rejected (check the access key, secret key and bucket policy): %w", where, err)
		}
		return fmt.Errorf("offload: %s: not reachable or not S3: %w", where, err)
	}
	if ok {
		return nil
	}
	if s.opts.DisableCreateBucket {
		return fmt.Errorf("%s: bucket does not exist and creating buckets is disabled; create it first: %w", where, ErrBucketNotFound)
	}
	err = s.client.MakeBucket(ctx, s.opts.Bucket, minio.MakeBucketOptions{Region: s.opts.Region})
	if err != nil {
		switch s3Code(err) {
		case "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
			return nil // created concurrently
		}
		return fmt.Errorf("%s: bucket does not exist and creating it failed (grant s3:CreateBucket or create the bucket yourself): %w (%w)", where, ErrBucketNotFound, err)
	}
	return nil
}

func s3Code(err error) string { return minio.ToErrorResponse(err).Code }

// err maps an S3 error to the package's sentinels.
func (s *S3Store) err(op, key string, err error) error {
	switch s3Code(err) {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%s %q: %w", op, key, ErrNotFound)
	case "InvalidRange":
		return fmt.Errorf("%s %q: %w", op, key, ErrInvalidRange)
	case "NoSuchBucket":
		return fmt.Errorf("%s %q: bucket %q: %w", op, key, s.opts.Bucket, ErrBucketNotFound)
	}
	return fmt.Errorf("offload: s3 %s %q: %w", op, key, err)
}
