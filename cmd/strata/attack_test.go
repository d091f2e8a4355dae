//go:build attack

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testutil"
)

// TestAttackRSS measures the resident memory of a `strata standalone`
// process, with its default limits, under the memory attacks a client with
// a valid token can make (`make attack-rss`):
//
//   - greedy readers: 8 readers of a 256 MiB backlog grant 4e9 permits each
//     and never read;
//   - publish flood: 4 producers send 64 KiB messages as fast as they can
//     for 15 s and never read a receipt;
//   - stream flood: one connection opens 2,000 producers, each on its own
//     new topic, and 4 connections open 1,000 subscriptions each.
//
// It prints the process's RSS before each attack, the highest RSS sampled
// during it (VmHWM, reset before each attack) and the RSS after it ends, and
// fails when an attack grows RSS by more than the bound the limits give
// (docs/security.md, "Limits"). STRATA_ATTACK_BIN runs another build of
// strata instead (e.g. an older one, to compare), STRATA_ATTACK_ARGS adds
// flags to the standalone command and STRATA_ATTACK_ONLY runs the attacks
// whose name contains it.
func TestAttackRSS(t *testing.T) {
	const size, mib = 64 << 10, 1 << 20
	payload := make([]byte, size)
	attacks := []struct {
		name    string
		bound   int64                               // growth allowed, from the limits (docs/security.md)
		prepare func(t *testing.T, grpcAddr string) // before the "before" figure
		run     func(t *testing.T, ctx context.Context, grpcAddr string)
	}{
		// 8 × (2 MiB outbox + one 64 KiB entry being sent + gRPC's
		// stream window, which grows to 16 MiB), plus the bookie's read cache.
		{"greedy readers (8 x 4e9 permits on a 256 MiB backlog, never read)", 8*(2*mib+size+16*mib) + 64*mib, func(t *testing.T, grpcAddr string) {
			publishBacklog(t, grpcAddr, "greedy", 4096, payload)
		}, func(t *testing.T, ctx context.Context, grpcAddr string) {
			conn := dialRaw(t, grpcAddr)
			for i := range 8 {
				s, err := conn.Consume(ctx)
				if err != nil {
					t.Fatal(err)
				}
				mustSend(t, s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Subscribe{Subscribe: &clientpb.Subscribe{
					Topic: "persistent://public/default/greedy", Subscription: fmt.Sprint("reader-", i), StartMessageId: &clientpb.MessageId{LedgerId: -1, EntryId: -1, BatchIndex: -1, Partition: -1}}}}))
				if _, err := s.Recv(); err != nil {
					t.Fatal(err)
				}
				mustSend(t, s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Flow{Flow: &clientpb.Flow{Permits: 4_000_000_000}}}))
			}
			<-ctx.Done()
		}},
		// A send in flight is held three times in a standalone process (as
		// received, as packed for the bookie, by the bookie): the 64 MiB
		// publish buffer, each topic's 16 MiB entry cache, gRPC's stream
		// windows (16 MiB) and the bookie index's 64 MiB memtable are
		// ~420 MiB live, and without GOMEMLIMIT the garbage collector lets
		// the heap grow to twice what is live (GOGC=100).
		{"publish flood (4 producers, 64 KiB sends, receipts never read)", 2*(3*64*mib+4*16*mib+5*16*mib+64*mib) + 64*mib, nil, func(t *testing.T, ctx context.Context, grpcAddr string) {
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() {
					conn := dialRaw(t, grpcAddr)
					s, err := conn.Produce(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if err := s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{Topic: fmt.Sprint("persistent://public/default/flood-", i)}}}); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.Recv(); err != nil {
						t.Error(err)
						return
					}
					for seq := 0; ctx.Err() == nil; seq++ {
						e, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String("flood"), SequenceId: proto.Uint64(uint64(seq)),
							PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}, payload)
						if err != nil {
							t.Error(err)
							return
						}
						if s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{SequenceId: int64(seq), Entry: e}}}) != nil {
							return // the attack is over
						}
					}
				})
			}
			wg.Wait()
		}},
		// Topics, streams and subscriptions each cost goroutines and
		// buffers; what stops a client is max-concurrent-streams-per-
		// connection (1,000 of the 2,000 producers open) and the
		// namespace's topic, producer, consumer and subscription limits
		// (unlimited by default, as in Pulsar). The bound is per object:
		// 256 KiB per topic, 48 KiB per stream.
		{"stream flood (2,000 producers on one connection, 4,000 subscriptions)", 1000*256<<10 + 5000*48<<10, nil, func(t *testing.T, ctx context.Context, grpcAddr string) {
			var wg sync.WaitGroup
			var producers, consumers atomic.Int64
			conn := dialRaw(t, grpcAddr)
			for i := range 2000 {
				wg.Go(func() {
					s, err := conn.Produce(ctx)
					if err != nil {
						return
					}
					s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{Topic: fmt.Sprint("persistent://public/default/stream-", i)}}})
					if r, err := s.Recv(); err == nil && r.GetOpened() != nil {
						producers.Add(1)
					}
					<-ctx.Done()
				})
			}
			for c := range 4 {
				conn := dialRaw(t, grpcAddr)
				for i := range 1000 {
					wg.Go(func() {
						s, err := conn.Consume(ctx)
						if err != nil {
							return
						}
						s.Send(&clientpb.ConsumeRequest{Cmd: &clientpb.ConsumeRequest_Subscribe{Subscribe: &clientpb.Subscribe{
							Topic: fmt.Sprint("persistent://public/default/stream-", i%100), Subscription: fmt.Sprintf("sub-%d-%d", c, i), Durable: true}}})
						if r, err := s.Recv(); err == nil && r.GetSubscribed() != nil {
							consumers.Add(1)
						}
						<-ctx.Done()
					})
				}
			}
			wg.Wait()
			t.Logf("stream flood: %d producers and %d consumers opened", producers.Load(), consumers.Load())
		}},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "%-72s %10s %10s %10s %10s\n", "attack (15 s, each on a new standalone process)", "before", "peak", "after", "bound")
	for _, a := range attacks {
		if only := os.Getenv("STRATA_ATTACK_ONLY"); only != "" && !strings.Contains(a.name, only) {
			continue
		}
		grpcAddr, httpAddr, mem := startStandalone(t)
		if a.prepare != nil {
			a.prepare(t, grpcAddr)
		}
		time.Sleep(5 * time.Second) // let start-up settle
		before := mem.rss(t)
		mem.resetPeak(t)
		ctx, stop := context.WithTimeout(context.Background(), 15*time.Second)
		heap := make(chan float64, 1)
		go func() {
			peak := 0.0
			for ctx.Err() == nil {
				if v, err := scrape(httpAddr, "go_memstats_heap_inuse_bytes"); err == nil {
					peak = max(peak, v)
				}
				time.Sleep(250 * time.Millisecond)
			}
			heap <- peak
		}()
		a.run(t, ctx, grpcAddr)
		<-ctx.Done()
		stop()
		peak := mem.peak(t)
		time.Sleep(5 * time.Second)
		after := mem.rss(t)
		fmt.Fprintf(&report, "%-72s %9dM %9dM %9dM %9dM  (peak Go heap in use %dM)\n", a.name, before/mib, peak/mib, after/mib, (before+a.bound)/mib, int64(<-heap)/mib)
		if peak > before+a.bound {
			t.Errorf("%s: RSS grew from %d to %d MiB, over the %d MiB the limits allow", a.name, before/mib, peak/mib, a.bound/mib)
		}
		mem.stop(t)
	}
	t.Logf("broker RSS (default limits):\n%s", report.String())
}

// startStandalone starts `strata standalone` as a process and waits until
// it is ready.
func startStandalone(t *testing.T) (grpcAddr, httpAddr string, mem procMem) {
	t.Helper()
	dir := t.TempDir()
	grpcAddr, httpAddr = testutil.FreeAddr(t), testutil.FreeAddr(t)
	bin, env := os.Args[0], append(os.Environ(), runMainEnv+"=1", "STRATA_TOKEN=")
	if b := os.Getenv("STRATA_ATTACK_BIN"); b != "" {
		bin = b
	}
	logPath := filepath.Join(dir, "standalone.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"standalone", "--data-dir", filepath.Join(dir, "data"),
		"--etcd-client-addr", testutil.FreeAddr(t), "--etcd-peer-addr", testutil.FreeAddr(t), "--bookie-addr", testutil.FreeAddr(t),
		"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn"}
	cmd := exec.Command(bin, append(args, strings.Fields(os.Getenv("STRATA_ATTACK_ARGS"))...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testutil.WaitFor(t, time.Minute, func() error {
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
	return grpcAddr, httpAddr, procMem{pid: cmd.Process.Pid, cmd: cmd}
}

// publishBacklog stores n messages on topic.
func publishBacklog(t *testing.T, grpcAddr, topic string, n int, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := client.New(grpcAddr, client.WithOperationTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		p.SendAsync(ctx, &client.ProducerMessage{Payload: payload}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			if err != nil {
				t.Errorf("backlog: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func dialRaw(t *testing.T, addr string) clientpb.BrokerClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return clientpb.NewBrokerClient(cc)
}

// scrape reads one unlabelled series from a broker's /metrics.
func scrape(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no series %s", name)
}

func mustSend(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// procMem reads a process's memory figures from /proc (Linux).
type procMem struct {
	pid int
	cmd *exec.Cmd
}

// stop ends the process (SIGINT, as an operator would) and waits for it.
func (m procMem) stop(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	m.cmd.Wait()
}

func (m procMem) field(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, m.pid)
	return 0
}

func (m procMem) rss(t *testing.T) int64  { return m.field(t, "VmRSS") }
func (m procMem) peak(t *testing.T) int64 { return m.field(t, "VmHWM") }

// resetPeak sets VmHWM back to the current RSS.
func (m procMem) resetPeak(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
}
