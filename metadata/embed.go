package metadata

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EmbedConfig configures an embedded single-node etcd.
type EmbedConfig struct {
	// Dir holds etcd's data (created if missing).
	Dir string
	// Name of the member; "strata" when empty.
	Name string
	// ClientAddr is the client listen address host:port (port 0 picks one).
	ClientAddr string
	// PeerAddr is the peer listen address host:port (port 0 picks one).
	PeerAddr string
	// StartTimeout bounds start-up; 30 s when zero.
	StartTimeout time.Duration
	// LogLevel of etcd's own logs (debug, info, warn, error, panic, fatal);
	// default "error".
	LogLevel string
	// UnsafeNoFsync disables etcd's fsyncs. Only for tests that do not depend
	// on etcd surviving a machine crash.
	UnsafeNoFsync bool
}

// Embedded is a running in-process etcd server.
type Embedded struct {
	e         *embed.Etcd
	endpoints []string
	logLevel  zap.AtomicLevel
}

// StartEmbedded starts a single-node etcd and waits until it serves.
func StartEmbedded(cfg EmbedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, errors.New("metadata: embedded etcd needs a data dir")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("metadata: embedded etcd dir: %w", err)
	}
	name := cfg.Name
	if name == "" {
		name = "strata"
	}
	clientURL, err := url.Parse("http://" + orDefault(cfg.ClientAddr, "127.0.0.1:2379"))
	if err != nil {
		return nil, fmt.Errorf("metadata: etcd client address: %w", err)
	}
	peerURL, err := url.Parse("http://" + orDefault(cfg.PeerAddr, "127.0.0.1:2380"))
	if err != nil {
		return nil, fmt.Errorf("metadata: etcd peer address: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(name)
	// etcd logs through a logger whose level Close can raise: stopping
	// its listeners makes etcd log each one as a serving failure.
	level, err := zap.ParseAtomicLevel(orDefault(cfg.LogLevel, "error"))
	if err != nil {
		return nil, fmt.Errorf("metadata: etcd log level: %w", err)
	}
	lcfg := zap.NewProductionConfig()
	lcfg.Level = level
	lcfg.Sampling = nil
	lcfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	lg, err := lcfg.Build()
	if err != nil {
		return nil, fmt.Errorf("metadata: etcd logger: %w", err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	// Keep a day of history for watchers; compacting bounds the db size.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "1h"
	ec.MaxRequestBytes = 8 << 20

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("metadata: start embedded etcd: %w", err)
	}
	timeout := cfg.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("metadata: embedded etcd failed: %w", err)
	case <-time.After(timeout):
		e.Close()
		return nil, fmt.Errorf("metadata: embedded etcd not ready after %v", timeout)
	}
	em := &Embedded{e: e, logLevel: level}
	for _, l := range e.Clients {
		em.endpoints = append(em.endpoints, l.Addr().String())
	}
	return em, nil
}

// Endpoints returns the client endpoints (host:port) the server listens on.
func (e *Embedded) Endpoints() []string { return e.endpoints }

// Err reports a fatal server error after start.
func (e *Embedded) Err() <-chan error { return e.e.Err() }

// Close stops the server. etcd's complaints about its own listeners
// closing are not logged.
func (e *Embedded) Close() {
	e.logLevel.SetLevel(zapcore.FatalLevel)
	e.e.Close()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
