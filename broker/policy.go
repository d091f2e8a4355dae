package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/units"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// Errors of policy enforcement.
var (
	// ErrQuotaExceeded: the topic's backlog quota is exceeded.
	ErrQuotaExceeded = errors.New("broker: backlog quota exceeded")
	// ErrTooManyProducers / ErrTooManyConsumers: a max-producers or
	// max-consumers limit is reached.
	ErrTooManyProducers = errors.New("broker: too many producers")
	ErrTooManyConsumers = errors.New("broker: too many consumers")
	// ErrTooManySubscriptions / ErrTooManyTopics: a max-subscriptions-per-
	// topic or max-topics-per-namespace limit is reached.
	ErrTooManySubscriptions = errors.New("broker: too many subscriptions")
	ErrTooManyTopics        = errors.New("broker: too many topics")
)

// policyState is what a topic derives from its namespace policies on each
// check; the publish path reads it without touching etcd.
type policyState struct {
	mu struct {
		sync.Mutex
		quotaExceeded string                // why the backlog quota is exceeded, "" if not
		quotaPolicy   tenants.BacklogPolicy // what to do about it
		quotaChanged  chan struct{}         // closed when the quota state changes
	}
	publishMsgs  *rate.Limiter // nil: unlimited
	publishBytes *rate.Limiter
	limMu        sync.Mutex
}

func newPolicyState() *policyState {
	p := &policyState{}
	p.mu.quotaChanged = make(chan struct{})
	return p
}

// maintain applies the namespace policies: deduplication, message TTL,
// backlog quota and rate limits. The broker calls it for every topic each
// policy interval.
func (t *Topic) maintain(ctx context.Context) {
	if t.isClosed() {
		return
	}
	p := t.policies()
	if err := t.dedup.sync(ctx, p); err != nil {
		t.log.Warn("deduplication policy", "err", err)
	}
	if err := t.syncReplicators(ctx, p); err != nil {
		t.log.Warn("replication policy", "err", err)
	}
	t.ensureSnapshots()
	t.enforce(ctx, p)
}

// enforce applies the effective policies p other than deduplication:
// message TTL, backlog quota and rate limits.
func (t *Topic) enforce(ctx context.Context, p tenants.Policies) {
	if ttl := p.MessageTTLInSeconds; ttl != nil && *ttl > 0 {
		if err := t.expireOlderThan(ctx, t.durableSubs(), time.Now().Add(-units.Duration(int64(*ttl), time.Second))); err != nil && !errors.Is(err, managed.ErrClosed) {
			t.log.Warn("message TTL expiry failed", "err", err)
		}
	}
	t.checkBacklogQuota(ctx, p)
	t.updatePublishRate(p)
	t.dispatch.set(p.TopicDispatchRateFor(t.b.opts.Cluster))
	for _, s := range t.durableSubs() {
		s.updateDispatchRate(p)
	}
}

func (t *Topic) durableSubs() []*Subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Subscription, 0, len(t.mu.subs))
	for _, s := range t.mu.subs {
		out = append(out, s)
	}
	return out
}

// backlog returns the oldest unacknowledged position over the durable
// subscriptions, the bytes after it (estimated per ledger of st, the
// managed ledger's stats) and the subscription holding it.
func (t *Topic) backlog(st managed.Stats) (slowest *Subscription, from managed.Position, bytes int64) {
	for _, s := range t.durableSubs() {
		md := s.cursor.MarkDeletePosition()
		if slowest == nil || md.Less(from) {
			slowest, from = s, md
		}
	}
	if slowest == nil {
		return nil, from, 0
	}
	for _, l := range st.Ledgers {
		switch {
		case l.LedgerID > from.LedgerID:
			bytes += l.Size
		case l.LedgerID == from.LedgerID && l.Entries > 0:
			left := l.Entries - 1 - from.EntryID
			bytes += l.Size * max(left, 0) / l.Entries
		}
	}
	return slowest, from, bytes
}

// checkBacklogQuota evaluates the size and age quotas and applies
// consumer_backlog_eviction.
func (t *Topic) checkBacklogQuota(ctx context.Context, p tenants.Policies) {
	var reason string
	var policy tenants.BacklogPolicy
	slowest, from, bytes := t.backlog(t.ml.Stats())
	if q, ok := p.BacklogQuotaMap[tenants.DestinationStorage]; ok && q.LimitSize >= 0 && slowest != nil && bytes > q.LimitSize {
		if q.Policy == tenants.ConsumerBacklogEviction {
			t.evictToSize(q.LimitSize)
		} else {
			reason, policy = fmt.Sprintf("backlog of %d bytes over the %d-byte quota", bytes, q.LimitSize), q.Policy
		}
	}
	if q, ok := p.BacklogQuotaMap[tenants.MessageAge]; ok && q.LimitTime >= 0 && slowest != nil && reason == "" {
		if age, ok := t.ageAt(ctx, from); ok && age > units.Duration(q.LimitTime, time.Second) {
			if q.Policy == tenants.ConsumerBacklogEviction {
				t.expireOlderThan(ctx, t.durableSubs(), time.Now().Add(-units.Duration(q.LimitTime, time.Second)))
			} else {
				reason, policy = fmt.Sprintf("oldest unacknowledged message is %v old, over the %ds quota", age.Round(time.Second), q.LimitTime), q.Policy
			}
		}
	}
	t.policy.setQuota(reason, policy)
}

// ageAt returns how long ago the entry after mark-delete position md was published.
func (t *Topic) ageAt(ctx context.Context, md managed.Position) (time.Duration, bool) {
	es, _, err := t.ml.Read(ctx, managed.Position{LedgerID: md.LedgerID, EntryID: md.EntryID + 1}, 1, 1)
	if err != nil || len(es) == 0 {
		return 0, false
	}
	m, err := pulsarpb.DecodeMetadata(es[0].Data)
	if err != nil {
		return 0, false
	}
	return time.Since(time.UnixMilli(int64(m.GetPublishTime()))), true
}

// evictToSize moves the slowest cursors forward, ledger by ledger, until
// the backlog fits in limit bytes (consumer_backlog_eviction).
func (t *Topic) evictToSize(limit int64) {
	for i := 0; i < 1000; i++ {
		st := t.ml.Stats()
		slowest, from, bytes := t.backlog(st)
		if slowest == nil || bytes <= limit {
			return
		}
		// Skip the slowest cursor to the start of the next ledger (or the
		// end of the log).
		var target managed.Position
		for _, l := range st.Ledgers {
			if l.LedgerID > from.LedgerID {
				target = managed.Position{LedgerID: l.LedgerID, EntryID: -1}
				break
			}
		}
		if target.LedgerID == 0 {
			target = t.ml.LastConfirmed()
		}
		for _, s := range t.durableSubs() {
			if s.cursor.MarkDeletePosition().Less(target) {
				t.log.Warn("backlog quota: evicting the oldest messages of a slow subscription", "subscription", s.name, "upTo", target)
				s.reposition(managed.Position{LedgerID: target.LedgerID, EntryID: target.EntryID + 1}, "backlog evicted by quota")
			}
		}
	}
}

func (ps *policyState) setQuota(reason string, policy tenants.BacklogPolicy) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.mu.quotaExceeded == reason && ps.mu.quotaPolicy == policy {
		return
	}
	ps.mu.quotaExceeded, ps.mu.quotaPolicy = reason, policy
	close(ps.mu.quotaChanged)
	ps.mu.quotaChanged = make(chan struct{})
}

// quota returns the current quota state and a channel closed when it changes.
func (ps *policyState) quota() (string, tenants.BacklogPolicy, <-chan struct{}) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.mu.quotaExceeded, ps.mu.quotaPolicy, ps.mu.quotaChanged
}

// admitProducer refuses producers while a producer_exception quota is exceeded.
func (t *Topic) admitProducer() error {
	if reason, policy, _ := t.policy.quota(); reason != "" && policy == tenants.ProducerException {
		return fmt.Errorf("%w on %s: %s", ErrQuotaExceeded, t.name, reason)
	}
	return nil
}

// admitSend applies the backlog quota to one send: producer_exception
// fails it; producer_request_hold waits until the backlog is back under
// the quota, failing after hold.
func (t *Topic) admitSend(ctx context.Context, hold time.Duration) error {
	var deadline <-chan time.Time
	for {
		reason, policy, changed := t.policy.quota()
		switch {
		case reason == "":
			return nil
		case policy == tenants.ProducerException:
			return fmt.Errorf("%w on %s: %s", ErrQuotaExceeded, t.name, reason)
		}
		if deadline == nil {
			deadline = time.After(hold)
		}
		select {
		case <-changed:
		case <-deadline:
			return fmt.Errorf("%w on %s: send held for %v: %s", ErrQuotaExceeded, t.name, hold, reason)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// limiter returns a token bucket for perSecond (nil when unlimited).
func limiter(cur *rate.Limiter, perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	// A burst of one second's worth, saturated: converting a float beyond
	// the int range is undefined.
	burst := int(min(max(perSecond, 1), math.MaxInt32))
	if cur == nil {
		return rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	if cur.Limit() != rate.Limit(perSecond) {
		cur.SetLimit(rate.Limit(perSecond))
		cur.SetBurst(burst)
	}
	return cur
}

func (t *Topic) updatePublishRate(p tenants.Policies) {
	r, _ := p.PublishRateFor(t.b.opts.Cluster)
	t.policy.limMu.Lock()
	defer t.policy.limMu.Unlock()
	t.policy.publishMsgs = limiter(t.policy.publishMsgs, float64(r.PublishThrottlingRateInMsg))
	t.policy.publishBytes = limiter(t.policy.publishBytes, float64(r.PublishThrottlingRateInByte))
}

// throttlePublish waits until the publish rate limits admit msgs messages of
// size bytes. Producers are slowed down, never refused or dropped.
func (t *Topic) throttlePublish(ctx context.Context, msgs, bytes int) error {
	t.policy.limMu.Lock()
	lm, lb := t.policy.publishMsgs, t.policy.publishBytes
	t.policy.limMu.Unlock()
	if err := waitN(ctx, lm, msgs); err != nil {
		return err
	}
	return waitN(ctx, lb, bytes)
}

// waitN takes n tokens, in bursts no larger than the limiter's.
func waitN(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// checkLimits enforces max producers/consumers per topic and subscription.
// limit returns a namespace's limit, or the broker's default when the
// namespace does not set it (0: unlimited).
func limit(policy *int, brokerDefault int) int {
	if policy != nil {
		return *policy
	}
	return brokerDefault
}

func (t *Topic) checkProducerLimit() error {
	o := &t.b.opts
	if m := limit(t.policies().MaxProducersPerTopic, o.MaxProducersPerTopic); m > 0 {
		t.mu.Lock()
		n := len(t.mu.producers)
		t.mu.Unlock()
		if n >= m {
			return fmt.Errorf("%w: %s reached its limit of %d producers", ErrTooManyProducers, t.name, m)
		}
	}
	return nil
}

func (t *Topic) checkConsumerLimit(s *Subscription) error {
	p, o := t.policies(), &t.b.opts
	if m := limit(p.MaxConsumersPerTopic, o.MaxConsumersPerTopic); m > 0 {
		if _, nc, _ := t.counts(); nc >= m {
			return fmt.Errorf("%w: %s reached its limit of %d consumers", ErrTooManyConsumers, t.name, m)
		}
	}
	if m := limit(p.MaxConsumersPerSubscription, o.MaxConsumersPerSubscription); m > 0 && s != nil {
		s.mu.Lock()
		n := len(s.mu.consumers)
		s.mu.Unlock()
		if n >= m {
			return fmt.Errorf("%w: subscription %s reached its limit of %d consumers", ErrTooManyConsumers, s.name, m)
		}
	}
	return nil
}

// idleFor returns how long the topic has had no producer, consumer, reader
// or subscription (0 while it has one).
func (t *Topic) idleFor() time.Duration {
	p, c, s := t.counts()
	t.mu.Lock()
	defer t.mu.Unlock()
	if p+c+s+len(t.mu.readers) > 0 {
		t.mu.idleSince = time.Time{}
		return 0
	}
	if t.mu.idleSince.IsZero() {
		t.mu.idleSince = time.Now()
	}
	return time.Since(t.mu.idleSince)
}

// checkSubscriptionLimit refuses a new durable subscription beyond the
// topic's limit.
func (t *Topic) checkSubscriptionLimit() error {
	if m := limit(t.policies().MaxSubscriptionsPerTopic, t.b.opts.MaxSubscriptionsPerTopic); m > 0 {
		t.mu.Lock()
		n := len(t.mu.subs)
		t.mu.Unlock()
		if n >= m {
			return fmt.Errorf("%w: %s reached its limit of %d subscriptions", ErrTooManySubscriptions, t.name, m)
		}
	}
	return nil
}

// checkTopicLimit refuses creating n more topics in ns beyond its limit: a
// topic counts once its log exists, a partitioned topic counts its
// partitions.
func (b *Broker) checkTopicLimit(ctx context.Context, ns naming.Namespace, n int) error {
	p, err := b.policies(ns)
	if err != nil {
		return err
	}
	m := limit(p.MaxTopicsPerNamespace, b.opts.MaxTopicsPerNamespace)
	if m <= 0 {
		return nil
	}
	kvs, err := metadata.ListAll(ctx, b.md, metadata.ManagedLedgersPrefix+ns.String()+"/", true)
	if err != nil {
		return err
	}
	topics := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		topics[kv.Key[len(metadata.ManagedLedgersPrefix):]] = true
	}
	parts, err := b.cfg.ListPartitionedTopics(ctx, ns)
	if err != nil {
		return err
	}
	for _, pt := range parts {
		t, err := naming.ParseTopic(pt)
		if err != nil {
			continue
		}
		if pm, err := b.cfg.GetPartitionedTopic(ctx, t); err == nil {
			for i := range pm.Partitions {
				topics[t.Partition(i).Path()] = true
			}
		}
	}
	if len(topics)+n > m {
		return fmt.Errorf("%w: namespace %s has %d of its %d topics", ErrTooManyTopics, ns, len(topics), m)
	}
	return nil
}

// maintenanceLoop runs the policy checks of every loaded topic.
func (b *Broker) maintenanceLoop() {
	t := time.NewTicker(b.opts.PolicyCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.ctx.Done():
			return
		}
		for _, tp := range b.loadedTopics() {
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			if tp.idleFor() >= b.opts.TopicIdleTimeout {
				if err := tp.close(ctx, fmt.Errorf("%w: idle for %v", ErrTopicClosed, b.opts.TopicIdleTimeout)); err != nil {
					tp.log.Warn("unloading idle topic", "err", err)
				}
			} else {
				tp.maintain(ctx)
			}
			cancel()
		}
	}
}

// dispatchLimits are dispatch rate limiters: one set per topic (shared by
// its subscriptions, Pulsar's topic dispatch rate) and one per subscription.
type dispatchLimits struct {
	mu          sync.Mutex
	msgs, bytes *rate.Limiter
}

// set applies a rate; ok false (no rate configured) removes the limits.
func (l *dispatchLimits) set(r tenants.DispatchRate, ok bool) {
	if !ok {
		r = tenants.DispatchRate{}
	}
	period := float64(max(r.RatePeriodInSecond, 1))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = limiter(l.msgs, float64(r.DispatchThrottlingRateInMsg)/period)
	l.bytes = limiter(l.bytes, float64(r.DispatchThrottlingRateInByte)/period)
}

func (l *dispatchLimits) get() (msgs, bytes *rate.Limiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs, l.bytes
}

// budget waits until the limits allow at least one message and returns
// how many of want may go now.
func (l *dispatchLimits) budget(ctx context.Context, want int) (int, error) {
	lm, lb := l.get()
	for _, lim := range []*rate.Limiter{lm, lb} {
		if lim == nil {
			continue
		}
		if err := lim.WaitN(ctx, 1); err != nil {
			return 0, err
		}
		lim.ReserveN(time.Now(), -1) // give the probe token back
	}
	if lm != nil {
		want = min(want, max(int(lm.Tokens()), 1))
	}
	return want, nil
}

// charge takes sent messages and bytes from the limits, going into debt
// (a batch may hold more messages than a second's worth): the next budget
// waits until the debt is paid.
func (l *dispatchLimits) charge(msgs, bytes int) {
	lm, lb := l.get()
	now := time.Now()
	for _, c := range []struct {
		lim *rate.Limiter
		n   int
	}{{lm, msgs}, {lb, bytes}} {
		for n := c.n; c.lim != nil && n > 0; {
			k := min(n, c.lim.Burst())
			c.lim.ReserveN(now, k)
			n -= k
		}
	}
}

// updateDispatchRate applies the subscription dispatch rate.
func (s *Subscription) updateDispatchRate(p tenants.Policies) {
	s.limits.set(p.SubscriptionDispatchRateFor(s.t.b.opts.Cluster))
}

// dispatchBudget waits until the topic's and the subscription's dispatch
// rates allow at least one message and returns how many may go now (want
// when unlimited).
func (s *Subscription) dispatchBudget(ctx context.Context, want int) (int, error) {
	want, err := s.t.dispatch.budget(ctx, want)
	if err != nil {
		return 0, err
	}
	return s.limits.budget(ctx, want)
}

// charge takes sent messages and bytes from the topic's and the
// subscription's dispatch limits.
func (s *Subscription) charge(msgs, bytes int) {
	s.t.dispatch.charge(msgs, bytes)
	s.limits.charge(msgs, bytes)
}
