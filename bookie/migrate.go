package bookie

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// migrateBatchBytes bounds the legacy entries moved per record.
const migrateBatchBytes = 4 << 20

// migrateLegacy moves entries that builds before the entry log stored in
// Badger itself ('e' keys) into the entry log, once, at start: each batch is
// one synced record that adds the entries to the log and erases their Badger
// copies, so a crash midway loses nothing and the next start goes on. The
// value log those copies lived in is reclaimed afterwards. The journal
// goroutine is not running yet.
func (j *journal) migrateLegacy(logger *slog.Logger) error {
	start := time.Now()
	var moved, bytes int64
	for {
		n, size, err := j.migrateBatch()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if moved == 0 {
			logger.Warn("moving entries stored by an older bookie into the entry log (once)")
		}
		moved, bytes = moved+n, bytes+size
	}
	if moved == 0 {
		return nil
	}
	for j.st.db.RunValueLogGC(0.01) == nil {
	}
	logger.Warn("moved entries into the entry log", "entries", moved, "bytes", bytes, "took", time.Since(start))
	return nil
}

// migrateBatch moves up to migrateBatchBytes of legacy entries.
func (j *journal) migrateBatch() (n, size int64, err error) {
	j.begin()
	err = j.st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{legacyPrefix}})
		defer it.Close()
		for it.Rewind(); it.Valid() && size < migrateBatchBytes; it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != 17 {
				continue
			}
			ledger, entry := int64(binary.BigEndian.Uint64(k[1:])), int64(binary.BigEndian.Uint64(k[9:]))
			body, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			j.putAdd(ledger, entry, body)
			j.rb.erase(ledger, entry)
			j.writes = append(j.writes, pendingWrite{kind: mutErase, ledger: ledger, entry: entry})
			n++
			size += int64(len(body))
		}
		return nil
	})
	if err != nil || n == 0 {
		return 0, 0, err
	}
	if err := j.commit(); err != nil {
		return 0, 0, errors.Join(errors.New("bookie: move legacy entries into the entry log"), err)
	}
	return n, size, nil
}
