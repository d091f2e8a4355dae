package bookie_test

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/strata-mq/strata/api/bookiepb"
)

// legacyKey is the key under which builds before the entry log stored an
// envelope in Badger: 'e' ledgerId entryId, big-endian.
func legacyKey(ledger, entry int64) []byte {
	k := []byte{'e'}
	k = binary.BigEndian.AppendUint64(k, uint64(ledger))
	return binary.BigEndian.AppendUint64(k, uint64(entry))
}

// legacyRecord is their ledger record: version 1, flags (1 = fenced), key.
func legacyRecord(fenced bool) []byte {
	flags := byte(0)
	if fenced {
		flags = 1
	}
	return append([]byte{1, flags, byte(len(key))}, key...)
}

// TestLegacyEntriesMovedIntoLog: a data directory whose entries an older
// build kept in Badger starts, moves them into the entry log once, and
// serves them — entries, last entry and LAC, fencing — also after a crash;
// no entry is left in Badger.
func TestLegacyEntriesMovedIntoLog(t *testing.T) {
	c := crashCluster(t, nil)
	addr, dir := c.Bookie(0).Addr, c.Bookie(0).Dir
	c.StopBookie(0)
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "ledgers")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	err = db.Update(func(txn *badger.Txn) error {
		for _, l := range []int64{11, 12} {
			if err := txn.Set([]byte{'l', 0, 0, 0, 0, 0, 0, 0, byte(l)}, legacyRecord(l == 12)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		wb := db.NewWriteBatch()
		for i := int64(0); i < n && err == nil; i++ {
			for _, l := range []int64{11, 12} {
				err = wb.Set(legacyKey(l, i), body(l, i, i-1, fmt.Sprintf("legacy-%d-%d", l, i)))
			}
		}
		if err == nil {
			err = wb.Flush()
		}
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	verify := func(when string) {
		t.Helper()
		cli := client(t, addr)
		for _, l := range []int64{11, 12} {
			for i := int64(0); i < n; i++ {
				resp, err := cli.ReadEntry(ctxT(t), &bookiepb.ReadEntryRequest{LedgerId: l, EntryId: i})
				if err != nil {
					t.Fatalf("%s: entry %d/%d: %v", when, l, i, err)
				}
				if _, p, err := bookiepb.VerifyEntry(resp.Body, l, i); err != nil || string(p) != fmt.Sprintf("legacy-%d-%d", l, i) {
					t.Fatalf("%s: entry %d/%d damaged: %v", when, l, i, err)
				}
			}
			want := int64(n - 1)
			if l == 11 && when != "after moving" {
				want = n // the entry added after moving
			}
			last, err := cli.ReadEntry(ctxT(t), &bookiepb.ReadEntryRequest{LedgerId: l, EntryId: -1})
			if err != nil || last.EntryId != want || last.Lac != want-1 {
				t.Fatalf("%s: last entry of %d: %d lac %d, %v", when, l, last.GetEntryId(), last.GetLac(), err)
			}
		}
		a := newAdder(t, addr)
		if when == "after moving" {
			a.mustAdd(11, n, n-1, "new")
		}
		if r := a.add(&bookiepb.AddRequest{LedgerId: 12, EntryId: n, Body: body(12, n, n-1, "late")}); r.Code != bookiepb.Code_FENCED {
			t.Fatalf("%s: add to the fenced legacy ledger: %v", when, r.Code)
		}
	}
	if err := c.StartBookie(0); err != nil {
		t.Fatal(err)
	}
	verify("after moving")
	c.CrashBookie(0)
	if err := c.StartBookie(0); err != nil {
		t.Fatal(err)
	}
	verify("after a crash")
	c.StopBookie(0)
	db, err = badger.Open(badger.DefaultOptions(filepath.Join(dir, "ledgers")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'e'}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			t.Fatalf("legacy entry %x still in Badger", it.Item().Key())
		}
		return nil
	})
}
