package main

import (
	"context"
	"errors"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// startPlainStandalone starts a standalone without authentication and
// returns its broker's gRPC address.
func startPlainStandalone(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := standalone.Start(ctx, standalone.Options{
		DataDir: t.TempDir(), EtcdClientAddr: testutil.FreeAddr(t), EtcdPeerAddr: testutil.FreeAddr(t), BookieAddr: testutil.FreeAddr(t),
		Broker: broker.Options{GRPCAddr: testutil.FreeAddr(t), HTTPAddr: testutil.FreeAddr(t), SessionTTL: 2 * time.Second},
		Logger: testcluster.TestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t.Setenv("STRATA_TOKEN", "")
	return s.Broker.GRPCAddr()
}

// TestClientCommands: `strata client produce` and `strata client consume`
// against a standalone.
func TestClientCommands(t *testing.T) {
	url := startPlainStandalone(t)
	cl, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	t.Run("repeated messages", func(t *testing.T) {
		const topic = "persistent://public/default/cli-repeat"
		if out := mustStrata(t, "client", "produce", topic, "--url", url, "-m", "a", "-m", "b", "-n", "2"); out != "" {
			t.Fatalf("produce printed %q on stdout, want nothing", out)
		}
		out := mustStrata(t, "client", "consume", topic, "--url", url, "-s", "s", "-p", "Earliest", "-n", "4")
		testutil.Equal(t, "consume output", out, "a\nb\na\nb\n")
	})

	t.Run("stdin lines", func(t *testing.T) {
		const topic = "persistent://public/default/cli-stdin"
		if _, err := strata(t, "first line\nsecond line\nthird\n", "client", "produce", topic, "--url", url); err != nil {
			t.Fatalf("produce from stdin: %v", err)
		}
		out := mustStrata(t, "client", "consume", topic, "--url", url, "-s", "s", "-p", "Earliest", "-n", "3")
		testutil.Equal(t, "consume output", out, "first line\nsecond line\nthird\n")
	})

	t.Run("key and properties", func(t *testing.T) {
		const topic = "persistent://public/default/cli-props"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cons, err := cl.Subscribe(ctx, topic, "sdk", client.WithInitialPosition(client.Earliest))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		mutate(t, "client", "produce", topic, "--url", url, "-m", "hello", "-k", "the-key", "-p", "color=blue", "-p", "size=x=l")
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload) != "hello" || m.Key != "the-key" || !maps.Equal(m.Properties, map[string]string{"color": "blue", "size": "x=l"}) {
			t.Fatalf("received %q key %q properties %v; want hello, the-key, color=blue size=x=l", m.Payload, m.Key, m.Properties)
		}
		failStrata(t, "not key=value", "client", "produce", topic, "--url", url, "-m", "x", "-p", "novalue")
	})

	t.Run("consume timeout", func(t *testing.T) {
		const topic = "persistent://public/default/cli-timeout"
		// Load the topic first so that the second is spent waiting.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pre, err := cl.Subscribe(ctx, topic, "warm-up")
		if err != nil {
			t.Fatal(err)
		}
		pre.Close()

		start := time.Now()
		out, err := strata(t, "", "client", "consume", topic, "--url", url, "-s", "s", "--timeout", "1s")
		elapsed := time.Since(start)
		checkExit(t, err, 3, "timed out after 1s with 0 of 1 messages")
		if out != "" || elapsed < time.Second || elapsed > 20*time.Second {
			t.Fatalf("consume with nothing to receive printed %q and took %v, want nothing after about 1s", out, elapsed)
		}

		// What arrived is printed before the error.
		mutate(t, "client", "produce", topic, "--url", url, "-m", "only")
		out, err = strata(t, "", "client", "consume", topic, "--url", url, "-s", "s2", "-p", "Earliest", "-n", "2", "--timeout", "1s")
		checkExit(t, err, 3, "timed out after 1s with 1 of 2 messages")
		testutil.Equal(t, "output before the timeout", out, "only\n")

		// A deadline that passes while subscribing is the same timeout.
		_, err = strata(t, "", "client", "consume", topic, "--url", url, "-s", "s3", "--timeout", "1ns")
		checkExit(t, err, 3, "timed out after 1ns subscribing")
	})
}

// checkExit asserts that err makes strata exit with code and a message
// containing msg.
func checkExit(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var ee exitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T), want exit code %d with %q", err, err, code, msg)
	}
	if ee.code != code || !strings.Contains(ee.msg, msg) {
		t.Fatalf("exit code %d message %q, want code %d with %q", ee.code, ee.msg, code, msg)
	}
}

var aggregated = regexp.MustCompile(`^Aggregated: 2000 msgs in [0-9]+\.[0-9]s: [0-9]+ msg/s, [0-9]+\.[0-9]{2} MB/s \| (publish|end-to-end) latency: ` +
	`p50 [0-9]+\.[0-9]{3}  p95 [0-9]+\.[0-9]{3}  p99 [0-9]+\.[0-9]{3}  p99\.9 [0-9]+\.[0-9]{3}  max [0-9]+\.[0-9]{3} ms$`)

// TestPerfCommands: `strata perf produce -m 2000` then `strata perf consume
// -m 2000` end with their aggregated line: all 2000 messages, throughput
// and latency percentiles.
func TestPerfCommands(t *testing.T) {
	url := startPlainStandalone(t)
	const topic = "persistent://public/default/perf"
	for _, c := range []struct {
		args []string
		what string
	}{
		{[]string{"perf", "produce", topic, "--url", url, "-m", "2000", "-s", "100"}, "publish"},
		{[]string{"perf", "consume", topic, "--url", url, "-m", "2000", "-p", "Earliest"}, "end-to-end"},
	} {
		out := mustStrata(t, c.args...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		last := lines[len(lines)-1]
		if !aggregated.MatchString(last) || !strings.Contains(last, "| "+c.what+" latency:") {
			t.Fatalf("strata %s: last line %q is not the aggregated %s line (output %q)", strings.Join(c.args, " "), last, c.what, out)
		}
		for _, l := range lines[:len(lines)-1] {
			if strings.HasPrefix(l, "Aggregated") {
				t.Fatalf("strata %s printed two aggregated lines: %q", strings.Join(c.args, " "), out)
			}
		}
	}
}
