package s3test_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-mq/strata/internal/s3test"
)

func TestServerStopStart(t *testing.T) {
	srv := s3test.Start(t)
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := []byte("hello, tiered storage")
	if _, err := c.PutObject(ctx, srv.Bucket, "a/b", bytes.NewReader(want), int64(len(want)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}

	srv.Stop()
	if srv.Running() {
		t.Fatal("Running after Stop")
	}
	srv.Stop() // idempotent
	c2, _ := srv.Client()
	// One attempt only: the server is down.
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if _, err := c2.StatObject(sctx, srv.Bucket, "a/b", minio.StatObjectOptions{}); err == nil {
		t.Fatal("stat succeeded against a stopped server")
	}

	srv.Start()
	if !srv.Running() {
		t.Fatal("not Running after Start")
	}
	obj, err := c.GetObject(ctx, srv.Bucket, "a/b", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("after restart got %q, want %q", got, want)
	}
}

func TestBinaryLookup(t *testing.T) {
	tools := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tools, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(tools, "bin", "versitygw")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_VERSITYGW", "")
	t.Setenv("STRATA_TOOLS", tools)
	if got, err := s3test.Binary(); err != nil || got != fake {
		t.Fatalf("Binary() = %q, %v; want %q from $STRATA_TOOLS/bin", got, err, fake)
	}
	t.Setenv("STRATA_VERSITYGW", filepath.Join(tools, "missing"))
	if _, err := s3test.Binary(); err == nil || !strings.Contains(err.Error(), "STRATA_VERSITYGW") {
		t.Fatalf("Binary() with a bad STRATA_VERSITYGW: %v", err)
	}
	t.Setenv("STRATA_VERSITYGW", "")
	t.Setenv("STRATA_TOOLS", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	if _, err := s3test.Binary(); err == nil || !strings.Contains(err.Error(), "scripts/install-test-deps.sh") {
		t.Fatalf("Binary() with nothing installed: %v", err)
	}
}
