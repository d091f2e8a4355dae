// Package s3test starts a real S3 server for tests: versitygw with its
// posix backend on a loopback port and a temp directory.
//
// The binary is installed by scripts/install-test-deps.sh into
// $STRATA_TOOLS/bin (default ~/.cache/strata-tools/bin). Start looks for it
// in $STRATA_VERSITYGW, then $STRATA_TOOLS/bin, then PATH. When it is
// missing, tests fail under CI (STRATA_CI or CI set) and are skipped, with
// a loud message, elsewhere.
package s3test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-mq/strata/internal/testutil"
)

// Defaults of a started server.
const (
	AccessKey = "strata-test-access"
	SecretKey = "strata-test-secret-key"
	Bucket    = "strata-test"
	Region    = "us-east-1"

	startTimeout = 20 * time.Second
)

// Server is a running (or stopped) versitygw process.
type Server struct {
	// Endpoint is "127.0.0.1:PORT"; plain http, path-style.
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Bucket exists once Start returns.
	Bucket string
	// Region is the server's region.
	Region string
	// Dir is the posix backend's root; the bucket is Dir/Bucket.
	Dir string
	// CAFile is the PEM certificate of a TLS server (StartTLS), which is
	// its own CA; empty for plain http.
	CAFile string

	t       testing.TB
	bin     string
	logPath string
	keyFile string // TLS private key

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd
		exited chan struct{} // closed when cmd has exited
	}
}

// Binary returns the versitygw binary to use, or an error saying how to
// install it.
func Binary() (string, error) {
	if p := os.Getenv("STRATA_VERSITYGW"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("STRATA_VERSITYGW=%q is not an executable file", p)
	}
	tools := os.Getenv("STRATA_TOOLS")
	if tools == "" {
		if home, err := os.UserHomeDir(); err == nil {
			tools = filepath.Join(home, ".cache", "strata-tools")
		}
	}
	if tools != "" {
		if p := filepath.Join(tools, "bin", "versitygw"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("versitygw not found in $STRATA_VERSITYGW, $STRATA_TOOLS/bin or PATH; " +
		"install it with scripts/install-test-deps.sh")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Start starts a server with an empty bucket and stops it in t.Cleanup.
// Call it from the test goroutine.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with https, on a fresh self-signed certificate for
// 127.0.0.1 (Server.CAFile).
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("STRATA_CI") != "" || os.Getenv("CI") != "" {
			t.Fatalf("s3test: %v (required under CI)", err)
		}
		t.Skipf("\n"+
			"################################################################\n"+
			"## SKIPPING S3 TESTS: %v\n"+
			"## Run scripts/install-test-deps.sh to install versitygw.\n"+
			"################################################################", err)
	}
	s := &Server{
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		Bucket:    Bucket,
		Region:    Region,
		Dir:       t.TempDir(),
		t:         t,
		bin:       bin,
	}
	s.logPath = filepath.Join(t.TempDir(), "versitygw.log")
	if useTLS {
		var err error
		if s.CAFile, s.keyFile, err = selfSigned(t.TempDir()); err != nil {
			t.Fatalf("s3test: %v", err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.dumpLog()
		}
	})
	// A free port can be taken between probing and binding: retry.
	for attempt := 1; ; attempt++ {
		s.Endpoint = testutil.FreeAddr(t)
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("s3test: %v", err)
		}
		t.Logf("s3test: attempt %d: %v; retrying on another port", attempt, err)
	}
	if err := s.createBucket(); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return s
}

// Start restarts a stopped server on the same port and directory; the
// bucket and its objects are still there. Call it from the test goroutine.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("s3test: restart: %v", err)
	}
}

// URL returns "http://" or "https://" + Endpoint.
func (s *Server) URL() string {
	if s.CAFile != "" {
		return "https://" + s.Endpoint
	}
	return "http://" + s.Endpoint
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.cmd != nil
}

// Stop kills the server (like a crash: in-flight requests fail) and waits
// for it to exit. Stopping a stopped server does nothing. Safe to call from
// any goroutine.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cmd == nil {
		return
	}
	_ = s.mu.cmd.Process.Kill()
	<-s.mu.exited
	s.mu.cmd, s.mu.exited = nil, nil
}

// start runs the process and waits until it answers HTTP.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cmd != nil {
		return errors.New("server is already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	fmt.Fprintf(logf, "=== %s: starting on %s\n", time.Now().Format(time.RFC3339Nano), s.Endpoint)
	args := []string{"--port", s.Endpoint, "--quiet"}
	if s.CAFile != "" {
		args = append(args, "--cert", s.CAFile, "--key", s.keyFile)
	}
	cmd := exec.Command(s.bin, append(args, "posix", s.Dir)...)
	cmd.Env = append(cleanEnv(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey, "VGW_REGION="+s.Region)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	client, err := s.httpClient()
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return err
	}
	if err := waitReady(client, s.URL(), exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("versitygw on %s: %w (log: %s)", s.Endpoint, err, s.logTail())
	}
	s.mu.cmd, s.mu.exited = cmd, exited
	return nil
}

// waitReady polls url until the server answers any HTTP response.
func waitReady(client *http.Client, url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return errors.New("exited during start-up")
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %v: %w", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpClient trusts the server's certificate when it has one.
func (s *Server) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("bad CA file")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: time.Second, Transport: tr}, nil
}

// Client returns a minio-go client for the server, for raw requests.
func (s *Server) Client() (*minio.Client, error) {
	hc, err := s.httpClient()
	if err != nil {
		return nil, err
	}
	return minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		Secure:       s.CAFile != "",
		Transport:    hc.Transport,
	})
}

func (s *Server) createBucket() error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		return fmt.Errorf("create bucket %q: %w", s.Bucket, err)
	}
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return strings.TrimSpace(string(b))
}

func (s *Server) dumpLog() {
	s.t.Logf("s3test: versitygw log (%s):\n%s", s.logPath, s.logTail())
}

// cleanEnv is the environment without settings that would change the
// server's behaviour (VGW_*, ROOT_*).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
