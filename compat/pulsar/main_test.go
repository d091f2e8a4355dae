// Package pulsarcompat runs the unmodified Apache Pulsar Go client
// (github.com/apache/pulsar-client-go) against a Strata standalone started
// as a separate process: the proof that Pulsar applications work against
// Strata with no code change. It is its own module so that the client's
// dependencies stay out of Strata's.
package pulsarcompat

import (
	"context"
	"encoding/json"
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
	var err error
	standalone, err = startProcess(dataDir, ports)
	return err
}

// startProcess starts `strata standalone` on the given ports (service,
// HTTP, etcd client, etcd peer, bookie) with extra flags, and waits until
// it is ready.
func startProcess(dir string, ports []string, extra ...string) (*exec.Cmd, error) {
	args := append([]string{"standalone", "--data-dir", dir,
		"--grpc-addr", ports[0], "--http-addr", ports[1],
		"--etcd-client-addr", ports[2], "--etcd-peer-addr", ports[3], "--bookie-addr", ports[4]}, extra...)
	cmd := exec.Command(strataBin, args...)
	logf, err := os.OpenFile(dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + ports[1] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("strata standalone not ready after a minute (log: %s)", logf.Name())
}

// stopStandalone stops the standalone gracefully (SIGTERM).
func stopStandalone() { stopProcess(standalone) }

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
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

// adminGet decodes the JSON answer of an admin REST GET into out.
func adminGet(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := http.Get(adminURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
