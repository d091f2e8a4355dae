package broker

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/testfault"
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
// acknowledged without being stored. Entries replicated from another
// cluster are tracked the same way by their position in that cluster, and
// always: a replicator resends what it sent before a restart, whatever the
// namespace's deduplication policy. The state survives failover: it is
// rebuilt from the last snapshot plus the log entries after it.
type dedup struct {
	t  *Topic
	mu struct {
		sync.Mutex
		enabled       bool // producers' sequence ids are checked (the policy)
		loaded        bool // the state below is rebuilt and kept up to date
		cursor        *managed.Cursor
		persisted     map[string]seqID // by producer name, or replKey(cluster)
		pushed        map[string]seqID
		inflight      map[dupKey][]func(managed.Position, error)
		recent        map[string]*seqRing
		sinceSnapshot int
	}
}

// seqID is what deduplication orders: a producer's sequence id (hi 0), or
// for a replicated entry its position in the source cluster (ledger,
// entry), which increases along that cluster's log.
type seqID struct{ hi, lo int64 }

func (a seqID) after(b seqID) bool { return a.hi > b.hi || a.hi == b.hi && a.lo > b.lo }

func maxSeq(a, b seqID) seqID {
	if a.after(b) {
		return a
	}
	return b
}

// replKey is the state key of entries replicated from cluster: it starts
// with a control character, which producer names cannot hold.
func replKey(cluster string) string { return replKeyPrefix + cluster }

const replKeyPrefix = "\x1erepl:"

type dupKey struct {
	key string
	seq seqID
}

// seqRing remembers the positions of a producer's last sequence ids.
type seqRing struct {
	seqs []seqID
	pos  []managed.Position
	next int
}

func (r *seqRing) add(seq seqID, p managed.Position) {
	if len(r.seqs) < recentPositions {
		r.seqs, r.pos = append(r.seqs, seq), append(r.pos, p)
		return
	}
	r.seqs[r.next], r.pos[r.next] = seq, p
	r.next = (r.next + 1) % recentPositions
}

func (r *seqRing) find(seq seqID) (managed.Position, bool) {
	for i, s := range r.seqs {
		if s == seq {
			return r.pos[i], true
		}
	}
	return managed.Position{}, false
}

func newDedup(t *Topic) *dedup {
	d := &dedup{t: t}
	d.mu.persisted = map[string]seqID{}
	d.mu.pushed = map[string]seqID{}
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
// log tail. The state stays while replicators send to the topic.
func (d *dedup) sync(ctx context.Context, p tenants.Policies) error {
	want := d.t.dedupEnabledByPolicy(p)
	d.mu.Lock()
	on := d.mu.enabled
	d.mu.Unlock()
	switch {
	case want && !on:
		if err := d.load(ctx); err != nil {
			return err
		}
		d.mu.Lock()
		d.mu.enabled = true
		d.mu.Unlock()
		d.t.log.Info("deduplication on")
	case !want && on:
		replicators := d.t.hasReplicatorProducer()
		d.mu.Lock()
		d.mu.enabled = false
		keep := replicators || d.replicatedLocked()
		if !keep {
			d.unloadLocked()
		}
		d.mu.Unlock()
		if keep {
			return nil
		}
		if err := d.t.ml.DeleteCursor(ctx, dedupCursor); err != nil {
			d.t.log.Warn("deduplication off: delete snapshot cursor", "err", err)
		}
	}
	return nil
}

// replicatedLocked reports whether the topic stores entries replicated
// from another cluster (whose state must be kept). d.mu must be held.
func (d *dedup) replicatedLocked() bool {
	for k := range d.mu.persisted {
		if strings.HasPrefix(k, replKeyPrefix) {
			return true
		}
	}
	return false
}

func (d *dedup) unloadLocked() {
	d.mu.loaded, d.mu.cursor = false, nil
	d.mu.persisted, d.mu.pushed, d.mu.recent = map[string]seqID{}, map[string]seqID{}, map[string]*seqRing{}
}

// load rebuilds the state, once: the last snapshot, then the entries after
// it.
func (d *dedup) load(ctx context.Context) error {
	d.mu.Lock()
	loaded := d.mu.loaded
	d.mu.Unlock()
	if loaded {
		return nil
	}
	c, err := d.t.ml.OpenCursor(ctx, dedupCursor, managed.Earliest)
	if err != nil {
		return fmt.Errorf("deduplication snapshot cursor: %w", err)
	}
	persisted := snapshotState(c.Properties())
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
			key, seq, err := dedupKeyOf(md)
			if err != nil {
				continue
			}
			persisted[key] = maxSeq(persisted[key], seq)
			if recent[key] == nil {
				recent[key] = &seqRing{}
			}
			recent[key].add(seq, e.Position)
		}
		replayed += len(es)
		from = next
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.loaded { // loaded concurrently
		return nil
	}
	d.mu.cursor, d.mu.loaded = c, true
	d.mu.persisted = persisted
	d.mu.pushed = maps.Clone(persisted)
	d.mu.recent = recent
	d.t.log.Info("deduplication state loaded", "producers", len(persisted), "replayedEntries", replayed)
	return nil
}

// dedupKeyOf returns the state key and sequence of an entry: its source
// cluster and position there when replicated, else its producer and
// highest sequence id.
func dedupKeyOf(md *pulsarpb.MessageMetadata) (string, seqID, error) {
	if from := md.GetReplicatedFrom(); from != "" {
		l, e, ok, err := md.ReplSourcePosition()
		if err != nil {
			return "", seqID{}, err
		}
		if !ok {
			return "", seqID{}, fmt.Errorf("replicated from %s without %s", from, pulsarpb.ReplSourcePositionProperty)
		}
		return replKey(from), seqID{l, e}, nil
	}
	return md.GetProducerName(), seqID{0, seqRange(md)}, nil
}

// Snapshot properties: a producer's highest sequence id under its name; a
// source cluster's position under replKey(cluster)+":l" and +":e".
func snapshotProps(state map[string]seqID) map[string]int64 {
	props := make(map[string]int64, len(state))
	for k, v := range state {
		if strings.HasPrefix(k, replKeyPrefix) {
			props[k+":l"], props[k+":e"] = v.hi, v.lo
		} else {
			props[k] = v.lo
		}
	}
	return props
}

func snapshotState(props map[string]int64) map[string]seqID {
	state := make(map[string]seqID, len(props))
	for k, v := range props {
		switch {
		case !strings.HasPrefix(k, replKeyPrefix):
			state[k] = seqID{0, v}
		case strings.HasSuffix(k, ":l"):
			k = strings.TrimSuffix(k, ":l")
			state[k] = seqID{v, state[k].lo}
		case strings.HasSuffix(k, ":e"):
			k = strings.TrimSuffix(k, ":e")
			state[k] = seqID{state[k].hi, v}
		}
	}
	return state
}

// seqRange returns the highest sequence id an entry carries.
func seqRange(md *pulsarpb.MessageMetadata) int64 {
	return max(int64(md.GetSequenceId()), int64(md.GetHighestSequenceId()))
}

// check decides what to do with a send of md: ok means append it (and
// call done with its outcome); a duplicate is answered through reply (now,
// or when the original in flight completes). Replicated entries are
// checked whatever the policy (the replicator's producer loaded the state
// when it attached).
func (d *dedup) check(md *pulsarpb.MessageMetadata, reply func(managed.Position, error)) (ok bool, done func(managed.Position, error), err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	replicated := md.GetReplicatedFrom() != ""
	if !d.mu.loaded {
		if replicated {
			return false, nil, fmt.Errorf("%w: deduplication state of %s is not loaded", ErrNotReady, d.t.name)
		}
		return true, func(managed.Position, error) {}, nil
	}
	key, seq, err := dedupKeyOf(md)
	if err != nil {
		return false, nil, err
	}
	// Loaded for replicators only: other producers' ids are recorded (for
	// when the policy turns on) but not checked.
	check := replicated || d.mu.enabled
	if md.IsChunk() && !md.IsLastChunk() && !replicated {
		// Every chunk of a message carries the message's sequence id: only
		// the last one is checked and recorded, as in Pulsar. A chunk sent
		// again is stored again; consumers reassemble by chunk id.
		return true, func(managed.Position, error) {}, nil
	}
	if replicated && testfault.On(testfault.ReplicationNoDedup) {
		check = false // broken on purpose (tests only)
	}
	if last, seen := d.mu.pushed[key]; check && seen && !seq.after(last) {
		if replicated {
			d.t.log.Debug("replicated entry already taken", "from", md.GetReplicatedFrom(), "source", seq,
				"pushed", last, "persisted", d.mu.persisted[key])
		}
		if !seq.after(d.mu.persisted[key]) {
			pos := managed.Position{LedgerID: -1, EntryID: -1}
			if r := d.mu.recent[key]; r != nil {
				if p, found := r.find(seq); found {
					pos = p
				}
			}
			go reply(pos, nil)
		} else {
			k := dupKey{key, seq}
			d.mu.inflight[k] = append(d.mu.inflight[k], reply)
		}
		return false, nil, nil
	}
	if check {
		d.mu.pushed[key] = seq
	} else {
		d.mu.pushed[key] = maxSeq(d.mu.pushed[key], seq)
	}
	k := dupKey{key, seq}
	return true, func(pos managed.Position, err error) {
		d.mu.Lock()
		waiters := d.mu.inflight[k]
		delete(d.mu.inflight, k)
		if err != nil {
			// Not persisted: a retry must be accepted again.
			if d.mu.pushed[key] == seq {
				d.mu.pushed[key] = d.mu.persisted[key]
			}
		} else if d.mu.loaded {
			d.mu.persisted[key] = maxSeq(d.mu.persisted[key], seq)
			if d.mu.recent[key] == nil {
				d.mu.recent[key] = &seqRing{}
			}
			d.mu.recent[key].add(seq, pos)
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
	}, nil
}

// snapshotLocked records the persisted state as of pos in the snapshot
// cursor (persisted with the cursor's next flush). d.mu must be held.
func (d *dedup) snapshotLocked(pos managed.Position) {
	d.mu.cursor.SetProperties(snapshotProps(d.mu.persisted))
	if err := d.mu.cursor.AckCumulative(pos); err != nil {
		d.t.log.Warn("deduplication snapshot", "err", err)
	}
}

// lastSequence returns the highest persisted sequence id of a producer (-1: none).
func (d *dedup) lastSequence(name string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.mu.persisted[name]; ok && d.mu.enabled {
		return v.lo
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
