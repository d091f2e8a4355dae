package metadata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultRoot is the key prefix under which Strata keeps all its metadata.
const DefaultRoot = "/strata"

// EtcdConfig configures an etcd-backed Store.
type EtcdConfig struct {
	// Endpoints of the etcd cluster, e.g. ["127.0.0.1:2379"].
	Endpoints []string
	// Root is the key prefix for every key; DefaultRoot when empty.
	Root string
	// DialTimeout bounds the initial connection; 5 s when zero.
	DialTimeout time.Duration
}

type etcdStore struct {
	cli  *clientv3.Client
	root string

	mu struct {
		sync.Mutex
		closed bool
	}
}

// NewEtcdStore connects to etcd. It does not fail when etcd is unreachable at
// first; operations fail (and callers retry) until it is reachable.
func NewEtcdStore(cfg EtcdConfig) (Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("metadata: no etcd endpoints")
	}
	root := cfg.Root
	if root == "" {
		root = DefaultRoot
	}
	root = strings.TrimSuffix(root, "/")
	dt := cfg.DialTimeout
	if dt == 0 {
		dt = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: dt,
		Logger:      zap.NewNop(),
		// A generous request size: ledger lists of long-lived topics grow.
		MaxCallSendMsgSize: 8 << 20,
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: connect to etcd %v: %w", cfg.Endpoints, err)
	}
	return &etcdStore{cli: cli, root: root}, nil
}

func (s *etcdStore) abs(key string) string { return s.root + key }

func (s *etcdStore) rel(key []byte) string { return strings.TrimPrefix(string(key), s.root) }

func (s *etcdStore) kv(k *mvccpb.KeyValue) KV {
	return KV{Key: s.rel(k.Key), Value: k.Value, ModRevision: k.ModRevision, CreateRevision: k.CreateRevision, Lease: k.Lease}
}

func (s *etcdStore) Get(ctx context.Context, key string) (KV, error) {
	resp, err := s.cli.Get(ctx, s.abs(key))
	if err != nil {
		return KV{}, s.wrap("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return s.kv(resp.Kvs[0]), nil
}

func parsePutOptions(opts []PutOption) putOptions {
	var po putOptions
	for _, o := range opts {
		o(&po)
	}
	return po
}

func (s *etcdStore) leaseOpts(po putOptions) ([]clientv3.OpOption, error) {
	if po.session == nil {
		return nil, nil
	}
	select {
	case <-po.session.Done():
		return nil, ErrSessionExpired
	default:
	}
	return []clientv3.OpOption{clientv3.WithLease(clientv3.LeaseID(po.session.Lease()))}, nil
}

// write runs op if the key's own condition and every guard hold. On
// failure it tells a failed guard (ErrGuardFailed) from a failed own
// condition (own's error).
func (s *etcdStore) write(ctx context.Context, what, key string, cond clientv3.Cmp, op clientv3.Op, po putOptions, own func(*clientv3.TxnResponse) error) (int64, error) {
	k := s.abs(key)
	cmps := []clientv3.Cmp{cond}
	elses := []clientv3.Op{clientv3.OpGet(k, clientv3.WithKeysOnly())}
	for _, g := range po.guards {
		gk := s.abs(g.key)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(gk), "=", g.rev))
		elses = append(elses, clientv3.OpGet(gk, clientv3.WithKeysOnly()))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(op).Else(elses...).Commit()
	if err != nil {
		return 0, s.wrap(what, key, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	for i, g := range po.guards {
		r := resp.Responses[i+1].GetResponseRange()
		if r == nil || len(r.Kvs) == 0 || r.Kvs[0].ModRevision != g.rev {
			return 0, fmt.Errorf("%s %s: %w: %s", what, key, ErrGuardFailed, g.key)
		}
	}
	return 0, own(resp)
}

func (s *etcdStore) Create(ctx context.Context, key string, value []byte, opts ...PutOption) (int64, error) {
	po := parsePutOptions(opts)
	lo, err := s.leaseOpts(po)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, err)
	}
	k := s.abs(key)
	return s.write(ctx, "create", key, clientv3.Compare(clientv3.CreateRevision(k), "=", 0), clientv3.OpPut(k, string(value), lo...), po,
		func(*clientv3.TxnResponse) error { return fmt.Errorf("create %s: %w", key, ErrExists) })
}

func (s *etcdStore) Put(ctx context.Context, key string, value []byte, expected int64, opts ...PutOption) (int64, error) {
	po := parsePutOptions(opts)
	lo, err := s.leaseOpts(po)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	k := s.abs(key)
	if expected == AnyVersion && len(po.guards) == 0 {
		resp, err := s.cli.Put(ctx, k, string(value), lo...)
		if err != nil {
			return 0, s.wrap("put", key, err)
		}
		return resp.Header.Revision, nil
	}
	cond := clientv3.Compare(clientv3.ModRevision(k), "=", expected)
	if expected == AnyVersion {
		cond = clientv3.Compare(clientv3.ModRevision(k), ">", -1) // always true
	}
	return s.write(ctx, "put", key, cond, clientv3.OpPut(k, string(value), lo...), po,
		func(resp *clientv3.TxnResponse) error { return s.casFailure("put", key, resp) })
}

func (s *etcdStore) Delete(ctx context.Context, key string, expected int64, opts ...PutOption) error {
	po := parsePutOptions(opts)
	k := s.abs(key)
	if expected == AnyVersion && len(po.guards) == 0 {
		resp, err := s.cli.Delete(ctx, k)
		if err != nil {
			return s.wrap("delete", key, err)
		}
		if resp.Deleted == 0 {
			return fmt.Errorf("delete %s: %w", key, ErrNotFound)
		}
		return nil
	}
	cond := clientv3.Compare(clientv3.ModRevision(k), "=", expected)
	if expected == AnyVersion {
		cond = clientv3.Compare(clientv3.CreateRevision(k), ">", 0) // exists
	}
	_, err := s.write(ctx, "delete", key, cond, clientv3.OpDelete(k), po,
		func(resp *clientv3.TxnResponse) error { return s.casFailure("delete", key, resp) })
	return err
}

// casFailure distinguishes a vanished key from a changed one.
func (s *etcdStore) casFailure(op, key string, resp *clientv3.TxnResponse) error {
	if len(resp.Responses) > 0 {
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) == 0 {
			return fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
		}
	}
	return fmt.Errorf("%s %s: %w", op, key, ErrBadVersion)
}

func (s *etcdStore) DeletePrefix(ctx context.Context, prefix string) (int64, error) {
	resp, err := s.cli.Delete(ctx, s.abs(prefix), clientv3.WithPrefix())
	if err != nil {
		return 0, s.wrap("delete prefix", prefix, err)
	}
	return resp.Deleted, nil
}

func (s *etcdStore) List(ctx context.Context, prefix string, opts ListOptions) (ListPage, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	p := s.abs(prefix)
	start := p
	if opts.After != "" {
		start = s.abs(opts.After) + "\x00"
	}
	ops := []clientv3.OpOption{
		clientv3.WithRange(clientv3.GetPrefixRangeEnd(p)),
		clientv3.WithLimit(int64(limit)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend),
	}
	if opts.KeysOnly {
		ops = append(ops, clientv3.WithKeysOnly())
	}
	resp, err := s.cli.Get(ctx, start, ops...)
	if err != nil {
		return ListPage{}, s.wrap("list", prefix, err)
	}
	page := ListPage{KVs: make([]KV, 0, len(resp.Kvs)), More: resp.More}
	for _, k := range resp.Kvs {
		page.KVs = append(page.KVs, s.kv(k))
	}
	return page, nil
}

func (s *etcdStore) Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse {
	out := make(chan WatchResponse, 16)
	ops := []clientv3.OpOption{clientv3.WithPrefix()}
	if fromRev > 0 {
		ops = append(ops, clientv3.WithRev(fromRev))
	}
	// WithRequireLeader makes the watch fail instead of hanging silently when
	// the etcd member loses its cluster.
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.abs(prefix), ops...)
	go func() {
		defer close(out)
		for wr := range wch {
			if err := wr.Err(); err != nil {
				select {
				case out <- WatchResponse{Err: fmt.Errorf("watch %s: %w", prefix, err)}:
				case <-ctx.Done():
				}
				return
			}
			resp := WatchResponse{Events: make([]Event, 0, len(wr.Events))}
			for _, ev := range wr.Events {
				e := Event{Type: EventPut, KV: s.kv(ev.Kv)}
				if ev.Type == clientv3.EventTypeDelete {
					e.Type = EventDelete
				}
				resp.Events = append(resp.Events, e)
			}
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (s *etcdStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil
	}
	s.mu.closed = true
	return s.cli.Close()
}

func (s *etcdStore) wrap(op, key string, err error) error {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		err = ErrSessionExpired
	}
	if errors.Is(err, context.Canceled) && s.isClosed() {
		err = ErrClosed
	}
	return fmt.Errorf("metadata %s %s: %w", op, key, err)
}

func (s *etcdStore) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}
