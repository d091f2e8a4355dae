package client

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Property names of dead letters and retries (Pulsar's).
const (
	PropertyRealTopic       = "REAL_TOPIC"
	PropertyOriginMessageID = "ORIGIN_MESSAGE_ID"
	PropertyReconsumeTimes  = "RECONSUMETIMES"
	PropertyDelayTime       = "DELAY_TIME"
	// PropertyDecodeError marks a dead letter whose entry could not be
	// decoded (its payload is the raw entry) and says why.
	PropertyDecodeError = "DECODE_ERROR"
)

// letters publishes dead letters and retries for a consumer.
type letters struct {
	c          *Client
	dlqTopic   string
	retryTopic string
	policy     DLQPolicy

	mu       sync.Mutex
	dlq      *Producer
	retryP   *Producer
	initDone bool
}

func (l *letters) producer(ctx context.Context, topic string, p **Producer) (*Producer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if *p != nil {
		return *p, nil
	}
	if topic == l.dlqTopic && l.policy.InitialSubscription != "" && !l.initDone {
		// Create the initial subscription first so no dead letter is missed.
		s, err := l.c.Subscribe(ctx, topic, l.policy.InitialSubscription, WithInitialPosition(Earliest))
		if err != nil {
			return nil, fmt.Errorf("dead-letter initial subscription: %w", err)
		}
		s.Close()
		l.initDone = true
	}
	prod, err := l.c.CreateProducer(ctx, topic, WithoutBatching())
	if err != nil {
		return nil, err
	}
	*p = prod
	return prod, nil
}

func (l *letters) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range []*Producer{l.dlq, l.retryP} {
		if p != nil {
			p.Close()
		}
	}
}

// copyProps returns the message's properties plus the given ones.
func copyProps(m Message, extra map[string]string) map[string]string {
	out := make(map[string]string, len(m.Properties)+len(extra))
	for k, v := range m.Properties {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// originTopic is where a message originally came from (a retried message
// remembers its real topic).
func originTopic(m Message) string {
	if t := m.Properties[PropertyRealTopic]; t != "" {
		return t
	}
	return m.Topic
}

// deadLetter publishes m to the dead-letter topic and acknowledges it.
func (cs *Consumer) deadLetter(ctx context.Context, m Message) error {
	p, err := cs.letters.producer(ctx, cs.letters.dlqTopic, &cs.letters.dlq)
	if err != nil {
		return err
	}
	extra := map[string]string{PropertyRealTopic: originTopic(m), PropertyOriginMessageID: m.ID.String()}
	if m.DecodeError != nil {
		extra[PropertyDecodeError] = m.DecodeError.Error() // Payload is the raw entry
	}
	_, err = p.Send(ctx, &ProducerMessage{Payload: m.Payload, Key: m.Key, OrderingKey: m.OrderingKey, EventTime: m.EventTime,
		Properties: copyProps(m, extra)})
	if err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	return cs.Ack(m)
}

// ReconsumeLater schedules m to be received again after delay through the
// retry topic (needs WithRetryTopic), acknowledging it here; after
// DLQPolicy.MaxRedeliveries retries it goes to the dead-letter topic.
func (cs *Consumer) ReconsumeLater(ctx context.Context, m Message, delay time.Duration) error {
	if cs.letters == nil || cs.letters.retryTopic == "" {
		return fmt.Errorf("%w: ReconsumeLater needs WithRetryTopic", ErrNotAllowed)
	}
	times, _ := strconv.Atoi(m.Properties[PropertyReconsumeTimes])
	times++
	if cs.opts.dlq != nil && times > cs.opts.dlq.MaxRedeliveries {
		return cs.deadLetter(ctx, m)
	}
	p, err := cs.letters.producer(ctx, cs.letters.retryTopic, &cs.letters.retryP)
	if err != nil {
		return err
	}
	_, err = p.Send(ctx, &ProducerMessage{Payload: m.Payload, Key: m.Key, OrderingKey: m.OrderingKey, EventTime: m.EventTime, DeliverAfter: delay,
		Properties: copyProps(m, map[string]string{
			PropertyRealTopic: originTopic(m), PropertyOriginMessageID: m.ID.String(),
			PropertyReconsumeTimes: strconv.Itoa(times), PropertyDelayTime: strconv.FormatInt(delay.Milliseconds(), 10),
		})})
	if err != nil {
		return fmt.Errorf("publish retry: %w", err)
	}
	return cs.Ack(m)
}
