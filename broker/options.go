package broker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/offload"
	"github.com/strata-mq/strata/tenants/auth"
)

// Options configures a Broker. Zero values take the documented defaults
// (EnsureDefaults).
type Options struct {
	// Cluster is the name of the cluster this broker serves. Required.
	Cluster string
	// GRPCAddr is the client API listen address; default "0.0.0.0:6650".
	GRPCAddr string
	// HTTPAddr serves health, metrics and the admin API; default "0.0.0.0:8080".
	HTTPAddr string
	// AdvertisedAddr is the host clients reach this broker at; default
	// 127.0.0.1 when listening on all interfaces. Ports come from the
	// listeners.
	AdvertisedAddr string
	// ID identifies the broker in metadata; default advertised host:grpc port.
	ID string

	// Metadata is the local metadata store (ledgers, cursors, ownership,
	// registration). Required.
	Metadata metadata.Store
	// ConfigStore holds clusters, tenants and namespaces; default Metadata.
	ConfigStore metadata.Store
	// Ledgers is the ledger client; default one built on Metadata.
	Ledgers *ledger.Client
	// BrokerClientToken is the JWT this broker presents to the brokers of
	// other clusters when it replicates to them (Pulsar's
	// brokerClientAuthenticationParameters); empty: none.
	BrokerClientToken string

	// SessionTTL is the lease TTL of ownership and registration; default 10 s.
	SessionTTL time.Duration

	// DefaultEnsembleSize, DefaultWriteQuorum, DefaultAckQuorum apply to
	// namespaces without a persistence policy; default 1/1/1.
	DefaultEnsembleSize, DefaultWriteQuorum, DefaultAckQuorum int
	// MaxEntriesPerLedger and MaxLedgerRolloverTime roll ledgers over;
	// defaults 50,000 and 4 h.
	MaxEntriesPerLedger   int64
	MaxLedgerRolloverTime time.Duration
	// MinLedgerRolloverTime: a ledger rolls over by entries or size only once this
	// old, which bounds a busy topic's ledgers (and the ledger list kept in
	// one etcd value) to one per interval; 0: no minimum. The CLI defaults
	// to 10 min, as Pulsar does.
	MinLedgerRolloverTime time.Duration
	// MaxMessageSize bounds a message (entry) in bytes; default 5 MiB.
	MaxMessageSize int
	// CursorPersistInterval: how often acknowledgements are persisted;
	// default 1 s.
	CursorPersistInterval time.Duration
	// RetentionCheckInterval: how often ledgers are trimmed; default 2 min.
	RetentionCheckInterval time.Duration
	// TopicCacheBytes bounds each topic's entry cache; default 16 MiB.
	TopicCacheBytes int64
	// DispatchBatch is the most entries a dispatcher reads at once; default 100.
	DispatchBatch int
	// PolicyCheckInterval: how often message TTL, backlog quotas and rate
	// limits are applied to loaded topics; default 10 s.
	PolicyCheckInterval time.Duration
	// BacklogQuotaHoldTimeout: with producer_request_hold, how long a send
	// waits for the backlog to shrink before failing; default 30 s.
	BacklogQuotaHoldTimeout time.Duration
	// DeduplicationEnabled turns deduplication on for namespaces that do
	// not set it (Pulsar's brokerDeduplicationEnabled); default false.
	DeduplicationEnabled bool
	// DeduplicationSnapshotInterval: the deduplication state is
	// snapshotted every this many entries; default 1000.
	DeduplicationSnapshotInterval int

	// Limits bound what clients can make the broker hold (docs/security.md,
	// "Limits").
	//
	// MaxConsumerOutboxBytes: bytes of entries queued for one consumer;
	// the dispatcher sends it nothing more until they drain, whatever
	// permits it granted. Default 2 MiB (an entry larger than that still
	// goes out alone).
	MaxConsumerOutboxBytes int64
	// MaxPendingPublishRequestsPerProducer: sends of one producer the broker
	// holds (received, not yet answered); beyond it the broker stops reading
	// the producer's stream until some complete, and gRPC flow control
	// pushes back on the client. Pulsar's
	// maxPendingPublishRequestsPerConnection, per producer here. Default 1,000.
	MaxPendingPublishRequestsPerProducer int
	// MaxMessagePublishBufferBytes: bytes of sends held across the broker
	// (Pulsar's maxMessagePublishBufferSizeInMB); beyond it every producer
	// stream waits. Default 64 MiB.
	MaxMessagePublishBufferBytes int64
	// MaxConcurrentStreamsPerConnection: producers, consumers and readers
	// one client connection may have open at once (HTTP/2's
	// MAX_CONCURRENT_STREAMS); default 1,000.
	MaxConcurrentStreamsPerConnection int
	// MaxProducersPerTopic, MaxConsumersPerTopic,
	// MaxConsumersPerSubscription, MaxSubscriptionsPerTopic and
	// MaxTopicsPerNamespace apply to namespaces without the policy of that
	// name (Pulsar's broker.conf settings); 0 means unlimited.
	MaxProducersPerTopic, MaxConsumersPerTopic, MaxConsumersPerSubscription int
	MaxSubscriptionsPerTopic, MaxTopicsPerNamespace                         int
	// TopicIdleTimeout: a loaded topic with no producer, consumer, reader or
	// subscription for this long is unloaded, freeing what it holds (it
	// loads again on next use); default 10 min.
	TopicIdleTimeout time.Duration
	// HTTPReadTimeout bounds reading an HTTP request, headers and body
	// (slow clients are not held); HTTPIdleTimeout closes idle keep-alive
	// connections. Defaults 1 min and 2 min.
	HTTPReadTimeout, HTTPIdleTimeout time.Duration

	// Offload configures tiered storage; disabled while Offload.Store is nil.
	Offload OffloadOptions

	// AutoRecovery configures bookie auto-recovery in this broker.
	AutoRecovery AutoRecoveryOptions

	// Authentication, when set, requires a valid JWT on every gRPC call
	// and HTTP request except /healthz and /readyz.
	Authentication *auth.Authenticator
	// AuthorizationEnabled checks every operation against superuser roles,
	// tenant admin roles and namespace/topic permissions.
	AuthorizationEnabled bool
	// SuperUserRoles may do anything.
	SuperUserRoles []string
	// TLS, when set, serves gRPC and HTTP over TLS. With ClientAuth set to
	// require certificates, gRPC requires one and HTTP requires one on every
	// path but the health probes.
	TLS *tls.Config

	// Logger; default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.GRPCAddr == "" {
		o.GRPCAddr = "0.0.0.0:6650"
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "0.0.0.0:8080"
	}
	if o.ConfigStore == nil {
		o.ConfigStore = o.Metadata
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 10 * time.Second
	}
	if o.DefaultEnsembleSize <= 0 {
		o.DefaultEnsembleSize = 1
	}
	if o.DefaultWriteQuorum <= 0 {
		o.DefaultWriteQuorum = o.DefaultEnsembleSize
	}
	if o.DefaultAckQuorum <= 0 {
		o.DefaultAckQuorum = o.DefaultWriteQuorum
	}
	if o.MaxEntriesPerLedger <= 0 {
		o.MaxEntriesPerLedger = 50000
	}
	if o.MaxLedgerRolloverTime <= 0 {
		o.MaxLedgerRolloverTime = 4 * time.Hour
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 5 << 20
	}
	if o.CursorPersistInterval <= 0 {
		o.CursorPersistInterval = time.Second
	}
	if o.RetentionCheckInterval <= 0 {
		o.RetentionCheckInterval = 2 * time.Minute
	}
	if o.TopicCacheBytes <= 0 {
		o.TopicCacheBytes = 16 << 20
	}
	if o.DispatchBatch <= 0 {
		o.DispatchBatch = 100
	}
	if o.MaxConsumerOutboxBytes <= 0 {
		o.MaxConsumerOutboxBytes = 2 << 20
	}
	if o.MaxPendingPublishRequestsPerProducer <= 0 {
		o.MaxPendingPublishRequestsPerProducer = 1000
	}
	if o.MaxMessagePublishBufferBytes <= 0 {
		o.MaxMessagePublishBufferBytes = 64 << 20
	}
	if o.MaxConcurrentStreamsPerConnection <= 0 {
		o.MaxConcurrentStreamsPerConnection = 1000
	}
	if o.HTTPReadTimeout <= 0 {
		o.HTTPReadTimeout = time.Minute
	}
	if o.HTTPIdleTimeout <= 0 {
		o.HTTPIdleTimeout = 2 * time.Minute
	}
	if o.TopicIdleTimeout <= 0 {
		o.TopicIdleTimeout = 10 * time.Minute
	}
	if o.PolicyCheckInterval <= 0 {
		o.PolicyCheckInterval = 10 * time.Second
	}
	if o.BacklogQuotaHoldTimeout <= 0 {
		o.BacklogQuotaHoldTimeout = 30 * time.Second
	}
	if o.DeduplicationSnapshotInterval <= 0 {
		o.DeduplicationSnapshotInterval = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Offload.Policy == nil {
		p := managed.DefaultOffloadPolicy()
		o.Offload.Policy = &p
	}
}

// OffloadOptions configures tiered storage for every topic of the broker.
type OffloadOptions struct {
	// Store receives offloaded ledgers; nil disables offloading. The broker
	// checks it at start-up (creating a missing S3 bucket unless the
	// driver forbids it) and refuses to start when it is unusable.
	Store offload.BlobStore
	// Driver names the store ("s3", "filesystem"); recorded with each
	// offloaded ledger.
	Driver string
	// KeyPrefix is prepended to every object key; objects of a topic are
	// under {KeyPrefix}/{tenant}/{namespace}/{topic}/.
	KeyPrefix string
	// Write and Read tune uploads (block size) and replay (read-ahead).
	Write offload.WriteOptions
	Read  offload.ReaderOptions
	// Policy applies to namespaces without offload policies; default
	// Pulsar's (no automatic offload, deletion lag 4 h). A namespace's
	// offload_threshold, offload_threshold_in_seconds and
	// offload_deletion_lag_ms override its fields one by one.
	Policy *managed.OffloadPolicy
	// CheckInterval is how often each topic checks its offload policy
	// (it also checks at every ledger rollover); default 1 min.
	CheckInterval time.Duration
}

// Validate reports the first invalid option.
func (o *Options) Validate() error {
	switch {
	case o.Cluster == "":
		return errors.New("broker: Cluster is required")
	case o.Metadata == nil:
		return errors.New("broker: Metadata store is required")
	case o.DefaultAckQuorum > o.DefaultWriteQuorum || o.DefaultWriteQuorum > o.DefaultEnsembleSize:
		return errors.New("broker: default quorums must satisfy ensemble >= write quorum >= ack quorum")
	case o.Offload.Store != nil && o.Offload.Driver == "":
		return errors.New("broker: Offload.Driver is required with an offload store")
	case o.AuthorizationEnabled && o.Authentication == nil:
		return errors.New("broker: authorization needs authentication (a token key)")
	case o.MinLedgerRolloverTime < 0:
		return errors.New("broker: the minimum ledger rollover time must not be negative")
	}
	return nil
}
