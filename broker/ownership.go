package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// brokerInfo is a broker's registration (/brokers/{id}) and the value of
// the ownership keys it holds.
type brokerInfo struct {
	ID      string `json:"id"`
	GRPCURL string `json:"grpcUrl"`
	HTTPURL string `json:"httpUrl"`
	Cluster string `json:"cluster,omitempty"`
	Bundles int    `json:"bundles"`
}

// ownership keeps the broker's session, its registration and the bundles
// it owns. Ownership keys are bound to the session lease, so a dead broker's
// bundles become free when its lease expires.
type ownership struct {
	b  *Broker
	mu struct {
		sync.Mutex
		sess     *metadata.Session
		owned    map[string]bool // ownership keys held
		stopping bool            // shutting down: never register again
	}
	changed chan struct{}
	stopped chan struct{} // closed when stopping begins
}

func newOwnership(b *Broker) *ownership {
	o := &ownership{b: b, changed: make(chan struct{}, 1), stopped: make(chan struct{})}
	o.mu.owned = make(map[string]bool)
	return o
}

func (o *ownership) info() brokerInfo {
	o.mu.Lock()
	n := len(o.mu.owned)
	o.mu.Unlock()
	return brokerInfo{ID: o.b.id, GRPCURL: o.b.grpcURL, HTTPURL: o.b.httpURL, Cluster: o.b.opts.Cluster, Bundles: n}
}

// run registers the broker and keeps it registered until the broker stops.
// When the session is lost every topic is unloaded: the bundles may already
// belong to another broker.
func (o *ownership) run() {
	b := o.b
	backoff := 200 * time.Millisecond
	for b.ctx.Err() == nil {
		sess, err := b.md.NewSession(b.ctx, b.opts.SessionTTL)
		if err != nil {
			b.setNotReady(fmt.Sprintf("metadata session: %v", err))
			select {
			case <-time.After(backoff):
			case <-b.ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		o.mu.Lock()
		o.mu.sess = sess
		o.mu.Unlock()
		err = o.publish(sess)
		b.setNotReady(fmt.Sprintf("session lost: %v", err))
		if b.ctx.Err() != nil || o.isStopping() {
			return
		}
		b.log.Warn("broker session lost; unloading every topic", "err", err)
		o.mu.Lock()
		o.mu.owned = make(map[string]bool)
		o.mu.sess = nil
		o.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b.unloadAll(ctx)
		cancel()
	}
}

// publish keeps the registration current until the session ends.
func (o *ownership) publish(sess *metadata.Session) error {
	b := o.b
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		data, _ := json.Marshal(o.info())
		if _, err := b.md.Put(b.ctx, metadata.BrokersPrefix+b.id, data, metadata.AnyVersion, metadata.WithSession(sess)); err != nil {
			return err
		}
		if !b.ready.Load() {
			b.ready.Store(true)
			b.log.Info("broker ready", "grpc", b.grpcURL, "http", b.httpURL)
		}
		select {
		case <-t.C:
		case <-o.changed:
		case <-sess.Done():
			return metadata.ErrSessionExpired
		case <-b.ctx.Done():
			return b.ctx.Err()
		case <-o.stopped:
			return errors.New("broker stopping")
		}
	}
}

func (o *ownership) isStopping() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mu.stopping
}

// unregister starts a graceful stop: the broker leaves the list of live
// brokers, so no lookup sends clients here any more, but it keeps its
// session and bundles until they are released.
func (o *ownership) unregister(ctx context.Context) {
	o.mu.Lock()
	if o.mu.stopping {
		o.mu.Unlock()
		return
	}
	o.mu.stopping = true
	o.mu.Unlock()
	close(o.stopped)
	if err := o.b.md.Delete(ctx, metadata.BrokersPrefix+o.b.id, metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		o.b.log.Warn("unregister broker", "err", err)
	}
}

func (o *ownership) notify() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// session returns the live session, or ErrNotReady.
func (o *ownership) session() (*metadata.Session, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mu.sess == nil {
		return nil, ErrNotReady
	}
	return o.mu.sess, nil
}

// owns reports whether this broker holds the ownership key.
func (o *ownership) owns(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mu.owned[key]
}

// acquire claims an unowned bundle for this broker. It returns the owner —
// this broker, or whoever won the race.
func (o *ownership) acquire(ctx context.Context, key string) (brokerInfo, error) {
	sess, err := o.session()
	if err != nil {
		return brokerInfo{}, err
	}
	self := o.info()
	data, _ := json.Marshal(self)
	_, err = o.b.md.Create(ctx, key, data, metadata.WithSession(sess))
	if errors.Is(err, metadata.ErrExists) {
		return o.owner(ctx, key)
	}
	if err != nil {
		return brokerInfo{}, fmt.Errorf("acquire %s: %w", key, err)
	}
	o.mu.Lock()
	o.mu.owned[key] = true
	o.mu.Unlock()
	o.notify()
	o.b.log.Info("acquired bundle", "bundle", key)
	return self, nil
}

// owner reads the owner of a bundle; ok is false when unowned.
func (o *ownership) owner(ctx context.Context, key string) (brokerInfo, error) {
	kv, err := o.b.md.Get(ctx, key)
	if err != nil {
		return brokerInfo{}, err
	}
	var bi brokerInfo
	if err := json.Unmarshal(kv.Value, &bi); err != nil {
		return brokerInfo{}, fmt.Errorf("ownership %s: %w", key, err)
	}
	if bi.ID == o.b.id {
		// Ours (for instance after a restart with the same id while the
		// old lease lives): usable only if it is our current session's.
		if !o.owns(key) {
			return bi, fmt.Errorf("%w: bundle %s is held by a previous session of this broker", ErrNotReady, key)
		}
	}
	return bi, nil
}

// release gives up a bundle.
func (o *ownership) release(ctx context.Context, key string) {
	o.mu.Lock()
	held := o.mu.owned[key]
	delete(o.mu.owned, key)
	o.mu.Unlock()
	if held {
		if err := o.b.md.Delete(ctx, key, metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			o.b.log.Warn("release bundle", "bundle", key, "err", err)
		}
		o.notify()
	}
}

// releaseAll gives up every bundle and ends the session (graceful shutdown).
func (o *ownership) releaseAll(ctx context.Context) {
	o.mu.Lock()
	keys := make([]string, 0, len(o.mu.owned))
	for k := range o.mu.owned {
		keys = append(keys, k)
	}
	sess := o.mu.sess
	o.mu.Unlock()
	for _, k := range keys {
		o.release(ctx, k)
	}
	if sess != nil {
		sess.Close()
	}
}

// orphan stops renewing the session, as a crashed broker would.
func (o *ownership) orphan() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mu.sess != nil {
		o.mu.sess.Orphan()
	}
}

// bundleKey returns the ownership key of the bundle holding topic t.
func (b *Broker) bundleKey(t naming.Topic) (string, error) {
	p, err := b.policies(t.NamespaceName())
	if err != nil {
		return "", err
	}
	bd := tenants.NewBundlesData(tenants.DefaultBundles)
	if p.Bundles != nil && len(p.Bundles.Boundaries) >= 2 {
		bd = *p.Bundles
	}
	// Partitions of one topic hash separately, spreading over bundles.
	h := uint64(crc32.ChecksumIEEE([]byte(t.String())))
	bounds := make([]uint64, len(bd.Boundaries))
	for i, s := range bd.Boundaries {
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		if err != nil {
			return "", fmt.Errorf("namespace %s: bad bundle boundary %q", t.NamespaceName(), s)
		}
		bounds[i] = v
	}
	i := sort.Search(len(bounds), func(i int) bool { return bounds[i] > h }) - 1
	if i < 0 || i >= len(bounds)-1 {
		i = len(bounds) - 2
	}
	return fmt.Sprintf("%s%s/%s_%s", metadata.OwnershipPrefix, t.NamespaceName(), bd.Boundaries[i], bd.Boundaries[i+1]), nil
}

// lookup finds (or assigns) the broker serving topic t.
func (b *Broker) lookup(ctx context.Context, t naming.Topic, authoritative bool) (bi brokerInfo, redirect bool, err error) {
	if !b.ready.Load() {
		return brokerInfo{}, false, ErrNotReady
	}
	key, err := b.bundleKey(t)
	if err != nil {
		return brokerInfo{}, false, err
	}
	bi, err = b.own.owner(ctx, key)
	if err == nil {
		return bi, false, nil
	}
	if !errors.Is(err, metadata.ErrNotFound) {
		return brokerInfo{}, false, err
	}
	if !authoritative {
		cand, err := b.leastLoaded(ctx)
		if err != nil {
			return brokerInfo{}, false, err
		}
		if cand.ID != b.id {
			return cand, true, nil
		}
	}
	bi, err = b.own.acquire(ctx, key)
	return bi, false, err
}

// leastLoaded picks the live broker of this cluster owning the fewest bundles.
func (b *Broker) leastLoaded(ctx context.Context) (brokerInfo, error) {
	regs, err := metadata.ListAll(ctx, b.md, metadata.BrokersPrefix, false)
	if err != nil {
		return brokerInfo{}, err
	}
	owners, err := metadata.ListAll(ctx, b.md, metadata.OwnershipPrefix, false)
	if err != nil {
		return brokerInfo{}, err
	}
	load := map[string]int{}
	for _, kv := range owners {
		var bi brokerInfo
		if json.Unmarshal(kv.Value, &bi) == nil {
			load[bi.ID]++
		}
	}
	var best []brokerInfo
	bestLoad := -1
	for _, kv := range regs {
		var bi brokerInfo
		if json.Unmarshal(kv.Value, &bi) != nil || (bi.Cluster != "" && bi.Cluster != b.opts.Cluster) {
			continue
		}
		switch l := load[bi.ID]; {
		case bestLoad < 0 || l < bestLoad:
			best, bestLoad = []brokerInfo{bi}, l
		case l == bestLoad:
			best = append(best, bi)
		}
	}
	if len(best) == 0 {
		return b.own.info(), nil
	}
	return best[rand.IntN(len(best))], nil
}

// checkOwner verifies that this broker serves topic t, acquiring its bundle
// when it is unowned (a client that looked up a topic just before its
// previous owner died connects straight here).
func (b *Broker) checkOwner(ctx context.Context, t naming.Topic) (string, error) {
	if !b.ready.Load() {
		return "", ErrNotReady
	}
	key, err := b.bundleKey(t)
	if err != nil {
		return "", err
	}
	if b.own.owns(key) {
		return key, nil
	}
	bi, err := b.own.owner(ctx, key)
	if errors.Is(err, metadata.ErrNotFound) {
		bi, err = b.own.acquire(ctx, key)
	}
	if err != nil {
		return "", err
	}
	if bi.ID != b.id {
		return "", fmt.Errorf("%w: %s is served by %s", ErrNotOwner, t, bi.GRPCURL)
	}
	return key, nil
}
