//go:build chaos_soak

package chaos_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/chaos"
)

// TestChaosSoak is `make chaos DURATION=30m SEED=…`: every fault kind for
// STRATA_CHAOS_DURATION (default 30m) on the schedule STRATA_CHAOS_SEED
// picks (default: the current time, printed so the run can be repeated).
func TestChaosSoak(t *testing.T) {
	d := 30 * time.Minute
	if s := os.Getenv("STRATA_CHAOS_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			t.Fatalf("STRATA_CHAOS_DURATION=%q: want a positive duration such as 30m", s)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("STRATA_CHAOS_SEED=%q: want an unsigned integer", s)
		}
	}
	t.Logf("chaos soak: seed %d, %v", seed, d)
	// Ledgers of 2000 entries: each managed ledger's list of ledgers (one
	// etcd value, rewritten on every change) stays small over a long run.
	r := chaos.Run(t, chaos.Config{Seed: seed, Duration: d, EntriesPerLedger: 2000})
	t.Logf("chaos report:\n%s", r.Table())
	if !r.OK() {
		t.Fatalf("the run lost, duplicated or reordered messages, or a bound failed (seed %d):\n%s", seed, r.Table())
	}
}
