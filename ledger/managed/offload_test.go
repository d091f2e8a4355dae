package managed_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-mq/strata/api/bookiepb"
	"github.com/strata-mq/strata/bookie"
	"github.com/strata-mq/strata/internal/s3test"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/offload"
)

// offloadDriver is one object store the offload tests run against.
type offloadDriver struct {
	name string
	open func(t *testing.T) (offload.BlobStore, *s3test.Server)
}

var offloadDrivers = []offloadDriver{
	{"filesystem", func(t *testing.T) (offload.BlobStore, *s3test.Server) {
		st, err := offload.NewFSStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return st, nil
	}},
	{"s3", func(t *testing.T) (offload.BlobStore, *s3test.Server) {
		srv := s3test.Start(t)
		return newS3Store(t, srv), srv
	}},
}

func newS3Store(t testing.TB, srv *s3test.Server) *offload.S3Store {
	t.Helper()
	st, err := offload.NewS3Store(offload.S3Options{
		Endpoint: srv.URL(), Region: srv.Region, Bucket: srv.Bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true,
		MaxRetries: 2, PartSize: offload.MinS3PartSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	return st
}

// forEachDriver runs fn as a subtest per driver.
func forEachDriver(t *testing.T, fn func(t *testing.T, driver string, store offload.BlobStore, srv *s3test.Server)) {
	for _, d := range offloadDrivers {
		t.Run(d.name, func(t *testing.T) {
			store, srv := d.open(t)
			fn(t, d.name, store, srv)
		})
	}
}

// livePolicy is an offload policy the test changes while the log runs.
type livePolicy struct {
	mu sync.Mutex
	p  managed.OffloadPolicy
}

func (l *livePolicy) get() managed.OffloadPolicy {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p
}

func (l *livePolicy) set(p managed.OffloadPolicy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p = p
}

// offloadEnv is a cluster (bookies that garbage-collect deleted ledgers
// quickly) and managed-ledger options offloading to store with fast checks
// and retries. The policy starts with automatic offload off and deletion
// lag 0.
type offloadEnv struct {
	*env
	store  offload.BlobStore
	policy *livePolicy
}

const offloadPrefix = "offload"

func newOffloadEnv(t testing.TB, bookies int, driver string, store offload.BlobStore, adjust func(*managed.Options)) *offloadEnv {
	c := testcluster.New(t, testcluster.Config{Bookies: bookies, BookieOptions: func(i int, o *bookie.Options) {
		o.GCInterval = 100 * time.Millisecond
	}})
	pol := &livePolicy{p: managed.OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: -1, DeletionLag: 0}}
	o := managed.Options{
		Ledgers: c.LedgerClient(), Metadata: c.Store, Logger: c.Log,
		MaxEntriesPerLedger: 100, PublishTime: publishTime,
		CursorPersistInterval: time.Hour, TrimInterval: time.Hour,
		CacheMaxBytes: 1, // reads go to the ledgers, not to the entry cache
		Retention:     func() managed.Retention { return managed.Retention{Time: -1, Size: -1} },
		Offload: managed.OffloadOptions{
			Store: store, KeyPrefix: offloadPrefix, Driver: driver,
			Write:         offload.WriteOptions{BlockSize: 16 << 10},
			Policy:        pol.get,
			CheckInterval: 50 * time.Millisecond,
			RetryMin:      50 * time.Millisecond, RetryMax: 400 * time.Millisecond,
		},
	}
	if adjust != nil {
		adjust(&o)
	}
	return &offloadEnv{env: &env{c: c, opts: o}, store: store, policy: pol}
}

// records returns the ledger list as stored in the metadata store.
func (e *offloadEnv) records(t testing.TB, name string) []managed.LedgerInfo {
	t.Helper()
	kv, err := e.c.Store.Get(ctxT(t, time.Minute), metadata.ManagedLedgersPrefix+name)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Ledgers []managed.LedgerInfo `json:"ledgers"`
	}
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Ledgers
}

// objects returns the keys of the topic's objects in the store.
func (e *offloadEnv) objects(t testing.TB, name string) []string {
	t.Helper()
	infos, err := e.store.List(ctxT(t, time.Minute), offload.KeyPrefix(offloadPrefix, name))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range infos {
		keys = append(keys, o.Key)
	}
	return keys
}

// checkNoOrphans fails unless the store holds exactly the objects of the
// complete offloads recorded for the topic — no complete record without
// its objects, no object without a complete record.
func (e *offloadEnv) checkNoOrphans(t testing.TB, name string) {
	t.Helper()
	var want []string
	for _, li := range e.records(t, name) {
		if li.Offload != nil && li.Offload.Complete {
			want = append(want, li.Offload.DataKey, li.Offload.IndexKey)
		}
	}
	slices.Sort(want)
	if got := e.objects(t, name); !slices.Equal(got, want) {
		t.Fatalf("objects in the store %v, complete offloads recorded %v", got, want)
	}
}

// waitClosedLedgers waits until n non-empty ledgers are closed (the ledger
// filled by the last append closes in the background).
func waitClosedLedgers(t testing.TB, ml *managed.ManagedLedger, n int) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, func() error {
		closed := 0
		for _, l := range ml.Stats().Ledgers {
			if l.State == "closed" && l.Entries > 0 {
				closed++
			}
		}
		if closed != n {
			return fmt.Errorf("%d closed ledgers, want %d", closed, n)
		}
		return nil
	})
}

// checkReplay fails unless got is entries from..from+len(got)-1 as written by
// appendAll, at the positions pos.
func checkReplay(t testing.TB, got []managed.Entry, pos []managed.Position, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("read %d entries, want %d", len(got), n)
	}
	for i, en := range got {
		j := from + i
		if en.Position != pos[j] || !bytes.Equal(en.Data, data(j, int64(1000+j))) {
			t.Fatalf("entry %d: at %v (want %v), data equal %v", j, en.Position, pos[j], bytes.Equal(en.Data, data(j, int64(1000+j))))
		}
	}
}

// waitBookieGC waits until no bookie of the cluster holds the ledgers.
func waitBookieGC(t testing.TB, c *testcluster.Cluster, bookies int, ids []int64) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	for i := 0; i < bookies; i++ {
		cc, err := grpc.NewClient(c.Bookie(i).Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cli := bookiepb.NewBookieClient(cc)
		testutil.WaitFor(t, 30*time.Second, func() error {
			for _, id := range ids {
				_, err := cli.ReadEntry(ctx, &bookiepb.ReadEntryRequest{LedgerId: id, EntryId: 0})
				if code, _ := bookiepb.CodeOf(err); code != bookiepb.Code_NO_LEDGER {
					return fmt.Errorf("bookie %d still holds ledger %d: %v", i, id, err)
				}
			}
			return nil
		})
	}
}

// TestOffloadReplayWithoutBookies offloads 50,000 small entries in 100
// ledgers with deletion lag 0: the bookie copies are deleted (metadata and,
// after garbage collection, bookie storage), a new cursor replays every
// entry byte for byte and in order, and with every bookie stopped replay and
// seek by time into the offloaded ledgers still work.
func TestOffloadReplayWithoutBookies(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string, store offload.BlobStore, srv *s3test.Server) {
		e := newOffloadEnv(t, 2, driver, store, func(o *managed.Options) {
			o.EnsembleSize, o.WriteQuorum, o.AckQuorum = 2, 2, 2
			o.MaxEntriesPerLedger = 500
		})
		const name, n, ledgers = "public/default/offload-replay", 50000, 100
		ml := e.open(t, name)
		ctx := ctxT(t, 5*time.Minute)
		pos := appendAll(t, ml, 0, n)
		waitClosedLedgers(t, ml, ledgers)
		var size int64
		for i := 0; i < n; i++ {
			size += int64(len(data(i, int64(1000+i))))
		}

		res, err := ml.Offload(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Ledgers) != ledgers || res.Entries != n || res.Bytes != size {
			t.Fatalf("offload result: %d ledgers, %d entries, %d bytes; want %d, %d, %d", len(res.Ledgers), res.Entries, res.Bytes, ledgers, n, size)
		}
		if st := ml.OffloadStatus(); st.State != managed.OffloadSuccess || !pos[n-1].Less(st.FirstUnoffloaded) {
			t.Fatalf("status after offload: %+v", st)
		}
		// Deletion lag 0: the bookie copies go.
		testutil.WaitFor(t, 30*time.Second, func() error {
			for _, id := range res.Ledgers {
				if _, err := e.opts.Ledgers.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
					return fmt.Errorf("ledger %d: metadata still there (%v)", id, err)
				}
			}
			return nil
		})
		waitBookieGC(t, e.c, 2, res.Ledgers)
		st := ml.Stats()
		if st.OffloadedSize != size || st.Offload.OffloadedLedgers != ledgers || st.Offload.BookieSize != 0 ||
			st.Offload.OffloadedBytesTotal != size || st.Offload.OffloadedLedgersTotal != ledgers {
			t.Fatalf("stats after offload: offloaded size %d, %+v", st.OffloadedSize, st.Offload)
		}
		for _, l := range st.Ledgers {
			if l.Entries > 0 && (!l.Offloaded || l.OnBookies) {
				t.Fatalf("ledger stats %+v: want offloaded and off the bookies", l)
			}
		}
		if got := len(e.objects(t, name)); got != 2*ledgers {
			t.Fatalf("%d objects in the store, want %d", got, 2*ledgers)
		}
		e.checkNoOrphans(t, name)

		c, err := ml.OpenCursor(ctx, "replay", managed.Earliest)
		if err != nil {
			t.Fatal(err)
		}
		checkReplay(t, readAll(t, c), pos, 0, n)

		// Every bookie down: replay and seek by time still work.
		for i := 0; i < 2; i++ {
			e.c.StopBookie(i)
		}
		c2 := ml.NewNonDurableCursor(ml.FirstPosition())
		checkReplay(t, readAll(t, c2), pos, 0, n)
		for _, i := range []int{0, 1, 499, 500, 12345, 33333, n - 1} {
			p, err := ml.FindByTime(ctx, int64(1000+i))
			if err != nil || p != pos[i] {
				t.Fatalf("FindByTime(%d) = %v, %v; want %v", 1000+i, p, err, pos[i])
			}
		}
		p, err := ml.FindByTime(ctx, 1000+40000)
		if err != nil || p != pos[40000] {
			t.Fatalf("FindByTime(%d) = %v, %v; want %v", 1000+40000, p, err, pos[40000])
		}
		c.Reset(p)
		es, err := c.Read(ctx, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		checkReplay(t, es, pos, 40000, 100)
		if err := ml.Close(ctxT(t, time.Minute)); err != nil {
			t.Logf("close with every bookie down: %v", err)
		}
	})
}

// holdsFor fails the test if cond fails at any time during d (a negative
// check: something must not happen).
func holdsFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatal(err)
		}
	}
}

// sizedEntry is entry i of size bytes: publish time 1000+i, then byte(i).
func sizedEntry(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	binary.BigEndian.PutUint64(b, uint64(1000+i))
	return b
}

// appendSized appends n entries of size bytes from index from.
func appendSized(t testing.TB, ml *managed.ManagedLedger, from, n, size int) []managed.Position {
	t.Helper()
	pos := make([]managed.Position, n)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		ml.AppendAsync(sizedEntry(from+i, size), int64(1000+from+i), func(p managed.Position, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("append: %v", err)
			}
			pos[i] = p
		})
	}
	wg.Wait()
	return pos
}

// TestOffloadThresholdPolicy writes 10 MiB with a threshold of 1 MiB: the
// bytes left on bookies settle at no more than the threshold plus one
// ledger. Turning the policy off (live) stops offloading; turning it on
// again resumes it.
func TestOffloadThresholdPolicy(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string, store offload.BlobStore, srv *s3test.Server) {
		const entry, perLedger = 10 << 10, 10
		const ledgerSize = entry * perLedger
		e := newOffloadEnv(t, 1, driver, store, func(o *managed.Options) { o.MaxEntriesPerLedger = perLedger })
		e.policy.set(managed.OffloadPolicy{ThresholdBytes: 1 << 20, ThresholdSeconds: -1, DeletionLag: 0})
		const name = "public/default/offload-threshold"
		ml := e.open(t, name)
		settled := func() error {
			st := ml.Stats().Offload
			if st.BookieSize > 1<<20+ledgerSize || st.NotOffloadedSize > 1<<20 || st.NotOffloadedSize < 1<<20-2*ledgerSize {
				return fmt.Errorf("bookie size %d, not offloaded %d; want <= 1 MiB + one ledger (%d)", st.BookieSize, st.NotOffloadedSize, 1<<20+ledgerSize)
			}
			return nil
		}
		appendSized(t, ml, 0, 1024, entry) // 10 MiB
		testutil.WaitFor(t, time.Minute, settled)
		st := ml.Stats()
		if st.Size != 1024*entry || st.OffloadedSize < 9<<20-ledgerSize {
			t.Fatalf("size %d, offloaded %d after 10 MiB with a 1 MiB threshold", st.Size, st.OffloadedSize)
		}

		// Policy off: nothing more is offloaded.
		e.policy.set(managed.OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: -1, DeletionLag: 0})
		offloadedBefore := ml.Stats().Offload.OffloadedLedgers
		appendSized(t, ml, 1024, 200, entry)
		holdsFor(t, 500*time.Millisecond, func() error { // ten checks
			// (a ledger being uploaded when the policy changed may complete)
			if st := ml.Stats().Offload; st.OffloadedLedgers > offloadedBefore+1 || st.NotOffloadedSize < 2<<20 {
				return fmt.Errorf("offloading went on with the policy off: %+v (before: %d ledgers)", st, offloadedBefore)
			}
			return nil
		})
		// On again.
		e.policy.set(managed.OffloadPolicy{ThresholdBytes: 1 << 20, ThresholdSeconds: -1, DeletionLag: 0})
		testutil.WaitFor(t, time.Minute, settled)
		e.checkNoOrphans(t, name)
	})
}

// TestOffloadTimeThreshold offloads ledgers closed longer ago than
// ThresholdSeconds, and only those.
func TestOffloadTimeThreshold(t *testing.T) {
	store, err := offload.NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	e := newOffloadEnv(t, 1, "filesystem", store, func(o *managed.Options) {
		o.MaxEntriesPerLedger = 10
		o.Clock = clock.Now
	})
	e.policy.set(managed.OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: 3600, DeletionLag: -1})
	const name = "public/default/offload-time"
	ml := e.open(t, name)
	old := appendAll(t, ml, 0, 30) // 3 ledgers, closed at the start
	waitClosedLedgers(t, ml, 3)
	clock.Add(61 * time.Minute)
	appendAll(t, ml, 30, 30) // 3 more, closed an hour later
	testutil.WaitFor(t, 30*time.Second, func() error {
		for _, li := range e.records(t, name) {
			if li.LedgerID <= old[29].LedgerID && (li.Offload == nil || !li.Offload.Complete) {
				return fmt.Errorf("ledger %d not offloaded", li.LedgerID)
			}
		}
		return nil
	})
	for _, l := range ml.Stats().Ledgers {
		if l.LedgerID > old[29].LedgerID && l.Offloaded {
			t.Fatalf("ledger %d closed less than an hour ago was offloaded", l.LedgerID)
		}
		if l.Offloaded && !l.OnBookies {
			t.Fatalf("ledger %d deleted from bookies with deletion lag -1", l.LedgerID)
		}
	}
	clock.Add(61 * time.Minute)
	waitClosedLedgers(t, ml, 6)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if n := ml.Stats().Offload.OffloadedLedgers; n != 6 {
			return fmt.Errorf("%d ledgers offloaded, want 6", n)
		}
		return nil
	})
}

// stoppingStore stops the S3 server once armed and after bytes of a data
// object went into Put.
type stoppingStore struct {
	offload.BlobStore
	srv   *s3test.Server
	after int64
	armed atomic.Bool
}

func (s *stoppingStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if s.armed.Load() && !strings.HasSuffix(key, "-index") {
		r = &stoppingReader{r: r, s: s}
	}
	return s.BlobStore.Put(ctx, key, r, size, meta)
}

type stoppingReader struct {
	r io.Reader
	s *stoppingStore
	n int64
}

func (r *stoppingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.n >= r.s.after && r.s.armed.CompareAndSwap(true, false) {
		r.s.srv.Stop()
	}
	return n, err
}

// TestOffloadS3StoppedMidUpload kills the S3 server in the middle of an
// automatic offload of a 12.5 MiB ledger: the offload fails, the ledger is
// never marked complete, and once the server is back the retry completes
// it; every entry reads back from S3 after the bookie copy is gone.
func TestOffloadS3StoppedMidUpload(t *testing.T) {
	srv := s3test.Start(t)
	store := &stoppingStore{BlobStore: newS3Store(t, srv), srv: srv, after: 6 << 20}
	store.armed.Store(true)
	const entry, perLedger = 64 << 10, 200
	e := newOffloadEnv(t, 1, "s3", store, func(o *managed.Options) {
		o.MaxEntriesPerLedger = perLedger
		o.Offload.Write.BlockSize = 1 << 20
	})
	e.policy.set(managed.OffloadPolicy{ThresholdBytes: 0, ThresholdSeconds: -1, DeletionLag: 0})
	const name = "public/default/offload-s3-stop"
	ml := e.open(t, name)
	pos := appendSized(t, ml, 0, perLedger+1, entry) // one closed ledger and one entry in the next
	id := pos[0].LedgerID

	testutil.WaitFor(t, time.Minute, func() error {
		if srv.Running() {
			return errors.New("S3 server not stopped yet")
		}
		if st := ml.OffloadStatus(); st.State != managed.OffloadError {
			return fmt.Errorf("offload status %+v", st)
		}
		return nil
	})
	st := ml.OffloadStatus()
	t.Logf("offload with the server down: %s", st.LastError)
	if ml.Stats().Offload.ErrorsTotal < 1 {
		t.Fatal("no offload error counted")
	}
	for _, li := range e.records(t, name) {
		if li.Offload != nil && li.Offload.Complete {
			t.Fatalf("ledger %d marked offloaded while the upload failed: %+v", li.LedgerID, li.Offload)
		}
	}
	// Retries keep failing while the server is down.
	testutil.WaitFor(t, 30*time.Second, func() error {
		if n := ml.Stats().Offload.ErrorsTotal; n < 2 {
			return fmt.Errorf("%d errors", n)
		}
		return nil
	})
	srv.Start()
	testutil.WaitFor(t, time.Minute, func() error {
		for _, l := range ml.Stats().Ledgers {
			if l.LedgerID == id && (!l.Offloaded || l.OnBookies) {
				return fmt.Errorf("ledger %d: %+v", id, l)
			}
		}
		return nil
	})
	if st := ml.OffloadStatus(); st.State != managed.OffloadSuccess || st.FirstUnoffloaded != pos[perLedger] {
		t.Fatalf("status after the retry: %+v, first unoffloaded want %v", st, pos[perLedger])
	}
	e.checkNoOrphans(t, name)
	if got := e.objects(t, name); len(got) != 2 {
		t.Fatalf("objects %v, want one data and one index object", got)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if _, err := e.opts.Ledgers.Metadata(ctxT(t, time.Minute), id); !errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("bookie copy of %d still there: %v", id, err)
		}
		return nil
	})
	c := ml.NewNonDurableCursor(ml.FirstPosition())
	got := readAll(t, c)
	if len(got) != perLedger+1 {
		t.Fatalf("read %d entries, want %d", len(got), perLedger+1)
	}
	for i, en := range got {
		if en.Position != pos[i] || !bytes.Equal(en.Data, sizedEntry(i, entry)) {
			t.Fatalf("entry %d at %v differs after the retried offload", i, en.Position)
		}
	}
}

// gateStore holds the first data upload after arming until released (or
// its context ends), reporting its key on hit.
type gateStore struct {
	offload.BlobStore
	armed   atomic.Bool
	hit     chan string
	release chan struct{}
}

func newGateStore(s offload.BlobStore) *gateStore {
	return &gateStore{BlobStore: s, hit: make(chan string, 1), release: make(chan struct{})}
}

func (g *gateStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if !strings.HasSuffix(key, "-index") && g.armed.CompareAndSwap(true, false) {
		g.hit <- key
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.BlobStore.Put(ctx, key, r, size, meta)
}

// TestOffloadRestartMidUpload stops the owner in the middle of an upload —
// dropped as in a crash, or fenced by a second owner while its upload goes
// on — and checks that no ledger is ever recorded as offloaded without its
// objects, that the new owner cleans up the interrupted attempt, and that
// its own offload then completes with every entry intact.
func TestOffloadRestartMidUpload(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string, base offload.BlobStore, srv *s3test.Server) {
		for _, mode := range []string{"abandon", "second-owner"} {
			t.Run(mode, func(t *testing.T) {
				gate := newGateStore(base)
				e := newOffloadEnv(t, 1, driver, gate, nil)
				name := "public/default/offload-restart-" + mode
				a := e.open(t, name)
				pos := appendAll(t, a, 0, 300)
				waitClosedLedgers(t, a, 3)
				gate.armed.Store(true)
				if err := a.TriggerOffload(0); err != nil {
					t.Fatal(err)
				}
				key := <-gate.hit
				if err := a.TriggerOffload(0); !errors.Is(err, managed.ErrOffloadInProgress) {
					t.Fatalf("second manual offload: %v, want ErrOffloadInProgress", err)
				}
				if st := a.OffloadStatus(); st.State != managed.OffloadRunning {
					t.Fatalf("status during the upload: %+v", st)
				}
				recs := e.records(t, name)
				if recs[0].Offload == nil || recs[0].Offload.Complete || recs[0].Offload.DataKey != key {
					t.Fatalf("record during the upload of %s: %+v", key, recs[0].Offload)
				}

				var b *managed.ManagedLedger
				if mode == "abandon" {
					a.Abandon() // cancels the upload
					b = e.open(t, name)
				} else {
					b = e.open(t, name) // fences a
				}
				// The new owner clears the interrupted attempt.
				testutil.WaitFor(t, 30*time.Second, func() error {
					for _, li := range e.records(t, name) {
						if li.Offload != nil {
							return fmt.Errorf("ledger %d: offload record %+v left", li.LedgerID, li.Offload)
						}
					}
					return nil
				})
				if mode == "second-owner" {
					// a's upload finishes after the takeover; it cannot
					// complete and deletes its objects.
					close(gate.release)
					testutil.WaitFor(t, 30*time.Second, func() error {
						if st := a.OffloadStatus(); st.State != managed.OffloadError {
							return fmt.Errorf("first owner's offload status %+v", st)
						}
						return nil
					})
					if st := a.OffloadStatus(); !strings.Contains(st.LastError, "fenced") {
						t.Fatalf("first owner's offload failed with %q, want fenced", st.LastError)
					}
				}
				testutil.WaitFor(t, 30*time.Second, func() error {
					if keys := e.objects(t, name); len(keys) != 0 {
						return fmt.Errorf("objects of the interrupted attempt left: %v", keys)
					}
					return nil
				})
				e.checkNoOrphans(t, name)

				res, err := b.Offload(ctxT(t, time.Minute), 0)
				if err != nil || len(res.Ledgers) != 3 {
					t.Fatalf("offload by the new owner: %+v, %v", res, err)
				}
				e.checkNoOrphans(t, name)
				c, err := b.OpenCursor(ctxT(t, time.Minute), "check", managed.Earliest)
				if err != nil {
					t.Fatal(err)
				}
				checkReplay(t, readAll(t, c), pos, 0, 300)
			})
		}
	})
}

// rewriteObject replaces an object with mutate(its bytes), metadata changed
// by mutMeta.
func rewriteObject(t testing.TB, store offload.BlobStore, key string, mutate func([]byte), mutMeta func(map[string]string)) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	info, err := store.Head(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := store.GetRange(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(b)
	}
	if mutMeta != nil {
		mutMeta(info.Metadata)
	}
	if err := store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), info.Metadata); err != nil {
		t.Fatal(err)
	}
}

// TestOffloadCorruptionIsAnError damages offloaded ledgers whose bookie
// copies are gone — a flipped byte in the data, a missing index, an index of
// another format version — and checks reads fail with a clear error
// wrapping the offload sentinel and never return a wrong entry, while an
// intact ledger still reads.
func TestOffloadCorruptionIsAnError(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string, store offload.BlobStore, srv *s3test.Server) {
		e := newOffloadEnv(t, 1, driver, store, func(o *managed.Options) { o.Offload.Write.BlockSize = 1 << 10 })
		const name = "public/default/offload-corrupt"
		ml := e.open(t, name)
		ctx := ctxT(t, time.Minute)
		pos := appendAll(t, ml, 0, 400)
		waitClosedLedgers(t, ml, 4)
		if _, err := ml.Offload(ctx, 0); err != nil {
			t.Fatal(err)
		}
		recs := e.records(t, name)
		testutil.WaitFor(t, 30*time.Second, func() error {
			for _, li := range recs[:4] {
				if _, err := e.opts.Ledgers.Metadata(ctx, li.LedgerID); !errors.Is(err, ledger.ErrNotFound) {
					return fmt.Errorf("bookie copy of %d still there", li.LedgerID)
				}
			}
			return nil
		})
		rewriteObject(t, store, recs[0].Offload.DataKey, func(b []byte) { b[len(b)/2] ^= 0x40 }, nil)
		if err := store.Delete(ctx, recs[1].Offload.IndexKey); err != nil {
			t.Fatal(err)
		}
		rewriteObject(t, store, recs[2].Offload.IndexKey, nil, func(m map[string]string) { m[offload.MetaFormatVersion] = "2" })

		cases := []struct {
			ledger int
			want   error
		}{{0, offload.ErrCorrupt}, {1, offload.ErrNotFound}, {2, offload.ErrUnsupportedVersion}}
		for _, tc := range cases {
			id := recs[tc.ledger].LedgerID
			es, _, err := ml.Read(ctx, managed.Position{LedgerID: id, EntryID: 0}, 100, 1<<20)
			if !errors.Is(err, tc.want) || len(es) != 0 || !strings.Contains(err.Error(), fmt.Sprintf("ledger %d", id)) {
				t.Fatalf("read of damaged ledger %d: %d entries, %v; want no entries and %v", id, len(es), err, tc.want)
			}
			t.Logf("ledger %d: %v", id, err)
		}
		// Entry by entry through the flipped byte: every entry returned is
		// right, and the damaged block fails.
		failed := 0
		for i := 0; i < 100; i++ {
			es, _, err := ml.Read(ctx, pos[i], 1, 1<<20)
			if err != nil {
				if !errors.Is(err, offload.ErrCorrupt) {
					t.Fatalf("entry %d: %v, want ErrCorrupt", i, err)
				}
				failed++
				continue
			}
			checkReplay(t, es, pos, i, 1)
		}
		if failed == 0 || failed == 100 {
			t.Fatalf("%d of 100 entries failed; want only those of the damaged block", failed)
		}
		// A cursor stops at the damage.
		c := ml.NewNonDurableCursor(ml.FirstPosition())
		if es, err := c.Read(ctx, 100, 1<<20); !errors.Is(err, offload.ErrCorrupt) || len(es) != 0 {
			t.Fatalf("cursor read of the damaged ledger: %d entries, %v", len(es), err)
		}
		// The intact ledger reads.
		c.Reset(pos[300])
		checkReplay(t, readAll(t, c), pos, 300, 100)
	})
}

// TestOffloadRetentionDeletesObjects trims offloaded ledgers (their bookie
// copies kept, deletion lag -1): the objects go with them.
func TestOffloadRetentionDeletesObjects(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string, store offload.BlobStore, srv *s3test.Server) {
		var ret atomic.Bool // false: keep everything
		e := newOffloadEnv(t, 1, driver, store, func(o *managed.Options) {
			o.Retention = func() managed.Retention {
				if ret.Load() {
					return managed.Retention{Time: 0, Size: 0}
				}
				return managed.Retention{Time: -1, Size: -1}
			}
		})
		e.policy.set(managed.OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: -1, DeletionLag: -1})
		const name = "public/default/offload-retention"
		ml := e.open(t, name)
		ctx := ctxT(t, time.Minute)
		pos := appendAll(t, ml, 0, 350)
		waitClosedLedgers(t, ml, 3)
		res, err := ml.Offload(ctx, 0)
		if err != nil || len(res.Ledgers) != 3 {
			t.Fatalf("offload: %+v %v", res, err)
		}
		if n := len(e.objects(t, name)); n != 6 {
			t.Fatalf("%d objects after offloading 3 ledgers", n)
		}
		// Opens the reader of the first ledger, which the trim must close.
		if es, _, err := ml.Read(ctx, pos[0], 10, 1<<20); err != nil || len(es) != 10 {
			t.Fatalf("read: %d %v", len(es), err)
		}
		ret.Store(true)
		tr, err := ml.Trim(ctx) // no cursors: everything is consumed
		if err != nil || !slices.Equal(tr.Ledgers, res.Ledgers) {
			t.Fatalf("trim: %+v %v, want ledgers %v", tr, err, res.Ledgers)
		}
		if keys := e.objects(t, name); len(keys) != 0 {
			t.Fatalf("objects of trimmed ledgers left: %v", keys)
		}
		for _, id := range tr.Ledgers {
			if _, err := e.opts.Ledgers.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
				t.Fatalf("trimmed ledger %d still on bookies: %v", id, err)
			}
		}
		if st := ml.Stats(); st.OffloadedSize != 0 || st.Offload.OpenReaders != 0 || st.Entries != 50 {
			t.Fatalf("stats after trim: %d entries, offloaded %d, %+v", st.Entries, st.OffloadedSize, st.Offload)
		}

		// Deleting the log deletes the objects of its offloaded ledgers.
		ret.Store(false)
		appendAll(t, ml, 350, 100)
		waitClosedLedgers(t, ml, 1)
		if res, err := ml.Offload(ctx, 0); err != nil || len(res.Ledgers) != 1 {
			t.Fatalf("offload: %+v %v", res, err)
		}
		if n := len(e.objects(t, name)); n != 2 {
			t.Fatalf("%d objects after offloading 1 ledger", n)
		}
		if err := ml.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		if keys := e.objects(t, name); len(keys) != 0 {
			t.Fatalf("objects of a deleted log left: %v", keys)
		}
	})
}

// TestOffloadedLedgerWithoutStore reopens a log with offloaded ledgers
// without an offload store, and with a store of another driver: a ledger
// whose bookie copy remains reads from the bookies, one whose copy is gone
// fails with ErrOffloadDisabled.
func TestOffloadedLedgerWithoutStore(t *testing.T) {
	store, err := offload.NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newOffloadEnv(t, 1, "filesystem", store, nil)
	const name = "public/default/offload-nostore"
	ml := e.open(t, name)
	ctx := ctxT(t, time.Minute)
	pos := appendAll(t, ml, 0, 250)
	waitClosedLedgers(t, ml, 2)
	var keep int64 // the second ledger and the current one
	for i := 100; i < 250; i++ {
		keep += int64(len(data(i, int64(1000+i))))
	}
	// The first ledger goes with deletion lag 0, the second with -1.
	if res, err := ml.Offload(ctx, keep); err != nil || len(res.Ledgers) != 1 {
		t.Fatalf("offload: %+v %v", res, err)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if _, err := e.opts.Ledgers.Metadata(ctx, pos[0].LedgerID); !errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("bookie copy of %d still there", pos[0].LedgerID)
		}
		return nil
	})
	e.policy.set(managed.OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: -1, DeletionLag: -1})
	if res, err := ml.Offload(ctx, 0); err != nil || len(res.Ledgers) != 1 {
		t.Fatalf("offload: %+v %v", res, err)
	}
	if err := ml.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		offload managed.OffloadOptions
	}{
		{"no store", managed.OffloadOptions{}},
		{"another driver", managed.OffloadOptions{Store: store, KeyPrefix: offloadPrefix, Driver: "s3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := e.opts
			opts.Offload = tc.offload
			ml, err := managed.Open(ctx, name, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer ml.Close(context.Background())
			es, _, err := ml.Read(ctx, pos[100], 100, 1<<20)
			if err != nil {
				t.Fatalf("read of the offloaded ledger still on bookies: %v", err)
			}
			checkReplay(t, es, pos, 100, 100)
			if es, _, err := ml.Read(ctx, pos[0], 100, 1<<20); !errors.Is(err, managed.ErrOffloadDisabled) || len(es) != 0 {
				t.Fatalf("read of the ledger only in the store: %d entries, %v; want ErrOffloadDisabled", len(es), err)
			}
		})
	}
}

// failingStore fails every Put while failing is set.
type failingStore struct {
	offload.BlobStore
	failing atomic.Bool
}

func (f *failingStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if f.failing.Load() {
		return errors.New("injected upload failure")
	}
	return f.BlobStore.Put(ctx, key, r, size, meta)
}

// TestOffloadStatusAndCounters walks the status through NOT_RUN, ERROR and
// SUCCESS, checks the counters, the first unoffloaded position and that
// idle readers are closed, and that a log without a store refuses offloads.
func TestOffloadStatusAndCounters(t *testing.T) {
	fs, err := offload.NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &failingStore{BlobStore: fs}
	e := newOffloadEnv(t, 1, "filesystem", store, func(o *managed.Options) {
		o.Offload.ReaderIdleTimeout = 100 * time.Millisecond
	})
	ctx := ctxT(t, time.Minute)

	plain := e.opts
	plain.Offload = managed.OffloadOptions{}
	off, err := managed.Open(ctx, "public/default/no-offload", plain)
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close(context.Background())
	if _, err := off.Offload(ctx, 0); !errors.Is(err, managed.ErrOffloadDisabled) {
		t.Fatalf("offload without a store: %v", err)
	}

	const name = "public/default/offload-status"
	ml := e.open(t, name)
	if st := ml.OffloadStatus(); st.State != managed.OffloadNotRun {
		t.Fatalf("initial status %+v", st)
	}
	pos := appendAll(t, ml, 0, 250)
	waitClosedLedgers(t, ml, 2)

	store.failing.Store(true)
	if _, err := ml.Offload(ctx, 0); err == nil || !strings.Contains(err.Error(), "injected upload failure") {
		t.Fatalf("offload with failing uploads: %v", err)
	}
	st := ml.OffloadStatus()
	if st.State != managed.OffloadError || !strings.Contains(st.LastError, "injected") || st.FirstUnoffloaded != pos[0] {
		t.Fatalf("status after a failure: %+v", st)
	}
	if s := ml.Stats().Offload; s.ErrorsTotal != 1 || s.OffloadedLedgersTotal != 0 || s.State != managed.OffloadError {
		t.Fatalf("counters after a failure: %+v", s)
	}

	store.failing.Store(false)
	size := func(from, to int) (n int64) {
		for i := from; i < to; i++ {
			n += int64(len(data(i, int64(1000+i))))
		}
		return n
	}
	// Keep the current ledger and the second: only the first goes.
	res, err := ml.Offload(ctx, size(100, 250))
	if err != nil || !slices.Equal(res.Ledgers, []int64{pos[0].LedgerID}) || res.Entries != 100 || res.FirstUnoffloaded != pos[100] {
		t.Fatalf("offload keeping 2 ledgers: %+v, %v", res, err)
	}
	// Up to a position: only ledgers before its ledger (here none left).
	res, err = ml.OffloadPrefix(ctx, pos[150])
	if err != nil || len(res.Ledgers) != 0 || res.FirstUnoffloaded != pos[100] {
		t.Fatalf("offload before %v: %+v, %v", pos[150], res, err)
	}
	// Up to the current ledger's first entry: the second ledger goes.
	res, err = ml.OffloadPrefix(ctx, pos[200])
	if err != nil || !slices.Equal(res.Ledgers, []int64{pos[100].LedgerID}) || res.Bytes != size(100, 200) || res.FirstUnoffloaded != pos[200] {
		t.Fatalf("offload before %v: %+v, %v", pos[200], res, err)
	}
	bytes200 := size(0, 200)
	s := ml.Stats().Offload
	if s.State != managed.OffloadSuccess || s.OffloadedBytesTotal != bytes200 || s.OffloadedLedgersTotal != 2 || s.LastDuration <= 0 {
		t.Fatalf("counters after the offload: %+v", s)
	}
	if st := ml.OffloadStatus(); st.State != managed.OffloadSuccess || st.LastError != "" || st.FirstUnoffloaded != pos[200] {
		t.Fatalf("status after the offload: %+v", st)
	}
	// Nothing left to offload: still a successful run.
	if res, err := ml.Offload(ctx, 0); err != nil || len(res.Ledgers) != 0 {
		t.Fatalf("offload with nothing to do: %+v %v", res, err)
	}
	if _, err := ml.Offload(ctx, -1); err == nil {
		t.Fatal("offload with keepBytes -1 accepted")
	}

	// Reading opens a reader; unused, it is closed.
	es, _, err := ml.Read(ctx, pos[0], 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	checkReplay(t, es, pos, 0, 10)
	if n := ml.Stats().Offload.OpenReaders; n != 1 {
		t.Fatalf("%d open readers after a read", n)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := ml.Stats().Offload.OpenReaders; n != 0 {
			return fmt.Errorf("%d readers open", n)
		}
		return nil
	})
	es, _, err = ml.Read(ctx, pos[10], 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	checkReplay(t, es, pos, 10, 10)
}

// TestOffloadConcurrentWithReadsAndTrims runs appends, two acknowledging
// readers, automatic offload with deletion lag 0 and retention trimming all
// at once (meant for -race): every reader sees every entry once and in
// order, and in the end the store holds exactly the objects of offloaded
// ledgers still in the log.
func TestOffloadConcurrentWithReadsAndTrims(t *testing.T) {
	fs, err := offload.NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newOffloadEnv(t, 1, "filesystem", fs, func(o *managed.Options) {
		o.MaxEntriesPerLedger = 40
		o.TrimInterval = 30 * time.Millisecond
		o.CursorPersistInterval = 20 * time.Millisecond
		o.Retention = func() managed.Retention { return managed.Retention{} }
	})
	e.policy.set(managed.OffloadPolicy{ThresholdBytes: 0, ThresholdSeconds: -1, DeletionLag: 0})
	const name = "public/default/offload-concurrent"
	ml := e.open(t, name)
	ctx := ctxT(t, 2*time.Minute)
	const writers, per = 4, 400
	var cursors []*managed.Cursor
	for r := 0; r < 2; r++ {
		c, err := ml.OpenCursor(ctx, fmt.Sprint("sub", r), managed.Earliest)
		if err != nil {
			t.Fatal(err)
		}
		cursors = append(cursors, c)
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := ml.Append(ctx, []byte(fmt.Sprintf("w%d-%d", w, i)), 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for r, c := range cursors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := make([]int, writers)
			var last managed.Position
			seen := 0
			deadline := time.Now().Add(90 * time.Second)
			for seen < writers*per && time.Now().Before(deadline) {
				wait := ml.Wait()
				es, err := c.Read(ctx, 30, 1<<20)
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				for _, en := range es {
					var w, i int
					if _, err := fmt.Sscanf(string(en.Data), "w%d-%d", &w, &i); err != nil || i != next[w] || !last.Less(en.Position) {
						t.Errorf("reader %d: entry %q at %v after %v (want w%d-%d)", r, en.Data, en.Position, last, w, next[w])
						return
					}
					next[w]++
					last = en.Position
					if err := c.Ack(en.Position); err != nil {
						t.Error(err)
						return
					}
				}
				seen += len(es)
				if len(es) == 0 {
					select {
					case <-wait:
					case <-time.After(50 * time.Millisecond):
					}
				}
				if st := ml.Stats(); st.LastConfirmed.Less(last) { // races with the rest (-race)
					t.Errorf("stats say the last entry is %v, %v was read", st.LastConfirmed, last)
					return
				}
			}
			if seen != writers*per {
				t.Errorf("reader %d saw %d entries, want %d", r, seen, writers*per)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	st := ml.Stats()
	if st.Offload.OffloadedLedgersTotal == 0 {
		t.Fatalf("nothing was offloaded: %+v", st.Offload)
	}
	t.Logf("offloaded %d ledgers, %d left in the log", st.Offload.OffloadedLedgersTotal, len(st.Ledgers))
	testutil.WaitFor(t, 30*time.Second, func() error {
		if _, err := ml.Trim(ctx); err != nil {
			return err
		}
		if n := len(ml.Stats().Ledgers); n != 1 {
			return fmt.Errorf("%d ledgers left, want the current one", n)
		}
		if keys := e.objects(t, name); len(keys) != 0 {
			return fmt.Errorf("objects left after every ledger was trimmed: %v", keys)
		}
		return nil
	})
}

// TestOffloadThresholdIgnoresDeletionLag: the size threshold counts bytes
// not offloaded, so bookie copies kept by a deletion lag (-1: kept) do not
// make the offloader offload more than the threshold asks
// (docs/behaviour.md).
func TestOffloadThresholdIgnoresDeletionLag(t *testing.T) {
	store, err := offload.NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const entry, perLedger = 10 << 10, 10
	const ledgerSize = entry * perLedger
	e := newOffloadEnv(t, 1, "filesystem", store, func(o *managed.Options) { o.MaxEntriesPerLedger = perLedger })
	e.policy.set(managed.OffloadPolicy{ThresholdBytes: 1 << 20, ThresholdSeconds: -1, DeletionLag: -1})
	ml := e.open(t, "public/default/offload-threshold-lag")
	appendSized(t, ml, 0, 1024, entry) // 10 MiB
	testutil.WaitFor(t, time.Minute, func() error {
		if st := ml.Stats().Offload; st.NotOffloadedSize > 1<<20 {
			return fmt.Errorf("not offloaded %d, want <= 1 MiB", st.NotOffloadedSize)
		}
		return nil
	})
	holdsFor(t, time.Second, func() error { // twenty checks
		st := ml.Stats().Offload
		if st.NotOffloadedSize < 1<<20-2*ledgerSize {
			return fmt.Errorf("not offloaded %d: offloaded past the 1 MiB threshold (bookie size %d)", st.NotOffloadedSize, st.BookieSize)
		}
		if st.BookieSize < 1024*entry {
			return fmt.Errorf("bookie size %d: copies deleted with deletion lag -1", st.BookieSize)
		}
		return nil
	})
}
