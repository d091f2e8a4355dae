package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc/credentials"
)

type clientOptions struct {
	operationTimeout time.Duration
	creds            credentials.TransportCredentials
	token            func() (string, error)
	logger           *slog.Logger
}

func defaultClientOptions() clientOptions {
	return clientOptions{operationTimeout: 30 * time.Second, logger: slog.Default()}
}

// ClientOption configures a Client.
type ClientOption func(*clientOptions)

// WithOperationTimeout bounds lookups, subscribes and producer creation,
// including their retries; default 30 s.
func WithOperationTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.operationTimeout = d }
}

// WithToken authenticates with a JWT (sent as "authorization: Bearer ...").
func WithToken(token string) ClientOption {
	return func(o *clientOptions) { o.token = func() (string, error) { return token, nil } }
}

// WithTokenSupplier authenticates with a JWT fetched on every call (for
// rotated tokens).
func WithTokenSupplier(f func() (string, error)) ClientOption {
	return func(o *clientOptions) { o.token = f }
}

// WithTLS connects with TLS, trusting the CA certificates in caFile (system
// roots when empty). certFile/keyFile, when set, present a client certificate.
func WithTLS(caFile, certFile, keyFile string) ClientOption {
	return func(o *clientOptions) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err == nil {
				pool := x509.NewCertPool()
				if pool.AppendCertsFromPEM(pem) {
					cfg.RootCAs = pool
				}
			}
		}
		if certFile != "" && keyFile != "" {
			if cert, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
				cfg.Certificates = []tls.Certificate{cert}
			}
		}
		o.creds = credentials.NewTLS(cfg)
	}
}

// WithLogger sets the SDK's logger (reconnects, dropped acks).
func WithLogger(l *slog.Logger) ClientOption { return func(o *clientOptions) { o.logger = l } }

type tokenCreds struct {
	token  func() (string, error)
	secure bool
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := t.token()
	if err != nil {
		return nil, fmt.Errorf("strata: token: %w", err)
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

func (t tokenCreds) RequireTransportSecurity() bool { return false }

// ---- producers ----

type producerOptions struct {
	name               string
	batching           bool
	batchMaxMessages   int
	batchMaxBytes      int
	batchMaxDelay      time.Duration
	sendTimeout        time.Duration
	maxPending         int
	blockIfQueueFull   bool
	exclusive          bool
	router             func(msg *ProducerMessage, partitions int) int
	disableReplication bool
	schema             *SchemaInfo
}

func defaultProducerOptions() producerOptions {
	return producerOptions{batching: true, batchMaxMessages: 1000, batchMaxBytes: 128 << 10, batchMaxDelay: 10 * time.Millisecond,
		sendTimeout: 30 * time.Second, maxPending: 10000, blockIfQueueFull: true}
}

// ProducerOption configures a producer.
type ProducerOption func(*producerOptions)

// WithProducerSchema declares the schema of what the producer sends: the
// broker registers it as a version of the topic's schema, or refuses the
// producer (ErrIncompatibleSchema). NewProducer sets it from its codec.
func WithProducerSchema(s SchemaInfo) ProducerOption {
	return func(o *producerOptions) { o.schema = &s }
}

// WithProducerName sets a stable producer name (needed for deduplication).
func WithProducerName(name string) ProducerOption { return func(o *producerOptions) { o.name = name } }

// WithBatching groups messages into one entry, up to maxMessages, maxBytes
// or maxDelay after the first; the default is 1000 / 128 KiB / 10 ms.
func WithBatching(maxMessages, maxBytes int, maxDelay time.Duration) ProducerOption {
	return func(o *producerOptions) {
		o.batching, o.batchMaxMessages, o.batchMaxBytes, o.batchMaxDelay = true, maxMessages, maxBytes, maxDelay
	}
}

// WithoutBatching sends every message as its own entry.
func WithoutBatching() ProducerOption { return func(o *producerOptions) { o.batching = false } }

// WithSendTimeout fails sends not acknowledged within d (0: never); default 30 s.
func WithSendTimeout(d time.Duration) ProducerOption {
	return func(o *producerOptions) { o.sendTimeout = d }
}

// WithMaxPendingMessages bounds messages awaiting acknowledgement; default 10,000.
func WithMaxPendingMessages(n int) ProducerOption {
	return func(o *producerOptions) { o.maxPending = n }
}

// WithBlockIfQueueFull makes sends wait for room (default true); with false
// they fail with ErrProducerQueueFull.
func WithBlockIfQueueFull(block bool) ProducerOption {
	return func(o *producerOptions) { o.blockIfQueueFull = block }
}

// WithExclusiveAccess fails (or is refused) while another producer is connected.
func WithExclusiveAccess() ProducerOption { return func(o *producerOptions) { o.exclusive = true } }

// WithMessageRouter chooses the partition of each message of a partitioned
// topic; the default hashes the key, else round-robins.
func WithMessageRouter(f func(msg *ProducerMessage, partitions int) int) ProducerOption {
	return func(o *producerOptions) { o.router = f }
}

// ---- consumers ----

// SubscriptionType is a subscription's delivery mode.
type SubscriptionType int

const (
	// Exclusive: one consumer at a time (the default).
	Exclusive SubscriptionType = iota
	// Shared: messages round-robin over consumers; no ordering.
	Shared
	// Failover: one active consumer, others take over on disconnect.
	Failover
	// KeyShared: messages with the same key go to the same consumer, in order.
	KeyShared
)

func (t SubscriptionType) String() string {
	return [...]string{"Exclusive", "Shared", "Failover", "Key_Shared"}[t]
}

// ParseSubscriptionType parses Exclusive, Shared, Failover or Key_Shared.
func ParseSubscriptionType(s string) (SubscriptionType, error) {
	switch s {
	case "Exclusive", "exclusive":
		return Exclusive, nil
	case "Shared", "shared":
		return Shared, nil
	case "Failover", "failover":
		return Failover, nil
	case "Key_Shared", "KeyShared", "key_shared":
		return KeyShared, nil
	}
	return 0, fmt.Errorf("strata: unknown subscription type %q (Exclusive, Shared, Failover, Key_Shared)", s)
}

// InitialPosition is where a new subscription starts.
type InitialPosition int

const (
	// Latest: only messages published after the subscription is created (default).
	Latest InitialPosition = iota
	// Earliest: every message still retained.
	Earliest
)

type consumerOptions struct {
	subType           SubscriptionType
	initial           InitialPosition
	receiverQueueSize int
	name              string
	priority          int32
	nackDelay         time.Duration
	nackBackoff       func(redeliveries uint32) time.Duration
	ackTimeout        time.Duration
	dlq               *DLQPolicy
	retry             bool
	retryTopic        string
	replicated        bool
	schema            *SchemaInfo
}

// DLQPolicy sends messages that keep failing to a dead-letter topic.
type DLQPolicy struct {
	// MaxRedeliveries: a message redelivered more often than this goes to
	// the dead-letter topic instead of the application (so the application
	// sees it at most MaxRedeliveries+1 times). With a retry topic it also
	// bounds ReconsumeLater.
	MaxRedeliveries int
	// Topic of the dead letters; default "{topic}-{subscription}-DLQ".
	Topic string
	// InitialSubscription, when set, is created on the dead-letter topic
	// before the first dead letter, so none is missed.
	InitialSubscription string
}

func defaultConsumerOptions() consumerOptions {
	return consumerOptions{receiverQueueSize: 1000, nackDelay: time.Minute}
}

// ConsumerOption configures a consumer.
type ConsumerOption func(*consumerOptions)

// WithConsumerSchema declares the schema the consumer reads with: added to
// a topic without one, else it must be able to read the topic's versions
// (ErrIncompatibleSchema). NewConsumer sets it from its codec.
func WithConsumerSchema(s SchemaInfo) ConsumerOption {
	return func(o *consumerOptions) { o.schema = &s }
}

// WithSubscriptionType sets the subscription type; default Exclusive.
func WithSubscriptionType(t SubscriptionType) ConsumerOption {
	return func(o *consumerOptions) { o.subType = t }
}

// WithInitialPosition sets where a new subscription starts; default Latest.
func WithInitialPosition(p InitialPosition) ConsumerOption {
	return func(o *consumerOptions) { o.initial = p }
}

// WithReceiverQueueSize sets the flow-control window (messages buffered
// ahead of Receive); default 1000.
func WithReceiverQueueSize(n int) ConsumerOption {
	return func(o *consumerOptions) { o.receiverQueueSize = n }
}

// WithConsumerName names the consumer (Failover orders by it).
func WithConsumerName(name string) ConsumerOption { return func(o *consumerOptions) { o.name = name } }

// WithReplicateSubscriptionState keeps the subscription's position in step
// with the clusters its topic is geo-replicated to (Pulsar's
// replicateSubscriptionState): a consumer that moves to another cluster
// resumes near where it left off there.
func WithReplicateSubscriptionState(on bool) ConsumerOption {
	return func(o *consumerOptions) { o.replicated = on }
}

// WithPriorityLevel sets the Failover priority (lower is preferred).
func WithPriorityLevel(p int32) ConsumerOption { return func(o *consumerOptions) { o.priority = p } }

// WithNackRedeliveryDelay sets how long a negatively acknowledged message
// waits before redelivery; default 1 min.
func WithNackRedeliveryDelay(d time.Duration) ConsumerOption {
	return func(o *consumerOptions) { o.nackDelay = d }
}

// WithNackBackoff makes the redelivery delay of a negatively acknowledged
// message depend on how often it was redelivered (see ExponentialBackoff).
func WithNackBackoff(f func(redeliveries uint32) time.Duration) ConsumerOption {
	return func(o *consumerOptions) { o.nackBackoff = f }
}

// ExponentialBackoff returns lo*2^redeliveries, capped at hi.
func ExponentialBackoff(lo, hi time.Duration) func(uint32) time.Duration {
	return func(n uint32) time.Duration {
		d := lo
		for i := uint32(0); i < n && d < hi; i++ {
			d *= 2
		}
		return min(d, hi)
	}
}

// WithDLQ enables the dead-letter topic.
func WithDLQ(p DLQPolicy) ConsumerOption { return func(o *consumerOptions) { o.dlq = &p } }

// WithRetryTopic enables ReconsumeLater: the consumer also reads the retry
// topic ("{topic}-{subscription}-RETRY" unless topic is set) with the same
// subscription. Use it on Shared subscriptions (retries are delayed
// messages).
func WithRetryTopic(topic string) ConsumerOption {
	return func(o *consumerOptions) { o.retry, o.retryTopic = true, topic }
}

// WithAckTimeout redelivers messages not acknowledged within d (0: off).
func WithAckTimeout(d time.Duration) ConsumerOption {
	return func(o *consumerOptions) { o.ackTimeout = d }
}

// ---- readers ----

type readerOptions struct {
	inclusive         bool
	receiverQueueSize int
	name              string
}

// ReaderOption configures a reader.
type ReaderOption func(*readerOptions)

// WithStartInclusive makes the reader's first message the start message itself.
func WithStartInclusive() ReaderOption { return func(o *readerOptions) { o.inclusive = true } }

// WithReaderQueueSize sets the reader's flow-control window; default 1000.
func WithReaderQueueSize(n int) ReaderOption {
	return func(o *readerOptions) { o.receiverQueueSize = n }
}
