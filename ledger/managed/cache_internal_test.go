package managed

import "testing"

// TestCacheGetStopsAtAHole: the cache never hands out entries across one
// it does not hold. A writer that closes with appends in flight can fail
// one append while a later one succeeds; the later entry is cached, the
// failed one (which the bookie may still hold, so recovery keeps it) is
// not. A read that skipped it made the geo-replicator send the later entry
// alone, and the remote then dropped the skipped one as already stored
// when the next owner sent it (make geo-stress).
func TestCacheGetStopsAtAHole(t *testing.T) {
	c := newEntryCache(1 << 20)
	for _, e := range []int64{0, 1, 3, 4} {
		c.insert(Position{7, e}, []byte{byte(e)})
	}
	got, ok := c.get(Position{7, 0}, 10, 1<<20)
	if !ok || len(got) != 2 || got[1].Position != (Position{7, 1}) {
		t.Fatalf("get from 7:0 returned %v, %v; want 7:0 and 7:1 only", got, ok)
	}
	if _, ok := c.get(Position{7, 2}, 10, 1<<20); ok {
		t.Fatal("get from the missing 7:2 hit the cache")
	}
	if got, ok := c.get(Position{7, 3}, 10, 1<<20); !ok || len(got) != 2 {
		t.Fatalf("get from 7:3 returned %v, %v; want 7:3 and 7:4", got, ok)
	}
}
