package bookie

import (
	"fmt"
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
	defer db.Close()
	return db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(entryKey(ledgerID, entryID))
		if err != nil {
			return fmt.Errorf("bookie: entry %d/%d: %w", ledgerID, entryID, err)
		}
		body, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		body[len(body)-1] ^= 0x5a // the last payload byte (or the digest of an empty one)
		return txn.Set(entryKey(ledgerID, entryID), body)
	})
}
