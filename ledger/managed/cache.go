package managed

import (
	"sort"
	"sync"
)

// entryCache keeps the most recent entries of a managed ledger in append
// order, so that tailing readers are served from memory. It is bounded in
// bytes and drops entries every active reader has passed.
type entryCache struct {
	max int64
	mu  struct {
		sync.Mutex
		entries []Entry // contiguous in log order
		bytes   int64
		hits    int64
		misses  int64
	}
}

func newEntryCache(max int64) *entryCache { return &entryCache{max: max} }

// insert appends the next entry of the log.
func (c *entryCache) insert(p Position, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.entries = append(c.mu.entries, Entry{Position: p, Data: data})
	c.mu.bytes += int64(len(data))
	drop := 0
	for c.mu.bytes > c.max && drop < len(c.mu.entries) {
		c.mu.bytes -= int64(len(c.mu.entries[drop].Data))
		drop++
	}
	c.dropLocked(drop)
}

func (c *entryCache) dropLocked(n int) {
	if n == 0 {
		return
	}
	clear(c.mu.entries[:n])
	c.mu.entries = c.mu.entries[n:]
	if len(c.mu.entries) == 0 {
		c.mu.entries = nil
	}
}

// get returns up to max entries starting exactly at from, if the cache holds
// from; ok is false otherwise.
func (c *entryCache) get(from Position, max int, maxBytes int64) ([]Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.mu.entries
	i := sort.Search(len(es), func(i int) bool { return !es[i].Position.Less(from) })
	if i == len(es) || es[i].Position != from {
		c.mu.misses++
		return nil, false
	}
	c.mu.hits++
	var out []Entry
	var size int64
	// Only entries that follow one another: an entry missing from the
	// cache (its append failed while a later one succeeded, as when a
	// writer closes) must be read from the ledger, not skipped.
	for next := from; i < len(es) && len(out) < max && size < maxBytes && es[i].Position == next; i++ {
		out = append(out, es[i])
		size += int64(len(es[i].Data))
		next.EntryID++
	}
	return out, true
}

// evictBefore drops entries before p (every active reader is past them).
func (c *entryCache) evictBefore(p Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.mu.entries
	n := sort.Search(len(es), func(i int) bool { return !es[i].Position.Less(p) })
	for _, e := range es[:n] {
		c.mu.bytes -= int64(len(e.Data))
	}
	c.dropLocked(n)
}

// CacheStats describes the entry cache.
type CacheStats struct {
	Entries      int   `json:"entries"`
	Bytes        int64 `json:"bytes"`
	Hits, Misses int64
}

func (c *entryCache) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: len(c.mu.entries), Bytes: c.mu.bytes, Hits: c.mu.hits, Misses: c.mu.misses}
}
