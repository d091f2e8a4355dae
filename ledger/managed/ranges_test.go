package managed

import (
	"fmt"
	"testing"
)

func (s *rangeSet) String() string {
	out := ""
	for _, r := range s.rs {
		out += fmt.Sprintf("[%d:%d-%d]", r.LedgerID, r.From, r.To)
	}
	return out
}

func TestRangeSet(t *testing.T) {
	var s rangeSet
	steps := []struct {
		op   string
		p    Position
		want string
	}{
		{"add", Position{1, 5}, "[1:5-5]"},
		{"add", Position{1, 7}, "[1:5-5][1:7-7]"},
		{"add", Position{1, 6}, "[1:5-7]"},
		{"add", Position{1, 6}, "[1:5-7]"},
		{"add", Position{1, 4}, "[1:4-7]"},
		{"add", Position{2, 0}, "[1:4-7][2:0-0]"}, // never merged across ledgers
		{"add", Position{1, 8}, "[1:4-8][2:0-0]"},
		{"add", Position{0, 9}, "[0:9-9][1:4-8][2:0-0]"},
		{"removeUpTo", Position{1, 5}, "[1:6-8][2:0-0]"},
		{"removeUpTo", Position{1, 9}, "[2:0-0]"},
		{"add", Position{2, 2}, "[2:0-0][2:2-2]"},
		{"removeUpTo", Position{2, 0}, "[2:2-2]"},
	}
	for i, st := range steps {
		switch st.op {
		case "add":
			s.add(st.p)
		case "removeUpTo":
			s.removeUpTo(st.p)
		}
		if got := s.String(); got != st.want {
			t.Fatalf("step %d %s %v: %s, want %s", i, st.op, st.p, got, st.want)
		}
	}
	if !s.contains(Position{2, 2}) || s.contains(Position{2, 1}) || s.contains(Position{1, 7}) {
		t.Fatal("contains is wrong")
	}
	s.add(Position{3, 1})
	s.add(Position{3, 2})
	if n := s.countIn(Position{2, 0}, Position{3, 1}); n != 2 {
		t.Fatalf("countIn = %d, want 2", n)
	}
	if s.count() != 3 {
		t.Fatalf("count = %d, want 3", s.count())
	}
}
