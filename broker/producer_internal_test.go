package broker

import (
	"math"
	"testing"
)

// TestClaimedMessages: the message count a send claims, which the publish
// rate is charged with, is at least 1 and at most what its entry's bytes
// can hold, whatever the client says.
func TestClaimedMessages(t *testing.T) {
	for _, tc := range []struct {
		claimed  int32
		entryLen int
		want     int
	}{
		{0, 100, 1}, {-5, 100, 1}, {1, 100, 1}, {10, 100, 10}, {25, 100, 25},
		{26, 100, 25}, {math.MaxInt32, 1 << 20, 1 << 18}, {math.MaxInt32, 2, 1},
	} {
		if got := claimedMessages(tc.claimed, tc.entryLen); got != tc.want {
			t.Errorf("claimedMessages(%d, %d) = %d, want %d", tc.claimed, tc.entryLen, got, tc.want)
		}
	}
}
