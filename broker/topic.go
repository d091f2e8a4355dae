package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/units"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/tenants"
)

// Topic is a loaded topic: its managed ledger, producers and subscriptions.
type Topic struct {
	b         *Broker
	name      naming.Topic
	bundle    string
	partition int32
	ml        *managed.ManagedLedger
	log       *slog.Logger
	stats     *topicStats
	policy    *policyState
	dispatch  dispatchLimits // the topic dispatch rate, shared by its subscriptions
	dedup     *dedup

	replMu sync.Mutex             // serializes starting and stopping replicators
	repl   map[string]*replicator // by remote cluster
	snap   snapshotProgress       // replicated subscriptions' snapshots

	mu struct {
		sync.Mutex
		producers map[string]*Producer
		subs      map[string]*Subscription // durable
		readers   map[*Subscription]bool   // non-durable, one per reader
		closed    bool
		idleSince time.Time // last seen without producers, consumers or subscriptions
	}
}

// getTopic returns the loaded topic, loading it (and creating it when new)
// if this broker owns its bundle.
func (b *Broker) getTopic(ctx context.Context, name naming.Topic) (*Topic, error) {
	bundle, err := b.checkOwner(ctx, name)
	if err != nil {
		return nil, err
	}
	full := name.String()
	for {
		b.mu.Lock()
		if b.mu.closing {
			b.mu.Unlock()
			return nil, ErrNotReady
		}
		l, ok := b.mu.topics[full]
		if !ok {
			l = &topicLoad{done: make(chan struct{})}
			b.mu.topics[full] = l
			b.mu.Unlock()
			l.t, l.err = b.loadTopic(ctx, name, bundle)
			if l.err != nil {
				b.mu.Lock()
				delete(b.mu.topics, full)
				b.mu.Unlock()
			}
			close(l.done)
			return l.t, l.err
		}
		b.mu.Unlock()
		select {
		case <-l.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if l.err == nil {
			if l.t.isClosed() {
				continue // unloaded meanwhile: load again
			}
			return l.t, nil
		}
		return nil, l.err
	}
}

// loadedTopic returns a loaded topic without loading it.
func (b *Broker) loadedTopic(full string) (*Topic, bool) {
	b.mu.Lock()
	l, ok := b.mu.topics[full]
	b.mu.Unlock()
	if !ok {
		return nil, false
	}
	select {
	case <-l.done:
		return l.t, l.t != nil
	default:
		return nil, false
	}
}

// topics returns the loaded topics.
func (b *Broker) loadedTopics() []*Topic {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Topic, 0, len(b.mu.topics))
	for _, l := range b.mu.topics {
		select {
		case <-l.done:
			if l.t != nil {
				out = append(out, l.t)
			}
		default:
		}
	}
	return out
}

func (b *Broker) loadTopic(ctx context.Context, name naming.Topic, bundle string) (*Topic, error) {
	p, err := b.policies(name.NamespaceName())
	if err != nil {
		return nil, err
	}
	if name.IsPartition() {
		// A partition at or above its partitioned topic's count names no
		// topic (Pulsar: topic not found); a name merely shaped like a
		// partition, without partitioned metadata, is an ordinary topic.
		parent := name.PartitionedParent()
		if pm, err := b.cfg.GetPartitionedTopic(ctx, parent); err == nil && name.PartitionIndex() >= pm.Partitions {
			return nil, fmt.Errorf("%w: %s has %d partitions, so %s does not exist", ErrTopicNotFound, parent, pm.Partitions, name)
		} else if err != nil && !errors.Is(err, tenants.ErrNotFound) {
			return nil, err
		}
	} else {
		if pm, err := b.cfg.GetPartitionedTopic(ctx, name); err == nil && pm.Partitions > 0 {
			return nil, fmt.Errorf("%w: %s is a partitioned topic with %d partitions; use its partitions (%s) or a partition-aware client",
				ErrNotAllowed, name, pm.Partitions, name.Partition(0))
		} else if err != nil && !errors.Is(err, tenants.ErrNotFound) {
			return nil, err
		}
	}
	t := &Topic{b: b, name: name, bundle: bundle, partition: int32(name.PartitionIndex()), log: b.log.With("topic", name.String())}
	t.mu.producers = make(map[string]*Producer)
	t.mu.subs = make(map[string]*Subscription)
	t.mu.readers = make(map[*Subscription]bool)
	t.stats = newTopicStats()
	t.policy = newPolicyState()
	t.dedup = newDedup(t)
	t.repl = map[string]*replicator{}
	obs := b.metrics.observer(t)
	t.stats.publishLatency.fn.Store(&obs)
	e, qw, qa := b.opts.DefaultEnsembleSize, b.opts.DefaultWriteQuorum, b.opts.DefaultAckQuorum
	if pp := p.Persistence; pp != nil && pp.BookkeeperEnsemble > 0 {
		e, qw, qa = pp.BookkeeperEnsemble, pp.BookkeeperWriteQuorum, pp.BookkeeperAckQuorum
	}
	ns := name.NamespaceName()
	if !name.IsPartition() {
		if ok, err := b.topicExists(ctx, name); err != nil {
			return nil, err
		} else if !ok {
			if err := b.checkTopicLimit(ctx, ns, 1); err != nil {
				return nil, err
			}
		}
	}
	t.ml, err = managed.Open(ctx, name.Path(), managed.Options{
		Ledgers: b.ledgers, Metadata: b.md,
		EnsembleSize: e, WriteQuorum: qw, AckQuorum: qa,
		MaxEntriesPerLedger: b.opts.MaxEntriesPerLedger, MaxLedgerAge: b.opts.MaxLedgerRolloverTime,
		MinLedgerAge:          b.opts.MinLedgerRolloverTime,
		Retention:             func() managed.Retention { return b.retention(ns) },
		TrimInterval:          b.opts.RetentionCheckInterval,
		CacheMaxBytes:         b.opts.TopicCacheBytes,
		CursorPersistInterval: b.opts.CursorPersistInterval,
		PublishTime:           publishTime,
		Offload:               b.offloadOptions(ns),
		Logger:                t.log,
	})
	if err != nil {
		return nil, fmt.Errorf("load topic %s: %w", name, err)
	}
	for _, c := range t.ml.Cursors() {
		if !isSystemCursor(c.Name()) {
			t.mu.subs[c.Name()] = newSubscription(t, c)
		}
	}
	pol := t.policies()
	if err := t.dedup.sync(ctx, pol); err != nil {
		t.ml.Close(ctx)
		return nil, fmt.Errorf("load topic %s: %w", name, err)
	}
	// Replicator cursors exist before the first producer is admitted, so
	// everything produced from now on is replicated.
	if err := t.syncReplicators(ctx, pol); err != nil {
		t.stopReplicators()
		t.ml.Close(ctx)
		return nil, fmt.Errorf("load topic %s: %w", name, err)
	}
	t.ensureSnapshots()
	t.enforce(ctx, pol) // rates and quotas from the start
	t.mu.idleSince = time.Now()
	t.log.Info("topic loaded", "subscriptions", len(t.mu.subs))
	return t, nil
}

// retention returns a namespace's retention policy (read on every trim).
func (b *Broker) retention(ns naming.Namespace) managed.Retention {
	p, err := b.policies(ns)
	if err != nil || p.RetentionPolicies == nil {
		return managed.Retention{}
	}
	r := p.RetentionPolicies
	ret := managed.Retention{Time: units.Duration(int64(r.RetentionTimeInMinutes), time.Minute), Size: units.Scale(r.RetentionSizeInMB, units.MiB)}
	if r.RetentionTimeInMinutes < 0 {
		ret.Time = -1
	}
	if r.RetentionSizeInMB < 0 {
		ret.Size = -1
	}
	return ret
}

// offloadOptions returns the managed-ledger offload options of a topic in
// namespace ns; the policy is read from the namespace at every check.
func (b *Broker) offloadOptions(ns naming.Namespace) managed.OffloadOptions {
	o := b.opts.Offload
	if o.Store == nil {
		return managed.OffloadOptions{}
	}
	return managed.OffloadOptions{
		Store: o.Store, Driver: o.Driver, KeyPrefix: o.KeyPrefix,
		Write: o.Write, Read: o.Read,
		CheckInterval: o.CheckInterval,
		Policy:        func() managed.OffloadPolicy { return b.offloadPolicy(ns) },
	}
}

// offloadPolicy returns a namespace's offload policy: the broker default
// with each field the namespace sets replaced.
func (b *Broker) offloadPolicy(ns naming.Namespace) managed.OffloadPolicy {
	pol := *b.opts.Offload.Policy
	p, err := b.policies(ns)
	if err != nil {
		return pol
	}
	if p.OffloadThreshold != nil {
		pol.ThresholdBytes = *p.OffloadThreshold
	}
	if p.OffloadThresholdInSeconds != nil {
		pol.ThresholdSeconds = *p.OffloadThresholdInSeconds
	}
	if p.OffloadDeletionLagMs != nil {
		pol.DeletionLag = units.Duration(*p.OffloadDeletionLagMs, time.Millisecond)
	}
	return pol
}

// publishTime reads an entry's publish time for seek by time.
func publishTime(entry []byte) (int64, error) {
	md, err := pulsarpb.DecodeMetadata(entry)
	if err != nil {
		return 0, err
	}
	return int64(md.GetPublishTime()), nil
}

func (t *Topic) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.closed
}

// close unloads the topic: producers and consumers are disconnected (they
// reconnect after a new lookup), subscriptions stop and the managed ledger
// is closed, persisting cursors.
func (t *Topic) close(ctx context.Context, cause error) error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	producers := make([]*Producer, 0, len(t.mu.producers))
	for _, p := range t.mu.producers {
		producers = append(producers, p)
	}
	subs := t.allSubsLocked()
	t.mu.Unlock()
	for _, p := range producers {
		p.kill(cause)
	}
	for _, s := range subs {
		s.close(cause)
	}
	t.stopReplicators()
	err := t.ml.Close(ctx)
	t.b.mu.Lock()
	if l, ok := t.b.mu.topics[t.name.String()]; ok && l.t == t {
		delete(t.b.mu.topics, t.name.String())
	}
	t.b.mu.Unlock()
	t.log.Info("topic unloaded", "cause", cause)
	return err
}

// allSubsLocked returns the durable subscriptions and the readers' ones.
// t.mu must be held.
func (t *Topic) allSubsLocked() []*Subscription {
	subs := make([]*Subscription, 0, len(t.mu.subs)+len(t.mu.readers))
	for _, s := range t.mu.subs {
		subs = append(subs, s)
	}
	for s := range t.mu.readers {
		subs = append(subs, s)
	}
	return subs
}

// abandon drops the topic as a crash would (no flush, no close).
func (t *Topic) abandon() {
	t.mu.Lock()
	t.mu.closed = true
	subs := t.allSubsLocked()
	t.mu.Unlock()
	for _, s := range subs {
		s.stopDispatcher()
	}
	t.stopReplicators()
	t.ml.Abandon()
}

// unloadAll unloads every topic (shutdown or lost session).
func (b *Broker) unloadAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range b.loadedTopics() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.close(ctx, fmt.Errorf("%w: broker %s unloading", ErrTopicClosed, b.id)); err != nil {
				t.log.Warn("closing topic", "err", err)
			}
		}()
	}
	wg.Wait()
}

// unloadBundle unloads the topics of a bundle and releases it.
func (b *Broker) unloadBundle(ctx context.Context, bundle string) {
	for _, t := range b.loadedTopics() {
		if t.bundle == bundle {
			t.close(ctx, fmt.Errorf("%w: bundle unloaded", ErrTopicClosed))
		}
	}
	b.own.release(ctx, bundle)
}

// checkUsable fails when the topic was closed.
func (t *Topic) checkUsable() error {
	if t.isClosed() || t.ml.IsFenced() {
		return fmt.Errorf("%w: %s", ErrTopicClosed, t.name)
	}
	return nil
}

// isSystemCursor reports cursors the broker keeps for itself
// (deduplication snapshots, replicators), not subscriptions.
func isSystemCursor(name string) bool { return strings.HasPrefix(name, systemCursorPrefix) }

const systemCursorPrefix = "pulsar."

// validSubscription checks a subscription name from a client or the admin
// API: tenants.ValidateSubscription's rules, and not a name reserved for
// the broker's own cursors (as Pulsar refuses "pulsar.dedup").
func validSubscription(name string) error {
	if err := tenants.ValidateSubscription(name); err != nil {
		return err
	}
	if isSystemCursor(name) {
		return fmt.Errorf("%w: subscription name %q is reserved: names starting with %q belong to the broker's own cursors",
			tenants.ErrInvalid, name, systemCursorPrefix)
	}
	return nil
}
