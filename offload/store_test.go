package offload

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-mq/strata/internal/s3test"
)

// TestStoreConformance pins the BlobStore contract on both drivers.
func TestStoreConformance(t *testing.T) {
	forEachStore(t, func(t *testing.T, store BlobStore, _ *s3test.Server) {
		ctx := testCtx(t)
		body := []byte("0123456789abcdefghij") // 20 bytes
		meta := map[string]string{"Strata-Offload-Format-Version": "1", "x-custom": "v a/l:ue"}
		if err := store.Put(ctx, "c/obj", bytes.NewReader(body), int64(len(body)), meta); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if err := store.Put(ctx, "c/empty", bytes.NewReader(nil), 0, nil); err != nil {
			t.Fatalf("Put empty: %v", err)
		}

		t.Run("head", func(t *testing.T) {
			info, err := store.Head(ctx, "c/obj")
			if err != nil {
				t.Fatal(err)
			}
			if info.Key != "c/obj" || info.Size != 20 || info.Metadata["strata-offload-format-version"] != "1" || info.Metadata["x-custom"] != "v a/l:ue" {
				t.Fatalf("Head = %+v", info)
			}
			if _, err := store.Head(ctx, "c/missing"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Head missing: %v, want ErrNotFound", err)
			}
			if _, err := store.Head(ctx, "c"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Head of a key prefix: %v, want ErrNotFound", err)
			}
		})

		t.Run("ranges", func(t *testing.T) {
			for _, rg := range []struct {
				off, length int64
				want        string
			}{
				{0, -1, string(body)},
				{0, 20, string(body)},
				{0, 1, "0"},
				{5, 3, "567"},
				{19, 1, "j"},
				{10, -1, "abcdefghij"},
				{15, 100, "fghij"}, // cut at the end
				{3, 0, ""},
			} {
				rc, err := store.GetRange(ctx, "c/obj", rg.off, rg.length)
				if err != nil {
					t.Fatalf("GetRange(%d, %d): %v", rg.off, rg.length, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || string(got) != rg.want {
					t.Fatalf("GetRange(%d, %d) = %q, %v; want %q", rg.off, rg.length, got, err, rg.want)
				}
			}
			for _, rg := range [][2]int64{{20, 1}, {20, -1}, {25, 5}} {
				if rc, err := store.GetRange(ctx, "c/obj", rg[0], rg[1]); !errors.Is(err, ErrInvalidRange) {
					if rc != nil {
						rc.Close()
					}
					t.Fatalf("GetRange(%d, %d): %v, want ErrInvalidRange", rg[0], rg[1], err)
				}
			}
			if _, err := store.GetRange(ctx, "c/missing", 0, 1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetRange missing: %v, want ErrNotFound", err)
			}
			if _, err := store.GetRange(ctx, "c/obj", -1, 1); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("GetRange(-1): %v, want ErrInvalidArgument", err)
			}
			rc, err := store.GetRange(ctx, "c/empty", 0, -1)
			if err != nil {
				t.Fatalf("whole empty object: %v", err)
			}
			if got, _ := io.ReadAll(rc); len(got) != 0 {
				t.Fatalf("empty object read %d bytes", len(got))
			}
			rc.Close()
		})

		t.Run("unknown size multipart", func(t *testing.T) {
			// Over two parts of the S3 driver's 5 MiB: streamed multipart.
			big := make([]byte, 2*MinS3PartSize+12345)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range big {
				big[i] = byte(rng.Uint32())
			}
			if err := store.Put(ctx, "c/big", io.MultiReader(bytes.NewReader(big)), -1, nil); err != nil {
				t.Fatalf("Put unknown size: %v", err)
			}
			got, _ := readObject(t, store, "c/big")
			if !bytes.Equal(got, big) {
				t.Fatalf("multipart object differs (got %d bytes, want %d)", len(got), len(big))
			}
			rc, err := store.GetRange(ctx, "c/big", MinS3PartSize-3, 6) // across a part boundary
			if err != nil {
				t.Fatal(err)
			}
			part, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(part, big[MinS3PartSize-3:MinS3PartSize+3]) {
				t.Fatalf("range across parts differs")
			}
		})

		t.Run("bad input", func(t *testing.T) {
			if err := store.Put(ctx, "c/short", bytes.NewReader(body), 21, nil); err == nil {
				t.Fatal("Put with a wrong size succeeded")
			}
			if _, err := store.Head(ctx, "c/short"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("failed Put left an object: %v", err)
			}
			if err := store.Put(ctx, "c/../x", bytes.NewReader(body), 20, nil); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Put bad key: %v", err)
			}
			if err := store.Put(ctx, "c/m", bytes.NewReader(body), 20, map[string]string{"bad key": "v"}); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Put bad metadata key: %v", err)
			}
			if err := store.Put(ctx, "c/m", bytes.NewReader(body), 20, map[string]string{"k": "line\nbreak"}); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Put bad metadata value: %v", err)
			}
			srcErr := errors.New("source broke")
			r := io.MultiReader(bytes.NewReader(body), &errReader{srcErr})
			if err := store.Put(ctx, "c/broken", r, -1, nil); !errors.Is(err, srcErr) {
				t.Fatalf("Put from a failing reader: %v, want the reader's error", err)
			}
			if _, err := store.Head(ctx, "c/broken"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("failed Put left an object: %v", err)
			}
		})

		t.Run("list and delete", func(t *testing.T) {
			for _, k := range []string{"l/a/1", "l/a/2", "l/ab/1", "l/b/x/y", "l-other"} {
				if err := store.Put(ctx, k, strings.NewReader(k), int64(len(k)), nil); err != nil {
					t.Fatal(err)
				}
			}
			keys := func(prefix string) []string {
				objs, err := store.List(ctx, prefix)
				if err != nil {
					t.Fatalf("List(%q): %v", prefix, err)
				}
				var ks []string
				for _, o := range objs {
					if o.Size != int64(len(o.Key)) {
						t.Fatalf("List size of %q = %d", o.Key, o.Size)
					}
					ks = append(ks, o.Key)
				}
				return ks
			}
			for prefix, want := range map[string][]string{
				"l/a/":  {"l/a/1", "l/a/2"},
				"l/a":   {"l/a/1", "l/a/2", "l/ab/1"},
				"l/":    {"l/a/1", "l/a/2", "l/ab/1", "l/b/x/y"},
				"l":     {"l-other", "l/a/1", "l/a/2", "l/ab/1", "l/b/x/y"},
				"l/b/x": {"l/b/x/y"},
				"nope/": nil,
			} {
				if got := keys(prefix); !slices.Equal(got, want) {
					t.Errorf("List(%q) = %q, want %q", prefix, got, want)
				}
			}
			n, err := DeletePrefix(ctx, store, "l/a/")
			if err != nil || n != 2 {
				t.Fatalf("DeletePrefix = %d, %v", n, err)
			}
			if got := keys("l"); !slices.Equal(got, []string{"l-other", "l/ab/1", "l/b/x/y"}) {
				t.Fatalf("after DeletePrefix: %q", got)
			}
			if err := store.Delete(ctx, "l/b/x/y"); err != nil {
				t.Fatal(err)
			}
			if err := store.Delete(ctx, "l/b/x/y"); err != nil {
				t.Fatalf("Delete of a missing key: %v", err)
			}
			if objs, err := store.List(ctx, "/l"); err != nil || len(objs) != 0 {
				t.Fatalf("List(\"/l\") = %v, %v; want nothing", objs, err)
			}
			if _, err := DeletePrefix(ctx, store, ""); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("DeletePrefix(\"\"): %v", err)
			}
		})

		if err := store.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestFSStoreLayout(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	st, err := NewFSStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "a/b/c", strings.NewReader("xyz"), 3, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b", "c")); err != nil || string(b) != "xyz" {
		t.Fatalf("object file: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b", ".c.meta")); err != nil || !strings.Contains(string(b), `"k":"v"`) {
		t.Fatalf("sidecar: %q, %v", b, err)
	}
	// No temp files stay behind, and a stray temp file is not listed.
	if err := os.WriteFile(filepath.Join(dir, "a", "b", ".c.tmp-123"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "a", "b"))
	if len(entries) != 3 {
		t.Fatalf("directory holds %d entries", len(entries))
	}
	objs, err := st.List(ctx, "")
	if err != nil || len(objs) != 1 || objs[0].Key != "a/b/c" {
		t.Fatalf("List = %+v, %v", objs, err)
	}
	os.Remove(filepath.Join(dir, "a", "b", ".c.tmp-123"))
	// Deleting the last object prunes its empty directories.
	if err := st.Delete(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directories left: %v", err)
	}
	// A data file without a sidecar (copied in by hand) has no metadata.
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("p"), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := st.Head(ctx, "plain")
	if err != nil || info.Size != 1 || len(info.Metadata) != 0 {
		t.Fatalf("Head plain = %+v, %v", info, err)
	}
}

func TestS3Check(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testCtx(t)

	// A missing bucket: refused when creation is disabled, created otherwise.
	st := newTestS3StoreNoCheck(t, srv, func(o *S3Options) { o.Bucket = "fresh-bucket"; o.DisableCreateBucket = true })
	if err := st.Check(ctx); !errors.Is(err, ErrBucketNotFound) || !strings.Contains(err.Error(), "create it first") {
		t.Fatalf("Check without create: %v, want ErrBucketNotFound saying what to do", err)
	}
	st = newTestS3StoreNoCheck(t, srv, func(o *S3Options) { o.Bucket = "fresh-bucket" })
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check with create: %v", err)
	}
	if err := st.Put(ctx, "k", strings.NewReader("v"), 1, nil); err != nil {
		t.Fatalf("Put into the created bucket: %v", err)
	}

	// Wrong credentials are named as such.
	st = newTestS3StoreNoCheck(t, srv, func(o *S3Options) { o.SecretKey = "wrong-secret" })
	if err := st.Check(ctx); err == nil || !strings.Contains(err.Error(), "credentials rejected") {
		t.Fatalf("Check with a wrong secret: %v", err)
	}

	// Nothing listening.
	st = newTestS3StoreNoCheck(t, srv, func(o *S3Options) { o.Endpoint = "http://127.0.0.1:1"; o.MaxRetries = 1 })
	if err := st.Check(ctx); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("Check of a closed port: %v", err)
	}
}

func newTestS3StoreNoCheck(t *testing.T, srv *s3test.Server, tweak func(*S3Options)) *S3Store {
	t.Helper()
	opts := S3Options{
		Endpoint: srv.URL(), Region: srv.Region, Bucket: srv.Bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true, MaxRetries: 1,
	}
	tweak(&opts)
	st, err := NewS3Store(opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestS3OptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts S3Options
		ok   bool
	}{
		{"minimal", S3Options{Bucket: "bkt"}, true},
		{"url endpoint", S3Options{Bucket: "bkt", Endpoint: "https://s3.example.com:9000"}, true},
		{"no bucket", S3Options{}, false},
		{"small parts", S3Options{Bucket: "bkt", PartSize: 1 << 20}, false},
		{"half credentials", S3Options{Bucket: "bkt", AccessKey: "a"}, false},
		{"http with tls", S3Options{Bucket: "bkt", Endpoint: "http://h", TLS: true}, false},
		{"path in endpoint", S3Options{Bucket: "bkt", Endpoint: "http://h/x"}, false},
		{"bad scheme", S3Options{Bucket: "bkt", Endpoint: "ftp://h"}, false},
		{"short bucket name", S3Options{Bucket: "b"}, false},
		{"bucket name with slash", S3Options{Bucket: "a/b/c"}, false},
	} {
		o := tc.opts
		o.EnsureDefaults()
		if err := o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
	o := S3Options{Bucket: "b"}
	o.EnsureDefaults()
	if o.Region != DefaultS3Region || o.PartSize != DefaultS3PartSize || o.UploadConcurrency != DefaultS3UploadConcurrency {
		t.Fatalf("defaults: %+v", o)
	}
	host, secure, _ := (&S3Options{Endpoint: "http://127.0.0.1:9000"}).endpoint()
	if host != "127.0.0.1:9000" || secure {
		t.Fatalf("endpoint() = %q, %v", host, secure)
	}
	if _, secure, _ := (&S3Options{Endpoint: "h:1", CAFile: "/ca.pem"}).endpoint(); !secure {
		t.Fatal("CAFile must imply TLS")
	}
}

func TestFSStoreListStaysInside(t *testing.T) {
	ctx := testCtx(t)
	parent := t.TempDir()
	st, _ := NewFSStore(filepath.Join(parent, "store"))
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"../", "../o", "a/../../"} {
		objs, err := st.List(ctx, prefix)
		if len(objs) != 0 || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("List(%q) = %v, %v; want ErrInvalidArgument", prefix, objs, err)
		}
	}
}

func TestS3TLS(t *testing.T) {
	srv := s3test.StartTLS(t)
	ctx := testCtx(t)
	st := newTestS3StoreNoCheck(t, srv, func(o *S3Options) { o.CAFile = srv.CAFile })
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check over TLS with the CA: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	src := &memSource{entries: genEntries(rng, 50, func(int) int { return 200 })}
	if _, err := WriteLedger(ctx, st, src, src.desc(1, nil), "tls/d", "tls/d-index", WriteOptions{BlockSize: 1024}); err != nil {
		t.Fatalf("WriteLedger over TLS: %v", err)
	}
	r, err := OpenLedger(ctx, st, "tls/d", "tls/d-index", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Read(ctx, 0, 49)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, got, src.entries, 0, 49)

	// Without the CA the certificate is refused.
	st = newTestS3StoreNoCheck(t, srv, func(o *S3Options) {})
	if err := st.Check(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Check without the CA: %v, want a certificate error", err)
	}
}
