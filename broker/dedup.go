package broker

import (
	"context"
	"fmt"
	"sync"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/tenants"
)

// dedupCursor is the system cursor holding deduplication snapshots: its
// properties map producer names to their highest persisted sequence id and
// its mark-delete position is the entry the snapshot covers.
const dedupCursor = "pulsar.dedup"

// recentPositions is how many receipts per producer are remembered to
// answer duplicates with the original message id.
const recentPositions = 1024

// dedup drops messages a producer sends again (retries across reconnects
// and failovers): the broker tracks the highest sequence id persisted per
// producer name; a send whose highest sequence id is not above it is
// acknowledged without being stored. The state survives failover: it is
// rebuilt from the last snapshot plus the log entries after it.
type dedup struct {
	t  *Topic
	mu struct {
		sync.Mutex
		enabled       bool
		cursor        *managed.Cursor
		persisted     map[string]int64
		pushed        map[string]int64
		inflight      map[dupKey][]func(managed.Position, error)
		recent        map[string]*seqRing
		sinceSnapshot int
	}
}

type dupKey struct {
	producer string
	seq      int64
}

// seqRing remembers the positions of a producer's last sequence ids.
type seqRing struct {
	seqs []int64
	pos  []managed.Position
	next int
}

func (r *seqRing) add(seq int64, p managed.Position) {
	if len(r.seqs) < recentPositions {
		r.seqs, r.pos = append(r.seqs, seq), append(r.pos, p)
		return
	}
	r.seqs[r.next], r.pos[r.next] = seq, p
	r.next = (r.next + 1) % recentPositions
}

func (r *seqRing) find(seq int64) (managed.Position, bool) {
	for i, s := range r.seqs {
		if s == seq {
			return r.pos[i], true
		}
	}
	return managed.Position{}, false
}

func newDedup(t *Topic) *dedup {
	d := &dedup{t: t}
	d.mu.persisted = map[string]int64{}
	d.mu.pushed = map[string]int64{}
	d.mu.inflight = map[dupKey][]func(managed.Position, error){}
	d.mu.recent = map[string]*seqRing{}
	return d
}

// dedupEnabledByPolicy reports whether the topic's effective policies p
// (or the broker default) turn deduplication on.
func (t *Topic) dedupEnabledByPolicy(p tenants.Policies) bool {
	if v := p.DeduplicationEnabled; v != nil {
		return *v
	}
	return t.b.opts.DeduplicationEnabled
}

// sync turns deduplication on or off to match the topic's effective
// policies p; turning it on rebuilds the state from the snapshot and the
// log tail.
func (d *dedup) sync(ctx context.Context, p tenants.Policies) error {
	want := d.t.dedupEnabledByPolicy(p)
	d.mu.Lock()
	on := d.mu.enabled
	d.mu.Unlock()
	switch {
	case want && !on:
		return d.enable(ctx)
	case !want && on:
		d.mu.Lock()
		d.mu.enabled = false
		d.mu.Unlock()
		if err := d.t.ml.DeleteCursor(ctx, dedupCursor); err != nil {
			d.t.log.Warn("deduplication off: delete snapshot cursor", "err", err)
		}
	}
	return nil
}

// enable loads the last snapshot and replays the entries after it.
func (d *dedup) enable(ctx context.Context) error {
	c, err := d.t.ml.OpenCursor(ctx, dedupCursor, managed.Earliest)
	if err != nil {
		return fmt.Errorf("deduplication snapshot cursor: %w", err)
	}
	persisted := c.Properties()
	from := c.MarkDeletePosition()
	from.EntryID++
	replayed := 0
	recent := map[string]*seqRing{}
	for {
		es, next, err := d.t.ml.Read(ctx, from, 500, 16<<20)
		if err != nil {
			return fmt.Errorf("deduplication: replay log tail: %w", err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			md, err := pulsarpb.DecodeMetadata(e.Data)
			if err != nil {
				continue
			}
			name, high := md.GetProducerName(), seqRange(md)
			persisted[name] = max(persisted[name], high)
			if recent[name] == nil {
				recent[name] = &seqRing{}
			}
			recent[name].add(high, e.Position)
		}
		replayed += len(es)
		from = next
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.cursor, d.mu.enabled = c, true
	d.mu.persisted = persisted
	d.mu.pushed = map[string]int64{}
	for k, v := range persisted {
		d.mu.pushed[k] = v
	}
	d.mu.recent = recent
	d.t.log.Info("deduplication on", "producers", len(persisted), "replayedEntries", replayed)
	return nil
}

// seqRange returns the highest sequence id an entry carries.
func seqRange(md *pulsarpb.MessageMetadata) int64 {
	return max(int64(md.GetSequenceId()), int64(md.GetHighestSequenceId()))
}

// check decides what to do with a send: ok means append it (and call done
// with its outcome); a duplicate is answered through reply (now, or when
// the original in flight completes).
func (d *dedup) check(md *pulsarpb.MessageMetadata, reply func(managed.Position, error)) (ok bool, done func(managed.Position, error)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.mu.enabled {
		return true, func(managed.Position, error) {}
	}
	name, high := md.GetProducerName(), seqRange(md)
	if last, seen := d.mu.pushed[name]; seen && high <= last {
		if high <= d.mu.persisted[name] {
			pos := managed.Position{LedgerID: -1, EntryID: -1}
			if r := d.mu.recent[name]; r != nil {
				if p, found := r.find(high); found {
					pos = p
				}
			}
			go reply(pos, nil)
		} else {
			k := dupKey{name, high}
			d.mu.inflight[k] = append(d.mu.inflight[k], reply)
		}
		return false, nil
	}
	d.mu.pushed[name] = high
	k := dupKey{name, high}
	return true, func(pos managed.Position, err error) {
		d.mu.Lock()
		waiters := d.mu.inflight[k]
		delete(d.mu.inflight, k)
		if err != nil {
			// Not persisted: a retry must be accepted again.
			if d.mu.pushed[name] == high {
				d.mu.pushed[name] = d.mu.persisted[name]
			}
		} else {
			d.mu.persisted[name] = max(d.mu.persisted[name], high)
			if d.mu.recent[name] == nil {
				d.mu.recent[name] = &seqRing{}
			}
			d.mu.recent[name].add(high, pos)
			d.mu.sinceSnapshot++
			if d.mu.sinceSnapshot >= d.t.b.opts.DeduplicationSnapshotInterval && d.mu.cursor != nil {
				d.mu.sinceSnapshot = 0
				d.snapshotLocked(pos)
			}
		}
		d.mu.Unlock()
		for _, w := range waiters {
			w(pos, err)
		}
	}
}

// snapshotLocked records the persisted state as of pos in the snapshot
// cursor (persisted with the cursor's next flush). d.mu must be held.
func (d *dedup) snapshotLocked(pos managed.Position) {
	d.mu.cursor.SetProperties(d.mu.persisted)
	if err := d.mu.cursor.AckCumulative(pos); err != nil {
		d.t.log.Warn("deduplication snapshot", "err", err)
	}
}

// lastSequence returns the highest persisted sequence id of a producer (-1: none).
func (d *dedup) lastSequence(name string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.mu.persisted[name]; ok && d.mu.enabled {
		return v
	}
	return -1
}

func (d *dedup) status() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.enabled {
		return "Enabled"
	}
	return "Disabled"
}
