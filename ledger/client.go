// Package ledger is the replicated-ledger client: BookKeeper semantics over
// Strata bookies. A ledger is a single-writer, append-only sequence of
// entries replicated to a write quorum Qw of an ensemble of E bookies and
// acknowledged once an ack quorum Qa of them made it durable, strictly in
// entry order. Writers replace failed bookies (ensemble change); readers fail
// over between replicas and never return an entry failing its digest; a
// second client can fence and recover an abandoned ledger, after which the
// old writer gets ErrFenced. See docs/storage-protocol.md.
package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/internal/testfault"
	"github.com/strata-mq/strata/metadata"
)

// ClientOptions configures a Client.
type ClientOptions struct {
	// Metadata is the local metadata store. Required.
	Metadata metadata.Store
	// AddTimeout: a bookie that has not answered an add for this long is
	// treated as failed and replaced; default 10 s.
	AddTimeout time.Duration
	// ReadTimeout bounds each read, fence and LAC request to a bookie;
	// default 10 s.
	ReadTimeout time.Duration
	// MaxEntrySize is the largest payload accepted; default 5 MiB.
	MaxEntrySize int
	// QuarantineTime: a bookie that failed is avoided for new ensembles for
	// this long when others are available; default 30 s.
	QuarantineTime time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (o *ClientOptions) ensureDefaults() {
	if o.AddTimeout <= 0 {
		o.AddTimeout = 10 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.MaxEntrySize <= 0 {
		o.MaxEntrySize = 5 << 20
	}
	if o.QuarantineTime <= 0 {
		o.QuarantineTime = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Client creates, opens, recovers and deletes ledgers. It is safe for
// concurrent use and shares bookie connections between ledgers.
type Client struct {
	opts  ClientOptions
	store metadata.Store
	ids   *metadata.IDGenerator
	conns *connPool
	log   *slog.Logger

	mu struct {
		sync.Mutex
		quarantine map[string]time.Time // bookie id -> until
		addrs      map[string]string    // bookie id -> last known address
	}
}

// NewClient returns a client over the given metadata store.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.Metadata == nil {
		return nil, errors.New("ledger: ClientOptions.Metadata is required")
	}
	opts.ensureDefaults()
	block := int64(16)
	if testfault.On(testfault.LedgerIDsUnordered) {
		block = 1000 // brokers' blocks far apart: a topic that moves likely lands on a lower one
	}
	c := &Client{
		opts:  opts,
		store: opts.Metadata,
		ids:   metadata.NewIDGenerator(opts.Metadata, metadata.LedgerIDKey, block),
		conns: newConnPool(opts.MaxEntrySize),
		log:   opts.Logger,
	}
	c.mu.quarantine = make(map[string]time.Time)
	c.mu.addrs = make(map[string]string)
	return c, nil
}

// Close releases the client's bookie connections. Handles opened from it
// stop working.
func (c *Client) Close() error { return c.conns.close() }

// CreateOptions configures a new ledger.
type CreateOptions struct {
	EnsembleSize, WriteQuorum, AckQuorum int
	// Password guards the ledger: writers and fencing readers must present it.
	Password []byte
	// Custom metadata stored with the ledger.
	Custom map[string]string
	// IDAbove: the new ledger's id is greater than this. Ledger ids grow per
	// client, not across clients (each reserves its own block), so a log
	// made of ledgers from several clients (a topic that moved between
	// brokers) passes its last ledger's id to keep ids increasing along it.
	IDAbove int64
}

// MasterKey derives from a ledger password the key bookies check on adds
// and fences (HMAC-SHA1 keyed with "ledger").
func MasterKey(password []byte) []byte {
	m := hmac.New(sha1.New, []byte("ledger"))
	m.Write(password)
	return m.Sum(nil)
}

// Create allocates a ledger id, picks an ensemble of writable bookies and
// records the ledger OPEN in metadata. The returned writer appends to it.
func (c *Client) Create(ctx context.Context, opts CreateOptions) (*Writer, error) {
	if err := validQuorums(opts.EnsembleSize, opts.WriteQuorum, opts.AckQuorum); err != nil {
		return nil, err
	}
	ensemble, err := c.selectBookies(ctx, opts.EnsembleSize, nil)
	if err != nil {
		return nil, err
	}
	id, err := c.ids.NextAbove(ctx, opts.IDAbove)
	if err != nil {
		return nil, fmt.Errorf("ledger: allocate id: %w", err)
	}
	md := Metadata{
		ID: id, State: StateOpen,
		EnsembleSize: opts.EnsembleSize, WriteQuorum: opts.WriteQuorum, AckQuorum: opts.AckQuorum,
		LastEntryID: -1, CTime: time.Now().UnixMilli(),
		Segments:   []Segment{{FirstEntryID: 0, Ensemble: ensemble}},
		DigestType: DigestCRC32C, Password: opts.Password, Custom: opts.Custom,
	}
	rev, err := c.store.Create(ctx, metadata.LedgerKey(id), md.encode())
	if err != nil {
		return nil, fmt.Errorf("ledger: create metadata of %d: %w", id, err)
	}
	md.Version = rev
	return newWriter(c, md, MasterKey(opts.Password), -1, 0, false), nil
}

// Metadata reads a ledger's metadata.
func (c *Client) Metadata(ctx context.Context, id int64) (Metadata, error) {
	kv, err := c.store.Get(ctx, metadata.LedgerKey(id))
	if errors.Is(err, metadata.ErrNotFound) {
		return Metadata{}, fmt.Errorf("ledger %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Metadata{}, fmt.Errorf("ledger %d: read metadata: %w", id, err)
	}
	return DecodeMetadata(id, kv.Value, kv.ModRevision)
}

// Delete removes a ledger's metadata; bookies garbage-collect its entries.
// Deleting a missing ledger is not an error.
func (c *Client) Delete(ctx context.Context, id int64) error {
	err := c.store.Delete(ctx, metadata.LedgerKey(id), metadata.AnyVersion)
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("ledger %d: delete: %w", id, err)
	}
	return nil
}

// updateMetadata applies fn to the latest metadata with compare-and-swap,
// re-reading and retrying on concurrent changes. fn returns false to leave
// the metadata unchanged (the current copy is returned).
func (c *Client) updateMetadata(ctx context.Context, md Metadata, fn func(*Metadata) (bool, error)) (Metadata, error) {
	for {
		next := md.clone()
		change, err := fn(&next)
		if err != nil || !change {
			return md, err
		}
		rev, err := c.store.Put(ctx, metadata.LedgerKey(md.ID), next.encode(), md.Version)
		if err == nil {
			next.Version = rev
			return next, nil
		}
		if errors.Is(err, metadata.ErrNotFound) {
			return md, fmt.Errorf("ledger %d: %w (deleted)", md.ID, ErrNotFound)
		}
		if !errors.Is(err, metadata.ErrBadVersion) {
			return md, fmt.Errorf("ledger %d: update metadata: %w", md.ID, err)
		}
		if md, err = c.Metadata(ctx, md.ID); err != nil {
			return md, err
		}
	}
}

// selectBookies picks n distinct writable bookies, excluding the given ids,
// preferring bookies not recently failed and spreading over racks.
func (c *Client) selectBookies(ctx context.Context, n int, exclude []string) ([]string, error) {
	regs, err := metadata.ListBookies(ctx, c.store)
	if err != nil {
		return nil, fmt.Errorf("ledger: list bookies: %w", err)
	}
	now := time.Now()
	var fresh, suspect []metadata.BookieRegistration
	need := int64(c.opts.MaxEntrySize + bookiepb.EnvelopeOverhead)
	small := 0
	c.mu.Lock()
	for _, r := range regs {
		c.mu.addrs[r.ID] = r.Addr
		if r.ReadOnly || slices.Contains(exclude, r.ID) {
			continue
		}
		if r.MaxEntrySize > 0 && r.MaxEntrySize < need {
			small++ // it would refuse our largest entries
			continue
		}
		if until, ok := c.mu.quarantine[r.ID]; ok && now.Before(until) {
			suspect = append(suspect, r)
		} else {
			fresh = append(fresh, r)
		}
	}
	c.mu.Unlock()
	rand.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	rand.Shuffle(len(suspect), func(i, j int) { suspect[i], suspect[j] = suspect[j], suspect[i] })
	cands := append(fresh, suspect...)
	if len(cands) < n {
		err := fmt.Errorf("%w: need %d, have %d writable (of %d registered, %d excluded)",
			ErrNotEnoughBookies, n, len(cands), len(regs), len(exclude))
		if small > 0 {
			err = fmt.Errorf("%w; %d bookies accept entries smaller than this client's %d-byte maximum (raise their --max-entry-size or lower the broker's --max-message-size)",
				err, small, need)
		}
		return nil, err
	}
	// Spread over racks: first one bookie per rack, then fill up.
	var picked []string
	racks := map[string]bool{}
	for _, r := range cands {
		if len(picked) < n && !racks[r.Rack] {
			racks[r.Rack] = true
			picked = append(picked, r.ID)
		}
	}
	for _, r := range cands {
		if len(picked) < n && !slices.Contains(picked, r.ID) {
			picked = append(picked, r.ID)
		}
	}
	return picked, nil
}

// quarantine marks a bookie as recently failed.
func (c *Client) quarantine(id string) {
	c.mu.Lock()
	c.mu.quarantine[id] = time.Now().Add(c.opts.QuarantineTime)
	c.mu.Unlock()
}

// addr resolves a bookie id to its address: the registered address when
// known, else the id itself (ids default to the advertised address).
func (c *Client) addr(ctx context.Context, id string) string {
	c.mu.Lock()
	a, ok := c.mu.addrs[id]
	c.mu.Unlock()
	if ok {
		return a
	}
	kv, err := c.store.Get(ctx, metadata.BookieKey(id))
	if err == nil {
		var r metadata.BookieRegistration
		if jsonUnmarshal(kv.Value, &r) == nil && r.Addr != "" {
			c.mu.Lock()
			c.mu.addrs[id] = r.Addr
			c.mu.Unlock()
			return r.Addr
		}
	}
	return id
}
