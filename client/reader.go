package client

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
)

// Reader reads a topic from a chosen message id without a durable
// subscription: nothing is acknowledged and nothing is retained for it.
type Reader struct {
	pc    *partitionConsumer
	queue *msgQueue
}

// CreateReader starts a reader at start (EarliestMessageID,
// LatestMessageID or a message id); the first message is the one after
// start unless WithStartInclusive. Partitioned topics are read per partition
// ("topic-partition-N").
func (c *Client) CreateReader(ctx context.Context, topic string, start MessageID, opts ...ReaderOption) (*Reader, error) {
	o := readerOptions{receiverQueueSize: 1000}
	for _, f := range opts {
		f(&o)
	}
	n, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, fmt.Errorf("%w: %s has %d partitions; create a reader per partition (%s-partition-0, ...)", ErrPartitionedTopic, topic, n, topic)
	}
	q := newMsgQueue()
	pc := newPartitionConsumer(c, topic, -1, q, partitionConsumerConfig{
		durable: false, start: start, inclusive: o.inclusive,
		opts: consumerOptions{subType: Exclusive, receiverQueueSize: o.receiverQueueSize, name: o.name},
	})
	if err := pc.waitReady(ctx); err != nil {
		pc.close()
		return nil, err
	}
	return &Reader{pc: pc, queue: q}, nil
}

// Next waits for the next message. An entry that cannot be decoded is
// returned with an error wrapping ErrUndecodable (Payload is the raw
// entry); the next call goes on after it.
func (r *Reader) Next(ctx context.Context) (Message, error) {
	for {
		m, err := r.queue.pop(ctx)
		if err != nil {
			return Message{}, err
		}
		if m.consumer.accept(m) {
			return m, m.DecodeError // an undecodable entry comes with its error
		}
	}
}

// HasNext reports whether a message is available within timeout.
func (r *Reader) HasNext(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r.queue.len() > 0 {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.queue.len() > 0
}

// Seek moves the reader to a message id (the next message is that one).
func (r *Reader) Seek(ctx context.Context, id MessageID) error {
	return r.pc.seek(ctx, &clientpb.Seek{Target: &clientpb.Seek_MessageId{MessageId: id.pb()}})
}

// SeekByTime moves the reader to the first message published at or after t.
func (r *Reader) SeekByTime(ctx context.Context, t time.Time) error {
	return r.pc.seek(ctx, &clientpb.Seek{Target: &clientpb.Seek_PublishTime{PublishTime: t.UnixMilli()}})
}

// Close stops the reader.
func (r *Reader) Close() error {
	r.pc.close()
	r.queue.close(ErrClosed)
	return nil
}
