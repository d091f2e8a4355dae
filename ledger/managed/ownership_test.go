package managed_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
)

// TestFencedOwnerWritesNoCursor: after a second owner took the log over and
// deleted a subscription's cursor, the first owner's acknowledgements and
// flushes fail with ErrFenced and write nothing: the deleted cursor stays
// deleted, and a cursor the new owner moved is not moved back.
func TestFencedOwnerWritesNoCursor(t *testing.T) {
	e := newEnv(t, 1, nil)
	ctx := ctxT(t, time.Minute)
	a := e.open(t, "public/default/owners")
	pos := appendAll(t, a, 0, 20)
	gone, err := a.OpenCursor(ctx, "gone", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := a.OpenCursor(ctx, "kept", managed.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	b := e.open(t, "public/default/owners")
	if err := b.DeleteCursor(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	bk, _ := b.Cursor("kept")
	bk.Reset(pos[3])
	if err := bk.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*managed.Cursor{gone, kept} {
		if err := c.AckCumulative(pos[15]); err != nil {
			t.Fatal(err) // in memory only
		}
		if err := c.Flush(ctx); !errors.Is(err, managed.ErrFenced) {
			t.Fatalf("old owner's flush of %s: %v, want ErrFenced", c.Name(), err)
		}
	}
	if _, err := a.OpenCursor(ctx, "late", managed.Earliest); !errors.Is(err, managed.ErrFenced) {
		t.Fatalf("old owner's new cursor: %v, want ErrFenced", err)
	}
	for _, name := range []string{"gone", "late"} {
		if _, err := e.c.Store.Get(ctx, metadata.CursorsPrefix+"public/default/owners/"+name); !errors.Is(err, metadata.ErrNotFound) {
			t.Fatalf("cursor %s written by the fenced owner: %v", name, err)
		}
	}
	kv, err := e.c.Store.Get(ctx, metadata.CursorsPrefix+"public/default/owners/kept")
	if err != nil || !strings.Contains(string(kv.Value), `"entryId":2}`) {
		t.Fatalf("cursor kept after the old owner's flush: %s %v (want the new owner's reset to entry 3)", kv.Value, err)
	}
}

// slowCursorStore holds cursor creations until released.
type slowCursorStore struct {
	metadata.Store
	held    chan struct{}
	release chan struct{}
}

func (s *slowCursorStore) Create(ctx context.Context, key string, value []byte, opts ...metadata.PutOption) (int64, error) {
	if strings.HasPrefix(key, metadata.CursorsPrefix) {
		close(s.held)
		<-s.release
	}
	return s.Store.Create(ctx, key, value, opts...)
}

// TestTrimWaitsForNewCursor: a subscription created from the earliest entry
// counts for trimming from the moment it is asked for, not only once it is
// persisted: a trim meanwhile (no other cursor, retention 0) keeps every
// ledger it must read. (The sleep only gives the trim a chance to run in
// the window; the outcome is checked exactly.)
func TestTrimWaitsForNewCursor(t *testing.T) {
	e := newEnv(t, 1, func(o *managed.Options) { o.MaxEntriesPerLedger = 10 })
	slow := &slowCursorStore{Store: e.c.Store, held: make(chan struct{}), release: make(chan struct{})}
	e.opts.Metadata = slow
	ctx := ctxT(t, time.Minute)
	ml := e.open(t, "public/default/newsub")
	pos := appendAll(t, ml, 0, 30)
	type res struct {
		c   *managed.Cursor
		err error
	}
	opened := make(chan res, 1)
	go func() {
		c, err := ml.OpenCursor(ctx, "new", managed.Earliest)
		opened <- res{c, err}
	}()
	<-slow.held
	trimmed := make(chan managed.TrimResult, 1)
	go func() {
		r, err := ml.Trim(ctx)
		if err != nil {
			t.Error(err)
		}
		trimmed <- r
	}()
	time.Sleep(100 * time.Millisecond) // let the trim run (or wait) while the creation is held
	close(slow.release)
	if tr := <-trimmed; len(tr.Ledgers) != 0 {
		t.Fatalf("trim while the cursor was being created removed %v", tr.Ledgers)
	}
	r := <-opened
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := readAll(t, r.c)
	if len(got) != 30 || got[0].Position != pos[0] {
		t.Fatalf("new cursor read %d entries from %v, want 30 from %v", len(got), first(got), pos[0])
	}
	testutil.Equal(t, "cursors", len(ml.Cursors()), 1)
}
