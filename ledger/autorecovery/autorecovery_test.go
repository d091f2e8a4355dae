package autorecovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/autorecovery"
	"github.com/strata-mq/strata/metadata"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var password = []byte("pw")

func payload(ledgerID, entry int64) []byte {
	return fmt.Appendf(nil, "ledger-%d-entry-%d-%s", ledgerID, entry, bytes.Repeat([]byte{byte(entry)}, 100))
}

// startServices starts n auto-recovery services (as n brokers would) with
// short delays.
func startServices(t *testing.T, c *testcluster.Cluster, n int) []*autorecovery.Service {
	t.Helper()
	var out []*autorecovery.Service
	for i := range n {
		s, err := autorecovery.Start(autorecovery.Options{
			Metadata: c.Store, Ledgers: c.LedgerClient(), NodeID: fmt.Sprint("node-", i),
			LostBookieDelay: time.Second, CheckInterval: time.Hour, OpenLedgerGracePeriod: 2 * time.Second,
			SessionTTL: 2 * time.Second, Logger: c.Log,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		out = append(out, s)
	}
	return out
}

// writeLedger creates a ledger, writes n entries and closes it unless open.
func writeLedger(t *testing.T, ctx context.Context, lc *ledger.Client, e, qw, qa, n int, open bool) *ledger.Writer {
	t.Helper()
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: e, WriteQuorum: qw, AckQuorum: qa, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(n) {
		if _, err := w.Append(ctx, payload(w.ID(), i)); err != nil {
			t.Fatal(err)
		}
	}
	if !open {
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// onBookie returns the ledgers whose ensembles list bookie id.
func onBookie(t *testing.T, ctx context.Context, c *testcluster.Cluster, id string) []ledger.Metadata {
	t.Helper()
	mds, err := autorecovery.ListLedgers(ctx, c.Store)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(mds, func(md ledger.Metadata) bool {
		return !slices.ContainsFunc(md.Segments, func(s ledger.Segment) bool { return slices.Contains(s.Ensemble, id) })
	})
}

// entriesOn counts the entries of md that bookie id stores.
func entriesOn(md ledger.Metadata, id string) int64 {
	var n int64
	for e := int64(0); e <= md.LastEntryID; e++ {
		if slices.Contains(md.WriteSet(e), id) {
			n++
		}
	}
	return n
}

// checkAllReadable reads every entry of every ledger with each running
// bookie stopped in turn, and compares it with what was written.
func checkAllReadable(t *testing.T, ctx context.Context, c *testcluster.Cluster, bookies []int, ledgers map[int64]int64) {
	t.Helper()
	for _, down := range bookies {
		c.StopBookie(down)
		lc := c.LedgerClient()
		for id, last := range ledgers {
			r, err := lc.Open(ctx, id, password)
			if err != nil {
				t.Fatalf("bookie %d down: open ledger %d: %v", down, id, err)
			}
			if last < 0 {
				continue
			}
			es, err := r.Read(ctx, 0, last)
			if err != nil {
				t.Fatalf("bookie %d down: read ledger %d: %v", down, id, err)
			}
			for _, e := range es {
				if !bytes.Equal(e.Payload, payload(id, e.ID)) {
					t.Fatalf("bookie %d down: ledger %d entry %d: wrong payload", down, id, e.ID)
				}
			}
		}
		if err := c.StartBookie(down); err != nil {
			t.Fatal(err)
		}
	}
}

// checkEveryReplica reads every entry of every ledger from every bookie its
// metadata names for it: each ledger has its full replica count.
func checkEveryReplica(t *testing.T, ctx context.Context, c *testcluster.Cluster, ledgers map[int64]int64) {
	t.Helper()
	lc := c.LedgerClient()
	clients := map[string]bookiepb.BookieClient{}
	for id, last := range ledgers {
		md, err := lc.Metadata(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for e := int64(0); e <= last; e++ {
			for _, b := range md.WriteSet(e) {
				cli, ok := clients[b]
				if !ok {
					cli = bookieClient(t, b)
					clients[b] = cli
				}
				resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: id, EntryId: e})
				if err != nil {
					t.Fatalf("ledger %d entry %d on bookie %s: %v", id, e, b, err)
				}
				_, p, err := bookiepb.VerifyEntry(resp.Body, id, e)
				if err != nil || !bytes.Equal(p, payload(id, e)) {
					t.Fatalf("ledger %d entry %d on bookie %s: %v, payload %q", id, e, b, err, p)
				}
			}
		}
	}
}

// TestLostBookieIsReplaced: 4 bookies, 50 closed ledgers (E=Qw=3, Qa=2, and
// E=3, Qw=2 striped); one bookie goes for good. Within the lost-bookie
// delay plus the copying, no ledger lists it, each entry it held was copied
// exactly once, nothing is left marked, and every entry reads back right
// with any single surviving bookie stopped.
func TestLostBookieIsReplaced(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 4})
	ctx := ctxT(t, 3*time.Minute)
	lc := c.LedgerClient()
	ledgers := map[int64]int64{}
	for i := range 50 {
		qw := 3
		if i%2 == 1 {
			qw = 2
		}
		w := writeLedger(t, ctx, lc, 3, qw, 2, 20, false)
		ledgers[w.ID()] = 19
	}
	lostIdx := 1
	lost := c.Bookie(lostIdx).Addr
	affected := onBookie(t, ctx, c, lost)
	var want int64
	for _, md := range affected {
		want += entriesOn(md, lost)
	}
	if len(affected) == 0 {
		t.Fatal("no ledger on the bookie to lose")
	}
	svcs := startServices(t, c, 2)
	c.KillBookie(lostIdx)

	testutil.WaitFor(t, 2*time.Minute, func() error {
		if left := onBookie(t, ctx, c, lost); len(left) > 0 {
			return fmt.Errorf("%d ledgers still list %s", len(left), lost)
		}
		ur, err := autorecovery.ListUnderreplicated(ctx, c.Store)
		if err != nil {
			return err
		}
		if len(ur) > 0 {
			return fmt.Errorf("still marked: %+v", ur)
		}
		return nil
	})
	var copied, segments int64
	for _, s := range svcs {
		st := s.Stats()
		copied += st.EntriesReplicated
		segments += st.SegmentsReplicated
	}
	if copied != want || segments != int64(len(affected)) {
		t.Fatalf("copied %d entries in %d segments, want %d in %d", copied, segments, want, len(affected))
	}
	checkEveryReplica(t, ctx, c, ledgers)
	checkAllReadable(t, ctx, c, []int{0, 2, 3}, ledgers)
}

// TestOpenLedgerOnLostBookieIsRecovered: an open ledger whose writer is
// stalled (here: gone without closing it) keeps listing a lost bookie —
// a live writer would have moved to a new ensemble by itself at the broken
// stream. After the grace period the worker recovers it, fencing the
// writer on the surviving bookies, closes it at its last entry and
// re-replicates it.
func TestOpenLedgerOnLostBookieIsRecovered(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 4})
	ctx := ctxT(t, 2*time.Minute)
	lc := c.LedgerClient()
	w := writeLedger(t, ctx, lc, 3, 3, 2, 5, true)
	w.Abandon()
	md, err := lc.Metadata(ctx, w.ID())
	if err != nil {
		t.Fatal(err)
	}
	lost, survivor := md.Segments[0].Ensemble[0], md.Segments[0].Ensemble[1]
	startServices(t, c, 1)
	c.KillBookie(c.BookieIndex(lost))
	testutil.WaitFor(t, time.Minute, func() error {
		md, err := lc.Metadata(ctx, w.ID())
		if err != nil {
			return err
		}
		if md.State != ledger.StateClosed || slices.ContainsFunc(md.Segments, func(s ledger.Segment) bool { return slices.Contains(s.Ensemble, lost) }) {
			return fmt.Errorf("ledger %s, ensembles %+v", md.State, md.Segments)
		}
		if md.LastEntryID != 4 {
			t.Fatalf("recovered ledger ends at %d, want 4", md.LastEntryID)
		}
		return nil
	})
	// The old writer is fenced out: a surviving bookie refuses its next add.
	body := bookiepb.PackEntry(bookiepb.EntryHeader{LedgerID: w.ID(), EntryID: 5, LAC: 4, Length: 1}, []byte("x"))
	stream, err := bookieClient(t, survivor).Add(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&bookiepb.AddRequest{LedgerId: w.ID(), EntryId: 5, MasterKey: ledger.MasterKey(password), Body: body}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.Code != bookiepb.Code_FENCED {
		t.Fatalf("add after recovery: %v %v, want FENCED", resp, err)
	}
	var live []int
	for i := range 4 {
		if c.Bookie(i).Addr != lost {
			live = append(live, i)
		}
	}
	checkEveryReplica(t, ctx, c, map[int64]int64{w.ID(): 4})
	checkAllReadable(t, ctx, c, live, map[int64]int64{w.ID(): 4})
}

func bookieClient(t *testing.T, addr string) bookiepb.BookieClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return bookiepb.NewBookieClient(cc)
}

// TestDecommissionDrainsLiveBookie: a running bookie is decommissioned
// while a writer appends to a ledger on it: the bookie refuses new entries,
// the writer moves on to another bookie without losing an acknowledged
// entry, the closed ledgers are copied off it, and then no ledger lists it.
func TestDecommissionDrainsLiveBookie(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 4})
	ctx := ctxT(t, 3*time.Minute)
	lc := c.LedgerClient()
	ledgers := map[int64]int64{}
	for range 10 {
		w := writeLedger(t, ctx, lc, 3, 3, 2, 10, false)
		ledgers[w.ID()] = 9
	}
	live := writeLedger(t, ctx, lc, 3, 3, 2, 1, true)
	md, err := lc.Metadata(ctx, live.ID())
	if err != nil {
		t.Fatal(err)
	}
	drained := md.Segments[0].Ensemble[1]
	var (
		mu    sync.Mutex
		acked = int64(0)
		stop  = make(chan struct{})
		done  = make(chan error, 1)
	)
	go func() {
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			id, err := live.Append(ctx, payload(live.ID(), i))
			if err != nil {
				done <- err
				return
			}
			if id != i {
				done <- fmt.Errorf("entry %d got id %d", i, id)
				return
			}
			mu.Lock()
			acked = id
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	startServices(t, c, 2)
	if err := autorecovery.Decommission(ctx, c.Store, drained); err != nil {
		t.Fatal(err)
	}
	if err := autorecovery.Decommission(ctx, c.Store, "no-such-bookie:1"); !errors.Is(err, autorecovery.ErrUnknownBookie) {
		t.Fatalf("decommission of an unknown bookie: %v", err)
	}
	testutil.WaitFor(t, 2*time.Minute, func() error {
		if left := onBookie(t, ctx, c, drained); len(left) > 0 {
			return fmt.Errorf("%d ledgers still list %s", len(left), drained)
		}
		return nil
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ledgers[live.ID()] = acked
	mu.Unlock()
	bs, err := autorecovery.Bookies(ctx, c.Store)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.ID == drained && (b.Ledgers != 0 || b.DecommissionSince == 0 || !b.ReadOnly) {
			t.Fatalf("drained bookie: %+v", b)
		}
	}
	checkEveryReplica(t, ctx, c, ledgers)
	// The drained bookie can go; everything reads back without it and
	// with any other bookie stopped too.
	di := c.BookieIndex(drained)
	c.StopBookie(di)
	var rest []int
	for i := range 4 {
		if i != di {
			rest = append(rest, i)
		}
	}
	checkAllReadable(t, ctx, c, rest, ledgers)
	if err := autorecovery.Recommission(ctx, c.Store, drained); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Get(ctx, metadata.DecommissionPrefix+drained); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("decommission request still there: %v", err)
	}
}
