package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var pw = []byte("secret")

// payload returns a deterministic payload for entry i of a test.
func payload(i int64) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	b := make([]byte, 16+r.IntN(1024))
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

// appendN appends n entries asynchronously and waits; it returns the ids
// acknowledged, in callback order.
func appendN(t *testing.T, w *ledger.Writer, from, n int64) []int64 {
	t.Helper()
	var mu sync.Mutex
	var acked []int64
	var errs []error
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := from; i < from+n; i++ {
		w.AppendAsync(payload(i), func(id int64, err error) {
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				acked = append(acked, id)
			}
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d appends failed, first: %v", len(errs), errs[0])
	}
	return acked
}

func checkEntries(t *testing.T, entries []ledger.Entry, first int64) {
	t.Helper()
	for i, e := range entries {
		want := first + int64(i)
		if e.ID != want || !bytes.Equal(e.Payload, payload(want)) {
			t.Fatalf("entry %d: got id %d, payload equal %v", want, e.ID, bytes.Equal(e.Payload, payload(want)))
		}
	}
}

func TestWriteReadEveryReplica(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 3})
	lc := c.LedgerClient()
	ctx := ctxT(t, 2*time.Minute)
	w, err := lc.Create(ctx, ledger.CreateOptions{EnsembleSize: 3, WriteQuorum: 3, AckQuorum: 2, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	acked := appendN(t, w, 0, n)
	for i, id := range acked {
		if id != int64(i) {
			t.Fatalf("callback %d got entry id %d: acks out of order", i, id)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	md, err := lc.Metadata(ctx, w.ID())
	if err != nil || md.State != ledger.StateClosed || md.LastEntryID != n-1 {
		t.Fatalf("metadata after close: %+v, %v", md, err)
	}
	r, err := lc.Open(ctx, w.ID(), pw)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := r.Read(ctx, 0, n-1)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, entries, 0)

	// Every single replica holds every entry byte-identical: read each
	// bookie directly.
	for i := 0; i < 3; i++ {
		cli := bookieClient(t, c.Bookie(i).Addr)
		for id := int64(0); id < n; id += 1 {
			resp, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: w.ID(), EntryId: id})
			if err != nil {
				t.Fatalf("bookie %d entry %d: %v", i, id, err)
			}
			_, p, err := bookiepb.VerifyEntry(resp.Body, w.ID(), id)
			if err != nil || !bytes.Equal(p, payload(id)) {
				t.Fatalf("bookie %d entry %d: digest %v, equal %v", i, id, err, bytes.Equal(p, payload(id)))
			}
		}
	}
}

var _ = errors.New
var _ = fmt.Sprint
