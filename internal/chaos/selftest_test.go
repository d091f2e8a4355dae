//go:build chaos_selftest

package chaos_test

import (
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/chaos"
	"github.com/strata-mq/strata/internal/testfault"
)

// The harness can fail: each test breaks one guarantee in the processes
// (a testfault switch) and runs the faults that expose it; the checker must
// report acknowledged messages lost. `make chaos-selftest` runs them.

func selftest(t *testing.T, cfg chaos.Config, sw string, faults ...chaos.Fault) {
	cfg.Seed, cfg.Duration, cfg.Faults, cfg.Break = 7, time.Minute, faults, []string{sw}
	cfg.HealTimeout, cfg.ReplicationTimeout = 30*time.Second, 30*time.Second
	r := chaos.Run(t, cfg)
	t.Logf("chaos report with %s:\n%s", sw, r.Table())
	if r.Lost == 0 {
		t.Fatalf("with %s the run lost nothing: the harness cannot see what the switch breaks", sw)
	}
}

// A broker that still believes in its ended session keeps writing to a
// ledger the new owner recovered without fencing: what it acknowledges then
// is lost. Long ledgers keep it from needing etcd (for a new ledger) while
// it does so.
func TestChaosSeesUnfencedRecovery(t *testing.T) {
	selftest(t, chaos.Config{EntriesPerLedger: 20000}, testfault.RecoverySkipFencing, chaos.EtcdLag)
}

// Bookies that acknowledge before writing lose acknowledged entries when
// they all crash at once.
func TestChaosSeesAckBeforeWrite(t *testing.T) {
	selftest(t, chaos.Config{}, testfault.BookieAckBeforeWrite, chaos.BookiesKillAll)
}

// Positions compared by raw ledger id skip the entries written after a
// topic moved to a broker whose ledger ids are lower. Pauses move topics
// off a broker without restarting any (a restarted broker takes a fresh,
// higher block of ids, so kills mostly move topics up); ledgers of 2000
// entries make each broker's block last long enough for a topic to land
// on an older, lower one.
func TestChaosSeesUnorderedLedgerIDs(t *testing.T) {
	selftest(t, chaos.Config{EntriesPerLedger: 2000}, testfault.LedgerIDsUnordered, chaos.BrokerPause, chaos.Unload)
}

// A cluster that stores what a replicator sends again after a restart
// (without deduplicating by source position) holds those entries twice:
// the geo run must report duplicates.
func TestChaosSeesReplicationWithoutDedup(t *testing.T) {
	r := chaos.RunGeo(t, chaos.GeoConfig{Seed: 7, Duration: time.Minute, Break: []string{testfault.ReplicationNoDedup},
		HealTimeout: 30 * time.Second})
	t.Logf("geo chaos report with %s:\n%s", testfault.ReplicationNoDedup, r.Table())
	if r.Duplicated == 0 {
		t.Fatalf("with %s the run stored nothing twice: the harness cannot see what the switch breaks", testfault.ReplicationNoDedup)
	}
}
