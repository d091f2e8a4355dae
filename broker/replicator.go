package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// Geo-replication. For every remote cluster in a topic's replication
// clusters, the broker owning the topic runs a replicator: a durable cursor
// named pulsar.repl.{remote} on the topic's log, and a producer named
// pulsar.repl.{local} on the same topic in the remote cluster. It copies
// the entries produced here, unchanged but for two marks: replicated_from
// (so that no cluster copies them on: a full mesh without loops) and their
// position here (so that the remote stores each once, whatever is resent
// after a restart). The cursor advances as the remote acknowledges, so the
// backlog waits in the log, through outages and ownership changes.

// replicatorPrefix starts the names of replicator cursors and producers
// (Pulsar's replicatorPrefix).
const replicatorPrefix = "pulsar.repl."

func isReplicatorName(name string) bool { return strings.HasPrefix(name, replicatorPrefix) }

// Replicator reading and sending bounds.
const (
	replReadEntries   = 100
	replReadBytes     = 4 << 20
	replMaxPending    = 1000 // entries sent and not yet acknowledged (Pulsar's replicationProducerQueueSize)
	replBackoffMin    = 100 * time.Millisecond
	replBackoffMax    = 30 * time.Second
	replCreateTimeout = 30 * time.Second
)

// replicator copies a topic's entries to one remote cluster.
type replicator struct {
	t      *Topic
	remote string
	cursor *managed.Cursor
	cancel context.CancelFunc
	done   chan struct{}

	out       meter          // messages and bytes the remote acknowledged
	lastAcked atomic.Int64   // publish time (Unix ms) of the last entry acknowledged
	limits    dispatchLimits // the namespace's replicatorDispatchRate
	mu        struct {
		sync.Mutex
		prod           *client.Producer // of the current session
		connectedSince time.Time        // zero between sessions
		outbound       string
		lastErr        string
	}
}

// syncReplicators starts and stops the topic's replicators to match its
// replication clusters p: a cluster added gets a cursor at the end of the
// log (what is produced from now on is replicated, as in Pulsar); a
// cluster removed loses its replicator and its cursor.
func (t *Topic) syncReplicators(ctx context.Context, p tenants.Policies) error {
	want := t.replicationTargets(p)
	t.replMu.Lock()
	defer t.replMu.Unlock()
	if t.isClosed() {
		return nil
	}
	rate, limited := p.ReplicatorDispatchRateFor(t.b.opts.Cluster)
	for remote, r := range t.repl {
		if !slices.Contains(want, remote) {
			r.stop()
			delete(t.repl, remote)
			continue
		}
		r.limits.set(rate, limited)
	}
	var errs []error
	for _, c := range t.ml.Cursors() {
		if remote, ok := strings.CutPrefix(c.Name(), replicatorPrefix); ok && !slices.Contains(want, remote) {
			if err := t.ml.DeleteCursor(ctx, c.Name()); err != nil {
				errs = append(errs, fmt.Errorf("delete replicator cursor %s: %w", c.Name(), err))
			} else {
				t.log.Info("replication stopped", "remote", remote)
			}
		}
	}
	for _, remote := range want {
		if _, ok := t.repl[remote]; ok {
			continue
		}
		c, err := t.ml.OpenCursor(ctx, replicatorPrefix+remote, managed.Latest)
		if err != nil {
			errs = append(errs, fmt.Errorf("replicator cursor for %s: %w", remote, err))
			continue
		}
		r := &replicator{t: t, remote: remote, cursor: c, done: make(chan struct{})}
		r.limits.set(rate, limited)
		var rctx context.Context
		rctx, r.cancel = context.WithCancel(t.b.ctx)
		t.repl[remote] = r
		go r.run(rctx)
		t.log.Info("replication started", "remote", remote, "from", c.MarkDeletePosition())
	}
	return errors.Join(errs...)
}

// replicationChanged applies a namespace's or a topic's new policies to
// the loaded topics' replicators at once, rather than at the next policy
// check.
func (b *Broker) replicationChanged(ch tenants.Change) {
	for _, t := range b.loadedTopics() {
		switch {
		case ch.Kind == tenants.NamespaceChanged && t.name.NamespaceName().String() == ch.Name:
		case ch.Kind == tenants.TopicPoliciesChanged && tenants.TopicPoliciesKey(t.name) == metadata.TopicPoliciesPrefix+ch.Name:
		default:
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(b.ctx, replCreateTimeout)
			defer cancel()
			if err := t.syncReplicators(ctx, t.policies()); err != nil {
				t.log.Warn("replication policy", "err", err)
			}
			t.ensureSnapshots()
		}()
	}
}

// replicationTargets returns the remote clusters the topic replicates to:
// the namespace's replication clusters but this one, when this one is
// among them (a namespace that does not list the local cluster is not
// replicated from it, as in Pulsar).
func (t *Topic) replicationTargets(p tenants.Policies) []string {
	if !slices.Contains(p.ReplicationClusters, t.b.opts.Cluster) {
		return nil
	}
	var out []string
	for _, c := range p.ReplicationClusters {
		if c != t.b.opts.Cluster && c != "" {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// stopReplicators stops every replicator (the topic is closing); their
// cursors stay for the next owner.
func (t *Topic) stopReplicators() {
	t.replMu.Lock()
	rs := t.repl
	t.repl = map[string]*replicator{}
	t.replMu.Unlock()
	for _, r := range rs {
		r.stop()
	}
}

func (t *Topic) replicatorList() []*replicator {
	t.replMu.Lock()
	defer t.replMu.Unlock()
	out := make([]*replicator, 0, len(t.repl))
	for _, r := range t.repl {
		out = append(out, r)
	}
	return out
}

func (r *replicator) stop() {
	r.cancel()
	<-r.done
}

// run runs sessions until stopped, backing off after each failure. The
// backlog stays in the log meanwhile.
func (r *replicator) run(ctx context.Context) {
	defer close(r.done)
	wait := replBackoffMin
	for {
		start := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.mu.prod, r.mu.connectedSince, r.mu.lastErr = nil, time.Time{}, err.Error()
		r.mu.Unlock()
		if time.Since(start) > replBackoffMax {
			wait = replBackoffMin // it worked for a while
		}
		r.t.log.Warn("replicator session ended", "remote", r.remote, "retryIn", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, replBackoffMax)
	}
}

// session connects a producer to the remote cluster and sends the backlog
// and then new entries until something fails. It starts over from the
// cursor's mark-delete position: what an earlier session sent but saw no
// acknowledgement for is sent again, and the remote drops what it already
// stored.
func (r *replicator) session(ctx context.Context) error {
	cl, url, err := r.t.b.remotes.client(r.remote)
	if err != nil {
		return err
	}
	if err := r.t.b.remotes.ensurePartitioned(ctx, r.remote, r.t); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, replCreateTimeout)
	prod, err := cl.CreateProducer(cctx, r.t.name.String(),
		client.WithProducerName(replicatorPrefix+r.t.b.opts.Cluster), client.WithoutBatching(),
		// No send timeout: a send that failed alone would let later ones
		// be stored before it is resent, and the remote would then drop it
		// as already seen. Failures end the whole session instead.
		client.WithSendTimeout(0), client.WithMaxPendingMessages(replMaxPending), client.WithBlockIfQueueFull(true))
	cancel()
	if err != nil {
		return fmt.Errorf("producer on cluster %s (%s): %w", r.remote, url, err)
	}
	defer prod.Close()
	r.mu.Lock()
	r.mu.prod, r.mu.connectedSince, r.mu.outbound, r.mu.lastErr = prod, time.Now(), url, ""
	r.mu.Unlock()
	r.t.log.Info("replicator connected", "remote", r.remote, "url", url)

	r.cursor.Rewind()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var failed atomic.Pointer[error] // the first failed send: later acknowledgements are not recorded
	for {
		if e := failed.Load(); e != nil {
			return *e
		}
		wake := r.t.ml.Wait()
		entries, err := r.cursor.Read(sctx, replReadEntries, replReadBytes)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			select {
			case <-wake:
			case <-sctx.Done():
				if e := failed.Load(); e != nil {
					return *e
				}
				return sctx.Err()
			}
			continue
		}
		for _, e := range entries {
			// Nothing more goes out once a send failed or the session
			// ends: a later entry stored at the remote without an earlier
			// one would make the remote drop the earlier one, as already
			// seen, when the next session sends it again.
			if e := failed.Load(); e != nil {
				return *e
			}
			if err := sctx.Err(); err != nil {
				return err
			}
			out, publish, msgs, ok := r.prepare(e)
			if !ok {
				if err := r.cursor.Ack(e.Position); err != nil {
					return err
				}
				continue
			}
			pos, n := e.Position, len(out)
			if _, err := r.limits.budget(sctx, 1); err != nil {
				return err
			}
			r.limits.charge(msgs, n)
			prod.SendEntryAsync(sctx, out, func(id client.MessageID, err error) {
				if failed.Load() != nil {
					return
				}
				if err != nil {
					err = fmt.Errorf("send %d:%d to cluster %s: %w", pos.LedgerID, pos.EntryID, r.remote, err)
					failed.CompareAndSwap(nil, &err)
					stop()
					return
				}
				if aerr := r.cursor.Ack(pos); aerr != nil {
					failed.CompareAndSwap(nil, &aerr)
					stop()
					return
				}
				r.out.add(int(max(id.BatchSize, 1)), n)
				r.lastAcked.Store(publish)
			})
		}
	}
}

// prepare returns entry e as it is sent to the remote, with its publish
// time and message count; ok is false for an entry not to send there: one that came from
// replication itself, a marker that stays here, or one whose replicate_to
// list leaves the remote out.
func (r *replicator) prepare(e managed.Entry) (out []byte, publish int64, msgs int, ok bool) {
	md, payload, err := pulsarpb.DecodeEntry(e.Data)
	if err != nil {
		r.t.log.Warn("replicator skips an undecodable entry", "remote", r.remote, "position", e.Position, "err", err)
		return nil, 0, 0, false
	}
	if md.GetReplicatedFrom() != "" || isMarker(md) && !replicatedMarker(md) {
		return nil, 0, 0, false
	}
	if to := md.GetReplicateTo(); len(to) > 0 && !slices.Contains(to, r.remote) {
		return nil, 0, 0, false
	}
	md.SetReplicated(r.t.b.opts.Cluster, e.Position.LedgerID, e.Position.EntryID)
	out, err = pulsarpb.EncodeEntry(md, payload)
	if err != nil {
		r.t.log.Warn("replicator skips an entry it cannot encode", "remote", r.remote, "position", e.Position, "err", err)
		return nil, 0, 0, false
	}
	return out, int64(md.GetPublishTime()), md.MessagesIn(len(e.Data)), true
}

// remoteClients holds one client per remote cluster, made from the
// cluster's brokerServiceUrl and replaced when it changes.
type remoteClients struct {
	b  *Broker
	mu struct {
		sync.Mutex
		m map[string]*remoteClient
	}
}

type remoteClient struct {
	url string
	c   *client.Client
}

func newRemoteClients(b *Broker) *remoteClients {
	rc := &remoteClients{b: b}
	rc.mu.m = map[string]*remoteClient{}
	return rc
}

// client returns the client for cluster and the URL it uses.
func (rc *remoteClients) client(cluster string) (*client.Client, string, error) {
	cache := rc.b.cache.Load()
	if cache == nil {
		return nil, "", ErrNotReady
	}
	cd, ok := cache.Cluster(cluster)
	if !ok {
		return nil, "", fmt.Errorf("cluster %q is not registered (PUT /admin/v2/clusters/%s with its brokerServiceUrl)", cluster, cluster)
	}
	url := cd.BrokerServiceURL
	if url == "" {
		return nil, "", fmt.Errorf("cluster %q has no brokerServiceUrl to replicate to", cluster)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if cur := rc.mu.m[cluster]; cur != nil {
		if cur.url == url {
			return cur.c, url, nil
		}
		cur.c.Close()
		delete(rc.mu.m, cluster)
	}
	opts := []client.ClientOption{client.WithOperationTimeout(replCreateTimeout), client.WithLogger(rc.b.log.With("remote", cluster))}
	if tok := rc.b.opts.BrokerClientToken; tok != "" {
		opts = append(opts, client.WithToken(tok))
	}
	c, err := client.New(url, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("cluster %q: %w", cluster, err)
	}
	rc.mu.m[cluster] = &remoteClient{url: url, c: c}
	return c, url, nil
}

// ensurePartitioned makes sure that, when t is a partition, the remote
// cluster knows its partitioned topic with at least as many partitions:
// clusters sharing a configuration store do, clusters with stores of
// their own get it created through the remote's admin API (serviceUrl),
// as Pulsar's replicator does.
func (rc *remoteClients) ensurePartitioned(ctx context.Context, cluster string, t *Topic) error {
	if !t.name.IsPartition() {
		return nil
	}
	parent := t.name.PartitionedParent()
	pm, err := rc.b.cfg.GetPartitionedTopic(ctx, parent)
	if errors.Is(err, tenants.ErrNotFound) {
		return nil // a topic merely named like a partition
	} else if err != nil {
		return err
	}
	cache := rc.b.cache.Load()
	if cache == nil {
		return ErrNotReady
	}
	cd, _ := cache.Cluster(cluster)
	if cd.ServiceURL == "" {
		return nil // no admin URL: the producer finds out
	}
	var opts []admin.Option
	if tok := rc.b.opts.BrokerClientToken; tok != "" {
		opts = append(opts, admin.WithToken(tok))
	}
	ac, err := admin.New(cd.ServiceURL, opts...)
	if err != nil {
		return fmt.Errorf("cluster %q: %w", cluster, err)
	}
	rctx, cancel := context.WithTimeout(ctx, replCreateTimeout)
	defer cancel()
	remote, err := ac.Topics().GetPartitioned(rctx, parent.String())
	switch {
	case err != nil && !admin.IsNotFound(err):
		return fmt.Errorf("partitioned topic %s on cluster %s: %w", parent, cluster, err)
	case err == nil && remote.Partitions >= pm.Partitions:
		return nil
	case err == nil && remote.Partitions > 0:
		return fmt.Errorf("partitioned topic %s has %d partitions on cluster %s and %d here", parent, remote.Partitions, cluster, pm.Partitions)
	}
	if err := ac.Topics().CreatePartitioned(rctx, parent.String(), pm.Partitions); err != nil && !admin.IsConflict(err) {
		return fmt.Errorf("create partitioned topic %s on cluster %s: %w", parent, cluster, err)
	}
	t.log.Info("created the partitioned topic on the remote cluster", "remote", cluster, "partitions", pm.Partitions)
	return nil
}

func (rc *remoteClients) close() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for k, c := range rc.mu.m {
		c.c.Close()
		delete(rc.mu.m, k)
	}
}

// replicatorStats is one remote cluster's entry of a topic's stats
// "replication" section (Pulsar's ReplicatorStats): out is what this
// cluster's replicator sends there, in what that cluster's replicator
// sends here.
type replicatorStats struct {
	MsgRateIn                 float64 `json:"msgRateIn"`
	MsgThroughputIn           float64 `json:"msgThroughputIn"`
	MsgRateOut                float64 `json:"msgRateOut"`
	MsgThroughputOut          float64 `json:"msgThroughputOut"`
	MsgOutCounter             int64   `json:"msgOutCounter"`
	BytesOutCounter           int64   `json:"bytesOutCounter"`
	MsgRateExpired            float64 `json:"msgRateExpired"`
	ReplicationBacklog        int64   `json:"replicationBacklog"`
	Connected                 bool    `json:"connected"`
	ReplicationDelayInSeconds int64   `json:"replicationDelayInSeconds"`
	InboundConnection         string  `json:"inboundConnection,omitempty"`
	InboundConnectedSince     string  `json:"inboundConnectedSince,omitempty"`
	OutboundConnection        string  `json:"outboundConnection,omitempty"`
	OutboundConnectedSince    string  `json:"outboundConnectedSince,omitempty"`
	// LastError is why the replicator is not connected (Strata's).
	LastError string `json:"lastError,omitempty"`
}

// plus sums two partitions' stats of one remote.
func (a replicatorStats) plus(b replicatorStats) replicatorStats {
	a.MsgRateIn += b.MsgRateIn
	a.MsgThroughputIn += b.MsgThroughputIn
	a.MsgRateOut += b.MsgRateOut
	a.MsgThroughputOut += b.MsgThroughputOut
	a.MsgOutCounter += b.MsgOutCounter
	a.BytesOutCounter += b.BytesOutCounter
	a.ReplicationBacklog += b.ReplicationBacklog
	a.ReplicationDelayInSeconds = max(a.ReplicationDelayInSeconds, b.ReplicationDelayInSeconds)
	a.Connected = a.Connected && b.Connected
	if a.LastError == "" {
		a.LastError = b.LastError
	}
	return a
}

// stats returns the replicator's outbound figures.
func (r *replicator) stats() replicatorStats {
	st := replicatorStats{MsgOutCounter: r.out.msgs.Load(), BytesOutCounter: r.out.bytes.Load(), ReplicationBacklog: r.cursor.Backlog()}
	st.MsgRateOut, st.MsgThroughputOut = r.out.rates()
	r.mu.Lock()
	// Between sessions, or while the session's producer reconnects (the
	// remote's broker is down), it is not connected.
	if !r.mu.connectedSince.IsZero() && r.mu.prod != nil && r.mu.prod.IsConnected() {
		st.Connected = true
		st.OutboundConnection, st.OutboundConnectedSince = r.mu.outbound, r.mu.connectedSince.Format(time.RFC3339)
	}
	st.LastError = r.mu.lastErr
	r.mu.Unlock()
	st.ReplicationDelayInSeconds = r.delay(st.ReplicationBacklog)
	return st
}

// delay estimates how far the remote lags: with a backlog, the age of the
// last message it acknowledged; none, without.
func (r *replicator) delay(backlog int64) int64 {
	last := r.lastAcked.Load()
	if backlog == 0 || last == 0 {
		return 0
	}
	return max(time.Now().UnixMilli()-last, 0) / 1000
}

// replicationStats fills a topic's "replication" section: one entry per
// remote this topic replicates to, and per cluster whose replicator
// produces here.
func (t *Topic) replicationStats(out map[string]replicatorStats) {
	for _, r := range t.replicatorList() {
		out[r.remote] = r.stats()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, p := range t.mu.producers {
		remote, ok := strings.CutPrefix(name, replicatorPrefix)
		if !ok {
			continue
		}
		st := out[remote]
		st.MsgRateIn, st.MsgThroughputIn = p.stored.rates()
		st.InboundConnection, st.InboundConnectedSince = p.role, p.since.Format(time.RFC3339)
		out[remote] = st
	}
}
