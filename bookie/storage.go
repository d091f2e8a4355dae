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
//	'x' ledgerId entryId -> location of the envelope in the entry log
//	'l' ledgerId         -> ledgerRecord (master key, fenced flag)
//	'e' ledgerId entryId -> an envelope stored by builds before the entry
//	                        log; moved into the log at start (migrate.go)
const (
	indexPrefix  = 'x'
	ledgerPrefix = 'l'
	legacyPrefix = 'e'
)

func entryKeyWith(prefix byte, ledgerID, entryID int64) []byte {
	k := make([]byte, 17)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], uint64(ledgerID))
	binary.BigEndian.PutUint64(k[9:], uint64(entryID))
	return k
}

func indexKey(ledgerID, entryID int64) []byte { return entryKeyWith(indexPrefix, ledgerID, entryID) }

func legacyKey(ledgerID, entryID int64) []byte { return entryKeyWith(legacyPrefix, ledgerID, entryID) }

func ledgerPrefixOf(prefix byte, ledgerID int64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], uint64(ledgerID))
	return k
}

func ledgerKey(ledgerID int64) []byte { return ledgerPrefixOf(ledgerPrefix, ledgerID) }

// location is where an envelope lies in the entry log.
type location struct {
	seq      uint64
	off, len int64
}

func (l location) encode() []byte {
	b := make([]byte, 0, 20)
	b = binary.BigEndian.AppendUint64(b, l.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(l.off))
	return binary.BigEndian.AppendUint32(b, uint32(l.len))
}

func decodeLocation(b []byte) (location, error) {
	if len(b) != 20 {
		return location{}, fmt.Errorf("bookie: corrupt index value (%d bytes)", len(b))
	}
	l := location{seq: binary.BigEndian.Uint64(b), off: int64(binary.BigEndian.Uint64(b[8:])), len: int64(binary.BigEndian.Uint32(b[16:]))}
	if l.off < 0 {
		return location{}, fmt.Errorf("bookie: corrupt index value (offset %d)", l.off)
	}
	return l, nil
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

// store is the bookie's storage: the entry log and Badger's index. Writes go
// through the journal only; reads may come from any goroutine.
type store struct {
	db  *badger.DB
	log *entryLog
}

var errNoEntry = errors.New("bookie: no such entry")

// locate returns the location of one entry, or errNoEntry.
func (s *store) locate(ledgerID, entryID int64) (location, error) {
	var loc location
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(indexKey(ledgerID, entryID))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			loc, err = decodeLocation(v)
			return err
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return location{}, errNoEntry
	}
	return loc, err
}

// getEntry returns the stored envelope of one entry, or errNoEntry.
func (s *store) getEntry(ledgerID, entryID int64) ([]byte, error) {
	loc, err := s.locate(ledgerID, entryID)
	if err != nil {
		return nil, err
	}
	return s.log.read(loc.seq, loc.off, int(loc.len))
}

// lastEntry returns the highest stored entry of a ledger, or id -1.
func (s *store) lastEntry(ledgerID int64) (int64, []byte, error) {
	id, loc := int64(-1), location{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: ledgerPrefixOf(indexPrefix, ledgerID)})
		defer it.Close()
		it.Seek(indexKey(ledgerID, math.MaxInt64))
		if !it.Valid() {
			return nil
		}
		item := it.Item()
		id = int64(binary.BigEndian.Uint64(item.Key()[9:]))
		return item.Value(func(v []byte) error {
			var err error
			loc, err = decodeLocation(v)
			return err
		})
	})
	if err != nil || id < 0 {
		return -1, nil, err
	}
	body, err := s.log.read(loc.seq, loc.off, int(loc.len))
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

// dropLedgers deletes the index entries, legacy entries and records of the
// given ledgers with Badger's range delete (their envelopes stay in the
// entry log until compaction). It blocks writes while it runs, so only the
// journal goroutine calls it.
func (s *store) dropLedgers(ids []int64) error {
	prefixes := make([][]byte, 0, 3*len(ids))
	for _, id := range ids {
		prefixes = append(prefixes, ledgerPrefixOf(indexPrefix, id), ledgerPrefixOf(legacyPrefix, id), ledgerKey(id))
	}
	return s.db.DropPrefix(prefixes...)
}
