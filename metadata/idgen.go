package metadata

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// IDGenerator hands out unique, increasing int64 ids backed by a counter key.
// It reserves ids in blocks with a compare-and-swap so that the common case
// needs no round trip; ids reserved by a process that dies are skipped, never
// reused.
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
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.next < g.mu.limit {
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
			if err != nil {
				return 0, fmt.Errorf("id generator %s: corrupt counter %q: %w", g.key, kv.Value, err)
			}
			rev = kv.ModRevision
		}
		val := []byte(strconv.FormatInt(cur+g.block, 10))
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
		g.mu.next, g.mu.limit = cur+2, cur+g.block+1
		return cur + 1, nil
	}
}
