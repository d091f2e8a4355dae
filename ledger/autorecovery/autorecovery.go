// Package autorecovery keeps every ledger at its full replica count when
// bookies leave: BookKeeper's auditor and replication workers, coordinated
// through etcd.
//
// One auditor, elected among the nodes that run the service (every broker),
// watches the bookie registrations. A bookie that some ledger's ensemble
// names and that has been unregistered for longer than the lost-bookie
// delay is lost, as is a bookie being decommissioned; every ledger with a
// segment on a lost bookie gets an under-replication mark
// (metadata.UnderreplicatedPrefix). The auditor repeats the scan
// periodically, so a mark missed by an event is made later.
//
// Every node runs a worker that takes one marked ledger at a time under an
// etcd lock. For each segment that lists a lost bookie, it copies the
// entries that bookie held from surviving replicas to a replacement
// (ledger.Client.ReplaceBookie: digests checked, recovery adds, then a
// compare-and-swap of the ensemble). The last segment of a ledger still
// open is never copied while a writer may be using it: after a grace
// period the worker recovers the ledger (fencing the writer and closing
// it) and then copies. A ledger with nothing left to replace loses its
// mark.
package autorecovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/metadata"
)

// Options configures a Service.
type Options struct {
	// Metadata is the local metadata store. Required.
	Metadata metadata.Store
	// Ledgers is the ledger client that copies entries. Required.
	Ledgers *ledger.Client
	// NodeID names this node as auditor and lock holder (the broker id).
	NodeID string
	// LostBookieDelay: a bookie unregistered for this long is lost and its
	// ledgers are re-replicated (BookKeeper's lostBookieRecoveryDelay).
	// Default 5 min, long enough for a restart.
	LostBookieDelay time.Duration
	// CheckInterval: the auditor scans every ledger this often besides
	// reacting to bookie changes. Default 1 h.
	CheckInterval time.Duration
	// OpenLedgerGracePeriod: an open ledger whose last segment lists a lost
	// bookie is recovered (its writer fenced) after it has been marked this
	// long, if its writer has not moved to a new ensemble by itself.
	// Default 30 s.
	OpenLedgerGracePeriod time.Duration
	// SessionTTL bounds how long the auditor role and a ledger's lock
	// outlive a node that died. Default 10 s.
	SessionTTL time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (o *Options) ensureDefaults() {
	if o.LostBookieDelay <= 0 {
		o.LostBookieDelay = 5 * time.Minute
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = time.Hour
	}
	if o.OpenLedgerGracePeriod <= 0 {
		o.OpenLedgerGracePeriod = 30 * time.Second
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are a node's auto-recovery figures.
type Stats struct {
	// Auditor is true on the elected auditor; Underreplicated and
	// LostBookies are its figures from the last audit (0 elsewhere).
	Auditor         bool
	Underreplicated int
	LostBookies     int
	// What this node's worker did.
	LedgersReplicated, SegmentsReplicated, EntriesReplicated, BytesReplicated int64
	LedgersRecovered, Failures                                                int64
}

// Service runs the auditor election and a replication worker.
type Service struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // audit now

	auditor                                      atomic.Bool
	underreplicated, lostBookies                 atomic.Int64
	ledgers, segments, entries, bytes, recovered atomic.Int64
	failures                                     atomic.Int64
}

// Start starts the service; Close stops it.
func Start(opts Options) (*Service, error) {
	if opts.Metadata == nil || opts.Ledgers == nil {
		return nil, errors.New("autorecovery: Options.Metadata and Options.Ledgers are required")
	}
	opts.ensureDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{opts: opts, log: opts.Logger.With("component", "autorecovery"), ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1)}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.electionLoop() }()
	go func() { defer s.wg.Done(); s.workerLoop() }()
	return s, nil
}

// Close stops the service and waits for it; a ledger being copied is left
// for another node (its lock expires with the session).
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Stats returns the node's figures.
func (s *Service) Stats() Stats {
	return Stats{
		Auditor: s.auditor.Load(), Underreplicated: int(s.underreplicated.Load()), LostBookies: int(s.lostBookies.Load()),
		LedgersReplicated: s.ledgers.Load(), SegmentsReplicated: s.segments.Load(), EntriesReplicated: s.entries.Load(),
		BytesReplicated: s.bytes.Load(), LedgersRecovered: s.recovered.Load(), Failures: s.failures.Load(),
	}
}

// Audit asks the auditor, if this node is it, to scan at once.
func (s *Service) Audit() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// sleep waits d or until the service stops; false when it stopped.
func (s *Service) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// electionLoop competes for the auditor role and audits while it holds it.
func (s *Service) electionLoop() {
	for s.ctx.Err() == nil {
		sess, err := s.opts.Metadata.NewSession(s.ctx, s.opts.SessionTTL)
		if err != nil {
			s.sleep(time.Second)
			continue
		}
		_, err = s.opts.Metadata.Create(s.ctx, metadata.AuditorKey, []byte(s.opts.NodeID), metadata.WithSession(sess))
		switch {
		case err == nil:
			s.log.Info("elected auditor")
			s.auditor.Store(true)
			s.auditLoop(sess)
			s.auditor.Store(false)
			s.underreplicated.Store(0)
			s.lostBookies.Store(0)
			sess.Close()
		case errors.Is(err, metadata.ErrExists):
			sess.Close()
			s.waitAuditorGone()
		default:
			sess.Close()
			s.sleep(time.Second)
		}
	}
}

// waitAuditorGone returns once the auditor key is deleted (its holder
// stopped or its session expired), or after a while to try again.
func (s *Service) waitAuditorGone() {
	ctx, cancel := context.WithTimeout(s.ctx, 3*s.opts.SessionTTL)
	defer cancel()
	kv, err := s.opts.Metadata.Get(ctx, metadata.AuditorKey)
	if err != nil {
		return
	}
	for wr := range s.opts.Metadata.Watch(ctx, metadata.AuditorKey, kv.ModRevision+1) {
		if wr.Err != nil {
			return
		}
		for _, ev := range wr.Events {
			if ev.Type == metadata.EventDelete && ev.KV.Key == metadata.AuditorKey {
				return
			}
		}
	}
}

// auditLoop audits at once, on every change of the bookie registrations or
// decommission requests, when a missing bookie's delay runs out, and every
// CheckInterval, for as long as sess lives.
func (s *Service) auditLoop(sess *metadata.Session) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	changes := make(chan struct{}, 1)
	for _, prefix := range []string{metadata.BookiesPrefix, metadata.DecommissionPrefix} {
		go func() {
			for ctx.Err() == nil {
				for wr := range s.opts.Metadata.Watch(ctx, prefix, 0) {
					if wr.Err != nil {
						break
					}
					select {
					case changes <- struct{}{}:
					default:
					}
				}
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
			}
		}()
	}
	next := time.Duration(0)
	for {
		timer := time.NewTimer(next)
		select {
		case <-timer.C:
		case <-changes:
			timer.Stop()
			// Let a burst of registration changes settle.
			if !s.sleep(500 * time.Millisecond) {
				return
			}
		case <-s.kick:
			timer.Stop()
		case <-sess.Done():
			timer.Stop()
			s.log.Warn("auditor session expired; standing down")
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
		wait, err := s.audit(ctx)
		if err != nil {
			// Retry in 5 s whatever the audit had planned: it returns no
			// wait when it fails (a full etcd made this loop spin).
			wait = 5 * time.Second
			s.log.Warn("audit failed; retrying", "err", err, "in", wait)
		}
		next = min(wait, s.opts.CheckInterval)
	}
}

// mark is the value of an under-replication mark.
type mark struct {
	// Missing are the lost bookies the ledger's ensembles list.
	Missing []string `json:"missing"`
	// Since is when the ledger was marked, Unix milliseconds.
	Since int64 `json:"since"`
}

type since struct {
	Since int64 `json:"since"` // Unix milliseconds
}

// audit scans the registrations and every ledger's metadata, keeps the
// missing-bookie records, and marks the ledgers that list a lost bookie. It
// returns how long until a missing bookie becomes lost (or CheckInterval).
func (s *Service) audit(ctx context.Context) (time.Duration, error) {
	st := s.opts.Metadata
	now := time.Now()
	regs, err := metadata.ListBookies(ctx, st)
	if err != nil {
		return 0, err
	}
	registered := map[string]bool{}
	for _, r := range regs {
		registered[r.ID] = true
	}
	decom, err := listIDs(ctx, st, metadata.DecommissionPrefix)
	if err != nil {
		return 0, err
	}
	missingKVs, err := metadata.ListAll(ctx, st, metadata.MissingBookiesPrefix, false)
	if err != nil {
		return 0, err
	}
	missing := map[string]time.Time{}
	for _, kv := range missingKVs {
		var v since
		if json.Unmarshal(kv.Value, &v) == nil {
			missing[strings.TrimPrefix(kv.Key, metadata.MissingBookiesPrefix)] = time.UnixMilli(v.Since)
		}
	}
	mds, err := ListLedgers(ctx, st)
	if err != nil {
		return 0, err
	}
	inUse := map[string]bool{}
	for _, md := range mds {
		for _, seg := range md.Segments {
			for _, b := range seg.Ensemble {
				inUse[b] = true
			}
		}
	}
	for b := range inUse {
		if _, ok := missing[b]; !ok && !registered[b] {
			v, _ := json.Marshal(since{now.UnixMilli()})
			if _, err := st.Create(ctx, metadata.MissingBookiesPrefix+b, v); err != nil && !errors.Is(err, metadata.ErrExists) {
				return 0, err
			}
			s.log.Warn("bookie missing; its ledgers are re-replicated if it does not come back", "bookie", b, "delay", s.opts.LostBookieDelay)
			missing[b] = now
		}
	}
	wait := s.opts.CheckInterval
	lost := map[string]bool{}
	for b, t := range missing {
		if registered[b] || !inUse[b] {
			if err := st.Delete(ctx, metadata.MissingBookiesPrefix+b, metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
				return 0, err
			}
			continue
		}
		if left := t.Add(s.opts.LostBookieDelay).Sub(now); left > 0 {
			wait = min(wait, left)
		} else {
			lost[b] = true
		}
	}
	for _, b := range decom {
		if inUse[b] {
			lost[b] = true
		}
	}
	marks, err := metadata.ListAll(ctx, st, metadata.UnderreplicatedPrefix, false)
	if err != nil {
		return 0, err
	}
	marked := map[int64]metadata.KV{}
	for _, kv := range marks {
		if id, err := parseID(kv.Key, metadata.UnderreplicatedPrefix); err == nil {
			marked[id] = kv
		}
	}
	exists := map[int64]bool{}
	count := 0
	for _, md := range mds {
		exists[md.ID] = true
		var on []string
		for _, seg := range md.Segments {
			for _, b := range seg.Ensemble {
				if lost[b] && !slices.Contains(on, b) {
					on = append(on, b)
				}
			}
		}
		if len(on) == 0 {
			if _, ok := marked[md.ID]; ok {
				count++ // the worker decides: a bookie may have come back
			}
			continue
		}
		slices.Sort(on)
		count++
		kv, ok := marked[md.ID]
		if !ok {
			v, _ := json.Marshal(mark{Missing: on, Since: now.UnixMilli()})
			if _, err := st.Create(ctx, metadata.UnderreplicatedKey(md.ID), v); err != nil && !errors.Is(err, metadata.ErrExists) {
				return 0, err
			}
			continue
		}
		var m mark
		if json.Unmarshal(kv.Value, &m) == nil && !containsAll(m.Missing, on) {
			m.Missing = union(m.Missing, on)
			v, _ := json.Marshal(m)
			if _, err := st.Put(ctx, kv.Key, v, kv.ModRevision); err != nil && !errors.Is(err, metadata.ErrBadVersion) && !errors.Is(err, metadata.ErrNotFound) {
				return 0, err
			}
		}
	}
	for id, kv := range marked {
		if !exists[id] {
			if err := st.Delete(ctx, kv.Key, kv.ModRevision); err != nil && !errors.Is(err, metadata.ErrNotFound) && !errors.Is(err, metadata.ErrBadVersion) {
				return 0, err
			}
		}
	}
	s.underreplicated.Store(int64(count))
	s.lostBookies.Store(int64(len(lost)))
	return wait, nil
}

// workerLoop re-replicates marked ledgers, one at a time, each under a lock.
func (s *Service) workerLoop() {
	wake := make(chan struct{}, 1)
	go func() {
		for s.ctx.Err() == nil {
			for wr := range s.opts.Metadata.Watch(s.ctx, metadata.UnderreplicatedPrefix, 0) {
				if wr.Err != nil {
					break
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
			s.sleep(time.Second)
		}
	}()
	notBefore := map[int64]time.Time{} // ledgers to leave alone for a while
	failures := map[int64]int{}
	var sess *metadata.Session
	defer func() {
		if sess != nil {
			sess.Close()
		}
	}()
	for s.ctx.Err() == nil {
		if sess == nil || isDone(sess) {
			var err error
			if sess, err = s.opts.Metadata.NewSession(s.ctx, s.opts.SessionTTL); err != nil {
				sess = nil
				s.sleep(time.Second)
				continue
			}
		}
		wait := s.opts.CheckInterval
		kvs, err := metadata.ListAll(s.ctx, s.opts.Metadata, metadata.UnderreplicatedPrefix, false)
		if err != nil {
			wait = time.Second
		}
		rand.Shuffle(len(kvs), func(i, j int) { kvs[i], kvs[j] = kvs[j], kvs[i] })
		for _, kv := range kvs {
			if s.ctx.Err() != nil {
				return
			}
			id, err := parseID(kv.Key, metadata.UnderreplicatedPrefix)
			if err != nil {
				continue
			}
			if t, ok := notBefore[id]; ok && time.Now().Before(t) {
				wait = min(wait, time.Until(t))
				continue
			}
			var m mark
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				s.log.Warn("ignoring malformed under-replication mark", "key", kv.Key, "err", err)
				continue
			}
			retry, err := s.withLock(sess, id, func() (time.Duration, error) { return s.replicate(id, kv, m) })
			switch {
			case err != nil:
				failures[id]++
				s.failures.Add(1)
				backoff := min(time.Second<<min(failures[id], 6), time.Minute)
				notBefore[id] = time.Now().Add(backoff)
				wait = min(wait, backoff)
				s.log.Warn("re-replication failed; retrying later", "ledger", id, "err", err, "retryIn", backoff)
			case retry > 0:
				notBefore[id] = time.Now().Add(retry)
				wait = min(wait, retry)
			default:
				delete(notBefore, id)
				delete(failures, id)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-wake:
		case <-t.C:
		case <-s.ctx.Done():
		}
		t.Stop()
	}
}

func isDone(sess *metadata.Session) bool {
	select {
	case <-sess.Done():
		return true
	default:
		return false
	}
}

// errLocked: another worker holds the ledger.
var errLocked = errors.New("autorecovery: ledger locked by another worker")

// withLock runs fn while holding the ledger's replication lock. A ledger
// another worker holds is skipped for a while.
func (s *Service) withLock(sess *metadata.Session, id int64, fn func() (time.Duration, error)) (time.Duration, error) {
	key := metadata.ReplicationLockKey(id)
	if _, err := s.opts.Metadata.Create(s.ctx, key, []byte(s.opts.NodeID), metadata.WithSession(sess)); err != nil {
		if errors.Is(err, metadata.ErrExists) {
			return s.opts.SessionTTL, nil
		}
		return 0, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.opts.Metadata.Delete(ctx, key, metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			s.log.Warn("releasing a replication lock failed; it expires with the session", "ledger", id, "err", err)
		}
	}()
	return fn()
}

// replicate replaces every lost bookie of one marked ledger and removes the
// mark when none is left. It returns when to look again if it had to wait
// (an open ledger's grace period, a recovery in progress).
func (s *Service) replicate(id int64, kv metadata.KV, m mark) (time.Duration, error) {
	ctx := s.ctx
	lc := s.opts.Ledgers
	replaced := false
	for attempt := 0; ; attempt++ {
		if attempt > 20 {
			return 0, fmt.Errorf("ledger %d kept changing during re-replication", id)
		}
		md, err := lc.Metadata(ctx, id)
		if errors.Is(err, ledger.ErrNotFound) {
			return 0, s.unmark(kv)
		}
		if err != nil {
			return 0, err
		}
		replaceable, err := s.replaceable(ctx, m.Missing)
		if err != nil {
			return 0, err
		}
		seg, slot := findLost(md, replaceable)
		if seg < 0 {
			if replaced {
				s.ledgers.Add(1)
			}
			return 0, s.unmark(kv)
		}
		if _, closed := md.SegmentEnd(seg); !closed {
			if md.State == ledger.StateInRecovery {
				return s.opts.SessionTTL, nil // someone is recovering it
			}
			if left := time.UnixMilli(m.Since).Add(s.opts.OpenLedgerGracePeriod).Sub(time.Now()); left > 0 {
				return left, nil // its writer may still move off the lost bookie
			}
			s.log.Info("recovering an open ledger whose last ensemble lists a lost bookie", "ledger", id, "bookie", md.Segments[seg].Ensemble[slot])
			if _, err := lc.OpenRecover(ctx, id, md.Password); err != nil {
				return 0, fmt.Errorf("recover ledger %d: %w", id, err)
			}
			s.recovered.Add(1)
			continue
		}
		old := md.Segments[seg].Ensemble[slot]
		exclude := append(slices.Clone(md.Segments[seg].Ensemble), m.Missing...)
		target, err := lc.ReplacementBookie(ctx, exclude)
		if err != nil {
			return 0, fmt.Errorf("ledger %d: no bookie to replace %s: %w", id, old, err)
		}
		_, st, err := lc.ReplaceBookie(ctx, id, seg, old, target)
		s.entries.Add(st.Entries)
		s.bytes.Add(st.Bytes)
		switch {
		case errors.Is(err, ledger.ErrSegmentChanged):
			continue
		case errors.Is(err, ledger.ErrNotFound):
			return 0, s.unmark(kv)
		case err != nil:
			return 0, err
		}
		s.segments.Add(1)
		replaced = true
	}
}

// replaceable returns the bookies to move ledgers off: the mark's missing
// bookies that are still unregistered, and bookies being decommissioned.
func (s *Service) replaceable(ctx context.Context, missing []string) (map[string]bool, error) {
	regs, err := metadata.ListBookies(ctx, s.opts.Metadata)
	if err != nil {
		return nil, err
	}
	registered := map[string]bool{}
	for _, r := range regs {
		registered[r.ID] = true
	}
	decom, err := listIDs(ctx, s.opts.Metadata, metadata.DecommissionPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, b := range missing {
		if !registered[b] {
			out[b] = true
		}
	}
	for _, b := range decom {
		out[b] = true
	}
	return out, nil
}

// findLost returns the first segment and slot that list a bookie in lost,
// or -1.
func findLost(md ledger.Metadata, lost map[string]bool) (seg, slot int) {
	for i, sg := range md.Segments {
		for j, b := range sg.Ensemble {
			if lost[b] {
				return i, j
			}
		}
	}
	return -1, -1
}

// unmark removes a ledger's mark unless the auditor changed it meanwhile.
func (s *Service) unmark(kv metadata.KV) error {
	err := s.opts.Metadata.Delete(s.ctx, kv.Key, kv.ModRevision)
	if errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrBadVersion) {
		return nil
	}
	return err
}

// ListLedgers returns the metadata of every ledger.
func ListLedgers(ctx context.Context, st metadata.Store) ([]ledger.Metadata, error) {
	kvs, err := metadata.ListAll(ctx, st, metadata.LedgersPrefix, false)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Metadata, 0, len(kvs))
	for _, kv := range kvs {
		id, err := metadata.ParseLedgerKey(kv.Key)
		if err != nil {
			continue
		}
		md, err := ledger.DecodeMetadata(id, kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		out = append(out, md)
	}
	return out, nil
}

func listIDs(ctx context.Context, st metadata.Store, prefix string) ([]string, error) {
	kvs, err := metadata.ListAll(ctx, st, prefix, true)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = strings.TrimPrefix(kv.Key, prefix)
	}
	return out, nil
}

func parseID(key, prefix string) (int64, error) {
	return metadata.ParseLedgerKey(metadata.LedgersPrefix + strings.TrimPrefix(key, prefix))
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}
