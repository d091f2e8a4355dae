package autorecovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/strata-mq/strata/metadata"
)

// ErrUnknownBookie: no bookie with that id is registered or holds ledgers.
var ErrUnknownBookie = errors.New("autorecovery: unknown bookie")

// BookieInfo describes one bookie: registered ones, and unregistered ones
// that ledgers still list.
type BookieInfo struct {
	ID         string `json:"bookieId"`
	Addr       string `json:"address,omitempty"`
	Registered bool   `json:"registered"`
	ReadOnly   bool   `json:"readOnly"`
	FreeBytes  uint64 `json:"freeBytes,omitempty"`
	TotalBytes uint64 `json:"totalBytes,omitempty"`
	// Ledgers counts the ledgers with a segment on the bookie.
	Ledgers int `json:"ledgers"`
	// MissingSince: when the auditor first saw the bookie unregistered
	// (Unix ms); it is lost LostBookieDelay later.
	MissingSince int64 `json:"missingSince,omitempty"`
	// DecommissionSince: when its decommission was asked (Unix ms); it is
	// drained when Ledgers reaches 0.
	DecommissionSince int64 `json:"decommissionSince,omitempty"`
}

// Underreplicated is a ledger marked for re-replication.
type Underreplicated struct {
	LedgerID int64    `json:"ledgerId"`
	Missing  []string `json:"missingReplicas"`
	Since    int64    `json:"since"`            // when marked, Unix ms
	Worker   string   `json:"worker,omitempty"` // the node re-replicating it now
}

// Status is the cluster's auto-recovery state.
type Status struct {
	// Auditor is the node elected auditor, "" if none.
	Auditor         string            `json:"auditor"`
	Underreplicated []Underreplicated `json:"underreplicatedLedgers"`
	Bookies         []BookieInfo      `json:"bookies"`
}

// Bookies lists every bookie that is registered, listed by a ledger or being
// decommissioned, in id order.
func Bookies(ctx context.Context, st metadata.Store) ([]BookieInfo, error) {
	regs, err := metadata.ListBookies(ctx, st)
	if err != nil {
		return nil, err
	}
	mds, err := ListLedgers(ctx, st)
	if err != nil {
		return nil, err
	}
	byID := map[string]*BookieInfo{}
	get := func(id string) *BookieInfo {
		if b, ok := byID[id]; ok {
			return b
		}
		b := &BookieInfo{ID: id}
		byID[id] = b
		return b
	}
	for _, r := range regs {
		b := get(r.ID)
		b.Addr, b.Registered, b.ReadOnly, b.FreeBytes, b.TotalBytes = r.Addr, true, r.ReadOnly, r.FreeBytes, r.TotalBytes
	}
	for _, md := range mds {
		var seen []string
		for _, seg := range md.Segments {
			for _, id := range seg.Ensemble {
				if !slices.Contains(seen, id) {
					seen = append(seen, id)
					get(id).Ledgers++
				}
			}
		}
	}
	for _, p := range []struct {
		prefix string
		set    func(*BookieInfo, int64)
	}{
		{metadata.MissingBookiesPrefix, func(b *BookieInfo, t int64) { b.MissingSince = t }},
		{metadata.DecommissionPrefix, func(b *BookieInfo, t int64) { b.DecommissionSince = t }},
	} {
		kvs, err := metadata.ListAll(ctx, st, p.prefix, false)
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			var v since
			if json.Unmarshal(kv.Value, &v) == nil {
				p.set(get(strings.TrimPrefix(kv.Key, p.prefix)), v.Since)
			}
		}
	}
	out := make([]BookieInfo, 0, len(byID))
	for _, b := range byID {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b BookieInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ListUnderreplicated lists the marked ledgers in id order, with the node
// working on each.
func ListUnderreplicated(ctx context.Context, st metadata.Store) ([]Underreplicated, error) {
	kvs, err := metadata.ListAll(ctx, st, metadata.UnderreplicatedPrefix, false)
	if err != nil {
		return nil, err
	}
	locks, err := metadata.ListAll(ctx, st, metadata.ReplicationLockPrefix, false)
	if err != nil {
		return nil, err
	}
	workers := map[int64]string{}
	for _, kv := range locks {
		if id, err := parseID(kv.Key, metadata.ReplicationLockPrefix); err == nil {
			workers[id] = string(kv.Value)
		}
	}
	out := make([]Underreplicated, 0, len(kvs))
	for _, kv := range kvs {
		id, err := parseID(kv.Key, metadata.UnderreplicatedPrefix)
		if err != nil {
			continue
		}
		var m mark
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			continue
		}
		out = append(out, Underreplicated{LedgerID: id, Missing: m.Missing, Since: m.Since, Worker: workers[id]})
	}
	return out, nil
}

// GetStatus returns the auditor, the marked ledgers and the bookies.
func GetStatus(ctx context.Context, st metadata.Store) (Status, error) {
	var s Status
	kv, err := st.Get(ctx, metadata.AuditorKey)
	switch {
	case err == nil:
		s.Auditor = string(kv.Value)
	case !errors.Is(err, metadata.ErrNotFound):
		return s, err
	}
	if s.Underreplicated, err = ListUnderreplicated(ctx, st); err != nil {
		return s, err
	}
	s.Bookies, err = Bookies(ctx, st)
	return s, err
}

// Decommission asks for a bookie to be drained: it turns read-only (writers
// move their ledgers off it at their next add), the auditor marks every
// ledger it holds, and workers copy its entries elsewhere — without waiting
// for LostBookieDelay, and whether the bookie still runs or is gone for
// good. Once no ledger lists it, it may be stopped. Asking twice is fine.
func Decommission(ctx context.Context, st metadata.Store, id string) error {
	bookies, err := Bookies(ctx, st)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(bookies, func(b BookieInfo) bool { return b.ID == id }) {
		return fmt.Errorf("%w %q: it is neither registered nor in any ledger's ensemble", ErrUnknownBookie, id)
	}
	v, _ := json.Marshal(since{time.Now().UnixMilli()})
	if _, err := st.Create(ctx, metadata.DecommissionPrefix+id, v); err != nil && !errors.Is(err, metadata.ErrExists) {
		return err
	}
	return nil
}

// Recommission cancels a decommission: the bookie takes new entries again.
// Ledgers already moved off it stay where they are.
func Recommission(ctx context.Context, st metadata.Store, id string) error {
	err := st.Delete(ctx, metadata.DecommissionPrefix+id, metadata.AnyVersion)
	if errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("%w %q: it is not being decommissioned", ErrUnknownBookie, id)
	}
	return err
}
