package bookie

import (
	"fmt"
	"os"
	"path/filepath"

	badger "github.com/dgraph-io/badger/v4"
)

// CorruptEntry flips one byte of a stored entry's payload in the data
// directory of a stopped bookie, as bit rot or a bad disk would. It exists
// for fault-injection tests: readers must detect the damage by its digest
// and never return the entry.
func CorruptEntry(dataDir string, ledgerID, entryID int64) error {
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dataDir, "ledgers")).WithLogger(nil))
	if err != nil {
		return fmt.Errorf("bookie: open %s (is the bookie stopped?): %w", dataDir, err)
	}
	st := &store{db: db}
	loc, err := st.locate(ledgerID, entryID)
	db.Close()
	if err != nil {
		return fmt.Errorf("bookie: entry %d/%d: %w", ledgerID, entryID, err)
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "journal", segmentName(loc.seq)), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// The last payload byte (or the digest of an empty payload).
	b := make([]byte, 1)
	at := loc.off + loc.len - 1
	if _, err := f.ReadAt(b, at); err != nil {
		return err
	}
	b[0] ^= 0x5a
	_, err = f.WriteAt(b, at)
	return err
}
