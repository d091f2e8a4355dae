package broker

import (
	"fmt"
	"testing"
)

// TestKeySharedRingSpreadsSimilarKeys: keys that differ in a digit or two
// ("k0".."k29", as applications name them) spread over a Key_Shared
// subscription's consumers for every set of consumer ids: no consumer
// takes all of them.
func TestKeySharedRingSpreadsSimilarKeys(t *testing.T) {
	for base := uint64(1); base < 200; base += 3 {
		s := &Subscription{}
		for id := base; id < base+3; id++ {
			s.mu.consumers = append(s.mu.consumers, &Consumer{id: id, name: fmt.Sprintf("consumer-%d", id)})
		}
		s.rebuildRingLocked()
		per := map[uint64]int{}
		for k := 0; k < 30; k++ {
			per[s.ringLookupLocked(keyHash(fmt.Sprintf("k%d", k))).id]++
		}
		for id, n := range per {
			if n > 20 {
				t.Errorf("consumers %d..%d: consumer %d takes %d of 30 keys (%v)", base, base+2, id, n, per)
			}
		}
	}
}
