package offload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// BlobStore is the small object-store surface tiered storage needs. Objects
// are immutable once Put returns: the offloader never overwrites a key
// (every offload attempt gets a fresh UUID), so drivers need not make
// overwrites atomic with respect to readers.
//
// Keys are "/"-separated paths (see ValidateKey). User metadata keys are
// case-insensitive ASCII; Head returns them lowercased.
//
// Implementations must be safe for concurrent use.
type BlobStore interface {
	// Put uploads an object from r with user metadata. size is the exact
	// length of r, or -1 when unknown (the S3 driver then streams a
	// multipart upload in parts of S3Options.PartSize bytes). The object
	// becomes visible only when Put returns nil; on error nothing is left
	// under key (S3: the multipart upload is aborted, best effort).
	Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error

	// GetRange returns a reader of the bytes [off, off+length) of the
	// object, or [off, end) when length is -1. A range that runs past the
	// end is cut at the end (the reader returns fewer bytes); off at or
	// beyond the end fails with ErrInvalidRange. A missing key fails with
	// ErrNotFound. The caller closes the reader.
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)

	// Head returns the size and user metadata of an object, or ErrNotFound.
	Head(ctx context.Context, key string) (ObjectInfo, error)

	// List returns the objects whose keys start with prefix, sorted by
	// key. The prefix is a plain string match ("a/b" matches "a/bc");
	// use KeyPrefix for a whole path segment. Metadata is not filled in.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes an object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// Check is the start-up check: the store is reachable, the credentials
	// work and the bucket (directory) exists. The S3 driver creates a
	// missing bucket unless told not to, and says clearly when it may not.
	Check(ctx context.Context) error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Key is the object's key.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// Metadata is the user metadata, keys lowercased. Nil in List results.
	Metadata map[string]string
}

// Limits on keys and metadata, chosen to fit both S3 (1024-byte keys, 2 KiB
// of user metadata) and common filesystems (255-byte names).
const (
	maxKeyLen       = 1024
	maxSegmentLen   = 200
	maxMetadataSize = 2048
)

// ValidateKey reports whether key is usable with every driver: 1 to 1024
// bytes of valid UTF-8, "/"-separated segments that are non-empty, at most
// 200 bytes, not "." or "..", do not start with "." (the filesystem driver
// reserves dot-names for its temp and metadata files) and contain no NUL,
// backslash or control characters.
func ValidateKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("%w: key length %d not in [1, %d]", ErrInvalidArgument, len(key), maxKeyLen)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" {
			return fmt.Errorf("%w: key %q has an empty path segment", ErrInvalidArgument, key)
		}
		if seg[0] == '.' {
			return fmt.Errorf("%w: key %q has a segment starting with '.'", ErrInvalidArgument, key)
		}
		if len(seg) > maxSegmentLen {
			return fmt.Errorf("%w: key %q has a segment longer than %d bytes", ErrInvalidArgument, key, maxSegmentLen)
		}
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalidArgument, key)
	}
	for _, r := range key {
		if r == '\\' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: key %q contains a forbidden character %q", ErrInvalidArgument, key, r)
		}
	}
	return nil
}

// validateMetadata checks user metadata: keys of [a-z0-9-] (any case),
// values of printable ASCII, at most 2 KiB in total.
func validateMetadata(meta map[string]string) error {
	total := 0
	for k, v := range meta {
		if k == "" {
			return fmt.Errorf("%w: empty metadata key", ErrInvalidArgument)
		}
		for _, c := range []byte(k) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
			if !ok {
				return fmt.Errorf("%w: metadata key %q: only letters, digits and '-'", ErrInvalidArgument, k)
			}
		}
		for _, c := range []byte(v) {
			if c < 0x20 || c > 0x7e {
				return fmt.Errorf("%w: metadata %q: value must be printable ASCII", ErrInvalidArgument, k)
			}
		}
		total += len(k) + len(v)
	}
	if total > maxMetadataSize {
		return fmt.Errorf("%w: metadata is %d bytes, limit %d", ErrInvalidArgument, total, maxMetadataSize)
	}
	return nil
}

// lowerKeys returns a copy of meta with lowercased keys (never nil).
func lowerKeys(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		out[strings.ToLower(k)] = v
	}
	return out
}

// ObjectKeys returns the keys of the data and index objects of one offload
// of a ledger:
//
//	{prefix}/{topicPath}/{ledgerID}-{uuid}         data
//	{prefix}/{topicPath}/{ledgerID}-{uuid}-index   index
//
// topicPath is "tenant/namespace/topic", so all objects of a tenant, a
// namespace or a topic share the key prefix KeyPrefix(prefix, path). An
// empty prefix is allowed; surrounding slashes are trimmed. The uuid makes
// every offload attempt's keys unique, so a retried offload never
// overwrites an object a reader may be using.
func ObjectKeys(prefix, topicPath string, ledgerID int64, uuid string) (dataKey, indexKey string) {
	dataKey = KeyPrefix(prefix, topicPath) + strconv.FormatInt(ledgerID, 10) + "-" + uuid
	return dataKey, dataKey + "-index"
}

// KeyPrefix returns the key prefix, ending in "/", under which ObjectKeys
// places every object of path ("tenant", "tenant/namespace" or
// "tenant/namespace/topic"). Pass it to BlobStore.List or DeletePrefix; the
// trailing slash keeps topic "a" from matching topic "ab".
func KeyPrefix(prefix, path string) string {
	var b strings.Builder
	if p := strings.Trim(prefix, "/"); p != "" {
		b.WriteString(p)
		b.WriteByte('/')
	}
	if p := strings.Trim(path, "/"); p != "" {
		for seg := range strings.SplitSeq(p, "/") {
			b.WriteString(keySegment(seg))
			b.WriteByte('/')
		}
	}
	return b.String()
}

// keySegment returns the key segment for one part of a name. Every name
// Strata accepts has a key: a part that starts with '.' (hidden, or a path
// step, to a filesystem) or is longer than a key segment may be is replaced
// by '~' and a hash of it — no name contains '~', so no two parts share a
// segment.
func keySegment(part string) string {
	if part == "" || (part[0] != '.' && len(part) <= maxSegmentLen) {
		return part
	}
	sum := sha256.Sum256([]byte(part))
	return "~" + hex.EncodeToString(sum[:24])
}

// DeletePrefix deletes every object whose key starts with prefix and
// returns how many it deleted. It keeps going after a failed delete and
// returns all errors joined. An empty prefix is refused: it would empty
// the whole bucket.
func DeletePrefix(ctx context.Context, store BlobStore, prefix string) (int, error) {
	if prefix == "" {
		return 0, fmt.Errorf("%w: refusing to delete with an empty prefix", ErrInvalidArgument)
	}
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("delete prefix %q: %w", prefix, err)
	}
	var errs []error
	n := 0
	for _, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			errs = append(errs, fmt.Errorf("delete %q: %w", o.Key, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
