package managed

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// TestLongLedgerListFitsEtcd: the ledger list of a topic with 10,000
// offloaded ledgers (weeks of retention at a busy topic's rollover rate)
// stays well below etcd's default 1.5 MiB request limit, and reads back
// exactly. As plain JSON it is 4.3 MB, which etcd refuses: the topic
// could not roll over any more.
func TestLongLedgerListFitsEtcd(t *testing.T) {
	var info mlInfo
	for i := range int64(10000) {
		uuid := rand.Text()
		key := fmt.Sprintf("tenant/namespace/orders-partition-7/%d-%s", 1000+i, uuid)
		info.Ledgers = append(info.Ledgers, LedgerInfo{
			LedgerID: 1000 + i, Entries: 50000, Size: 52_000_000 + i*17, Timestamp: 1796624343542 + i*600_000,
			FirstPublishTime: 1796624343049 + i*600_000, LastPublishTime: 1796624943536 + i*600_000,
			Offload: &OffloadContext{UUID: uuid, Driver: "s3", Complete: true, BookieDeleted: true,
				Timestamp: 1796624344038 + i*600_000, DataKey: key, IndexKey: key + "-index"},
		})
	}
	info.LastLedgerID = 10999
	data, err := encodeInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(info)
	t.Logf("10,000 offloaded ledgers: %d bytes stored, %d as JSON", len(data), len(plain))
	if len(data) > 1<<20 {
		t.Fatalf("ledger list of %d bytes: etcd refuses values near 1.5 MiB", len(data))
	}
	got, err := decodeInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, info) {
		t.Fatal("the ledger list read back differs")
	}

	small, err := encodeInfo(mlInfo{Ledgers: info.Ledgers[:10]})
	if err != nil {
		t.Fatal(err)
	}
	if small[0] != '{' {
		t.Fatalf("a short ledger list is stored as %q..., want plain JSON", small[:8])
	}
	corrupt := append(bytes.Clone(data[:len(data)/2]), 0xff, 0xfe)
	if _, err := decodeInfo(corrupt); err == nil {
		t.Fatal("a truncated compressed ledger list decoded without error")
	}
}
