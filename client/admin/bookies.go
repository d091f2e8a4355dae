package admin

import (
	"context"
	"net/http"
)

// Bookie describes one bookie: a registered one, or one that ledgers still
// list although it is gone.
type Bookie struct {
	ID         string `json:"bookieId"`
	Address    string `json:"address,omitempty"`
	Registered bool   `json:"registered"`
	ReadOnly   bool   `json:"readOnly"`
	FreeBytes  uint64 `json:"freeBytes,omitempty"`
	TotalBytes uint64 `json:"totalBytes,omitempty"`
	// Ledgers counts the ledgers with a segment on the bookie.
	Ledgers int `json:"ledgers"`
	// MissingSince is when auto-recovery first saw the bookie unregistered
	// (Unix ms), 0 if it is not missing.
	MissingSince int64 `json:"missingSince,omitempty"`
	// DecommissionSince is when its decommission was asked (Unix ms), 0 if
	// it is not being decommissioned; it is drained when Ledgers is 0.
	DecommissionSince int64 `json:"decommissionSince,omitempty"`
}

// UnderreplicatedLedger is a ledger auto-recovery is to re-replicate.
type UnderreplicatedLedger struct {
	LedgerID int64    `json:"ledgerId"`
	Missing  []string `json:"missingReplicas"`
	Since    int64    `json:"since"`
	Worker   string   `json:"worker,omitempty"`
}

// AutoRecoveryStatus is the cluster's auto-recovery state.
type AutoRecoveryStatus struct {
	Auditor         string                  `json:"auditor"`
	Underreplicated []UnderreplicatedLedger `json:"underreplicatedLedgers"`
	Bookies         []Bookie                `json:"bookies"`
}

// Bookies manages bookies: /admin/v2/bookies (superusers).
type Bookies struct{ c *Client }

// Bookies returns the bookie operations.
func (c *Client) Bookies() *Bookies { return &Bookies{c} }

// List returns every bookie that is registered, listed by a ledger or being
// decommissioned.
func (r *Bookies) List(ctx context.Context) ([]Bookie, error) {
	var out struct {
		Bookies []Bookie `json:"bookies"`
	}
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/bookies/all", nil, nil, &out)
	return out.Bookies, err
}

// Underreplicated lists the ledgers marked for re-replication.
func (r *Bookies) Underreplicated(ctx context.Context) ([]UnderreplicatedLedger, error) {
	var out []UnderreplicatedLedger
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/bookies/underreplicated", nil, nil, &out)
	return out, err
}

// AutoRecovery returns the auditor, the marked ledgers and the bookies.
func (r *Bookies) AutoRecovery(ctx context.Context) (AutoRecoveryStatus, error) {
	var out AutoRecoveryStatus
	_, err := r.c.Do(ctx, http.MethodGet, adminPrefix+"/bookies/autorecovery", nil, nil, &out)
	return out, err
}

// Decommission drains a bookie: it takes no new entries and its ledgers are
// copied to other bookies; it may be stopped once List shows it with no
// ledgers. 404 for an unknown bookie.
func (r *Bookies) Decommission(ctx context.Context, id string) error {
	_, err := r.c.Do(ctx, http.MethodPut, adminPrefix+"/bookies/"+seg(id)+"/decommission", nil, nil, nil)
	return err
}

// Recommission cancels a decommission.
func (r *Bookies) Recommission(ctx context.Context, id string) error {
	_, err := r.c.Do(ctx, http.MethodDelete, adminPrefix+"/bookies/"+seg(id)+"/decommission", nil, nil, nil)
	return err
}
