package managed

import (
	"regexp"
	"slices"
	"testing"
)

// TestOffloadCandidates spells out which ledgers the policy picks.
func TestOffloadCandidates(t *testing.T) {
	const now = 1_000_000
	done := &OffloadContext{UUID: "u", Complete: true}
	partial := &OffloadContext{UUID: "v"}
	// Ledgers 1..4 closed (100 bytes each, closed at now-4000..now-1000 ms),
	// 5 current.
	closed := func(id int64, off *OffloadContext) LedgerInfo {
		return LedgerInfo{LedgerID: id, Entries: 10, Size: 100, Timestamp: now - (5-id)*1000, Offload: off}
	}
	base := []LedgerInfo{closed(1, nil), closed(2, nil), closed(3, nil), closed(4, nil), {LedgerID: 5}}
	cases := []struct {
		name      string
		ledgers   []LedgerInfo
		curSize   int64
		keepBytes int64
		maxAgeMs  int64
		want      []int64
	}{
		{"both off", base, 50, -1, -1, nil},
		{"keep 0 takes every closed ledger", base, 50, 0, -1, []int64{1, 2, 3, 4}},
		{"keep 0 with an empty current ledger", base, 0, 0, -1, []int64{1, 2, 3, 4}},
		{"keep counts the current ledger", base, 50, 250, -1, []int64{1, 2}},
		{"keep exactly met leaves the rest", base, 0, 200, -1, []int64{1, 2}},
		{"keep above everything", base, 50, 1000, -1, nil},
		{"offloaded ledgers do not count", []LedgerInfo{closed(1, done), closed(2, nil), closed(3, nil), closed(4, nil), {LedgerID: 5}},
			0, 150, -1, []int64{2, 3}},
		{"an incomplete offload is redone", []LedgerInfo{closed(1, partial), closed(2, nil), closed(3, nil), closed(4, nil), {LedgerID: 5}},
			0, 300, -1, []int64{1}},
		{"age takes ledgers closed long enough ago", base, 50, -1, 2500, []int64{1, 2}},
		{"age 0 takes every closed ledger", base, 50, -1, 0, []int64{1, 2, 3, 4}},
		{"size or age, whichever takes more", base, 0, 300, 2500, []int64{1, 2}},
		{"empty ledgers are skipped", []LedgerInfo{{LedgerID: 1, Timestamp: 1}, closed(2, nil), {LedgerID: 5}}, 0, 0, -1, []int64{2}},
		{"nothing after an unclosed ledger", []LedgerInfo{closed(1, nil), {LedgerID: 2, Entries: 10, Size: 100}, closed(3, nil), {LedgerID: 5}},
			0, 0, -1, []int64{1}},
		{"terminated log: no current ledger", base[:4], 0, 0, -1, []int64{1, 2, 3, 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := int64(5)
			if len(tc.ledgers) < 5 && tc.ledgers[len(tc.ledgers)-1].LedgerID != 5 {
				cur = -1
			}
			var got []int64
			for _, li := range offloadCandidates(tc.ledgers, cur, tc.curSize, tc.keepBytes, tc.maxAgeMs, now) {
				got = append(got, li.LedgerID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		u := newUUID()
		if !re.MatchString(u) || seen[u] {
			t.Fatalf("bad or repeated UUID %q", u)
		}
		seen[u] = true
	}
}
