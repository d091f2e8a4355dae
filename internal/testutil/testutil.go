// Package testutil holds helpers shared by Strata's tests: polling, free
// ports, one embedded etcd per test binary, admin API error checks and
// integer knobs from the environment.
package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/metadata"
)

// WaitFor polls cond until it returns nil or timeout passes, then fails the
// test with the last error. Use it instead of sleeps.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MetricValue returns the value of an unlabelled series served in
// Prometheus text format at http://addr/metrics; found is false when the
// series is absent.
func MetricValue(t testing.TB, addr, name string) (v float64, found bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("series %s: %v", name, err)
			}
			return v, true
		}
	}
	return 0, false
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	// A port the kernel hands out for port 0 comes from the ephemeral
	// range, which outgoing connections also draw from: between this
	// function and the listen that follows, a client connection of a
	// test running in parallel could take it. Ports below the range are
	// never given to outgoing connections.
	low := ephemeralLow()
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return l.Addr().String()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ephemeralLow returns the first port of the kernel's ephemeral range
// (Linux; 32768, the usual value, elsewhere).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 11000 {
				low = v
			}
		}
	}
	return low
}

var shared struct {
	once sync.Once
	dir  string
	etcd *metadata.Embedded
	err  error
}

// Main runs the package's tests and then stops the shared etcd. Call it from
// TestMain in packages that use Etcd.
func Main(m *testing.M) {
	code := m.Run()
	if shared.etcd != nil {
		shared.etcd.Close()
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// EtcdEndpoints returns the endpoints of an embedded etcd shared by every test
// of the binary, starting it on first use.
func EtcdEndpoints(t testing.TB) []string {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "strata-etcd-")
		if shared.err != nil {
			return
		}
		shared.etcd, shared.err = metadata.StartEmbedded(metadata.EmbedConfig{
			Dir: shared.dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true, LogLevel: "panic",
		})
	})
	if shared.err != nil {
		t.Fatalf("embedded etcd: %v", shared.err)
	}
	return shared.etcd.Endpoints()
}

var rootSeq struct {
	sync.Mutex
	n int
}

// Store returns a metadata store on the shared etcd with a root prefix unique
// to this test, closed when the test ends.
func Store(t testing.TB) (metadata.Store, metadata.EtcdConfig) {
	t.Helper()
	rootSeq.Lock()
	rootSeq.n++
	n := rootSeq.n
	rootSeq.Unlock()
	cfg := metadata.EtcdConfig{
		Endpoints: EtcdEndpoints(t),
		Root:      fmt.Sprintf("/t%d-%s", n, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())),
	}
	s, err := metadata.NewEtcdStore(cfg)
	if err != nil {
		t.Fatalf("metadata store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

// CheckReason fails the test unless body is an admin API error,
// {"reason": "..."} with a non-empty reason, that contains every string of
// want. what names the request in failure messages.
func CheckReason(t testing.TB, what, body string, want ...string) {
	t.Helper()
	var eb struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Reason == "" {
		t.Errorf("%s: body %.300q is not {\"reason\": ...}", what, body)
		return
	}
	for _, w := range want {
		if !strings.Contains(eb.Reason, w) {
			t.Errorf("%s: reason %.400q does not mention %q", what, eb.Reason, w)
		}
	}
}

// EnvInt reads a positive integer knob from the environment variable name,
// as benchmarks take their sizes: def when unset, a test failure when not
// a positive integer.
func EnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// Equal fails the test unless got and want are deeply equal
// (reflect.DeepEqual), naming what was compared.
func Equal(tb testing.TB, what string, got, want any) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("%s: got %#v, want %#v", what, got, want)
	}
}
