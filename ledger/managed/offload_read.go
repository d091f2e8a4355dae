package managed

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/strata-mq/strata/offload"
)

// Reading offloaded ledgers. A ledger whose offload is complete is read from
// the object store (tiered storage first, as in Pulsar), even while its
// bookie copy still exists: one offload.LedgerReader per ledger, opened on
// the first read, shared by every cursor (its read-ahead follows up to
// ReaderOptions.ReadAheadStreams sequential readers), and closed when the
// ledger is trimmed, when the log closes, or after ReaderIdleTimeout
// without reads.

// readerCache holds the open readers of offloaded ledgers.
type readerCache struct {
	mu sync.Mutex
	m  map[int64]*cachedReader
}

// cachedReader is one ledger's reader. The first user opens it; others wait
// for ready. refs counts users; a reader evicted while in use is closed by
// its last user.
type cachedReader struct {
	uuid     string
	ready    chan struct{} // closed once r or err is set
	r        *offload.LedgerReader
	err      error
	refs     int
	lastUsed time.Time
	evicted  bool
}

// acquire returns the reader of li's offload, opening it if needed; the
// caller must release it.
func (c *readerCache) acquire(ctx context.Context, ml *ManagedLedger, li LedgerInfo) (*cachedReader, error) {
	oc := li.Offload
	c.mu.Lock()
	cr := c.m[li.LedgerID]
	if cr != nil && cr.uuid != oc.UUID {
		if stale := c.evictLocked(li.LedgerID); stale != nil {
			defer stale.Close()
		}
		cr = nil
	}
	opener := cr == nil
	if opener {
		cr = &cachedReader{uuid: oc.UUID, ready: make(chan struct{})}
		c.m[li.LedgerID] = cr
	}
	cr.refs++
	c.mu.Unlock()

	if opener {
		r, err := openOffloaded(ctx, ml.opts.Offload, li)
		c.mu.Lock()
		cr.r, cr.err = r, err
		if err != nil && c.m[li.LedgerID] == cr {
			delete(c.m, li.LedgerID) // the next read tries again
		}
		close(cr.ready)
		c.mu.Unlock()
	} else {
		select {
		case <-cr.ready:
		case <-ctx.Done():
			c.release(cr)
			return nil, ctx.Err()
		}
	}
	if cr.err != nil {
		c.release(cr)
		return nil, cr.err
	}
	return cr, nil
}

// release ends a use of cr.
func (c *readerCache) release(cr *cachedReader) {
	c.mu.Lock()
	cr.refs--
	cr.lastUsed = time.Now()
	closeIt := cr.evicted && cr.refs == 0 && cr.r != nil
	c.mu.Unlock()
	if closeIt {
		cr.r.Close()
	}
}

// evict drops ledger id's reader, closing it once unused.
func (c *readerCache) evict(id int64) {
	c.mu.Lock()
	r := c.evictLocked(id)
	c.mu.Unlock()
	if r != nil {
		r.Close() // waits for read-ahead goroutines: not under c.mu
	}
}

// evictLocked drops ledger id's reader and returns it if the caller must
// close it now (else its last user closes it). c.mu must be held.
func (c *readerCache) evictLocked(id int64) *offload.LedgerReader {
	cr, ok := c.m[id]
	if !ok {
		return nil
	}
	delete(c.m, id)
	cr.evicted = true
	if cr.refs == 0 {
		return cr.r
	}
	return nil
}

// closeIdle closes readers unused for at least idle.
func (c *readerCache) closeIdle(idle time.Duration) {
	c.evictWhere(func(cr *cachedReader) bool {
		return cr.refs == 0 && cr.r != nil && time.Since(cr.lastUsed) >= idle
	})
}

// closeAll closes every reader (the log is closing; reads in progress fail
// with offload.ErrClosed).
func (c *readerCache) closeAll() {
	c.evictWhere(func(*cachedReader) bool { return true })
}

// evictWhere drops the readers drop selects and closes those not in use
// (their last user closes the others).
func (c *readerCache) evictWhere(drop func(*cachedReader) bool) {
	c.mu.Lock()
	var closing []*offload.LedgerReader
	for id, cr := range c.m {
		if !drop(cr) {
			continue
		}
		if r := c.evictLocked(id); r != nil {
			closing = append(closing, r)
		}
	}
	c.mu.Unlock()
	for _, r := range closing {
		r.Close() // waits for read-ahead goroutines: not under c.mu
	}
}

func (c *readerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// openOffloaded opens the reader of li's offload and checks it holds what
// the ledger list says.
func openOffloaded(ctx context.Context, opts OffloadOptions, li LedgerInfo) (*offload.LedgerReader, error) {
	oc := li.Offload
	r, err := offload.OpenLedger(ctx, opts.Store, oc.DataKey, oc.IndexKey, opts.Read)
	if err != nil {
		return nil, err
	}
	if r.LedgerID() != li.LedgerID || r.LastEntryID() != li.Entries-1 || r.Length() != li.Size {
		r.Close()
		return nil, fmt.Errorf("%w: the objects hold ledger %d, entries 0..%d, %d bytes; the ledger list says ledger %d, %d entries, %d bytes",
			offload.ErrCorrupt, r.LedgerID(), r.LastEntryID(), r.Length(), li.LedgerID, li.Entries, li.Size)
	}
	return r, nil
}

// readChunk bounds the buffers offloaded payloads are copied into.
const readChunk = 256 << 10

// canReadOffload reports whether the configured store holds offloads of
// oc's driver. When it does not, reads go to the bookie copy while it
// exists.
func (ml *ManagedLedger) canReadOffload(oc *OffloadContext) bool {
	d := ml.opts.Offload.Driver
	return ml.offloadEnabled() && (oc.Driver == "" || d == "" || oc.Driver == d)
}

// readOffloaded reads entries first..last of the offloaded ledger li from
// the object store. Payloads are copied out of the reader's recycled
// buffers into a few shared chunks the caller owns.
func (ml *ManagedLedger) readOffloaded(ctx context.Context, li LedgerInfo, first, last int64) ([]Entry, error) {
	oc := li.Offload
	switch {
	case !ml.offloadEnabled():
		return nil, fmt.Errorf("%w: its bookie copy is deleted and no store is configured to read the offload (driver %q) from",
			ErrOffloadDisabled, oc.Driver)
	case !ml.canReadOffload(oc):
		return nil, fmt.Errorf("%w: its bookie copy is deleted and it was offloaded with driver %q, the configured store is %q",
			ErrOffloadDisabled, oc.Driver, ml.opts.Offload.Driver)
	}
	cr, err := ml.off.readers.acquire(ctx, ml, li)
	if err != nil {
		return nil, err
	}
	defer ml.off.readers.release(cr)
	out := make([]Entry, 0, last-first+1)
	var buf []byte
	err = cr.r.ReadFunc(ctx, first, last, func(e offload.Entry) error {
		n := len(e.Payload)
		if n > cap(buf)-len(buf) {
			left := int(last - e.ID + 1)
			buf = make([]byte, 0, max(n, min(readChunk, n*left)))
		}
		start := len(buf)
		buf = append(buf, e.Payload...)
		out = append(out, Entry{Position: Position{li.LedgerID, e.ID}, Data: buf[start:len(buf):len(buf)]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
