package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// BookieRegistration is the value of a bookie's lease-bound key under
// BookiesPrefix: present while the bookie is alive.
type BookieRegistration struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`               // gRPC address clients dial
	HTTPAddr string `json:"httpAddr,omitempty"` // health and metrics
	Rack     string `json:"rack,omitempty"`
	// ReadOnly bookies serve reads but accept no new entries; ledger
	// placement skips them.
	ReadOnly   bool   `json:"readOnly"`
	FreeBytes  uint64 `json:"freeBytes"`
	TotalBytes uint64 `json:"totalBytes"`
	// MaxEntrySize is the largest entry envelope the bookie accepts; 0
	// when unknown. Clients place ledgers only on bookies that accept
	// their largest entries.
	MaxEntrySize int64 `json:"maxEntrySize,omitempty"`
}

// ListBookies returns the registrations of every live bookie.
func ListBookies(ctx context.Context, s Store) ([]BookieRegistration, error) {
	kvs, err := ListAll(ctx, s, BookiesPrefix, false)
	if err != nil {
		return nil, err
	}
	out := make([]BookieRegistration, 0, len(kvs))
	for _, kv := range kvs {
		var r BookieRegistration
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("metadata: bookie registration %s: %w", strings.TrimPrefix(kv.Key, BookiesPrefix), err)
		}
		out = append(out, r)
	}
	return out, nil
}
