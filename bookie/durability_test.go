package bookie_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// crashCluster is one bookie whose crashes lose what it did not sync.
func crashCluster(t *testing.T, adjust func(o *bookie.Options)) *testcluster.Cluster {
	return testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) {
		o.Hooks = &bookie.Hooks{CrashTest: true}
		if adjust != nil {
			adjust(o)
		}
	}})
}

// addMany streams n adds of ledger from entry first and returns how many were
// acknowledged OK (replies arrive in order per stream).
func addMany(t *testing.T, addr string, ledger, first, n int64) int64 {
	t.Helper()
	stream, err := client(t, addr).Add(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := first; i < first+n; i++ {
			payload := fmt.Sprintf("entry-%d-%s", i, strings.Repeat("p", int(i%700)))
			if stream.Send(&bookiepb.AddRequest{LedgerId: ledger, EntryId: i, MasterKey: key, Body: body(ledger, i, i-1, payload)}) != nil {
				return
			}
		}
	}()
	var ok int64
	for range n {
		r, err := stream.Recv()
		if err != nil {
			break
		}
		if r.Code == bookiepb.Code_OK {
			ok++
		}
	}
	return ok
}

// readAll reads entries first..first+n-1 of a ledger and returns how many
// come back intact.
func readAll(t *testing.T, addr string, ledger, first, n int64) int64 {
	t.Helper()
	cli := client(t, addr)
	var got int64
	for i := first; i < first+n; i++ {
		resp, err := cli.ReadEntry(ctxT(t), &bookiepb.ReadEntryRequest{LedgerId: ledger, EntryId: i})
		if err != nil {
			continue
		}
		want := fmt.Sprintf("entry-%d-%s", i, strings.Repeat("p", int(i%700)))
		if _, p, err := bookiepb.VerifyEntry(resp.Body, ledger, i); err == nil && string(p) == want {
			got++
		}
	}
	return got
}

// TestCrashKeepsAcknowledgedEntries: entries acknowledged before a power
// failure — across checkpoints and segment rollovers, and in the last
// unsynced-to-the-index stretch — are all there after the restart, and so
// is a fence. With the journal's sync turned off the same crash loses
// acknowledged entries: the simulation drops what was not synced.
func TestCrashKeepsAcknowledgedEntries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sync      bool
		wantKeep  bool
		checkSize int64
	}{
		{"synced", true, true, 64 << 10},
		{"synced, no checkpoint", true, true, 1 << 40},
		{"journal sync off", false, false, 1 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := crashCluster(t, func(o *bookie.Options) {
				o.JournalSync = &tc.sync
				o.CheckpointBytes, o.SegmentSize = tc.checkSize, 1<<20
			})
			addr := c.Bookie(0).Addr
			const n = 3000
			acked := addMany(t, addr, 1, 0, n)
			if acked != n {
				t.Fatalf("%d of %d adds acknowledged", acked, n)
			}
			if _, err := client(t, addr).Fence(ctxT(t), &bookiepb.FenceRequest{LedgerId: 2, MasterKey: key}); err != nil {
				t.Fatal(err)
			}
			c.CrashBookie(0)
			if err := c.StartBookie(0); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, addr, 1, 0, n)
			fenced := newAdder(t, addr).add(&bookiepb.AddRequest{LedgerId: 2, EntryId: 0, Body: body(2, 0, -1, "late")}).Code == bookiepb.Code_FENCED
			if tc.wantKeep && (got != n || !fenced) {
				t.Fatalf("after a crash %d of %d acknowledged entries are readable, fence kept: %v", got, n, fenced)
			}
			if !tc.wantKeep && got == n && fenced {
				t.Fatal("without journal sync a crash lost nothing: the crash simulation keeps unsynced writes")
			}
			t.Logf("%d of %d acknowledged entries after the crash, fence kept: %v", got, n, fenced)
		})
	}
}

// TestNoReplyBeforeDurable: while the journal's sync is held, neither an add
// nor a fence (nor a fencing read) is answered; a crash then loses the
// unanswered writes and nothing answered.
func TestNoReplyBeforeDurable(t *testing.T) {
	var hold atomic.Bool
	release := make(chan struct{})
	c := crashCluster(t, func(o *bookie.Options) {
		o.Hooks.Commit = func(commit func() error) error {
			if hold.Load() {
				<-release
			}
			return commit()
		}
	})
	var once sync.Once
	unhold := func() { once.Do(func() { hold.Store(false); close(release) }) }
	t.Cleanup(unhold) // before the cluster's cleanup, which would wait for the held sync
	addr := c.Bookie(0).Addr
	a := newAdder(t, addr)
	a.mustAdd(3, 0, -1, "before")
	hold.Store(true)
	replies := make(chan string, 3)
	go func() {
		r := a.add(&bookiepb.AddRequest{LedgerId: 3, EntryId: 1, Body: body(3, 1, 0, "held")})
		replies <- "add " + r.Code.String()
	}()
	go func() {
		_, err := client(t, addr).Fence(context.Background(), &bookiepb.FenceRequest{LedgerId: 4, MasterKey: key})
		replies <- fmt.Sprint("fence ", err)
	}()
	go func() {
		_, err := client(t, addr).ReadEntry(context.Background(), &bookiepb.ReadEntryRequest{LedgerId: 5, EntryId: 0, Fence: true, MasterKey: key})
		replies <- fmt.Sprint("fencing read ", err)
	}()
	select {
	case r := <-replies:
		t.Fatalf("answered while the sync was held: %s", r)
	case <-time.After(500 * time.Millisecond):
	}
	unhold()
	for range 3 {
		<-replies
	}
	if _, err := client(t, addr).Fence(ctxT(t), &bookiepb.FenceRequest{LedgerId: 3, MasterKey: key}); err != nil {
		t.Fatal(err)
	}
	c.CrashBookie(0)
	if err := c.StartBookie(0); err != nil {
		t.Fatal(err)
	}
	a = newAdder(t, addr)
	for _, l := range []int64{3, 4, 5} {
		if r := a.add(&bookiepb.AddRequest{LedgerId: l, EntryId: 9, Body: body(l, 9, 8, "late")}); r.Code != bookiepb.Code_FENCED {
			t.Fatalf("ledger %d after the crash: add %v, want FENCED (the fence was answered)", l, r.Code)
		}
	}
	resp, err := client(t, addr).ReadEntry(ctxT(t), &bookiepb.ReadEntryRequest{LedgerId: 3, EntryId: 1})
	if err != nil || resp.EntryId != 1 {
		t.Fatalf("entry 3/1 (acknowledged once the sync went through): %v", err)
	}
}

// faultyFile fails writes or syncs of the entry log on demand, as a full or
// failing disk does.
type faultyFile struct {
	bookie.JournalFile
	failWrite, failSync *atomic.Bool
}

func (f faultyFile) Write(p []byte) (int, error) {
	if f.failWrite.Load() {
		n, _ := f.JournalFile.Write(p[:len(p)/2]) // a short write, as on ENOSPC
		return n, syscall.ENOSPC
	}
	return f.JournalFile.Write(p)
}

func (f faultyFile) Sync() error {
	if f.failSync.Load() {
		return syscall.EIO
	}
	return f.JournalFile.Sync()
}

// TestStorageFaultsNeverAcknowledge: a failed sync (EIO) and a full disk
// (ENOSPC, a short write) each fail the adds of their group with IO_ERROR;
// from then on the bookie acknowledges nothing, says it is read-only, still
// serves reads, and after a restart on a healthy disk every entry it had
// acknowledged is there.
func TestStorageFaultsNeverAcknowledge(t *testing.T) {
	for _, fault := range []string{"sync", "write"} {
		t.Run(fault, func(t *testing.T) {
			var failWrite, failSync, healthy atomic.Bool
			c := crashCluster(t, func(o *bookie.Options) {
				o.HTTPAddr = "127.0.0.1:0"
				o.Hooks.JournalFile = func(f bookie.JournalFile) bookie.JournalFile {
					if healthy.Load() {
						return f
					}
					return faultyFile{f, &failWrite, &failSync}
				}
			})
			addr := c.Bookie(0).Addr
			if ok := addMany(t, addr, 1, 0, 200); ok != 200 {
				t.Fatalf("%d of 200 acknowledged before the fault", ok)
			}
			if fault == "sync" {
				failSync.Store(true)
			} else {
				failWrite.Store(true)
			}
			a := newAdder(t, addr)
			if r := a.add(&bookiepb.AddRequest{LedgerId: 1, EntryId: 200, Body: body(1, 200, 199, "doomed")}); r.Code != bookiepb.Code_IO_ERROR {
				t.Fatalf("add during a failing %s: %v, want IO_ERROR", fault, r.Code)
			}
			failSync.Store(false)
			failWrite.Store(false) // the disk seems fine again: the bookie must not trust it
			if ok := addMany(t, addr, 7, 0, 50); ok != 0 {
				t.Fatalf("%d adds acknowledged after a failed %s", ok, fault)
			}
			if r := a.add(&bookiepb.AddRequest{LedgerId: 1, EntryId: 200, Body: body(1, 200, 199, "x"), Recovery: true}); r.Code == bookiepb.Code_OK {
				t.Fatal("recovery add acknowledged after a failed " + fault)
			}
			info, err := client(t, addr).Info(ctxT(t), &bookiepb.InfoRequest{})
			if err != nil || !info.ReadOnly {
				t.Fatalf("info after a failed %s: %v %v, want read-only", fault, info, err)
			}
			if got := readAll(t, addr, 1, 0, 200); got != 200 {
				t.Fatalf("reads after a failed %s: %d of 200", fault, got)
			}
			healthy.Store(true)
			c.CrashBookie(0)
			if err := c.StartBookie(0); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, addr, 1, 0, 200); got != 200 {
				t.Fatalf("after restart: %d of 200 acknowledged entries", got)
			}
			newAdder(t, addr).mustAdd(8, 0, -1, "healthy again")
		})
	}
}

// TestDataDirRemovedUnderBookie: with its data directory deleted while it
// runs, a bookie fails adds (it would otherwise write into deleted files),
// turns read-only, says why, and still stops promptly when asked.
func TestDataDirRemovedUnderBookie(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	c := testcluster.New(t, testcluster.Config{Bookies: 1, BookieOptions: func(i int, o *bookie.Options) {
		o.CloseTimeout = 3 * time.Second
		o.Logger = testLogger(&mu, &logs)
	}})
	addr := c.Bookie(0).Addr
	if ok := addMany(t, addr, 1, 0, 100); ok != 100 {
		t.Fatalf("%d of 100 acknowledged", ok)
	}
	if err := os.RemoveAll(c.Bookie(0).Dir); err != nil {
		t.Fatal(err)
	}
	if ok := addMany(t, addr, 2, 0, 20); ok != 0 {
		t.Fatalf("%d adds acknowledged into a deleted data directory", ok)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !c.Bookie(0).B.ReadOnly() {
			return errors.New("not read-only")
		}
		return nil
	})
	start := time.Now()
	c.StopBookie(0)
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("stopping took %v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "removed from under the bookie") {
		t.Fatalf("the log does not say why the bookie turned read-only:\n%s", logs.String())
	}
}

// TestTornAndCorruptJournal: a record cut short at the end of the log (a
// crash mid-write) is dropped at the restart and everything before it is
// kept; damage followed by further records is corruption, and the bookie
// refuses to start rather than drop what follows.
func TestTornAndCorruptJournal(t *testing.T) {
	c := crashCluster(t, func(o *bookie.Options) { o.CheckpointBytes = 1 << 40 })
	addr := c.Bookie(0).Addr
	if ok := addMany(t, addr, 1, 0, 100); ok != 100 {
		t.Fatalf("%d of 100 acknowledged", ok)
	}
	c.KillBookie(0) // no final checkpoint: the restart replays the log
	seg := lastSegment(t, c.Bookie(0).Dir)
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3}) // a record header promising 256 bytes, then 3
	f.Close()
	if err := c.StartBookie(0); err != nil {
		t.Fatalf("start after a torn write: %v", err)
	}
	if got := readAll(t, addr, 1, 0, 100); got != 100 {
		t.Fatalf("after a torn write: %d of 100 entries", got)
	}
	a := newAdder(t, addr)
	for i := int64(100); i < 105; i++ { // one record each: each waits for its ack
		a.mustAdd(1, i, i-1, "after the torn write")
	}
	c.KillBookie(0)
	seg = lastSegment(t, c.Bookie(0).Dir)
	data, err := os.ReadFile(seg)
	if err != nil || len(data) < 200 {
		t.Fatalf("segment %s: %d bytes, %v", seg, len(data), err)
	}
	data[40] ^= 0xff // inside the first record, with more records after it
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = c.StartBookie(0)
	if err == nil || !strings.Contains(err.Error(), "damaged journal") {
		t.Fatalf("start on a corrupt journal: %v, want a refusal naming the damage", err)
	}
}

// testLogger logs into b (under mu).
func testLogger(mu *sync.Mutex, b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// lastSegment returns the newest non-empty entry-log segment of a data dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "journal", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	for i := len(segs) - 1; i >= 0; i-- {
		if st, err := os.Stat(segs[i]); err == nil && st.Size() > 0 {
			return segs[i]
		}
	}
	t.Fatalf("no non-empty segment in %s", dir)
	return ""
}
