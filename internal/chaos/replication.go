package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/strata-mq/strata/ledger/autorecovery"
	"github.com/strata-mq/strata/metadata"
)

// replication measures auto-recovery: for every bookie lost for good, how
// long until no ledger lists it any more.
type replication struct {
	store metadata.Store

	mu     sync.Mutex
	lostAt map[string]time.Time     // bookie id -> when it was lost
	took   map[string]time.Duration // bookie id -> loss to no ledger listing it
}

func newReplication(store metadata.Store) *replication {
	return &replication{store: store, lostAt: map[string]time.Time{}, took: map[string]time.Duration{}}
}

func (r *replication) lost(id string) {
	r.mu.Lock()
	r.lostAt[id] = time.Now()
	r.mu.Unlock()
}

// watch checks every second which lost bookies no ledger lists any more.
func (r *replication) watch(ctx context.Context) {
	for ctx.Err() == nil {
		r.mu.Lock()
		pending := map[string]time.Time{}
		for id, at := range r.lostAt {
			if _, done := r.took[id]; !done {
				pending[id] = at
			}
		}
		r.mu.Unlock()
		if len(pending) > 0 {
			if listed, err := r.listed(ctx); err == nil {
				r.mu.Lock()
				for id, at := range pending {
					if !listed[id] {
						r.took[id] = time.Since(at)
					}
				}
				r.mu.Unlock()
			}
		}
		sleepCtx(ctx, time.Second)
	}
}

// listed returns the bookies some ledger's ensemble names.
func (r *replication) listed(ctx context.Context) (map[string]bool, error) {
	mds, err := autorecovery.ListLedgers(ctx, r.store)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, md := range mds {
		for _, s := range md.Segments {
			for _, b := range s.Ensemble {
				out[b] = true
			}
		}
	}
	return out, nil
}

// longest returns the longest time from a loss to full replication and
// how many bookies were lost.
func (r *replication) longest() (time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Duration
	for _, t := range r.took {
		d = max(d, t)
	}
	return d, len(r.lostAt)
}

// waitFullyReplicated waits until no ledger lists a bookie that is not
// registered and no ledger is marked under-replicated, or the deadline.
func (c *cluster) waitFullyReplicated(ctx context.Context, deadline time.Time) error {
	for {
		err := c.underReplicated(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("ledgers not fully replicated: %v", err)
		}
		sleepCtx(ctx, time.Second)
	}
}

func (c *cluster) underReplicated(ctx context.Context) error {
	regs, err := metadata.ListBookies(ctx, c.store)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, r := range regs {
		live[r.ID] = true
	}
	mds, err := autorecovery.ListLedgers(ctx, c.store)
	if err != nil {
		return err
	}
	for _, md := range mds {
		for _, s := range md.Segments {
			for _, b := range s.Ensemble {
				if !live[b] {
					return fmt.Errorf("ledger %d lists bookie %s, which is not registered", md.ID, b)
				}
			}
		}
	}
	marks, err := autorecovery.ListUnderreplicated(ctx, c.store)
	if err != nil {
		return err
	}
	if len(marks) > 0 {
		return fmt.Errorf("%d ledgers marked under-replicated (first: %+v)", len(marks), marks[0])
	}
	return nil
}
