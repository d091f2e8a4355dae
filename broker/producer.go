package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/tenants"
)

// clientConn describes the connection a producer or consumer came on.
type clientConn struct {
	role    string // authenticated role ("" without authentication)
	address string // the client's address
	version string // the client library and version, as the client says
}

// Producer is one producer session on a topic.
type Producer struct {
	t        *Topic
	name     string
	role     string // authenticated role, re-checked when permissions change
	conn     clientConn
	metadata map[string]string // the producer's own properties
	since    time.Time
	out      *outbox[*clientpb.ProduceResponse]
	killed   chan error    // server-side close: the stream ends with this error
	room     chan struct{} // signalled when pending sends complete

	// Receipts and send errors leave in send order: every send takes a slot
	// and replies are released from the head as slots complete.
	mu struct {
		sync.Mutex
		slots []*sendSlot
	}
	pending atomic.Int64 // sends not yet answered

	accessExclusive bool
	// replFailed: a send of this replicator stream failed. The sends after
	// it are refused too, so that the replicator's resend (in order, from
	// its cursor, on a new stream) finds nothing later stored ahead of what
	// failed.
	replFailed atomic.Bool

	stored meter // messages and bytes persisted
}

type sendSlot struct {
	done bool
	resp *clientpb.ProduceResponse
	size int64 // bytes held in the broker's publish buffer
}

var producerSeq atomic.Int64

// addProducer registers a producer session.
func (t *Topic) addProducer(open *clientpb.ProducerOpen, cc clientConn) (*Producer, error) {
	if err := tenants.ValidateProducerName(open.ProducerName); err != nil {
		return nil, err
	}
	if err := checkClientMetadata(open.Metadata); err != nil {
		return nil, err
	}
	if err := t.checkUsable(); err != nil {
		return nil, err
	}
	if t.ml.IsTerminated() {
		return nil, fmt.Errorf("%w: topic %s", managed.ErrTerminated, t.name)
	}
	if err := t.admitProducer(); err != nil {
		return nil, err
	}
	if err := t.checkProducerLimit(); err != nil {
		return nil, err
	}
	name := open.ProducerName
	if name == "" {
		name = fmt.Sprintf("%s-%s-%d", t.b.opts.Cluster, t.b.id, producerSeq.Add(1))
	}
	p := &Producer{t: t, name: name, role: cc.role, conn: cc, metadata: open.Metadata, since: time.Now(), out: newOutbox[*clientpb.ProduceResponse](),
		killed: make(chan error, 1), room: make(chan struct{}, 1)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil, fmt.Errorf("%w: %s", ErrTopicClosed, t.name)
	}
	if _, dup := t.mu.producers[name]; dup {
		return nil, fmt.Errorf("%w: a producer named %q is already connected to %s", ErrProducerBusy, name, t.name)
	}
	if open.AccessMode == clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE_WITH_FENCING {
		// The producers there are closed and forgotten at once, so that
		// none of them is counted, nor comes back, while this one holds
		// the topic.
		for name, other := range t.mu.producers {
			delete(t.mu.producers, name)
			other.kill(fmt.Errorf("%w: an exclusive producer fenced %s", ErrProducerBusy, t.name))
		}
	}
	for _, other := range t.mu.producers {
		if other.exclusive() || open.AccessMode == clientpb.ProducerAccessMode_ACCESS_EXCLUSIVE {
			return nil, fmt.Errorf("%w: %s has an exclusive producer or producers already", ErrProducerBusy, t.name)
		}
	}
	p.accessExclusive = open.AccessMode != clientpb.ProducerAccessMode_ACCESS_SHARED
	t.mu.producers[name] = p
	return p, nil
}

// hasReplicatorProducer reports whether another cluster's replicator
// produces to the topic.
func (t *Topic) hasReplicatorProducer() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name := range t.mu.producers {
		if isReplicatorName(name) {
			return true
		}
	}
	return false
}

func (p *Producer) exclusive() bool { return p.accessExclusive }

func (t *Topic) removeProducer(p *Producer) {
	t.mu.Lock()
	if t.mu.producers[p.name] == p {
		delete(t.mu.producers, p.name)
	}
	t.mu.Unlock()
	p.out.close()
}

// kill ends the producer's stream with err (the client reconnects).
func (p *Producer) kill(err error) {
	select {
	case p.killed <- err:
	default:
	}
}

// maxClientMetadata bounds the properties a producer or consumer attaches
// to itself, which the broker keeps for its stats as long as it is
// connected.
const maxClientMetadata = 64 << 10

func checkClientMetadata(m map[string]string) error {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	if n > maxClientMetadata {
		return fmt.Errorf("%w: properties of %d bytes (at most %d)", errBadRequest, n, maxClientMetadata)
	}
	return nil
}

// publish admits one send (the backlog quota may hold it, the publish rate
// slow it) and hands it to send. The message count the client claims is
// bounded by what the entry's bytes can hold, so that a bogus count cannot
// spend the topic's publish rate for its other producers. It fails only
// when ctx ends.
func (p *Producer) publish(ctx context.Context, s *clientpb.Send) error {
	t := p.t
	err := t.admitSend(ctx, t.b.opts.BacklogQuotaHoldTimeout)
	if err == nil {
		err = t.throttlePublish(ctx, claimedMessages(s.NumMessages, len(s.Entry)), len(s.Entry))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	p.send(s, err)
	return nil
}

// claimedMessages bounds a send's claimed message count to [1, what an
// entry of entryLen bytes can hold]: every message of a batch takes at
// least its 4-byte size.
func claimedMessages(claimed int32, entryLen int) int {
	return min(max(int(claimed), 1), max(entryLen/4, 1))
}

// send appends one entry (or, with admitErr, fails it). The reply is
// queued in send order.
func (p *Producer) send(s *clientpb.Send, admitErr error) {
	slot := &sendSlot{size: int64(len(s.Entry))}
	p.t.b.pub.add(slot.size)
	p.mu.Lock()
	p.mu.slots = append(p.mu.slots, slot)
	p.mu.Unlock()
	p.pending.Add(1)

	replicator := isReplicatorName(p.name)
	fail := func(e clientpb.ServerError, format string, args ...any) {
		if replicator {
			p.replFailed.Store(true)
		}
		p.complete(slot, &clientpb.ProduceResponse{Cmd: &clientpb.ProduceResponse_SendError{SendError: &clientpb.SendError{
			SequenceId: s.SequenceId, Error: e, Message: fmt.Sprintf(format, args...)}}})
	}
	if replicator && p.replFailed.Load() {
		fail(clientpb.ServerError_UNKNOWN_ERROR, "an earlier send of this replicator stream failed: resend from there")
		return
	}
	if admitErr != nil {
		fail(serverError(admitErr), "%v", admitErr)
		return
	}
	t := p.t
	max := t.b.opts.MaxMessageSize
	if len(s.Entry) > maxEntrySize(max) {
		fail(clientpb.ServerError_MESSAGE_TOO_LARGE, "message of %d bytes exceeds the maximum message size %d", len(s.Entry), max)
		return
	}
	md, payload, err := pulsarpb.DecodeEntry(s.Entry)
	switch {
	case errors.Is(err, pulsarpb.ErrBadChecksum):
		fail(clientpb.ServerError_CHECKSUM_ERROR, "entry checksum mismatch")
		return
	case err != nil:
		fail(clientpb.ServerError_INVALID_MESSAGE, "malformed entry: %v", err)
		return
	}
	if len(payload) > max {
		fail(clientpb.ServerError_MESSAGE_TOO_LARGE, "message payload of %d bytes exceeds the maximum message size %d", len(payload), max)
		return
	}
	// What consumers will decode must be what the bytes hold: a batch count
	// or size they do not back would make every consumer fail on it.
	if err := pulsarpb.CheckEntry(md, payload, maxUncompressed(max)); err != nil {
		fail(clientpb.ServerError_INVALID_MESSAGE, "%v", err)
		return
	}
	if err := p.checkOrigin(md); err != nil {
		fail(clientpb.ServerError_INVALID_MESSAGE, "%v", err)
		return
	}
	n := md.NumMessages()
	start := time.Now()
	receipt := func(pos managed.Position) *clientpb.ProduceResponse {
		return &clientpb.ProduceResponse{Cmd: &clientpb.ProduceResponse_Receipt{Receipt: &clientpb.Receipt{
			SequenceId: s.SequenceId, HighestSequenceId: s.HighestSequenceId,
			MessageId: &clientpb.MessageId{LedgerId: pos.LedgerID, EntryId: pos.EntryID, BatchIndex: -1, Partition: t.partition, BatchSize: int32(n)},
		}}}
	}
	fresh, done, err := t.dedup.check(md, func(pos managed.Position, err error) {
		if err != nil {
			fail(serverError(err), "persist message: %v", err)
			return
		}
		p.complete(slot, receipt(pos)) // a duplicate: acknowledged, not stored again
	})
	if err != nil {
		fail(serverError(err), "%v", err)
		return
	}
	if !fresh {
		return
	}
	t.ml.AppendAsync(s.Entry, int64(md.GetPublishTime()), func(pos managed.Position, err error) {
		done(pos, err)
		if err != nil {
			fail(serverError(err), "persist message: %v", err)
			if errors.Is(err, managed.ErrFenced) || errors.Is(err, managed.ErrClosed) {
				p.kill(err) // the topic moved: reconnect
			}
			return
		}
		t.stats.published(n, len(s.Entry), time.Since(start))
		p.stored.add(n, len(s.Entry))
		p.complete(slot, receipt(pos))
		if isMarker(md) {
			t.onReplicatedMarker(pos, md, payload)
		} else {
			t.noteData(pos)
		}
	})
}

// checkOrigin checks who an entry says it comes from: its producer name is
// a valid name, and entries replicated from another cluster come from a
// replicator (a producer named pulsar.repl.*) with their source position,
// and only those: the receiving broker deduplicates them by that position.
func (p *Producer) checkOrigin(md *pulsarpb.MessageMetadata) error {
	if err := tenants.ValidateProducerName(md.GetProducerName()); err != nil {
		return err
	}
	from := md.GetReplicatedFrom()
	if isMarker(md) && (from == "" || !replicatedMarker(md)) {
		return fmt.Errorf("producer %q: marker entries (type %d) are written by brokers", p.name, md.GetMarkerType())
	}
	switch {
	case from == "" && isReplicatorName(p.name):
		return fmt.Errorf("producer %q: names starting with %q are for replicators, whose entries say which cluster they come from", p.name, replicatorPrefix)
	case from == "":
		return nil
	case !isReplicatorName(p.name):
		return fmt.Errorf("an entry replicated from %q comes from producer %q, not a replicator (%s*)", from, p.name, replicatorPrefix)
	case from == p.t.b.opts.Cluster:
		return fmt.Errorf("an entry replicated from %q reached that cluster itself", from)
	}
	if _, _, ok, err := md.ReplSourcePosition(); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("an entry replicated from %q has no %s", from, pulsarpb.ReplSourcePositionProperty)
	}
	return nil
}

// maxEntrySize is the largest entry accepted for a message size limit: the
// payload plus room for its metadata.
func maxEntrySize(maxMessageSize int) int { return maxMessageSize + 64<<10 }

// maxUncompressed bounds the uncompressed size a compressed entry may claim
// (what consumers allocate to decompress it): 16 times the maximum message
// size, room for compressible payloads but not for decompression bombs.
func maxUncompressed(maxMessageSize int) int { return 16 * maxMessageSize }

// complete fills a slot and releases replies from the head in order.
func (p *Producer) complete(slot *sendSlot, resp *clientpb.ProduceResponse) {
	p.mu.Lock()
	defer p.mu.Unlock()
	slot.done, slot.resp = true, resp
	i := 0
	for ; i < len(p.mu.slots) && p.mu.slots[i].done; i++ {
		p.out.push(p.mu.slots[i].resp)
		p.pending.Add(-1)
		p.t.b.pub.release(p.mu.slots[i].size)
	}
	clear(p.mu.slots[:i])
	p.mu.slots = p.mu.slots[i:]
	if i > 0 {
		select {
		case p.room <- struct{}{}:
		default:
		}
	}
}

// readyForSend returns nil when the producer may take its next send, else a
// channel to wait on: it has MaxPendingPublishRequestsPerProducer sends
// pending, or the broker's publish buffer is full.
func (p *Producer) readyForSend() <-chan struct{} {
	if p.pending.Load() >= int64(p.t.b.opts.MaxPendingPublishRequestsPerProducer) {
		return p.room
	}
	return p.t.b.pub.full()
}
