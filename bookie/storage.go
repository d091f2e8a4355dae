package bookie

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	badger "github.com/dgraph-io/badger/v4"
)

// Storage layout in Badger. All integers are big-endian so that keys sort in
// numeric order and the last entry of a ledger is one reverse seek away.
//
//	'e' ledgerId entryId -> packaged entry body
//	'l' ledgerId         -> ledgerRecord (master key, fenced flag)
const (
	entryPrefix  = 'e'
	ledgerPrefix = 'l'
)

func entryKey(ledgerID, entryID int64) []byte {
	k := make([]byte, 17)
	k[0] = entryPrefix
	binary.BigEndian.PutUint64(k[1:], uint64(ledgerID))
	binary.BigEndian.PutUint64(k[9:], uint64(entryID))
	return k
}

func ledgerEntriesPrefix(ledgerID int64) []byte {
	k := make([]byte, 9)
	k[0] = entryPrefix
	binary.BigEndian.PutUint64(k[1:], uint64(ledgerID))
	return k
}

func ledgerKey(ledgerID int64) []byte {
	k := make([]byte, 9)
	k[0] = ledgerPrefix
	binary.BigEndian.PutUint64(k[1:], uint64(ledgerID))
	return k
}

// ledgerRecord is the persistent per-ledger state.
type ledgerRecord struct {
	masterKey []byte
	fenced    bool
}

const ledgerRecordVersion = 1

func (r ledgerRecord) encode() []byte {
	b := make([]byte, 0, 3+len(r.masterKey))
	flags := byte(0)
	if r.fenced {
		flags |= 1
	}
	b = append(b, ledgerRecordVersion, flags, byte(len(r.masterKey)))
	return append(b, r.masterKey...)
}

func decodeLedgerRecord(b []byte) (ledgerRecord, error) {
	if len(b) < 3 || b[0] != ledgerRecordVersion || len(b) != 3+int(b[2]) {
		return ledgerRecord{}, fmt.Errorf("bookie: corrupt ledger record (%d bytes)", len(b))
	}
	return ledgerRecord{fenced: b[1]&1 != 0, masterKey: append([]byte(nil), b[3:]...)}, nil
}

// store wraps the Badger database with the bookie's key layout. Writes go
// through the journal only; reads may come from any goroutine.
type store struct {
	db *badger.DB
}

var errNoEntry = errors.New("bookie: no such entry")

// getEntry returns the stored body of one entry, or errNoEntry.
func (s *store) getEntry(ledgerID, entryID int64) ([]byte, error) {
	var body []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(entryKey(ledgerID, entryID))
		if err != nil {
			return err
		}
		body, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errNoEntry
	}
	return body, err
}

// lastEntry returns the highest stored entry of a ledger, or id -1.
func (s *store) lastEntry(ledgerID int64) (int64, []byte, error) {
	id, body := int64(-1), []byte(nil)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: ledgerEntriesPrefix(ledgerID)})
		defer it.Close()
		it.Seek(entryKey(ledgerID, math.MaxInt64))
		if !it.Valid() {
			return nil
		}
		item := it.Item()
		id = int64(binary.BigEndian.Uint64(item.Key()[9:]))
		var err error
		body, err = item.ValueCopy(nil)
		return err
	})
	return id, body, err
}

// ledgerRecord returns the persistent state of a ledger; ok is false when the
// bookie has never seen it.
func (s *store) ledgerRecord(ledgerID int64) (rec ledgerRecord, ok bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(ledgerKey(ledgerID))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			rec, err = decodeLedgerRecord(v)
			return err
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ledgerRecord{}, false, nil
	}
	return rec, err == nil, err
}

// ledgerIDs lists every ledger with a record on this bookie.
func (s *store) ledgerIDs() ([]int64, error) {
	var ids []int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{ledgerPrefix}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ids = append(ids, int64(binary.BigEndian.Uint64(it.Item().Key()[1:])))
		}
		return nil
	})
	return ids, err
}

// dropLedgers deletes every entry and the record of the given ledgers with
// Badger's range delete. It blocks writes while it runs, so only the journal
// goroutine calls it.
func (s *store) dropLedgers(ids []int64) error {
	prefixes := make([][]byte, 0, 2*len(ids))
	for _, id := range ids {
		prefixes = append(prefixes, ledgerEntriesPrefix(id), ledgerKey(id))
	}
	return s.db.DropPrefix(prefixes...)
}
