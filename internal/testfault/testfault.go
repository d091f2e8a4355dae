// Package testfault holds switches that break a guarantee on purpose, so
// that the tests guarding it can be shown to fail, and seams the fault
// harness (internal/chaos) drives from outside a process. Every switch is
// off unless the environment variable STRATA_TEST_FAULTS names it (a
// comma-separated list), which only tests set: a deployment never does.
package testfault

import (
	"os"
	"slices"
	"strings"
	"sync"
)

// EnvVar names the switches that are on.
const EnvVar = "STRATA_TEST_FAULTS"

// Switches that break a guarantee.
const (
	// BookieAckBeforeWrite: a bookie acknowledges an add at once and
	// journals it a moment later, so a crash in between loses an
	// acknowledged entry.
	BookieAckBeforeWrite = "bookie-ack-before-write"
	// RecoverySkipFencing: ledger recovery neither fences the old writer
	// nor reads with fencing reads, so a writer that was only paused keeps
	// adding (and acknowledging) entries after the ledger was closed.
	RecoverySkipFencing = "recovery-skip-fencing"
	// LedgerIDsUnordered: a managed ledger takes new ledger ids as they
	// come and compares positions by raw ledger id, as before ids were
	// kept increasing along the log: a topic that moves to a broker with
	// a lower id block puts its new entries before its old ones. Each
	// client reserves 1000 ids at a time instead of 16, so that brokers'
	// blocks lie far apart and a topic that moves likely lands on a lower
	// one.
	LedgerIDsUnordered = "ledger-ids-unordered"
	// ReplicationNoDedup: a broker stores what another cluster's
	// replicator sends again after a restart (its cursor lagging what was
	// stored) instead of dropping it by its source position.
	ReplicationNoDedup = "replication-no-dedup"
)

// Seams the harness drives.
const (
	// DiskFullFile: a bookie reports its disk full while a file named
	// DISK_FULL exists in its data directory.
	DiskFullFile = "disk-full-file"
)

var (
	once sync.Once
	on   []string
)

// On reports whether the named switch is on.
func On(name string) bool {
	once.Do(func() {
		for _, s := range strings.Split(os.Getenv(EnvVar), ",") {
			if s = strings.TrimSpace(s); s != "" {
				on = append(on, s)
			}
		}
	})
	return slices.Contains(on, name)
}
