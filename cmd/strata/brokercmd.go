package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants/auth"
)

// securityFlags are the authentication and TLS flags of brokers.
type securityFlags struct {
	authn, authz           bool
	secretKey, publicKey   string
	superusers             []string
	tlsCert, tlsKey, tlsCA string
	requireClientCert      bool
	brokerClientTokenFile  string
}

func (s *securityFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&s.authn, "authentication-enabled", false, "require a JWT on every request (needs --token-secret-key or --token-public-key)")
	f.BoolVar(&s.authz, "authorization-enabled", false, "check superuser, tenant admin and namespace permissions on every operation")
	f.StringVar(&s.secretKey, "token-secret-key", "", "HS256 key verifying tokens: file:///PATH, data:;base64,... or base64")
	f.StringVar(&s.publicKey, "token-public-key", "", "RS256/ES256 public key verifying tokens: file:///PATH or data:...")
	f.StringSliceVar(&s.superusers, "superuser-roles", nil, "roles allowed to do anything, comma separated")
	f.StringVar(&s.tlsCert, "tls-cert-file", "", "server certificate (PEM); with --tls-key-file enables TLS on the gRPC and HTTP listeners")
	f.StringVar(&s.tlsKey, "tls-key-file", "", "server private key (PEM)")
	f.StringVar(&s.tlsCA, "tls-trust-certs-file", "", "CA certificates trusted for client certificates")
	f.BoolVar(&s.requireClientCert, "tls-require-client-cert", false, "require a trusted client certificate (health probes excepted)")
	f.StringVar(&s.brokerClientTokenFile, "broker-client-token-file", "", "file holding the JWT this broker presents to other clusters' brokers when it replicates to them")
}

// apply fills the broker's security options.
func (s *securityFlags) apply(o *broker.Options) error {
	if s.authn {
		if (s.secretKey == "") == (s.publicKey == "") {
			return errors.New("--authentication-enabled needs exactly one of --token-secret-key and --token-public-key")
		}
		a, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: s.secretKey, PublicKey: s.publicKey})
		if err != nil {
			return fmt.Errorf("token key: %w", err)
		}
		o.Authentication = a
	}
	if s.authz && !s.authn {
		return errors.New("--authorization-enabled needs --authentication-enabled")
	}
	o.AuthorizationEnabled, o.SuperUserRoles = s.authz, s.superusers
	if s.brokerClientTokenFile != "" {
		tok, err := os.ReadFile(s.brokerClientTokenFile)
		if err != nil {
			return fmt.Errorf("--broker-client-token-file: %w", err)
		}
		if o.BrokerClientToken = strings.TrimSpace(string(tok)); o.BrokerClientToken == "" {
			return fmt.Errorf("--broker-client-token-file %s is empty", s.brokerClientTokenFile)
		}
	}
	if s.tlsCert != "" || s.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if s.tlsCA != "" {
			pem, err := os.ReadFile(s.tlsCA)
			if err != nil {
				return fmt.Errorf("--tls-trust-certs-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--tls-trust-certs-file %s holds no PEM certificate", s.tlsCA)
			}
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
		if s.requireClientCert {
			if s.tlsCA == "" {
				return errors.New("--tls-require-client-cert needs --tls-trust-certs-file")
			}
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		o.TLS = cfg
	} else if s.requireClientCert {
		return errors.New("--tls-require-client-cert needs --tls-cert-file and --tls-key-file")
	}
	return nil
}

// brokerFlags registers the broker tuning flags shared by `strata broker`
// and `strata standalone`.
func brokerFlags(f *pflag.FlagSet, o *broker.Options) {
	f.StringVar(&o.GRPCAddr, "grpc-addr", "0.0.0.0:6650", "client port: gRPC and Pulsar's binary protocol listen address")
	f.StringVar(&o.HTTPAddr, "http-addr", "0.0.0.0:8080", "HTTP listen address: admin API, lookup, /metrics, /healthz, /readyz")
	f.StringVar(&o.AdvertisedAddr, "advertised-address", "", "host clients reach this broker at (default: 127.0.0.1 when listening on all interfaces)")
	f.DurationVar(&o.SessionTTL, "session-ttl", 10*time.Second, "lease TTL of bundle ownership and registration")
	f.IntVar(&o.DefaultEnsembleSize, "default-ensemble-size", 1, "bookies per ledger for namespaces without a persistence policy")
	f.IntVar(&o.DefaultWriteQuorum, "default-write-quorum", 1, "copies of each entry for namespaces without a persistence policy")
	f.IntVar(&o.DefaultAckQuorum, "default-ack-quorum", 1, "acknowledgements needed per entry for namespaces without a persistence policy")
	f.Int64Var(&o.MaxEntriesPerLedger, "max-entries-per-ledger", 50000, "roll a topic's ledger over after this many entries")
	f.DurationVar(&o.MaxLedgerRolloverTime, "max-ledger-rollover-time", 4*time.Hour, "roll a topic's ledger over after this long")
	f.DurationVar(&o.MinLedgerRolloverTime, "min-ledger-rollover-time", 10*time.Minute, "roll a topic's ledger over by entries or size only once it is this old (bounds a busy topic's ledger count; 0: no minimum)")
	f.IntVar(&o.MaxMessageSize, "max-message-size", 5<<20, "largest message (entry) accepted, in bytes")
	f.DurationVar(&o.RetentionCheckInterval, "retention-check-interval", 2*time.Minute, "how often consumed ledgers are trimmed")
	f.DurationVar(&o.PolicyCheckInterval, "policy-check-interval", 10*time.Second, "how often message TTL, backlog quotas and rate limits are applied")
	f.BoolVar(&o.DeduplicationEnabled, "broker-deduplication-enabled", false, "deduplicate producers' messages in namespaces that do not set it")
	// Limits (docs/security.md, "Limits").
	f.Int64Var(&o.MaxConsumerOutboxBytes, "max-consumer-outbox", 2<<20, "bytes queued for one consumer before the broker stops sending it entries, whatever its permits")
	f.IntVar(&o.MaxPendingPublishRequestsPerProducer, "max-pending-publish-requests-per-producer", 1000, "sends of one producer held before its stream stops being read")
	f.Int64Var(&o.MaxMessagePublishBufferBytes, "max-message-publish-buffer", 64<<20, "bytes of sends held across the broker before every producer stream waits")
	f.IntVar(&o.MaxConcurrentStreamsPerConnection, "max-concurrent-streams-per-connection", 1000, "producers, consumers and readers one client connection may have open")
	f.IntVar(&o.MaxProducersPerTopic, "max-producers-per-topic", 0, "producers per topic in namespaces that do not set it (0: unlimited)")
	f.IntVar(&o.MaxConsumersPerTopic, "max-consumers-per-topic", 0, "consumers per topic in namespaces that do not set it (0: unlimited)")
	f.IntVar(&o.MaxConsumersPerSubscription, "max-consumers-per-subscription", 0, "consumers per subscription in namespaces that do not set it (0: unlimited)")
	f.IntVar(&o.MaxSubscriptionsPerTopic, "max-subscriptions-per-topic", 0, "durable subscriptions per topic in namespaces that do not set it (0: unlimited)")
	f.IntVar(&o.MaxTopicsPerNamespace, "max-topics-per-namespace", 0, "topics per namespace in namespaces that do not set it (0: unlimited)")
	f.DurationVar(&o.TopicIdleTimeout, "topic-idle-timeout", 10*time.Minute, "unload a topic with no producer, consumer, reader or subscription after this long")
	f.DurationVar(&o.HTTPReadTimeout, "http-read-timeout", time.Minute, "time allowed to read an HTTP request (headers and body)")
	f.DurationVar(&o.HTTPIdleTimeout, "http-idle-timeout", 2*time.Minute, "close idle HTTP keep-alive connections after this long")
	// Bookie auto-recovery (docs/storage-protocol.md, "Auto-recovery").
	f.VarPF(invertedBool{&o.AutoRecovery.Disabled}, "auto-recovery", "", "run the auto-recovery auditor election and a re-replication worker in this broker").NoOptDefVal = "true"
	f.DurationVar(&o.AutoRecovery.LostBookieDelay, "lost-bookie-recovery-delay", 5*time.Minute, "re-replicate the ledgers of a bookie unregistered for this long")
	f.DurationVar(&o.AutoRecovery.CheckInterval, "auditor-check-interval", time.Hour, "how often the auditor checks every ledger's replicas besides reacting to bookie changes")
	f.DurationVar(&o.AutoRecovery.OpenLedgerGracePeriod, "open-ledger-rereplication-grace-period", 30*time.Second, "how long an open ledger on a lost bookie is left to its writer before it is recovered (fencing the writer)")
}

// invertedBool is a bool flag stored negated (--auto-recovery sets
// Disabled to false).
type invertedBool struct{ p *bool }

func (b invertedBool) String() string {
	if b.p == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.p)
}

func (b invertedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = !v
	return nil
}

func (b invertedBool) Type() string { return "bool" }

func newBrokerCmd() *cobra.Command {
	var (
		o          broker.Options
		sec        securityFlags
		off        offloadFlags
		endpoints  string
		cfgStore   string
		root       string
		waitForEtd time.Duration
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a broker: the stateless serving layer (topics, subscriptions, admin API)",
		Long: `Run a broker. It owns namespace bundles through leases in etcd, serves producers
and consumers over gRPC, and the admin API, lookups and metrics over HTTP.
Before serving it waits until the cluster is initialized (strata init-cluster).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			setMemoryLimit()
			ctx, cancel := signalContext()
			defer cancel()
			if o.Cluster == "" {
				return errors.New("--cluster is required")
			}
			if err := sec.apply(&o); err != nil {
				return err
			}
			if err := off.apply(&o); err != nil {
				return err
			}
			local, err := openStoreWaiting(ctx, endpoints, root, waitForEtd)
			if err != nil {
				return err
			}
			defer local.Close()
			o.Metadata, o.Logger = local, slog.Default()
			if cfgStore != "" && cfgStore != endpoints {
				cs, err := openStoreWaiting(ctx, cfgStore, root, waitForEtd)
				if err != nil {
					return err
				}
				defer cs.Close()
				o.ConfigStore = cs
			}
			b, err := broker.New(o)
			if err != nil {
				return err
			}
			if err := b.Start(); err != nil {
				return err
			}
			<-ctx.Done()
			slog.Info("shutting down broker")
			return b.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoints, "etcd-endpoints", "127.0.0.1:2379", "etcd endpoints of the local metadata store, comma separated")
	f.StringVar(&cfgStore, "config-store-endpoints", "", "etcd endpoints of the configuration store (default: the local store)")
	f.StringVar(&root, "metadata-root", metadata.DefaultRoot, "key prefix of this cluster's metadata in etcd")
	f.StringVar(&o.Cluster, "cluster", "", "name of the cluster this broker serves (required)")
	f.DurationVar(&waitForEtd, "etcd-wait", 5*time.Minute, "how long to wait for etcd at start-up")
	brokerFlags(f, &o)
	sec.register(f)
	off.register(f, "", "")
	return cmd
}

// openStoreWaiting connects to etcd, retrying until it answers or wait passes.
func openStoreWaiting(ctx context.Context, endpoints, root string, wait time.Duration) (metadata.Store, error) {
	deadline := time.Now().Add(wait)
	for {
		s, err := openStore(ctx, endpoints, root)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		slog.Warn("waiting for etcd", "endpoints", endpoints, "err", err)
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted while waiting for etcd: %w", err)
		}
	}
}
