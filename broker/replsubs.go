package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/ledger/managed"
)

// Replicated subscriptions (Pulsar's replicateSubscriptionState, PIP-33).
// The broker owning a topic that replicates to other clusters and has a
// replicated subscription writes a snapshot request marker into the log
// every snapshotInterval while producers add entries. Each remote cluster
// answers, through its own replicator, with the position where the request
// landed in its log; once every remote answered, the origin writes a
// snapshot marker with those positions. A replicated subscription that has
// consumed past a snapshot marker consumed, from every remote, what came
// before the position named for it, so the broker sends those clusters an
// update marker, and each moves its subscription of that name up to its
// position. A consumer that fails over to another cluster then resumes
// near where it left off (messages acknowledged individually past the
// mark-delete position come again, as in Pulsar).

const (
	snapshotInterval = time.Second      // Pulsar's replicatedSubscriptionsSnapshotFrequencyMillis
	snapshotTimeout  = 30 * time.Second // an unanswered request is given up
	maxSnapshots     = 10               // per subscription, as Pulsar keeps
	// replicatedSubProp marks a replicated subscription in its cursor's
	// properties.
	replicatedSubProp = "pulsar.replicated.subscription"
	// markerProducer is the producer name of the markers a broker writes.
	markerProducer = "pulsar.marker"
	// localOnly is the replicate_to value that names no remote (Pulsar's).
	localOnly = "__local__"
)

// isMarker reports an entry the broker wrote for itself, never delivered.
func isMarker(md *pulsarpb.MessageMetadata) bool { return md.MarkerType != nil }

// replicatedMarker reports a marker a replicator copies to the clusters in
// its replicate_to (requests, responses and updates; snapshots stay).
func replicatedMarker(md *pulsarpb.MessageMetadata) bool {
	switch pulsarpb.MarkerType(md.GetMarkerType()) {
	case pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT_REQUEST,
		pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT_RESPONSE,
		pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_UPDATE:
		return true
	}
	return false
}

// snapshotProgress is a topic's side of the protocol.
type snapshotProgress struct {
	mu       sync.Mutex
	running  bool             // the snapshot loop runs
	pending  *pendingSnapshot // the request in flight, if any
	lastData managed.Position // the last entry producers added
	atData   managed.Position // lastData when the last request was written
}

type pendingSnapshot struct {
	id      string
	at      time.Time
	want    []string
	answers map[string]managed.Position
}

// snapshotAt is a snapshot marker a replicated subscription read.
type snapshotAt struct {
	pos      managed.Position
	clusters map[string]managed.Position
}

// noteData records that producers added an entry at p: a snapshot is worth
// taking (markers alone do not count, or two clusters' snapshots would
// trigger each other forever).
func (t *Topic) noteData(p managed.Position) {
	t.snap.mu.Lock()
	if t.snap.lastData.Less(p) {
		t.snap.lastData = p
	}
	t.snap.mu.Unlock()
}

// ensureSnapshots starts the snapshot loop if the topic replicates and has
// a replicated subscription; the loop stops itself when either ends.
func (t *Topic) ensureSnapshots() {
	if !t.snapshotsWanted() {
		return
	}
	t.snap.mu.Lock()
	defer t.snap.mu.Unlock()
	if t.snap.running {
		return
	}
	t.snap.running = true
	go t.snapshotLoop()
}

func (t *Topic) snapshotsWanted() bool {
	if t.isClosed() || len(t.replicatorList()) == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.mu.subs {
		if s.replicated.Load() {
			return true
		}
	}
	return false
}

func (t *Topic) snapshotLoop() {
	tick := time.NewTicker(snapshotInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-t.b.ctx.Done():
			t.snap.mu.Lock()
			t.snap.running = false
			t.snap.mu.Unlock()
			return
		}
		if !t.snapshotsWanted() {
			t.snap.mu.Lock()
			t.snap.running = false
			t.snap.mu.Unlock()
			return
		}
		t.requestSnapshot()
	}
}

// requestSnapshot writes a snapshot request for every remote cluster,
// unless one is in flight or nothing was produced since the last.
func (t *Topic) requestSnapshot() {
	var remotes []string
	for _, r := range t.replicatorList() {
		remotes = append(remotes, r.remote)
	}
	slices.Sort(remotes)
	t.snap.mu.Lock()
	if p := t.snap.pending; p != nil && time.Since(p.at) < snapshotTimeout {
		t.snap.mu.Unlock()
		return
	}
	if t.snap.lastData == t.snap.atData || len(remotes) == 0 {
		t.snap.pending = nil
		t.snap.mu.Unlock()
		return
	}
	var b [8]byte
	rand.Read(b[:])
	p := &pendingSnapshot{id: hex.EncodeToString(b[:]), at: time.Now(), want: remotes, answers: map[string]managed.Position{}}
	t.snap.pending, t.snap.atData = p, t.snap.lastData
	t.snap.mu.Unlock()
	t.log.Debug("snapshot requested", "snapshot", p.id, "remotes", remotes)
	t.writeMarker(pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT_REQUEST,
		&pulsarpb.ReplicatedSubscriptionsSnapshotRequest{SnapshotId: proto.String(p.id), SourceCluster: proto.String(t.b.opts.Cluster)}, remotes)
}

// writeMarker appends a marker for the clusters in to.
func (t *Topic) writeMarker(typ pulsarpb.MarkerType, msg proto.Message, to []string) {
	payload, err := proto.Marshal(msg)
	if err != nil {
		t.log.Warn("encode marker", "type", typ, "err", err)
		return
	}
	md := &pulsarpb.MessageMetadata{ProducerName: proto.String(markerProducer), SequenceId: proto.Uint64(0),
		PublishTime: proto.Uint64(uint64(time.Now().UnixMilli())), MarkerType: proto.Int32(int32(typ)), ReplicateTo: to}
	entry, err := pulsarpb.EncodeEntry(md, payload)
	if err != nil {
		t.log.Warn("encode marker", "type", typ, "err", err)
		return
	}
	t.ml.AppendAsync(entry, int64(md.GetPublishTime()), func(_ managed.Position, err error) {
		if err != nil {
			t.log.Debug("write marker", "type", typ, "err", err)
		}
	})
}

// onReplicatedMarker handles a marker another cluster's replicator stored
// here at pos.
func (t *Topic) onReplicatedMarker(pos managed.Position, md *pulsarpb.MessageMetadata, payload []byte) {
	from := md.GetReplicatedFrom()
	t.log.Debug("marker from another cluster", "from", from, "type", pulsarpb.MarkerType(md.GetMarkerType()), "position", pos)
	switch pulsarpb.MarkerType(md.GetMarkerType()) {
	case pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT_REQUEST:
		var req pulsarpb.ReplicatedSubscriptionsSnapshotRequest
		if err := proto.Unmarshal(payload, &req); err != nil {
			t.log.Warn("undecodable snapshot request", "from", from, "err", err)
			return
		}
		// Where the request landed here: everything from the origin before
		// it is before this position.
		t.writeMarker(pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT_RESPONSE,
			&pulsarpb.ReplicatedSubscriptionsSnapshotResponse{SnapshotId: req.SnapshotId,
				Cluster: clusterPosition(t.b.opts.Cluster, pos)}, []string{req.GetSourceCluster()})
	case pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT_RESPONSE:
		var resp pulsarpb.ReplicatedSubscriptionsSnapshotResponse
		if err := proto.Unmarshal(payload, &resp); err != nil {
			t.log.Warn("undecodable snapshot response", "from", from, "err", err)
			return
		}
		t.snapshotAnswered(&resp)
	case pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_UPDATE:
		var up pulsarpb.ReplicatedSubscriptionsUpdate
		if err := proto.Unmarshal(payload, &up); err != nil {
			t.log.Warn("undecodable subscription update", "from", from, "err", err)
			return
		}
		t.applySubscriptionUpdate(from, &up)
	}
}

func clusterPosition(cluster string, p managed.Position) *pulsarpb.ClusterPosition {
	return &pulsarpb.ClusterPosition{Cluster: proto.String(cluster),
		Position: &pulsarpb.MarkerPosition{LedgerId: proto.Int64(p.LedgerID), EntryId: proto.Int64(p.EntryID)}}
}

func markerPos(p *pulsarpb.MarkerPosition) managed.Position {
	return managed.Position{LedgerID: p.GetLedgerId(), EntryID: p.GetEntryId()}
}

// snapshotAnswered records a remote's answer; the last one completes the
// snapshot, written as a marker that stays in this cluster.
func (t *Topic) snapshotAnswered(resp *pulsarpb.ReplicatedSubscriptionsSnapshotResponse) {
	t.snap.mu.Lock()
	p := t.snap.pending
	cluster := resp.GetCluster().GetCluster()
	if p == nil || p.id != resp.GetSnapshotId() || !slices.Contains(p.want, cluster) || resp.GetCluster().GetPosition() == nil {
		t.snap.mu.Unlock()
		return // late, or not ours
	}
	p.answers[cluster] = markerPos(resp.GetCluster().GetPosition())
	if len(p.answers) < len(p.want) {
		t.snap.mu.Unlock()
		return
	}
	t.snap.pending = nil
	t.snap.mu.Unlock()
	t.log.Debug("snapshot complete", "snapshot", p.id, "positions", p.answers)
	snap := &pulsarpb.ReplicatedSubscriptionsSnapshot{SnapshotId: proto.String(p.id)}
	for _, c := range p.want {
		snap.Clusters = append(snap.Clusters, clusterPosition(c, p.answers[c]))
	}
	t.writeMarker(pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_SNAPSHOT, snap, []string{localOnly})
}

// applySubscriptionUpdate moves the named subscription up to the position
// the update gives for this cluster, creating it (replicated) if it does
// not exist here yet. It never moves a subscription back.
func (t *Topic) applySubscriptionUpdate(from string, up *pulsarpb.ReplicatedSubscriptionsUpdate) {
	var pos managed.Position
	found := false
	for _, c := range up.GetClusters() {
		if c.GetCluster() == t.b.opts.Cluster && c.GetPosition() != nil {
			pos, found = markerPos(c.GetPosition()), true
		}
	}
	name := up.GetSubscriptionName()
	if !found || validSubscription(name) != nil || pos.LedgerID < 0 || pos.EntryID < 0 || t.ml.LastConfirmed().Less(pos) {
		t.log.Warn("ignoring a subscription update", "from", from, "subscription", name, "position", pos)
		return
	}
	ctx, cancel := context.WithTimeout(t.b.ctx, 30*time.Second)
	defer cancel()
	s, err := t.replicatedSubscription(ctx, name)
	if err != nil {
		t.log.Warn("subscription update", "from", from, "subscription", name, "err", err)
		return
	}
	if !s.cursor.MarkDeletePosition().Less(pos) {
		return
	}
	if err := s.cursor.AckCumulative(pos); err != nil {
		t.log.Warn("subscription update", "from", from, "subscription", name, "err", err)
		return
	}
	s.mu.Lock()
	for p := range s.mu.pending {
		if !pos.Less(p) {
			s.settleLocked(p)
			delete(s.mu.redeliveries, p)
		}
	}
	for len(s.mu.replay) > 0 && !pos.Less(s.mu.replay[0].pos) {
		s.removeReplayLocked(s.mu.replay[0].pos)
	}
	s.mu.Unlock()
	s.signal()
}

// replicatedSubscription returns the durable subscription name, created
// at the start of the log if it does not exist, marked replicated.
func (t *Topic) replicatedSubscription(ctx context.Context, name string) (*Subscription, error) {
	t.mu.Lock()
	s := t.mu.subs[name]
	t.mu.Unlock()
	if s == nil {
		cur, err := t.ml.OpenCursor(ctx, name, managed.Earliest)
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		if t.mu.closed {
			t.mu.Unlock()
			return nil, fmt.Errorf("%w: %s", ErrTopicClosed, t.name)
		}
		if s = t.mu.subs[name]; s == nil {
			s = newSubscription(t, cur)
			t.mu.subs[name] = s
		}
		t.mu.Unlock()
	}
	s.setReplicated()
	return s, nil
}

// setReplicated marks the subscription replicated (kept in its cursor).
func (s *Subscription) setReplicated() {
	if s.replicated.Swap(true) || !s.durable {
		return
	}
	props := s.cursor.Properties()
	props[replicatedSubProp] = 1
	s.cursor.SetProperties(props)
	s.t.ensureSnapshots()
}

// onSnapshotMarker keeps a snapshot marker the dispatcher read at pos, for
// a replicated subscription. s.mu must be held.
func (s *Subscription) onSnapshotMarkerLocked(pos managed.Position, payload []byte) {
	if !s.replicated.Load() {
		return
	}
	var snap pulsarpb.ReplicatedSubscriptionsSnapshot
	if err := proto.Unmarshal(payload, &snap); err != nil {
		return
	}
	at := snapshotAt{pos: pos, clusters: map[string]managed.Position{}}
	for _, c := range snap.GetClusters() {
		if c.GetPosition() != nil {
			at.clusters[c.GetCluster()] = markerPos(c.GetPosition())
		}
	}
	if len(s.mu.snapshots) >= maxSnapshots {
		s.mu.snapshots = slices.Delete(s.mu.snapshots, 0, 1)
	}
	s.mu.snapshots = append(s.mu.snapshots, at)
}

// syncReplicated sends the remote clusters an update once the
// subscription's mark-delete position passed a snapshot it read.
func (s *Subscription) syncReplicated() {
	if !s.replicated.Load() || !s.durable {
		return
	}
	md := s.cursor.MarkDeletePosition()
	s.mu.Lock()
	var best *snapshotAt
	i := 0
	for ; i < len(s.mu.snapshots) && !md.Less(s.mu.snapshots[i].pos); i++ {
		best = &s.mu.snapshots[i]
	}
	var snap snapshotAt
	if best != nil {
		snap = *best
	}
	s.mu.snapshots = slices.Delete(s.mu.snapshots, 0, i)
	s.mu.Unlock()
	if best == nil {
		return
	}
	up := &pulsarpb.ReplicatedSubscriptionsUpdate{SubscriptionName: proto.String(s.name)}
	var to []string
	for c, p := range snap.clusters {
		up.Clusters = append(up.Clusters, clusterPosition(c, p))
		to = append(to, c)
	}
	slices.Sort(to)
	s.log.Debug("replicated subscription moved past a snapshot", "markDelete", md, "snapshot", snap.pos, "positions", snap.clusters)
	s.t.writeMarker(pulsarpb.MarkerType_REPLICATED_SUBSCRIPTION_UPDATE, up, to)
}
