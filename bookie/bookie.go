// Package bookie is Strata's storage server: a gRPC service that stores
// ledger entries in Badger with BookKeeper's semantics — group-committed,
// fsynced before acknowledgement, fencing persisted before it is reported,
// piggybacked LAC with long-poll, cookies guarding the data directory,
// lease-bound registration, read-only mode on a full disk, and garbage
// collection of ledgers deleted from metadata.
package bookie

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/grpcbuf"
	"github.com/strata-mq/strata/metadata"
)

// Bookie is one storage server.
type Bookie struct {
	opts    Options
	id      string
	db      *badger.DB
	st      *store
	ledgers *ledgers
	journal *journal
	metrics *metrics

	lis      net.Listener
	grpc     *grpc.Server
	httpSrv  *http.Server
	httpLis  net.Listener
	readOnly atomic.Bool
	failed   atomic.Bool
	// draining: the bookie is being decommissioned (a key under
	// metadata.DecommissionPrefix names it) and takes no entries at all.
	draining atomic.Bool
	// registered is true while the registration key is in place.
	registered atomic.Bool
	// killed makes the registration loop leave its lease to expire.
	killed atomic.Bool
	// stateChanged wakes the registration loop to re-publish.
	stateChanged chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New checks the data directory's cookie against the metadata store, opens
// storage and binds the listeners. Call Start to serve.
func New(ctx context.Context, opts Options) (*Bookie, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", opts.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("bookie: listen %s: %w", opts.ListenAddr, err)
	}
	if opts.AdvertisedAddr == "" {
		opts.AdvertisedAddr = advertise(lis.Addr().(*net.TCPAddr))
	}
	if opts.ID == "" {
		opts.ID = opts.AdvertisedAddr
	}
	b := &Bookie{opts: opts, id: opts.ID, lis: lis, metrics: newMetrics(), stateChanged: make(chan struct{}, 1)}
	if _, err := checkCookie(ctx, opts.Metadata, opts.DataDir, opts.ID); err != nil {
		lis.Close()
		return nil, err
	}
	if err := b.openStorage(); err != nil {
		lis.Close()
		return nil, err
	}
	if opts.HTTPAddr != "" {
		var err error
		if b.httpLis, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
			lis.Close()
			b.closeStorage()
			return nil, fmt.Errorf("bookie: listen http %s: %w", opts.HTTPAddr, err)
		}
	}
	return b, nil
}

// badgerOptions configures the index: written without sync (the entry log
// is the durable copy until a checkpoint), values (locations, ledger
// records) small enough to live in the LSM tree.
func badgerOptions(dir string, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(16 << 20).
		WithDetectConflicts(false).
		WithLogger(badgerLogger{logger}).
		WithMetricsEnabled(false)
}

// openStorage opens the entry log and the index, replays the records the
// index may lack, moves entries of older builds into the log, starts a new
// segment and checkpoints.
func (b *Bookie) openStorage() error {
	log, err := openEntryLog(filepath.Join(b.opts.DataDir, "journal"), b.opts.Hooks)
	if err != nil {
		return err
	}
	db, err := badger.Open(badgerOptions(filepath.Join(b.opts.DataDir, "ledgers"), b.opts.Logger))
	if err != nil {
		log.close()
		return fmt.Errorf("bookie: open storage in %s: %w", b.opts.DataDir, err)
	}
	b.db = db
	b.st = &store{db: db, log: log}
	b.ledgers = newLedgers(b.st)
	b.metrics.watchLedgers(b.ledgers)
	b.journal = newJournal(b.st, b.ledgers, &b.opts, b.metrics, b.onJournalFailure)
	start := time.Now()
	err = b.st.replay(b.opts.Logger)
	if err == nil {
		next := uint64(1)
		if seqs := log.seqs(); len(seqs) > 0 {
			next = seqs[len(seqs)-1] + 1
		}
		err = log.startSegment(next)
	}
	if err == nil {
		err = b.journal.migrateLegacy(b.opts.Logger)
	}
	if err == nil {
		err = b.journal.checkpointNow()
	}
	if err != nil {
		b.closeStorage()
		return err
	}
	b.opts.Logger.Debug("bookie storage open", "segments", len(log.seqs()), "took", time.Since(start))
	return nil
}

// closeStorage closes the index, waiting at most CloseTimeout: Badger retries
// a failed memtable flush forever (a data directory gone from under it), and
// a bookie asked to stop must stop. What it could not flush is in the entry
// log, replayed at the next start.
func (b *Bookie) closeStorage() error {
	done := make(chan error, 1)
	go func() { done <- b.db.Close() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(b.opts.CloseTimeout):
		err = fmt.Errorf("bookie: index did not close within %v (storage failing?); the entry log holds what it had not flushed", b.opts.CloseTimeout)
		b.opts.Logger.Error("closing storage", "err", err)
	}
	b.st.log.close()
	return err
}

func advertise(a *net.TCPAddr) string {
	if a.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", a.Port)
	}
	return a.String()
}

// ID returns the bookie's id.
func (b *Bookie) ID() string { return b.id }

// Addr returns the advertised gRPC address.
func (b *Bookie) Addr() string { return b.opts.AdvertisedAddr }

// HTTPAddr returns the bound HTTP address, "" when not serving HTTP.
func (b *Bookie) HTTPAddr() string {
	if b.httpLis == nil {
		return ""
	}
	return b.httpLis.Addr().String()
}

// ReadOnly reports whether the bookie rejects new entries.
func (b *Bookie) ReadOnly() bool { return b.readOnly.Load() || b.failed.Load() || b.draining.Load() }

// Start serves gRPC (and HTTP), and starts the journal, registration, disk
// monitor and garbage collector. It returns once serving has begun.
func (b *Bookie) Start() error {
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.checkDisk() // decide read-only before registering
	b.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(b.opts.MaxEntrySize+(1<<20)),
		grpc.MaxSendMsgSize(64<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpcbuf.ServerOption(),
	)
	bookiepb.RegisterBookieServer(b.grpc, &service{b: b})
	b.go1(b.journal.run)
	b.go1(func() { b.grpc.Serve(b.lis) })
	if b.httpLis != nil {
		b.httpSrv = &http.Server{Handler: b.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		b.go1(func() { b.httpSrv.Serve(b.httpLis) })
	}
	b.go1(b.registrationLoop)
	b.go1(b.decommissionLoop)
	b.go1(b.diskMonitorLoop)
	b.go1(b.gcLoop)
	b.opts.Logger.Info("bookie started", "id", b.id, "addr", b.opts.AdvertisedAddr, "dataDir", b.opts.DataDir,
		"journalSync", *b.opts.JournalSync, "readOnly", b.ReadOnly())
	return nil
}

// go1 runs fn on a goroutine that Close waits for.
func (b *Bookie) go1(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// Close stops serving, unregisters, completes queued writes and closes
// storage. Acknowledged entries are durable regardless of how the process
// stops; Close only makes the exit tidy.
func (b *Bookie) Close() error {
	var err error
	b.closed.Do(func() {
		if b.cancel == nil { // never started
			b.lis.Close()
			if b.httpLis != nil {
				b.httpLis.Close()
			}
			err = b.closeStorage()
			return
		}
		b.cancel()
		stopped := make(chan struct{})
		go func() { b.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			b.grpc.Stop()
		}
		if b.httpSrv != nil {
			b.httpSrv.Close()
		}
		b.journal.stop()
		b.wg.Wait()
		// A last checkpoint, so that the next start replays nothing.
		if b.journal.failedErr == nil {
			if cerr := b.journal.checkpointNow(); cerr != nil {
				b.opts.Logger.Error("final checkpoint failed; the next start replays the journal", "err", cerr)
			}
		}
		err = b.closeStorage()
		b.opts.Logger.Info("bookie stopped", "id", b.id)
	})
	return err
}

// Kill stops the bookie abruptly, as a crash would from the clients' point of
// view: connections drop, nothing is unregistered (the lease expires on its
// own). Storage is closed so the directory can be reopened in-process.
func (b *Bookie) Kill() {
	b.closed.Do(func() {
		b.killed.Store(true)
		b.grpc.Stop()
		if b.httpSrv != nil {
			b.httpSrv.Close()
		}
		b.cancel()
		b.journal.stop()
		b.wg.Wait()
		b.closeStorage()
	})
}

func (b *Bookie) onJournalFailure(err error) {
	b.opts.Logger.Error("journal commit failed; bookie turns read-only to protect its data", "err", err)
	b.failed.Store(true)
	b.metrics.readOnly.Set(1)
	b.notifyState()
}

func (b *Bookie) notifyState() {
	select {
	case b.stateChanged <- struct{}{}:
	default:
	}
}

func (b *Bookie) registration() []byte {
	used, total, _ := b.opts.DiskUsage(b.opts.DataDir)
	data, _ := json.Marshal(metadata.BookieRegistration{
		ID: b.id, Addr: b.opts.AdvertisedAddr, HTTPAddr: b.HTTPAddr(),
		ReadOnly: b.ReadOnly(), FreeBytes: total - used, TotalBytes: total, MaxEntrySize: int64(b.opts.MaxEntrySize),
	})
	return data
}

// registrationLoop keeps the bookie's lease-bound registration in place,
// re-creating the session when it expires and re-publishing on state changes.
func (b *Bookie) registrationLoop() {
	backoff := 100 * time.Millisecond
	for b.ctx.Err() == nil {
		sess, err := b.opts.Metadata.NewSession(b.ctx, b.opts.SessionTTL)
		if err == nil {
			err = b.publish(sess)
		}
		b.registered.Store(false)
		if b.ctx.Err() != nil {
			if sess != nil {
				if b.killed.Load() {
					sess.Orphan() // as after a crash: the lease expires on its own
				} else {
					sess.Close() // graceful: clients see the bookie gone at once
				}
			}
			return
		}
		b.opts.Logger.Warn("bookie registration lost; re-registering", "err", err)
		select {
		case <-time.After(backoff):
		case <-b.ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// publish writes the registration and re-writes it on every state change
// until the session ends or the bookie stops.
func (b *Bookie) publish(sess *metadata.Session) error {
	ticker := time.NewTicker(b.opts.DiskCheckInterval)
	defer ticker.Stop()
	for {
		if _, err := b.opts.Metadata.Put(b.ctx, metadata.BookieKey(b.id), b.registration(), metadata.AnyVersion, metadata.WithSession(sess)); err != nil {
			return err
		}
		b.registered.Store(true)
		select {
		case <-b.stateChanged:
		case <-ticker.C:
		case <-sess.Done():
			return metadata.ErrSessionExpired
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

// decommissionLoop follows the bookie's decommission request: while one
// exists, the bookie refuses every add, so writers move their ledgers to
// other bookies and auto-recovery copies the rest away.
func (b *Bookie) decommissionLoop() {
	key := metadata.DecommissionPrefix + b.id
	set := func(on bool) {
		if b.draining.Swap(on) == on {
			return
		}
		if on {
			b.opts.Logger.Warn("bookie is being decommissioned: it takes no new entries")
			b.metrics.readOnly.Set(1)
		} else {
			b.opts.Logger.Info("decommission cancelled: bookie takes entries again")
			if !b.ReadOnly() {
				b.metrics.readOnly.Set(0)
			}
		}
		b.notifyState()
	}
	for b.ctx.Err() == nil {
		kv, err := b.opts.Metadata.Get(b.ctx, key)
		rev := int64(0)
		switch {
		case err == nil:
			set(true)
			rev = kv.ModRevision
		case errors.Is(err, metadata.ErrNotFound):
			set(false)
		default:
			if !sleepCtx(b.ctx, time.Second) {
				return
			}
			continue
		}
		// The watch may start after a change made since the read: read
		// again now and then.
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		for wr := range b.opts.Metadata.Watch(ctx, key, rev+1) {
			if wr.Err != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.KV.Key == key {
					set(ev.Type == metadata.EventPut)
				}
			}
		}
		cancel()
		if ctx.Err() == nil && !sleepCtx(b.ctx, time.Second) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *Bookie) diskMonitorLoop() {
	t := time.NewTicker(b.opts.DiskCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.checkDisk()
		case <-b.ctx.Done():
			return
		}
	}
}

// checkDisk turns the bookie read-only above the usage threshold and
// writable again below the low-water mark.
func (b *Bookie) checkDisk() {
	used, total, err := b.opts.DiskUsage(b.opts.DataDir)
	if err != nil || total == 0 {
		b.opts.Logger.Warn("disk usage check failed", "err", err)
		return
	}
	frac := float64(used) / float64(total)
	was := b.readOnly.Load()
	switch {
	case !was && frac > b.opts.DiskUsageThreshold:
		b.readOnly.Store(true)
		b.opts.Logger.Warn("disk usage above threshold: bookie is read-only", "usage", frac, "threshold", b.opts.DiskUsageThreshold)
	case was && frac < b.opts.DiskUsageLowWater:
		b.readOnly.Store(false)
		b.opts.Logger.Info("disk usage below low-water mark: bookie is writable", "usage", frac)
	default:
		return
	}
	if b.ReadOnly() {
		b.metrics.readOnly.Set(1)
	} else {
		b.metrics.readOnly.Set(0)
	}
	b.notifyState()
}
