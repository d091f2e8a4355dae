// Package pulsarcompat runs the unmodified Apache Pulsar Go client
// (github.com/apache/pulsar-client-go) against a Strata standalone started
// as a separate process: the proof that Pulsar applications work against
// Strata with no code change. It is its own module so that the client's
// dependencies stay out of Strata's.
package pulsarcompat

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The standalone under test.
var (
	serviceURL string // pulsar://127.0.0.1:port
	adminURL   string // http://127.0.0.1:port
	standalone *exec.Cmd
	dataDir    string
	strataBin  string
	ports      []string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "strata-pulsar-compat")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "./cmd/strata")
	build.Dir = "../.."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		return 1
	}
	dataDir = filepath.Join(dir, "data")
	ports = freePorts(5)
	serviceURL = "pulsar://" + ports[0]
	adminURL = "http://" + ports[1]
	if err := startStandalone(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopStandalone()
	return m.Run()
}

// startStandalone starts (or restarts, on the same data) the standalone
// and waits until it is ready.
func startStandalone() error {
	standalone = exec.Command(strataBin, "standalone", "--data-dir", dataDir,
		"--grpc-addr", ports[0], "--http-addr", ports[1],
		"--etcd-client-addr", ports[2], "--etcd-peer-addr", ports[3], "--bookie-addr", ports[4])
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(dataDir), "standalone.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	standalone.Stdout, standalone.Stderr = logf, logf
	if err := standalone.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(adminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("strata standalone not ready after a minute (log: %s)", logf.Name())
}

// stopStandalone stops the standalone gracefully (SIGTERM).
func stopStandalone() {
	if standalone == nil || standalone.Process == nil {
		return
	}
	standalone.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { standalone.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		standalone.Process.Kill()
		<-done
	}
}

func freePorts(n int) []string {
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func topicName(t *testing.T) string {
	return fmt.Sprintf("persistent://public/default/%s-%d", strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"), time.Now().UnixNano())
}

// adminDo sends an admin REST request and fails the test on a non-2xx answer.
func adminDo(t *testing.T, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, adminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
}
