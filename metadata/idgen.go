package metadata

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// IDGenerator hands out unique int64 ids backed by a counter key. It
// reserves ids in blocks with a compare-and-swap so that the common case
// needs no round trip; ids reserved by a process that dies are skipped, never
// reused.
//
// Ids increase per generator, not across generators: two processes hold
// different blocks, so a later id from one may be lower than an earlier id
// from the other. A caller that needs an id above one it has seen (a managed
// ledger's next ledger must follow its last one) asks NextAbove.
type IDGenerator struct {
	store Store
	key   string
	block int64

	mu struct {
		sync.Mutex
		next, limit int64 // ids in [next, limit) are reserved for this generator
	}
}

// NewIDGenerator returns a generator over the counter at key reserving block
// ids per round trip (1 when block <= 0).
func NewIDGenerator(store Store, key string, block int64) *IDGenerator {
	if block <= 0 {
		block = 1
	}
	return &IDGenerator{store: store, key: key, block: block}
}

// Next returns the next id. The first id ever issued is 1.
func (g *IDGenerator) Next(ctx context.Context) (int64, error) {
	return g.NextAbove(ctx, 0)
}

// NextAbove returns an id greater than floor. When the reserved block has
// none, it reserves a new block starting above both the counter and floor
// (the unused rest of the old block is skipped). Since the counter is at
// least every id ever issued, an id above an issued id costs at most one
// round trip.
func (g *IDGenerator) NextAbove(ctx context.Context, floor int64) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.next > floor && g.mu.next < g.mu.limit {
		id := g.mu.next
		g.mu.next++
		return id, nil
	}
	for {
		var cur, rev int64
		kv, err := g.store.Get(ctx, g.key)
		switch {
		case errors.Is(err, ErrNotFound):
			rev = 0
		case err != nil:
			return 0, err
		default:
			cur, err = strconv.ParseInt(string(kv.Value), 10, 64)
			if err != nil || cur < 0 {
				return 0, fmt.Errorf("id generator %s: corrupt counter %q", g.key, kv.Value)
			}
			rev = kv.ModRevision
		}
		base := max(cur, floor)
		if base > (1<<63-1)-g.block {
			return 0, fmt.Errorf("id generator %s: ids exhausted (counter %d, floor %d)", g.key, cur, floor)
		}
		val := []byte(strconv.FormatInt(base+g.block, 10))
		if rev == 0 {
			_, err = g.store.Create(ctx, g.key, val)
		} else {
			_, err = g.store.Put(ctx, g.key, val, rev)
		}
		if errors.Is(err, ErrExists) || errors.Is(err, ErrBadVersion) {
			continue // raced with another generator; read again
		}
		if err != nil {
			return 0, err
		}
		g.mu.next, g.mu.limit = base+2, base+g.block+1
		return base + 1, nil
	}
}
