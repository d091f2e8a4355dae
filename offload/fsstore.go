package offload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// FSStore is a BlobStore over a local directory, the standalone default.
// An object with key "a/b/c" is the file DIR/a/b/c; its user metadata is
// the JSON sidecar DIR/a/b/.c.meta. Writes go to a temp file in the same
// directory that is fsynced and renamed into place (sidecar first, then
// data), and the directory is fsynced, so a crash leaves either the whole
// new object or none of it (at worst an orphan sidecar, which is ignored).
//
// Because keys map to paths, a key cannot also be a directory of another
// key ("a/b" and "a/b/c"); ObjectKeys never produces such pairs.
type FSStore struct {
	dir string
}

var _ BlobStore = (*FSStore)(nil)

// fsMeta is the sidecar's JSON form.
type fsMeta struct {
	Metadata map[string]string `json:"metadata"`
}

const (
	fsMetaSuffix = ".meta"
	fsTmpInfix   = ".tmp-"
)

// NewFSStore returns a store rooted at dir, creating it if needed.
func NewFSStore(dir string) (*FSStore, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: filesystem store needs a directory", ErrInvalidArgument)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("offload: filesystem store %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("offload: create filesystem store %q: %w", abs, err)
	}
	return &FSStore{dir: abs}, nil
}

// Dir returns the store's root directory.
func (s *FSStore) Dir() string { return s.dir }

// Path returns the file that holds the object key, for operators and tests.
func (s *FSStore) Path(key string) string {
	return filepath.Join(s.dir, filepath.FromSlash(key))
}

func (s *FSStore) metaPath(key string) string {
	p := s.Path(key)
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+fsMetaSuffix)
}

// Put implements BlobStore.
func (s *FSStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := validateMetadata(meta); err != nil {
		return err
	}
	metaJSON, err := json.Marshal(fsMeta{Metadata: lowerKeys(meta)})
	if err != nil {
		return fmt.Errorf("offload: put %q: %w", key, err)
	}
	path := s.Path(key)
	parent, base := filepath.Dir(path), filepath.Base(path)

	data, err := s.createTemp(parent, base)
	if err != nil {
		return fmt.Errorf("offload: put %q: %w", key, err)
	}
	// Until both renames happened, remove what we created.
	var sidecar *os.File
	done := false
	defer func() {
		if done {
			return
		}
		data.Close()
		os.Remove(data.Name())
		if sidecar != nil {
			sidecar.Close()
			os.Remove(sidecar.Name())
		}
	}()

	n, err := io.Copy(data, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("offload: put %q: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("%w: put %q: reader gave %d bytes, size says %d", ErrInvalidArgument, key, n, size)
	}
	// Make the bytes durable before the rename makes them visible.
	if err := data.Sync(); err != nil {
		return fmt.Errorf("offload: put %q: fsync: %w", key, err)
	}
	if sidecar, err = s.createTemp(parent, base); err != nil {
		return fmt.Errorf("offload: put %q: %w", key, err)
	}
	if _, err := sidecar.Write(metaJSON); err != nil {
		return fmt.Errorf("offload: put %q: write metadata: %w", key, err)
	}
	if err := sidecar.Sync(); err != nil {
		return fmt.Errorf("offload: put %q: fsync metadata: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("offload: put %q: %w", key, err)
	}
	// Sidecar first: a data file never exists without its metadata.
	if err := os.Rename(sidecar.Name(), s.metaPath(key)); err != nil {
		return fmt.Errorf("offload: put %q: %w", key, err)
	}
	if err := os.Rename(data.Name(), path); err != nil {
		os.Remove(s.metaPath(key))
		return fmt.Errorf("offload: put %q: %w", key, err)
	}
	done = true
	data.Close()
	sidecar.Close()
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("offload: put %q: fsync directory: %w", key, err)
	}
	return nil
}

// createTemp creates a temp file next to base in parent, creating parent
// first. It retries when a concurrent Delete pruned the empty directory
// between the MkdirAll and the create.
func (s *FSStore) createTemp(parent, base string) (*os.File, error) {
	var err error
	for range 5 {
		if err = os.MkdirAll(parent, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil, fmt.Errorf("%w: key conflicts with an existing object: %v", ErrInvalidArgument, err)
			}
			return nil, err
		}
		var f *os.File
		f, err = os.CreateTemp(parent, "."+base+fsTmpInfix+"*")
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

// GetRange implements BlobStore. The context is only checked at open.
func (s *FSStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 || length < -1 {
		return nil, fmt.Errorf("%w: get %q: bad range off=%d length=%d", ErrInvalidArgument, key, off, length)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(key))
	if err != nil {
		return nil, fsErr("get", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fsErr("get", key, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("get %q: %w", key, ErrNotFound)
	}
	size := st.Size()
	if length == 0 {
		return readCloser{io.LimitReader(f, 0), f}, nil
	}
	if off >= size && (off != 0 || length != -1) { // the whole of an empty object is fine
		f.Close()
		return nil, fmt.Errorf("get %q: offset %d of a %d-byte object: %w", key, off, size, ErrInvalidRange)
	}
	n := size - off
	if length >= 0 && length < n {
		n = length
	}
	return readCloser{io.NewSectionReader(f, off, n), f}, nil
}

// Head implements BlobStore.
func (s *FSStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	st, err := os.Stat(s.Path(key))
	if err != nil {
		return ObjectInfo{}, fsErr("head", key, err)
	}
	if st.IsDir() {
		return ObjectInfo{}, fmt.Errorf("head %q: %w", key, ErrNotFound)
	}
	info := ObjectInfo{Key: key, Size: st.Size(), Metadata: map[string]string{}}
	raw, err := os.ReadFile(s.metaPath(key))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Written by hand or by an older version: no metadata.
	case err != nil:
		return ObjectInfo{}, fsErr("head", key, err)
	default:
		var m fsMeta
		if err := json.Unmarshal(raw, &m); err != nil {
			return ObjectInfo{}, fmt.Errorf("head %q: metadata sidecar: %w: %v", key, ErrCorrupt, err)
		}
		info.Metadata = lowerKeys(m.Metadata)
	}
	return info, nil
}

// List implements BlobStore.
func (s *FSStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	start := s.dir
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		// The directory part must be a valid key itself, which also keeps
		// the walk inside the store ("..", absolute paths).
		if err := ValidateKey(prefix[:i]); err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, err)
		}
		start = filepath.Join(s.dir, filepath.FromSlash(prefix[:i]))
	} else if i == 0 {
		return nil, nil // keys never start with "/"
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == start {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			dirKey := key + "/"
			if !strings.HasPrefix(dirKey, prefix) && !strings.HasPrefix(prefix, dirKey) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while we walked
		}
		if err != nil {
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: st.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("offload: list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete implements BlobStore. Empty parent directories are pruned.
func (s *FSStore) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := s.Path(key)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil // a "directory" of other keys, not an object
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fsErr("delete", key, err)
	}
	if err := os.Remove(s.metaPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fsErr("delete", key, err)
	}
	parent := filepath.Dir(path)
	_ = syncDir(parent)
	// Prune now-empty directories; os.Remove refuses non-empty ones.
	for d := parent; d != s.dir && strings.HasPrefix(d, s.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// Check implements BlobStore: the directory exists and is writable.
func (s *FSStore) Check(ctx context.Context) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("offload: filesystem store %q: %w", s.dir, err)
	}
	f, err := os.CreateTemp(s.dir, ".check"+fsTmpInfix+"*")
	if err != nil {
		return fmt.Errorf("offload: filesystem store %q is not writable: %w", s.dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("offload: filesystem store %q: %w", s.dir, err)
	}
	return nil
}

func fsErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s %q: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("offload: %s %q: %w", op, key, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader fails reads once ctx is done, so a long copy stops promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type readCloser struct {
	io.Reader
	io.Closer
}
