package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

// TestStandaloneProcessSignals runs `strata standalone` as a process: it
// stops cleanly (exit 0, no error logged) on SIGINT with a
// producer and a consumer still connected, releases its bundle ownership
// before it goes (the restarted broker finds none), and after a restart
// and a SIGTERM a new Earliest subscription gets every acknowledged
// message in order.
func TestStandaloneProcessSignals(t *testing.T) {
	dir := t.TempDir()
	etcdAddr, grpcAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	args := []string{"standalone", "--data-dir", filepath.Join(dir, "data"),
		"--etcd-client-addr", etcdAddr, "--etcd-peer-addr", testutil.FreeAddr(t), "--bookie-addr", testutil.FreeAddr(t),
		"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--session-ttl", "10s"}
	const n = 1000
	const topic = "persistent://public/default/signals"

	for round, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		logPath := filepath.Join(dir, fmt.Sprintf("standalone-%d.log", round))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "STRATA_TOKEN=")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		testutil.WaitFor(t, time.Minute, func() error {
			select {
			case err := <-exited:
				t.Fatalf("round %d: standalone exited before it was ready: %v\n%s", round, err, readFile(t, logPath))
			default:
			}
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz: %s", resp.Status)
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cl, err := client.New(grpcAddr, client.WithOperationTimeout(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}

		switch round {
		case 0:
			cons, err := cl.Subscribe(ctx, topic, "live", client.WithInitialPosition(client.Earliest))
			if err != nil {
				t.Fatal(err)
			}
			p, err := cl.CreateProducer(ctx, topic, client.WithBatching(100, 1<<20, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				p.SendAsync(ctx, &client.ProducerMessage{Payload: fmt.Appendf(nil, "m%04d", i)}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
					if err != nil {
						t.Errorf("send %d: %v", i, err)
					}
				})
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if t.Failed() {
				t.FailNow()
			}
			if m, err := cons.Receive(ctx); err != nil || string(m.Payload) != "m0000" {
				t.Fatalf("first message: %q, %v", m.Payload, err)
			}
			// Producer and consumer stay connected through the signal.
		case 1:
			// The graceful stop of round 0 released every bundle: nothing
			// is owned until a client looks a topic up.
			st, err := metadata.NewEtcdStore(metadata.EtcdConfig{Endpoints: []string{"http://" + etcdAddr}})
			if err != nil {
				t.Fatal(err)
			}
			owned, err := metadata.ListAll(ctx, st, metadata.OwnershipPrefix, false)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(owned) != 0 {
				t.Fatalf("after a graceful stop and restart, %d bundle(s) still owned by the old broker's session", len(owned))
			}
			cons, err := cl.Subscribe(ctx, topic, "after-restart", client.WithInitialPosition(client.Earliest))
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				m, err := cons.Receive(ctx)
				if err != nil {
					t.Fatalf("after restart, message %d: %v", i, err)
				}
				if want := fmt.Sprintf("m%04d", i); string(m.Payload) != want {
					t.Fatalf("after restart, message %d is %q, want %q", i, m.Payload, want)
				}
				cons.Ack(m)
			}
		}

		start := time.Now()
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("round %d: after %v the standalone exited with %v\n%s", round, sig, err, readFile(t, logPath))
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("round %d: the standalone did not exit within 90 s of %v\n%s", round, sig, readFile(t, logPath))
		}
		t.Logf("round %d: exited %v after %v", round, sig, time.Since(start).Round(time.Millisecond))
		cl.Close()
		cancel()
		logFile.Close()
		log := readFile(t, logPath)
		for _, want := range []string{"standalone ready", "shutting down standalone"} {
			if !strings.Contains(log, want) {
				t.Fatalf("round %d: log lacks %q:\n%s", round, want, log)
			}
		}
		for _, bad := range []string{"panic", "DATA RACE", "level=ERROR", `"level":"error"`} {
			if strings.Contains(log, bad) {
				t.Fatalf("round %d: log shows %q:\n%s", round, bad, log)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
