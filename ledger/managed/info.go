package managed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-mq/strata/internal/testfault"
	"github.com/strata-mq/strata/metadata"
)

// LedgerInfo describes one ledger of a managed ledger. Entries, Size,
// Timestamp and publish times are recorded when the ledger is closed; the
// current ledger has zero values until then.
type LedgerInfo struct {
	LedgerID int64 `json:"ledgerId"`
	Entries  int64 `json:"entries"`
	Size     int64 `json:"size"`
	// Timestamp is when the ledger was closed (Unix ms); retention by time
	// counts from it.
	Timestamp        int64 `json:"timestamp,omitempty"`
	FirstPublishTime int64 `json:"firstPublishTime,omitempty"`
	LastPublishTime  int64 `json:"lastPublishTime,omitempty"`
	// Offload is the tiered-storage state of the ledger, nil if never offloaded.
	Offload *OffloadContext `json:"offload,omitempty"`
}

// OffloadContext records an offload of a ledger to the object store.
type OffloadContext struct {
	// UUID identifies one offload attempt; objects are named after it.
	UUID   string `json:"uuid"`
	Driver string `json:"driver,omitempty"`
	// Complete is set (compare-and-swap, only if UUID still matches) once
	// both objects were uploaded.
	Complete bool `json:"complete"`
	// BookieDeleted is set before the bookie copy is deleted.
	BookieDeleted bool `json:"bookieDeleted,omitempty"`
	// Timestamp of completion (Unix ms), for the deletion lag.
	Timestamp int64  `json:"timestamp,omitempty"`
	DataKey   string `json:"dataKey,omitempty"`
	IndexKey  string `json:"indexKey,omitempty"`
}

// mlInfo is the managed ledger's record at /managed-ledgers/{name}.
type mlInfo struct {
	Ledgers []LedgerInfo `json:"ledgers"`
	// LastLedgerID is the highest ledger id the log ever listed, including
	// ledgers since trimmed or dropped as empty. Every ledger added to the
	// list has a higher id (see ledgerIDFloor), so positions order by
	// (ledger id, entry id) along the log. Logs written before this field
	// existed lack it; their floor is the highest id in the list.
	LastLedgerID int64 `json:"lastLedgerId,omitempty"`
	// Renumbered maps ledger ids replaced by renumbering an out-of-order
	// list (see repair.go) to the ids of their copies, while the copies are
	// listed.
	Renumbered map[int64]int64   `json:"renumbered,omitempty"`
	Terminated *Position         `json:"terminatedPosition,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

func (i mlInfo) clone() mlInfo {
	c := i
	c.Renumbered = maps.Clone(i.Renumbered)
	c.Ledgers = make([]LedgerInfo, len(i.Ledgers))
	for j, l := range i.Ledgers {
		c.Ledgers[j] = l
		if l.Offload != nil {
			o := *l.Offload
			c.Ledgers[j].Offload = &o
		}
	}
	return c
}

// ledgerIDFloor returns the id every new ledger of the log must exceed.
func (i mlInfo) ledgerIDFloor() int64 {
	floor := i.LastLedgerID
	for _, li := range i.Ledgers {
		floor = max(floor, li.LedgerID)
	}
	return floor
}

// appendLedger adds a new ledger at the end of the list. Its id must exceed
// every id the log has used: ordering positions by ledger id relies on it.
func (i *mlInfo) appendLedger(id int64) error {
	if floor := i.ledgerIDFloor(); id <= floor && !testfault.On(testfault.LedgerIDsUnordered) {
		return fmt.Errorf("%w: new ledger %d does not follow ledger %d", ErrLedgerOrder, id, floor)
	}
	i.Ledgers = append(i.Ledgers, LedgerInfo{LedgerID: id})
	i.LastLedgerID = id
	return nil
}

func infoKey(name string) string { return metadata.ManagedLedgersPrefix + name }

func cursorsPrefix(name string) string { return metadata.CursorsPrefix + name + "/" }

func cursorKey(name, cursor string) string { return cursorsPrefix(name) + cursor }

// loadInfo reads the ledger list, creating an empty one for a new log.
func loadInfo(ctx context.Context, store metadata.Store, name string) (mlInfo, int64, error) {
	for {
		kv, err := store.Get(ctx, infoKey(name))
		if errors.Is(err, metadata.ErrNotFound) {
			data, _ := json.Marshal(mlInfo{Ledgers: []LedgerInfo{}})
			rev, err := store.Create(ctx, infoKey(name), data)
			if errors.Is(err, metadata.ErrExists) {
				continue
			}
			if err != nil {
				return mlInfo{}, 0, fmt.Errorf("managed ledger %s: create: %w", name, err)
			}
			return mlInfo{Ledgers: []LedgerInfo{}}, rev, nil
		}
		if err != nil {
			return mlInfo{}, 0, fmt.Errorf("managed ledger %s: read: %w", name, err)
		}
		info, err := decodeInfo(kv.Value)
		if err != nil {
			return mlInfo{}, 0, fmt.Errorf("managed ledger %s: corrupt metadata: %w", name, err)
		}
		return info, kv.ModRevision, nil
	}
}

// The ledger list is one etcd value, rewritten on every change, and etcd
// refuses requests above 1.5 MiB by default. A list whose JSON exceeds
// infoCompressAbove (a few hundred ledgers) is stored zstd-compressed,
// which makes a ledger cost some 50 bytes instead of 450: a topic with
// offloaded ledgers and long retention keeps rolling over. Smaller lists
// stay plain JSON, readable by older builds and by people.
const maxInfoSize = 256 << 20 // decompressed; a corrupt value cannot claim more

var infoCompressAbove = 64 << 10 // tests lower it

var (
	zstdMagic   = []byte{0x28, 0xb5, 0x2f, 0xfd}
	infoEncoder = mustZstd(zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)))
	infoDecoder = mustZstd(zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxInfoSize)))
)

// mustZstd panics on an error, which only invalid options cause.
func mustZstd[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func encodeInfo(info mlInfo) ([]byte, error) {
	data, err := json.Marshal(info)
	if err != nil || len(data) <= infoCompressAbove {
		return data, err
	}
	return infoEncoder.EncodeAll(data, make([]byte, 0, len(data)/4)), nil
}

func decodeInfo(b []byte) (mlInfo, error) {
	if bytes.HasPrefix(b, zstdMagic) {
		var err error
		if b, err = infoDecoder.DecodeAll(b, nil); err != nil {
			return mlInfo{}, fmt.Errorf("decompress ledger list: %w", err)
		}
	}
	var info mlInfo
	err := json.Unmarshal(b, &info)
	return info, err
}
