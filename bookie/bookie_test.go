package bookie_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var key = []byte("master-key-0123456789")

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, addr string) bookiepb.BookieClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return bookiepb.NewBookieClient(cc)
}

func body(ledger, entry, lac int64, payload string) []byte {
	return bookiepb.PackEntry(bookiepb.EntryHeader{LedgerID: ledger, EntryID: entry, LAC: lac, Length: int64(len(payload))}, []byte(payload))
}

// adder is an open add stream.
type adder struct {
	t *testing.T
	s bookiepb.Bookie_AddClient
}

func newAdder(t *testing.T, addr string) *adder {
	t.Helper()
	s, err := client(t, addr).Add(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return &adder{t, s}
}

// add sends one add and returns its reply.
func (a *adder) add(req *bookiepb.AddRequest) *bookiepb.AddResponse {
	a.t.Helper()
	if req.MasterKey == nil {
		req.MasterKey = key
	}
	if err := a.s.Send(req); err != nil {
		a.t.Fatal(err)
	}
	resp, err := a.s.Recv()
	if err != nil {
		a.t.Fatal(err)
	}
	return resp
}

func (a *adder) mustAdd(ledger, entry, lac int64, payload string) {
	a.t.Helper()
	if r := a.add(&bookiepb.AddRequest{LedgerId: ledger, EntryId: entry, Body: body(ledger, entry, lac, payload)}); r.Code != bookiepb.Code_OK {
		a.t.Fatalf("add %d/%d: %v %s", ledger, entry, r.Code, r.Message)
	}
}

func codeOf(t *testing.T, err error) bookiepb.Code {
	t.Helper()
	c, ok := bookiepb.CodeOf(err)
	if !ok {
		t.Fatalf("error %v carries no bookie code", err)
	}
	return c
}

// TestRestartKeepsData: acknowledged entries and the LAC survive a crash
// that loses every unsynced write.
func TestRestartKeepsData(t *testing.T) {
	c := crashCluster(t, nil)
	ctx := ctxT(t)
	a := newAdder(t, c.Bookie(0).Addr)
	for i := int64(0); i < 100; i++ {
		a.mustAdd(7, i, i-1, fmt.Sprint("entry-", i))
	}
	c.CrashBookie(0)
	if err := c.StartBookie(0); err != nil {
		t.Fatal(err)
	}
	cli := client(t, c.Bookie(0).Addr)
	for i := int64(0); i < 100; i++ {
		resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 7, EntryId: i})
		if err != nil {
			t.Fatal(err)
		}
		if _, p, err := bookiepb.VerifyEntry(resp.Body, 7, i); err != nil || string(p) != fmt.Sprint("entry-", i) {
			t.Fatalf("entry %d after restart: %q %v", i, p, err)
		}
	}
	last, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 7, EntryId: -1})
	if err != nil || last.EntryId != 99 || last.Lac != 98 {
		t.Fatalf("last entry after restart: id %d lac %d err %v; want 99, 98", last.GetEntryId(), last.GetLac(), err)
	}
}

func TestCookieGuardsDataDir(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 2})
	ctx := ctxT(t)
	start := func(i int, dir string) error {
		o := c.BookieOptions(i)
		o.DataDir = dir
		b, err := bookie.New(ctx, o)
		if err == nil {
			b.Close()
		}
		return err
	}

	// Wiped directory of a registered bookie: refuse, and say why.
	c.StopBookie(0)
	dir0 := c.Bookie(0).Dir
	os.RemoveAll(dir0)
	err := start(0, dir0)
	if !errors.Is(err, bookie.ErrCookieMissing) || !strings.Contains(err.Error(), "wiped or replaced") {
		t.Fatalf("start on wiped dir: %v, want ErrCookieMissing with an explanation", err)
	}

	// Another bookie's directory: refuse.
	c.StopBookie(1)
	if err := start(0, c.Bookie(1).Dir); !errors.Is(err, bookie.ErrCookieMismatch) {
		t.Fatalf("start on another bookie's dir: %v, want ErrCookieMismatch", err)
	}

	// A new bookie on a directory holding unknown files: refuse.
	junk := t.TempDir()
	os.WriteFile(filepath.Join(junk, "somefile"), []byte("x"), 0o600)
	o := c.BookieOptions(0)
	o.DataDir, o.ListenAddr = junk, testutil.FreeAddr(t)
	if _, err := bookie.New(ctx, o); !errors.Is(err, bookie.ErrDirNotEmpty) {
		t.Fatalf("new bookie on non-empty dir: %v, want ErrDirNotEmpty", err)
	}

	// The right directory still works.
	if err := c.StartBookie(1); err != nil {
		t.Fatalf("restart bookie 1 on its own dir: %v", err)
	}

	// A directory from another cluster (metadata without its cookie): refuse.
	other, _ := testutil.Store(t)
	c.StopBookie(1)
	o = c.BookieOptions(1)
	o.Metadata = other
	if _, err := bookie.New(ctx, o); !errors.Is(err, bookie.ErrCookieMismatch) {
		t.Fatalf("start against another cluster: %v, want ErrCookieMismatch", err)
	}
}

func TestFencing(t *testing.T) {
	c := crashCluster(t, nil)
	ctx := ctxT(t)
	addr := c.Bookie(0).Addr
	a := newAdder(t, addr)
	for i := int64(0); i < 5; i++ {
		a.mustAdd(3, i, i-1, "x")
	}
	cli := client(t, addr)
	if _, err := cli.Fence(ctx, &bookiepb.FenceRequest{LedgerId: 3, MasterKey: []byte("wrong")}); codeOf(t, err) != bookiepb.Code_UNAUTHORIZED || status.Code(err) != codes.PermissionDenied {
		t.Fatalf("fence with wrong key: %v", err)
	}
	if _, err := cli.Fence(ctx, &bookiepb.FenceRequest{LedgerId: 3}); codeOf(t, err) != bookiepb.Code_UNAUTHORIZED {
		t.Fatalf("fence without key: %v", err)
	}
	resp, err := cli.Fence(ctx, &bookiepb.FenceRequest{LedgerId: 3, MasterKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := bookiepb.VerifyEntry(resp.LastEntry, 3, 4); err != nil || resp.LastEntryId != 4 || h.LAC != 3 {
		t.Fatalf("fence reply: last %d lac-in-entry %d err %v", resp.LastEntryId, h.LAC, err)
	}
	// Fencing survives a crash that loses every unsynced write.
	c.CrashBookie(0)
	if err := c.StartBookie(0); err != nil {
		t.Fatal(err)
	}
	a = newAdder(t, addr)
	if r := a.add(&bookiepb.AddRequest{LedgerId: 3, EntryId: 5, Body: body(3, 5, 4, "late")}); r.Code != bookiepb.Code_FENCED {
		t.Fatalf("add to fenced ledger after restart: %v", r.Code)
	}
	if r := a.add(&bookiepb.AddRequest{LedgerId: 3, EntryId: 5, Body: body(3, 5, 4, "late"), Recovery: true}); r.Code != bookiepb.Code_OK {
		t.Fatalf("recovery add to fenced ledger: %v %s", r.Code, r.Message)
	}
	if r := a.add(&bookiepb.AddRequest{LedgerId: 3, EntryId: 6, Body: body(3, 6, 4, "x"), MasterKey: []byte("wrong"), Recovery: true}); r.Code != bookiepb.Code_UNAUTHORIZED {
		t.Fatalf("add with wrong master key: %v", r.Code)
	}
	// Fencing a ledger this bookie never saw creates it fenced.
	if resp, err := cli.Fence(ctx, &bookiepb.FenceRequest{LedgerId: 99, MasterKey: key}); err != nil || resp.LastEntryId != -1 {
		t.Fatalf("fence unknown ledger: %v %v", resp, err)
	}
	if r := a.add(&bookiepb.AddRequest{LedgerId: 99, EntryId: 0, Body: body(99, 0, -1, "x")}); r.Code != bookiepb.Code_FENCED {
		t.Fatalf("add after fencing an unseen ledger: %v", r.Code)
	}
}

func TestReadOnlyMode(t *testing.T) {
	var usage, checks atomic.Uint64
	usage.Store(50)
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) {
		o.DiskUsage = func(string) (uint64, uint64, error) { checks.Add(1); return usage.Load(), 100, nil }
		o.DiskUsageThreshold, o.DiskUsageLowWater = 0.95, 0.90
	}})
	ctx := ctxT(t)
	addr := c.Bookie(0).Addr
	a := newAdder(t, addr)
	a.mustAdd(1, 0, -1, "before")

	registration := func() metadata.BookieRegistration {
		var r metadata.BookieRegistration
		kv, err := c.Store.Get(ctx, metadata.BookieKey(addr))
		if err == nil {
			json.Unmarshal(kv.Value, &r)
		}
		return r
	}
	usage.Store(97)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !registration().ReadOnly {
			return errors.New("registration not read-only yet")
		}
		return nil
	})
	if r := a.add(&bookiepb.AddRequest{LedgerId: 1, EntryId: 1, Body: body(1, 1, 0, "x")}); r.Code != bookiepb.Code_READ_ONLY {
		t.Fatalf("add on read-only bookie: %v", r.Code)
	}
	if r := a.add(&bookiepb.AddRequest{LedgerId: 1, EntryId: 1, Body: body(1, 1, 0, "x"), Recovery: true}); r.Code != bookiepb.Code_OK {
		t.Fatalf("recovery add on read-only bookie: %v", r.Code)
	}
	if _, err := client(t, addr).ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 1, EntryId: 0}); err != nil {
		t.Fatalf("read on read-only bookie: %v", err)
	}
	usage.Store(92) // between low water and threshold: stays read-only
	seen := checks.Load()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if checks.Load() < seen+3 {
			return errors.New("waiting for three more disk checks")
		}
		return nil
	})
	if !registration().ReadOnly {
		t.Fatal("bookie left read-only mode above the low-water mark")
	}
	usage.Store(80)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if registration().ReadOnly {
			return errors.New("still read-only")
		}
		return nil
	})
	a.mustAdd(1, 2, 1, "after")
}

func TestGarbageCollection(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) {
		o.GCInterval = 200 * time.Millisecond
	}})
	ctx := ctxT(t)
	addr := c.Bookie(0).Addr
	// Ledger 5 has metadata; ledger 6 had it and it was deleted.
	for _, id := range []int64{5, 6} {
		if _, err := c.Store.Create(ctx, metadata.LedgerKey(id), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	a := newAdder(t, addr)
	for i := int64(0); i < 50; i++ {
		a.mustAdd(5, i, i-1, strings.Repeat("k", 100))
		a.mustAdd(6, i, i-1, strings.Repeat("d", 100))
	}
	if err := c.Store.Delete(ctx, metadata.LedgerKey(6), metadata.AnyVersion); err != nil {
		t.Fatal(err)
	}
	cli := client(t, addr)
	testutil.WaitFor(t, 10*time.Second, func() error {
		_, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 6, EntryId: 0})
		if c, _ := bookiepb.CodeOf(err); c != bookiepb.Code_NO_LEDGER {
			return fmt.Errorf("ledger 6 still readable: %v", err)
		}
		return nil
	})
	for i := int64(0); i < 50; i++ {
		if _, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 5, EntryId: i}); err != nil {
			t.Fatalf("GC removed live ledger 5 entry %d: %v", i, err)
		}
	}
	// Survives a restart (the drop is durable).
	c.RestartBookie(0)
	cli = client(t, addr)
	if _, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 6, EntryId: 10}); status.Code(err) != codes.NotFound {
		t.Fatalf("ledger 6 back after restart: %v", err)
	}
}

// TestNoAckBeforeCommit proves through the journal's seams that no add is
// acknowledged before the group holding it was committed and synced, and that
// a failed commit acknowledges nothing and turns the bookie read-only.
func TestNoAckBeforeCommit(t *testing.T) {
	var mu sync.Mutex
	durable := map[bookie.EntryRef]bool{}
	var violations, acks, commits atomic.Int64
	var failCommit atomic.Bool
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) {
		o.HTTPAddr = "127.0.0.1:0"
		o.Hooks = &bookie.Hooks{
			Commit: func(commit func() error) error {
				commits.Add(1)
				time.Sleep(time.Millisecond) // widen the window for an early ack
				if failCommit.Load() {
					return errors.New("injected fsync failure")
				}
				return commit()
			},
			AfterCommit: func(refs []bookie.EntryRef) {
				mu.Lock()
				for _, r := range refs {
					durable[r] = true
				}
				mu.Unlock()
			},
			OnAck: func(r bookie.EntryRef) {
				acks.Add(1)
				mu.Lock()
				if !durable[r] {
					violations.Add(1)
				}
				mu.Unlock()
			},
		}
	}})
	addr := c.Bookie(0).Addr
	var wg sync.WaitGroup
	for s := int64(0); s < 4; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, err := client(t, addr).Add(ctxT(t))
			if err != nil {
				t.Error(err)
				return
			}
			for i := int64(0); i < 500; i++ {
				stream.Send(&bookiepb.AddRequest{LedgerId: s, EntryId: i, MasterKey: key, Body: body(s, i, i-1, "payload")})
			}
			for i := 0; i < 500; i++ {
				if r, err := stream.Recv(); err != nil || r.Code != bookiepb.Code_OK {
					t.Errorf("reply %v %v", r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if acks.Load() != 2000 || violations.Load() != 0 {
		t.Fatalf("acks %d (want 2000), acknowledged before commit: %d", acks.Load(), violations.Load())
	}
	if commits.Load() >= 2000 {
		t.Fatalf("%d commits for 2000 concurrent adds: no group commit", commits.Load())
	}
	t.Logf("2000 adds in %d group commits", commits.Load())

	failCommit.Store(true)
	a := newAdder(t, addr)
	if r := a.add(&bookiepb.AddRequest{LedgerId: 9, EntryId: 0, Body: body(9, 0, -1, "doomed")}); r.Code != bookiepb.Code_IO_ERROR {
		t.Fatalf("add in a failed commit: %v, want IO_ERROR", r.Code)
	}
	if r := a.add(&bookiepb.AddRequest{LedgerId: 9, EntryId: 1, Body: body(9, 1, -1, "later")}); r.Code != bookiepb.Code_IO_ERROR {
		t.Fatalf("add after a failed commit: %v, want IO_ERROR (bookie failed)", r.Code)
	}
	resp, err := http.Get("http://" + c.Bookie(0).B.HTTPAddr() + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz after journal failure: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if _, err := client(t, addr).ReadEntry(ctxT(t), &bookiepb.ReadEntryRequest{LedgerId: 1, EntryId: 3}); err != nil {
		t.Fatalf("reads after journal failure: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1})
	ctx := ctxT(t)
	addr := c.Bookie(0).Addr
	a := newAdder(t, addr)
	cases := []struct {
		name string
		req  *bookiepb.AddRequest
		want bookiepb.Code
	}{
		{"oversize entry", &bookiepb.AddRequest{LedgerId: 1, EntryId: 0, Body: body(1, 0, -1, strings.Repeat("x", 6<<20))}, bookiepb.Code_TOO_LARGE},
		{"header names another entry", &bookiepb.AddRequest{LedgerId: 1, EntryId: 0, Body: body(1, 3, -1, "x")}, bookiepb.Code_BAD_REQUEST},
		{"header names another ledger", &bookiepb.AddRequest{LedgerId: 1, EntryId: 0, Body: body(2, 0, -1, "x")}, bookiepb.Code_BAD_REQUEST},
		{"short body", &bookiepb.AddRequest{LedgerId: 1, EntryId: 0, Body: []byte("garbage")}, bookiepb.Code_BAD_REQUEST},
		{"negative entry", &bookiepb.AddRequest{LedgerId: 1, EntryId: -5, Body: body(1, -5, -1, "x")}, bookiepb.Code_BAD_REQUEST},
		{"no master key", &bookiepb.AddRequest{LedgerId: 1, EntryId: 0, Body: body(1, 0, -1, "x"), MasterKey: []byte{}}, bookiepb.Code_UNAUTHORIZED},
	}
	for _, tc := range cases {
		if r := a.add(tc.req); r.Code != tc.want {
			t.Errorf("%s: %v %q, want %v", tc.name, r.Code, r.Message, tc.want)
		}
	}
	// The same stream still works.
	a.mustAdd(1, 0, -1, "fine")

	cli := client(t, addr)
	readCases := []struct {
		name string
		err  error
		code bookiepb.Code
		grpc codes.Code
	}{
		{"unknown ledger", err2(cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 12345, EntryId: 0})), bookiepb.Code_NO_LEDGER, codes.NotFound},
		{"unknown entry", err2(cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 1, EntryId: 77})), bookiepb.Code_NO_ENTRY, codes.NotFound},
		{"negative ledger", err2(cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: -1, EntryId: 0})), bookiepb.Code_BAD_REQUEST, codes.InvalidArgument},
		{"bad entry id", err2(cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 1, EntryId: -2})), bookiepb.Code_BAD_REQUEST, codes.InvalidArgument},
		{"LAC of unknown ledger", err2(cli.ReadLAC(ctx, &bookiepb.ReadLACRequest{LedgerId: 12345})), bookiepb.Code_NO_LEDGER, codes.NotFound},
	}
	for _, tc := range readCases {
		if c, _ := bookiepb.CodeOf(tc.err); c != tc.code || status.Code(tc.err) != tc.grpc {
			t.Errorf("%s: %v, want %v / %v", tc.name, tc.err, tc.code, tc.grpc)
		}
	}
	// Garbage on the gRPC port, then a message beyond the gRPC limit: the
	// bookie keeps serving.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 4096))
	io.Copy(io.Discard, conn)
	conn.Close()
	s, _ := cli.Add(ctx)
	s.Send(&bookiepb.AddRequest{LedgerId: 1, EntryId: 1, MasterKey: key, Body: make([]byte, 8<<20)})
	if _, err := s.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("message beyond the gRPC limit: %v, want ResourceExhausted", err)
	}
	resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: 1, EntryId: 0})
	if err != nil || len(resp.Body) == 0 {
		t.Fatalf("bookie not serving after bad input: %v", err)
	}
	newAdder(t, addr).mustAdd(1, 1, 0, "still fine")
}

func err2[T any](_ T, err error) error { return err }

// metric returns the value of an unlabelled series from a bookie's /metrics.
func metric(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	v, ok := testutil.MetricValue(t, httpAddr, name)
	if !ok {
		t.Fatalf("no series %s", name)
	}
	return v
}

// waitMetric waits until a bookie's series has the value want.
func waitMetric(t *testing.T, httpAddr, name string, want float64) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if v := metric(t, httpAddr, name); v != want {
			return fmt.Errorf("%s = %v, want %v", name, v, want)
		}
		return nil
	})
}

func TestWaitLAC(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) { o.HTTPAddr = "127.0.0.1:0" }})
	ctx := ctxT(t)
	addr := c.Bookie(0).Addr
	a := newAdder(t, addr)
	a.mustAdd(4, 0, -1, "e0")
	a.mustAdd(4, 1, 0, "e1")
	cli := client(t, addr)

	start := time.Now()
	r, err := cli.WaitLAC(ctx, &bookiepb.WaitLACRequest{LedgerId: 4, PreviousLac: 0, TimeoutMs: 300})
	if err != nil || r.Lac != 0 || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("long poll without progress: lac %d err %v after %v; want 0 after the timeout", r.GetLac(), err, time.Since(start))
	}
	done := make(chan *bookiepb.WaitLACResponse, 1)
	go func() {
		r, err := cli.WaitLAC(ctx, &bookiepb.WaitLACRequest{LedgerId: 4, PreviousLac: 0, TimeoutMs: 30000})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	waitMetric(t, c.Bookie(0).B.HTTPAddr(), "strata_bookie_lac_waiters", 1) // the poll is parked
	a.mustAdd(4, 2, 1, "e2")                                                // LAC moves to 1
	select {
	case r := <-done:
		if _, p, err := bookiepb.VerifyEntry(r.Entry, 4, 1); r.Lac != 1 || err != nil || string(p) != "e1" {
			t.Fatalf("long poll answer: lac %d entry %q %v", r.Lac, p, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return on LAC advance")
	}
}

func TestHTTPEndpoints(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) { o.HTTPAddr = "127.0.0.1:0" }})
	newAdder(t, c.Bookie(0).Addr).mustAdd(1, 0, -1, "x")
	base := "http://" + c.Bookie(0).B.HTTPAddr()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ok", "/metrics": "strata_bookie_add_entries_total{code=\"OK\"} 1"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

// TestUnknownLedgersAndIdleWaitersLeaveNoState: reads of ledgers this bookie
// does not hold cache nothing, and long polls that time out or whose caller
// goes away leave no watcher (nor, for a ledger it does not hold, a state).
func TestUnknownLedgersAndIdleWaitersLeaveNoState(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) { o.HTTPAddr = "127.0.0.1:0" }})
	addr, web := c.Bookie(0).Addr, c.Bookie(0).B.HTTPAddr()
	newAdder(t, addr).mustAdd(1, 0, -1, "x")
	base := metric(t, web, "strata_bookie_ledger_states")
	cli := client(t, addr)
	for id := int64(1000); id < 1500; id++ {
		if _, err := cli.ReadEntry(ctxT(t), &bookiepb.ReadEntryRequest{LedgerId: id, EntryId: 0}); codeOf(t, err) != bookiepb.Code_NO_LEDGER {
			t.Fatalf("read of unknown ledger %d: %v", id, err)
		}
		if _, err := cli.ReadLAC(ctxT(t), &bookiepb.ReadLACRequest{LedgerId: id}); codeOf(t, err) != bookiepb.Code_NO_LEDGER {
			t.Fatalf("LAC of unknown ledger %d: %v", id, err)
		}
	}
	if n := metric(t, web, "strata_bookie_ledger_states"); n != base {
		t.Fatalf("%v ledger states cached after reading 500 unknown ledgers, was %v", n, base)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ledger := int64(1) // held here, LAC -1: the poll waits
			if i%2 == 0 {
				ledger = 5000 + int64(i) // not held here
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			timeout := int64(100)
			if i%4 < 2 {
				timeout = 60000 // cut short by the caller instead
				ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
			}
			cli.WaitLAC(ctx, &bookiepb.WaitLACRequest{LedgerId: ledger, PreviousLac: -1, TimeoutMs: timeout})
		}()
	}
	wg.Wait()
	waitMetric(t, web, "strata_bookie_lac_waiters", 0)
	waitMetric(t, web, "strata_bookie_ledger_states", base)
}
