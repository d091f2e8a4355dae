package ledger

import (
	"fmt"
	"testing"
)

// TestWriteSetTable checks striping against BookKeeper's round-robin
// distribution (entry i -> slots (i+k) mod E, k < Qw).
func TestWriteSetTable(t *testing.T) {
	cases := []struct {
		e, qw int
		want  map[int64][]int
	}{
		{3, 3, map[int64][]int{0: {0, 1, 2}, 1: {1, 2, 0}, 2: {2, 0, 1}, 3: {0, 1, 2}}},
		{4, 3, map[int64][]int{0: {0, 1, 2}, 1: {1, 2, 3}, 2: {2, 3, 0}, 3: {3, 0, 1}, 4: {0, 1, 2}}},
		{5, 2, map[int64][]int{0: {0, 1}, 1: {1, 2}, 2: {2, 3}, 3: {3, 4}, 4: {4, 0}, 5: {0, 1}, 1002: {2, 3}}},
	}
	for _, c := range cases {
		for id, want := range c.want {
			if got := writeSet(id, c.e, c.qw); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("E=%d Qw=%d entry %d: write set %v, want %v", c.e, c.qw, id, got, want)
			}
		}
	}
}

// TestCoverageMatrix checks the quorum-coverage rule that ends fencing: every
// write set needs Qw-Qa+1 definitive answers.
func TestCoverageMatrix(t *testing.T) {
	set := func(e int, slots ...int) []bool {
		k := make([]bool, e)
		for _, s := range slots {
			k[s] = true
		}
		return k
	}
	cases := []struct {
		e, qw, qa int
		known     []bool
		want      bool
	}{
		{3, 3, 2, set(3, 0, 1), true},
		{3, 3, 2, set(3, 2), false},
		{3, 3, 2, set(3), false},
		{3, 2, 2, set(3, 0), false}, // window {1,2} has none
		{3, 2, 2, set(3, 0, 1), true},
		{3, 2, 2, set(3, 1), false},
		{5, 3, 2, set(5, 0, 1, 3), false}, // window {2,3,4} has one
		{5, 3, 2, set(5, 0, 1, 2, 3), true},
		{5, 3, 2, set(5, 1, 2, 3, 4), true},
		{3, 3, 3, set(3, 1), true}, // E=Qw=Qa: any single answer
		{1, 1, 1, set(1, 0), true},
		{1, 1, 1, set(1), false},
		{4, 2, 1, set(4, 0, 1, 2), false}, // Qa=1: every bookie must answer
		{4, 2, 1, set(4, 0, 1, 2, 3), true},
	}
	for _, c := range cases {
		if got := covered(c.known, c.e, c.qw, c.qa); got != c.want {
			t.Errorf("E=%d Qw=%d Qa=%d known=%v: covered=%v, want %v", c.e, c.qw, c.qa, c.known, got, c.want)
		}
	}
}

func TestSegmentFor(t *testing.T) {
	md := Metadata{EnsembleSize: 2, WriteQuorum: 2, Segments: []Segment{
		{0, []string{"a", "b"}}, {10, []string{"c", "b"}}, {25, []string{"c", "d"}},
	}}
	for id, want := range map[int64]string{0: "a", 9: "a", 10: "c", 24: "c", 25: "c", 100: "c"} {
		if got := md.WriteSet(id)[int(id%2)]; got != want && id%2 == 0 {
			t.Errorf("entry %d: first replica %s, want %s", id, got, want)
		}
	}
	if ws := md.WriteSet(25); fmt.Sprint(ws) != "[d c]" {
		t.Errorf("entry 25 write set %v, want [d c]", ws)
	}
	if ws := md.WriteSet(11); fmt.Sprint(ws) != "[b c]" {
		t.Errorf("entry 11 write set %v, want [b c]", ws)
	}
}
