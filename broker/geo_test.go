package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/s3test"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
)

// geoNS is the replicated namespace of the geo-replication tests.
const geoNS = "geo/ns"

// geoPair is two clusters, "a" and "b", each with its own local etcd,
// bookie and brokers, sharing one configuration-store etcd, with tenant
// "geo" allowed on both and namespace geo/ns replicated between them.
type geoPair struct {
	cfg  metadata.Store
	a, b *testcluster.Cluster
}

func newGeoPair(t *testing.T, brokersA int, brokerOpts func(cluster string, i int, o *broker.Options)) *geoPair {
	t.Helper()
	return newGeoPairAs(t, brokersA, brokerOpts, "")
}

// newGeoPairAs is newGeoPair for clusters with authentication on:
// adminToken is a superuser's.
func newGeoPairAs(t *testing.T, brokersA int, brokerOpts func(cluster string, i int, o *broker.Options), adminToken string) *geoPair {
	t.Helper()
	cfg, _ := testcluster.OwnEtcd(t, filepath.Join(t.TempDir(), "config-etcd"))
	opts := func(name string) func(int, *broker.Options) {
		return func(i int, o *broker.Options) {
			o.PolicyCheckInterval = 200 * time.Millisecond
			if brokerOpts != nil {
				brokerOpts(name, i, o)
			}
		}
	}
	g := &geoPair{cfg: cfg}
	g.a = testcluster.New(t, testcluster.Config{Name: "a", OwnEtcd: true, ConfigStore: cfg, Bookies: 1, Brokers: brokersA, BrokerOptions: opts("a")})
	g.b = testcluster.New(t, testcluster.Config{Name: "b", OwnEtcd: true, ConfigStore: cfg, Bookies: 1, Brokers: 1, BrokerOptions: opts("b")})
	ctx := ctxT(t, 30*time.Second)
	st := tenants.NewStore(cfg, tenants.StoreOptions{LocalCluster: "a"})
	if err := st.CreateTenant(ctx, "geo", tenants.TenantInfo{AllowedClusters: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateNamespace(ctx, naming.MustParseNamespace(geoNS), tenants.Policies{ReplicationClusters: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	// Every broker's configuration cache has the namespace.
	for _, c := range []*testcluster.Cluster{g.a, g.b} {
		for i := 0; i < brokersFor(c, brokersA); i++ {
			var opts []admin.Option
			if adminToken != "" {
				opts = append(opts, admin.WithToken(adminToken))
			}
			adm, err := admin.New(c.Broker(i).B.HTTPURL(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 30*time.Second, func() error {
				_, err := adm.Topics().List(ctx, geoNS)
				return err
			})
		}
	}
	return g
}

func brokersFor(c *testcluster.Cluster, brokersA int) int {
	if c.Name() == "a" {
		return brokersA
	}
	return 1
}

// geoMsg is what a test message carries: where it was produced and its
// number there.
func geoMsg(origin string, i int) *client.ProducerMessage {
	return &client.ProducerMessage{
		Payload:    []byte(fmt.Sprintf("%s/%06d", origin, i)),
		Key:        fmt.Sprintf("k%d", i%7),
		Properties: map[string]string{"origin": origin, "n": strconv.Itoa(i)},
		EventTime:  time.UnixMilli(1_700_000_000_000 + int64(i)),
	}
}

// produceGeo sends n numbered messages from origin and waits for every
// acknowledgement.
func produceGeo(t *testing.T, ctx context.Context, cl *client.Client, topic, origin string, from, n int, opts ...client.ProducerOption) {
	t.Helper()
	p, err := cl.CreateProducer(ctx, topic, append([]client.ProducerOption{client.WithBatching(50, 1<<20, 2*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := from; i < from+n; i++ {
		wg.Add(1)
		p.SendAsync(ctx, geoMsg(origin, i), func(_ client.MessageID, _ *client.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("produce %s in %s: %v", topic, origin, firstErr)
	}
}

// readAll reads topic from the start through a reader until it has been
// idle for quiet, and returns the payloads by origin, in arrival order.
// Every message is checked against what geoMsg made for it.
func readAll(t *testing.T, ctx context.Context, cl *client.Client, topic string, want int) map[string][]int {
	t.Helper()
	r, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[string][]int{}
	total := 0
	deadline := time.Now().Add(90 * time.Second)
	for {
		// Past want, wait a little longer for anything that should not be there.
		wait := 2 * time.Second
		if total < want {
			wait = time.Until(deadline)
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		m, err := r.Next(rctx)
		cancel()
		if err != nil {
			if total < want {
				t.Fatalf("%s: %d of %d messages, then %v; %s", topic, total, want, err, gaps(got))
			}
			return got
		}
		total++
		origin, num, ok := strings.Cut(string(m.Payload), "/")
		i, err := strconv.Atoi(num)
		if !ok || err != nil {
			t.Fatalf("%s: message %q was never sent", topic, m.Payload)
		}
		w := geoMsg(origin, i)
		if m.Key != w.Key || m.Properties["origin"] != origin || m.Properties["n"] != w.Properties["n"] || !m.EventTime.Equal(w.EventTime) {
			t.Fatalf("%s: message %q arrived as key %q properties %v event time %v", topic, m.Payload, m.Key, m.Properties, m.EventTime)
		}
		got[origin] = append(got[origin], i)
	}
}

// gaps describes, per origin, the numbers missing below the highest seen.
func gaps(got map[string][]int) string {
	var b strings.Builder
	for origin, nums := range got {
		seen := map[int]bool{}
		top := -1
		for _, v := range nums {
			seen[v], top = true, max(top, v)
		}
		var missing []int
		for i := 0; i <= top && len(missing) < 20; i++ {
			if !seen[i] {
				missing = append(missing, i)
			}
		}
		fmt.Fprintf(&b, "from %s: %d received, highest #%d, missing %v; ", origin, len(nums), top, missing)
	}
	return b.String()
}

// checkExactlyOnce fails unless got holds from..from+n-1 exactly once each,
// in order.
func checkExactlyOnce(t *testing.T, where, origin string, got []int, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Errorf("%s: %d messages from %s, want %d", where, len(got), origin, n)
	}
	for i, v := range got {
		if v != from+i {
			t.Fatalf("%s: message %d from %s is #%d, want #%d (duplicate, loss or reorder)", where, i, origin, v, from+i)
		}
	}
}

// waitReplicated waits until the topic's replicator in cluster c to
// remote has no backlog.
func waitReplicated(t *testing.T, ctx context.Context, c *testcluster.Cluster, topic, remote string) {
	t.Helper()
	adm := adminOf(t, c)
	testutil.WaitFor(t, 2*time.Minute, func() error {
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		rs, ok := st.Replication[remote]
		if !ok || rs.ReplicationBacklog != 0 || !rs.Connected {
			return fmt.Errorf("%s in %s: replication to %s: %+v", topic, c.Name(), remote, st.Replication)
		}
		return nil
	})
}

func adminOf(t *testing.T, c *testcluster.Cluster) *admin.Client {
	t.Helper()
	adm, err := admin.New(adminURL(c))
	if err != nil {
		t.Fatal(err)
	}
	return adm
}

// TestGeoReplicationBothWays: 10,000 messages produced in each cluster
// reach the other in order, with key, properties and event time, and
// nothing comes back (each cluster's log holds exactly 20,000).
func TestGeoReplicationBothWays(t *testing.T) {
	g := newGeoPair(t, 1, nil)
	ctx := ctxT(t, 5*time.Minute)
	const topic, n = "persistent://geo/ns/both", 10000
	ca, cb := newClient(t, g.a), newClient(t, g.b)
	// A subscription in B made before anything exists there.
	sub, err := cb.Subscribe(ctx, topic, "in-b", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	produceGeo(t, ctx, ca, topic, "a", 0, n)
	produced := time.Since(start)
	for i := 0; i < n; i++ {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("B's subscription after %d of %d: %v", i, n, err)
		}
		if want := fmt.Sprintf("a/%06d", i); string(m.Payload) != want {
			t.Fatalf("B's subscription: message %d is %q, want %q", i, m.Payload, want)
		}
		sub.Ack(m)
	}
	t.Logf("%d messages produced in A in %v, all received in B %v after the first send", n, produced.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	produceGeo(t, ctx, cb, topic, "b", 0, n)
	waitReplicated(t, ctx, g.a, topic, "b")
	waitReplicated(t, ctx, g.b, topic, "a")
	for _, c := range []struct {
		name string
		cl   *client.Client
	}{{"a", ca}, {"b", cb}} {
		got := readAll(t, ctx, c.cl, topic, 2*n)
		checkExactlyOnce(t, "cluster "+c.name, "a", got["a"], 0, n)
		checkExactlyOnce(t, "cluster "+c.name, "b", got["b"], 0, n)
		if len(got) != 2 {
			t.Errorf("cluster %s: messages from %d origins: %v", c.name, len(got), len(got))
		}
	}
	// The stats name the remote on both ends, with Pulsar's field names.
	st, err := adminOf(t, g.a).Topics().Stats(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if rs := st.Replication["b"]; rs.MsgOutCounter != n || !rs.Connected || rs.OutboundConnection == "" || rs.InboundConnectedSince == "" {
		t.Errorf("A's replication stats for b: %+v", rs)
	}
	labels := `{cluster="a",namespace="geo/ns",remote_cluster="b",topic="persistent://geo/ns/both"}`
	rest{t, g.a.Broker(0).B.HTTPURL()}.want(http.MethodGet, "/metrics", "", http.StatusOK,
		"pulsar_replication_backlog"+labels+" 0", "pulsar_replication_connected_count"+labels+" 1",
		fmt.Sprintf("strata_replication_out_messages_total%s %d", labels, n))
}

// TestGeoReplicationSettings: replication only to clusters the tenant
// allows and that exist; removing a cluster stops replicating to it and
// deletes its cursor.
func TestGeoReplicationSettings(t *testing.T) {
	g := newGeoPair(t, 1, nil)
	ctx := ctxT(t, 2*time.Minute)
	r := rest{t, g.a.Broker(0).B.HTTPURL()}
	st := tenants.NewStore(g.cfg, tenants.StoreOptions{LocalCluster: "a"})
	if err := st.CreateCluster(ctx, "c", tenants.ClusterData{ServiceURL: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	r.want(http.MethodPost, "/admin/v2/namespaces/geo/ns/replication", `["a","c"]`, http.StatusPreconditionFailed, "not allowed to use cluster", "c")
	r.want(http.MethodPost, "/admin/v2/namespaces/geo/ns/replication", `["a","nowhere"]`, http.StatusPreconditionFailed, "nowhere")
	r.want(http.MethodPost, "/admin/v2/namespaces/geo/ns/replication", `["a",""]`, http.StatusBadRequest)
	r.want(http.MethodGet, "/admin/v2/namespaces/geo/ns/replication", "", http.StatusOK, `["a","b"]`)

	const topic = "persistent://geo/ns/settings"
	ca, cb := newClient(t, g.a), newClient(t, g.b)
	produceGeo(t, ctx, ca, topic, "a", 0, 100)
	waitReplicated(t, ctx, g.a, topic, "b")
	adm := adminOf(t, g.a)
	cursors := func() []string {
		is, err := adm.Topics().InternalStats(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for name := range is.Cursors {
			names = append(names, name)
		}
		return names
	}
	if cs := cursors(); !strings.Contains(strings.Join(cs, " "), "pulsar.repl.b") {
		t.Fatalf("A's cursors %v: no pulsar.repl.b", cs)
	}

	// Per message: replication limited to some clusters, or none.
	const perMsg = "persistent://geo/ns/per-message"
	sub, err := cb.Subscribe(ctx, perMsg, "s", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.CreateProducer(ctx, perMsg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*client.ProducerMessage{
		{Payload: []byte("all")},
		{Payload: []byte("local"), DisableReplication: true},
		{Payload: []byte("only-a"), ReplicationClusters: []string{"a"}},
		{Payload: []byte("only-b"), ReplicationClusters: []string{"b"}},
		{Payload: []byte("a-and-b"), ReplicationClusters: []string{"a", "b"}},
		{Payload: []byte("last")},
	} {
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var inB []string
	for len(inB) < 4 {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("B after %v: %v", inB, err)
		}
		if m.ReplicatedFrom != "a" {
			t.Errorf("%q in B: replicated from %q, want a", m.Payload, m.ReplicatedFrom)
		}
		inB = append(inB, string(m.Payload))
		sub.Ack(m)
	}
	if got := strings.Join(inB, " "); got != "all only-b a-and-b last" {
		t.Errorf("B received %q, want %q", got, "all only-b a-and-b last")
	}
	r.want(http.MethodPost, "/admin/v2/namespaces/geo/ns/replication", `["a"]`, http.StatusNoContent)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if cs := cursors(); strings.Contains(strings.Join(cs, " "), "pulsar.repl.b") {
			return fmt.Errorf("A's cursors %v", cs)
		}
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		if _, ok := st.Replication["b"]; ok {
			return fmt.Errorf("A still replicates to b: %+v", st.Replication)
		}
		return nil
	})
	produceGeo(t, ctx, ca, topic, "a", 100, 100)
	got := readAll(t, ctx, cb, topic, 100)
	checkExactlyOnce(t, "cluster b", "a", got["a"], 0, 100)

	// Added back: replication resumes from then on (messages 100-199,
	// produced meanwhile, stay in A, as in Pulsar).
	r.want(http.MethodPost, "/admin/v2/namespaces/geo/ns/replication", `["a","b"]`, http.StatusNoContent)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if cs := cursors(); !strings.Contains(strings.Join(cs, " "), "pulsar.repl.b") {
			return fmt.Errorf("A's cursors %v", cs)
		}
		return nil
	})
	produceGeo(t, ctx, ca, topic, "a", 200, 100)
	waitReplicated(t, ctx, g.a, topic, "b")
	got = readAll(t, ctx, cb, topic, 200)
	checkExactlyOnce(t, "cluster b", "a", got["a"][100:], 200, 100)
}

// produceGeoPaced produces from..from+n-1 from origin in the background,
// a few at a time, and returns a channel closed when all are acknowledged.
func produceGeoPaced(t *testing.T, ctx context.Context, cl *client.Client, topic, origin string, from, n int) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := from; i < from+n; i += 50 {
			produceGeo(t, ctx, cl, topic, origin, i, min(50, from+n-i))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return done
}

// waitOut waits until the replicator of topic in c has had at least n
// messages acknowledged by the remote.
func waitOut(t *testing.T, ctx context.Context, c *testcluster.Cluster, topic, remote string, n int64) {
	t.Helper()
	adm := adminOf(t, c)
	testutil.WaitFor(t, time.Minute, func() error {
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		if got := st.Replication[remote].MsgOutCounter; got < n {
			return fmt.Errorf("%d replicated, waiting for %d", got, n)
		}
		return nil
	})
}

// TestGeoReplicationRemoteOutage: B's broker is killed while A replicates
// to it; A keeps the backlog, and when B returns it gets every message
// once, in order (what it stored but did not acknowledge before the kill
// is sent again and dropped as already there).
func TestGeoReplicationRemoteOutage(t *testing.T) {
	g := newGeoPair(t, 1, nil)
	ctx := ctxT(t, 5*time.Minute)
	const topic = "persistent://geo/ns/outage"
	ca := newClient(t, g.a)
	done := produceGeoPaced(t, ctx, ca, topic, "a", 0, 3000)
	waitOut(t, ctx, g.a, topic, "b", 500)
	g.b.KillBroker(0)
	<-done
	adm := adminOf(t, g.a)
	testutil.WaitFor(t, time.Minute, func() error {
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		if rs := st.Replication["b"]; rs.Connected || rs.ReplicationBacklog == 0 {
			return fmt.Errorf("with B down: %+v", rs)
		}
		return nil
	})
	produceGeo(t, ctx, ca, topic, "a", 3000, 500)
	if err := g.b.StartBroker(0); err != nil {
		t.Fatal(err)
	}
	produceGeo(t, ctx, ca, topic, "a", 3500, 500)
	waitReplicated(t, ctx, g.a, topic, "b")
	got := readAll(t, ctx, newClient(t, g.b), topic, 4000)
	checkExactlyOnce(t, "cluster b", "a", got["a"], 0, 4000)
}

// TestGeoReplicationOwnerKilled: the broker of A that owns the topic is
// killed mid-replication (a replicator dispatch rate keeps replication
// behind production); the next owner resumes from the replicator's cursor,
// resending what B may already have, and B gets every message once, in
// order. A's producer has nothing in flight at the kill: this tests
// replication, not producer deduplication across a failover.
func TestGeoReplicationOwnerKilled(t *testing.T) {
	g := newGeoPair(t, 2, nil)
	ctx := ctxT(t, 5*time.Minute)
	const topic = "persistent://geo/ns/owner"
	rest{t, g.a.Broker(0).B.HTTPURL()}.want(http.MethodPost, "/admin/v2/namespaces/geo/ns/replicatorDispatchRate",
		`{"dispatchThrottlingRateInMsg":500,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}`, http.StatusNoContent)
	ca := newClient(t, g.a)
	produceGeo(t, ctx, ca, topic, "a", 0, 2000)
	waitOut(t, ctx, g.a, topic, "b", 500)
	owner := -1
	for i := 0; i < 2; i++ {
		if g.a.Broker(i).B.OwnsTopic(topic) {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no broker of A owns the topic")
	}
	g.a.KillBroker(owner)
	// What A's next owner sends again, B must drop: B deduplicates
	// replicated entries whatever its own policy (off here).
	rest{t, adminURL(g.a)}.want(http.MethodDelete, "/admin/v2/namespaces/geo/ns/replicatorDispatchRate", "", http.StatusNoContent)
	produceGeo(t, ctx, ca, topic, "a", 2000, 1000)
	waitReplicated(t, ctx, g.a, topic, "b")
	got := readAll(t, ctx, newClient(t, g.b), topic, 3000)
	checkExactlyOnce(t, "cluster b", "a", got["a"], 0, 3000)
}

// adminURL returns the HTTP URL of a running broker of c.
func adminURL(c *testcluster.Cluster) string {
	for i := 0; ; i++ {
		if n := c.Broker(i); n.B != nil {
			return n.B.HTTPURL()
		}
	}
}

// TestGeoReplicationLongOutage: while B is down, A's ledgers are
// offloaded to S3 and deleted from its bookie; when B returns, the
// replicator reads the backlog from the object store and B gets every
// message once, in order.
func TestGeoReplicationLongOutage(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv)
	g := newGeoPair(t, 1, func(cluster string, i int, o *broker.Options) {
		if cluster == "a" {
			o.MaxEntriesPerLedger = 100
			o.RetentionCheckInterval = 200 * time.Millisecond
			o.Offload = broker.OffloadOptions{Store: store, Driver: "s3", KeyPrefix: "geo", CheckInterval: 200 * time.Millisecond}
		}
	})
	ctx := ctxT(t, 5*time.Minute)
	const topic, n = "persistent://geo/ns/long", 3000
	adm := adminOf(t, g.a)
	if err := adm.Namespaces().SetOffloadThreshold(ctx, geoNS, 0); err != nil {
		t.Fatal(err)
	}
	if err := adm.Namespaces().SetOffloadDeletionLag(ctx, geoNS, 0); err != nil {
		t.Fatal(err)
	}
	ca := newClient(t, g.a)
	produceGeo(t, ctx, ca, topic, "a", 0, 100, client.WithoutBatching())
	waitReplicated(t, ctx, g.a, topic, "b")
	g.b.StopBroker(0)
	produceGeo(t, ctx, ca, topic, "a", 100, n-100, client.WithoutBatching())
	// Every closed ledger is offloaded and leaves the bookie.
	lc := g.a.LedgerClient()
	var offloaded []int64
	testutil.WaitFor(t, 2*time.Minute, func() error {
		is, err := adm.Topics().InternalStats(ctx, topic)
		if err != nil {
			return err
		}
		offloaded = offloaded[:0]
		for _, l := range is.Ledgers[:len(is.Ledgers)-1] {
			if !l.Offloaded {
				return fmt.Errorf("ledger %d not offloaded yet", l.LedgerID)
			}
			offloaded = append(offloaded, l.LedgerID)
		}
		if len(offloaded) < n/100-2 {
			return fmt.Errorf("%d ledgers offloaded", len(offloaded))
		}
		for _, id := range offloaded {
			if _, err := lc.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
				return fmt.Errorf("ledger %d still on the bookie: %v", id, err)
			}
		}
		return nil
	})
	st, err := adm.Topics().Stats(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if rs := st.Replication["b"]; rs.ReplicationBacklog < n-200 {
		t.Fatalf("with B down, A's replication backlog is %d, want about %d", rs.ReplicationBacklog, n-100)
	}
	if err := g.b.StartBroker(0); err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, ctx, g.a, topic, "b")
	got := readAll(t, ctx, newClient(t, g.b), topic, n)
	checkExactlyOnce(t, "cluster b", "a", got["a"], 0, n)
	t.Logf("%d ledgers read back from S3 for the replicator", len(offloaded))
}

// TestGeoReplicationOwnConfigStores: two clusters that share nothing (as
// two standalones), each registered on the other through the admin API,
// with the tenant, namespace and replication set on both. A partitioned
// topic created in A is created in B by A's replicators, partition by
// partition, and every message reaches B once and in order per partition;
// B's messages reach A.
func TestGeoReplicationOwnConfigStores(t *testing.T) {
	opts := func(i int, o *broker.Options) { o.PolicyCheckInterval = 200 * time.Millisecond }
	a := testcluster.New(t, testcluster.Config{Name: "a", OwnEtcd: true, Bookies: 1, Brokers: 1, BrokerOptions: opts})
	b := testcluster.New(t, testcluster.Config{Name: "b", OwnEtcd: true, Bookies: 1, Brokers: 1, BrokerOptions: opts})
	ctx := ctxT(t, 3*time.Minute)
	clusterData := func(c *testcluster.Cluster) tenants.ClusterData {
		return tenants.ClusterData{ServiceURL: c.Broker(0).B.HTTPURL(), BrokerServiceURL: "pulsar://" + c.Broker(0).GRPCAddr}
	}
	for _, side := range []struct {
		c     *testcluster.Cluster
		other *testcluster.Cluster
	}{{a, b}, {b, a}} {
		adm := adminOf(t, side.c)
		if err := adm.Clusters().Create(ctx, side.other.Name(), clusterData(side.other)); err != nil {
			t.Fatal(err)
		}
		if err := adm.Tenants().Create(ctx, "geo", tenants.TenantInfo{AllowedClusters: []string{"a", "b"}}); err != nil {
			t.Fatal(err)
		}
		if err := adm.Namespaces().Create(ctx, geoNS, nil); err != nil {
			t.Fatal(err)
		}
		if err := adm.Namespaces().SetClusters(ctx, geoNS, []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
	}
	const topic, parts, n = "persistent://geo/ns/parted", 3, 3000
	if err := adminOf(t, a).Topics().CreatePartitioned(ctx, topic, parts); err != nil {
		t.Fatal(err)
	}
	ca, cb := newClient(t, a), newClient(t, b)
	produceGeo(t, ctx, ca, topic, "a", 0, n)
	for i := 0; i < parts; i++ {
		waitReplicated(t, ctx, a, fmt.Sprintf("%s-partition-%d", topic, i), "b")
	}
	pm, err := adminOf(t, b).Topics().GetPartitioned(ctx, topic)
	if err != nil || pm.Partitions != parts {
		t.Fatalf("B's partitioned metadata of %s: %+v, %v", topic, pm, err)
	}
	// Per partition, B holds A's messages in A's order; over all, each once.
	seen := map[int]bool{}
	for i := 0; i < parts; i++ {
		p := fmt.Sprintf("%s-partition-%d", topic, i)
		got := readAll(t, ctx, cb, p, 1)["a"]
		for j, v := range got {
			if seen[v] {
				t.Fatalf("%s in B: message #%d twice", p, v)
			}
			seen[v] = true
			if j > 0 && v <= got[j-1] {
				t.Fatalf("%s in B: #%d after #%d", p, v, got[j-1])
			}
		}
	}
	if len(seen) != n {
		t.Fatalf("B holds %d of A's %d messages", len(seen), n)
	}
	// And back: B's messages on a plain topic reach A.
	const back = "persistent://geo/ns/back"
	produceGeo(t, ctx, cb, back, "b", 0, 500)
	waitReplicated(t, ctx, b, back, "a")
	got := readAll(t, ctx, ca, back, 500)
	checkExactlyOnce(t, "cluster a", "b", got["b"], 0, 500)
}

// TestGeoReplicationAuthenticates: with authentication and authorization
// on in both clusters, A's brokers replicate with the token they are
// given (--broker-client-token-file): refused, and shown as not connected
// with the reason, until B grants that role produce on the namespace.
func TestGeoReplicationAuthenticates(t *testing.T) {
	secret, err := auth.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "data:;base64," + auth.EncodeSecretKey(secret)})
	if err != nil {
		t.Fatal(err)
	}
	token := func(role string) string {
		tok, err := auth.CreateToken(secret, auth.TokenOptions{Subject: role})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	replToken, adminToken := token("replicator"), token("admin")
	g := newGeoPairAs(t, 1, func(cluster string, i int, o *broker.Options) {
		o.Authentication, o.AuthorizationEnabled, o.SuperUserRoles = authn, true, []string{"admin"}
		if cluster == "a" {
			o.BrokerClientToken = replToken
		}
	}, adminToken)
	ctx := ctxT(t, 3*time.Minute)
	const topic = "persistent://geo/ns/authed"
	ca, err := client.New(g.a.ServiceURL(), client.WithToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	adm, err := admin.New(g.a.Broker(0).B.HTTPURL(), admin.WithToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	produceGeo(t, ctx, ca, topic, "a", 0, 100)
	testutil.WaitFor(t, time.Minute, func() error {
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		if rs := st.Replication["b"]; rs.Connected || rs.ReplicationBacklog != 100 || !strings.Contains(rs.LastError, "replicator") {
			return fmt.Errorf("replication to b without permission: %+v", rs)
		}
		return nil
	})
	st := tenants.NewStore(g.cfg, tenants.StoreOptions{LocalCluster: "a"})
	if _, err := st.UpdatePolicies(ctx, naming.MustParseNamespace(geoNS), func(p *tenants.Policies) error {
		p.AuthPolicies.NamespaceAuth["replicator"] = []tenants.AuthAction{tenants.ActionProduce}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 2*time.Minute, func() error {
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		if rs := st.Replication["b"]; !rs.Connected || rs.ReplicationBacklog != 0 {
			return fmt.Errorf("replication to b with permission: %+v", rs)
		}
		return nil
	})
	cb, err := client.New(g.b.ServiceURL(), client.WithToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	got := readAll(t, ctx, cb, topic, 100)
	checkExactlyOnce(t, "cluster b", "a", got["a"], 0, 100)
}

// TestGeoReplicatedSubscription: a consumer of a replicated subscription
// in A acknowledges the first 600 of 1000 messages; the subscription of
// the same name in B follows, so a consumer that fails over to B resumes
// near message 600 (not at 0) and misses nothing after it.
func TestGeoReplicatedSubscription(t *testing.T) {
	g := newGeoPair(t, 1, nil)
	ctx := ctxT(t, 3*time.Minute)
	const topic, n, acked = "persistent://geo/ns/replicated-sub", 1000, 600
	ca, cb := newClient(t, g.a), newClient(t, g.b)
	cons, err := ca.Subscribe(ctx, topic, "rs", client.WithInitialPosition(client.Earliest), client.WithReplicateSubscriptionState(true))
	if err != nil {
		t.Fatal(err)
	}
	// Produced over five seconds, so that snapshots (one a second) fall
	// between the messages.
	for i := 0; i < n; i += 50 {
		produceGeo(t, ctx, ca, topic, "a", i, 50)
		time.Sleep(250 * time.Millisecond)
	}
	for i := 0; i < acked; i++ {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("a/%06d", i); string(m.Payload) != want {
			t.Fatalf("A: message %d is %q, want %q", i, m.Payload, want)
		}
		cons.Ack(m)
	}
	cons.Close()
	admB := adminOf(t, g.b)
	var backlog int64
	testutil.WaitFor(t, time.Minute, func() error {
		st, err := admB.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		ss, ok := st.Subscriptions["rs"]
		if !ok || !ss.IsReplicated || ss.MsgBacklog >= n {
			return fmt.Errorf("B's subscriptions: %+v", st.Subscriptions)
		}
		backlog = ss.MsgBacklog
		return nil
	})
	t.Logf("B's replicated subscription moved up: %d entries left (A left %d of %d messages)", backlog, n-acked, n)
	// Fail over to B.
	consB, err := cb.Subscribe(ctx, topic, "rs", client.WithReplicateSubscriptionState(true))
	if err != nil {
		t.Fatal(err)
	}
	m, err := consB.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := strconv.Atoi(strings.TrimPrefix(string(m.Payload), "a/"))
	if first == 0 || first > acked {
		t.Fatalf("B resumes at message %d, want one in (0, %d]", first, acked)
	}
	t.Logf("B resumes at message %d", first)
	for i := first + 1; i < n; i++ {
		m, err := consB.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("a/%06d", i); string(m.Payload) != want {
			t.Fatalf("B: message after %d is %q, want %q", i-1, m.Payload, want)
		}
		consB.Ack(m)
	}
}

// replicatedEntry is an entry as cluster from's replicator sends it: its
// position there (l, e) is in its metadata.
func replicatedEntry(t *testing.T, from string, l, e int64, payload string, withPosition bool) []byte {
	t.Helper()
	md := &pulsarpb.MessageMetadata{ProducerName: proto.String("app"), SequenceId: proto.Uint64(uint64(e)), PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}
	if withPosition {
		md.SetReplicated(from, l, e)
	} else {
		md.ReplicatedFrom = proto.String(from)
	}
	entry, err := pulsarpb.EncodeEntry(md, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return entry
}

// TestReplicatorStreamStopsAtFailure: once an encoded entry the SDK sends
// is refused, the producer ends and the entries after it fail too, so a
// later entry is never stored ahead of one that failed (deduplication by
// source position would then drop the failed one when it comes again); a
// resend from the failed entry on a new producer stores each once.
func TestReplicatorStreamStopsAtFailure(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	const topic = "persistent://public/default/repl-stream"
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, topic, client.WithProducerName("pulsar.repl.x"), client.WithoutBatching(), client.WithSendTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	results := make(chan error, 3)
	cb := func(_ client.MessageID, err error) { results <- err }
	p.SendEntryAsync(ctx, replicatedEntry(t, "x", 5, 0, "m0", true), cb)
	p.SendEntryAsync(ctx, replicatedEntry(t, "x", 5, 1, "m1", false), cb) // no source position: refused
	p.SendEntryAsync(ctx, replicatedEntry(t, "x", 5, 2, "m2", true), cb)  // valid, but after a failure
	for i, want := range []string{"", "has no " + pulsarpb.ReplSourcePositionProperty, "has no " + pulsarpb.ReplSourcePositionProperty} {
		err := <-results
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Fatalf("send %d: %v, want an error with %q", i, err, want)
		}
	}
	// The producer ended with the failure; the replicator resends from the
	// failed entry (now well formed) on a new one, and the first is
	// dropped as already stored.
	p.SendEntryAsync(ctx, replicatedEntry(t, "x", 5, 3, "m3", true), cb)
	if err := <-results; err == nil {
		t.Fatal("the producer took an entry after one failed")
	}
	p2, err := cl.CreateProducer(ctx, topic, client.WithProducerName("pulsar.repl.x"), client.WithoutBatching(), client.WithSendTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	for e := int64(0); e < 3; e++ {
		p2.SendEntryAsync(ctx, replicatedEntry(t, "x", 5, e, fmt.Sprintf("m%d", e), true), cb)
		if err := <-results; err != nil {
			t.Fatalf("resend %d: %v", e, err)
		}
	}
	r, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	for len(got) < 3 {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload))
	}
	if strings.Join(got, " ") != "m0 m1 m2" {
		t.Fatalf("stored %v, want m0 m1 m2", got)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m, err := r.Next(rctx); err == nil {
		t.Fatalf("a fourth entry was stored: %q", m.Payload)
	}
}

// TestReplicatorStreamRefusesAfterFailure: at the protocol level, a
// replicator stream's sends after a failed one are refused in order, for
// clients that would not stop on their own.
func TestReplicatorStreamRefusesAfterFailure(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	stream, err := rawClient(t, c.Broker(0).GRPCAddr).Produce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{
		Topic: "persistent://public/default/repl-raw", ProducerName: "pulsar.repl.x"}}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetOpened() == nil {
		t.Fatalf("open: %v %v", resp, err)
	}
	for i, e := range [][]byte{replicatedEntry(t, "x", 7, 0, "ok", true), replicatedEntry(t, "x", 7, 1, "bad", false), replicatedEntry(t, "x", 7, 2, "after", true)} {
		if err := stream.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{SequenceId: int64(i), HighestSequenceId: int64(i), NumMessages: 1, Entry: e}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"", "has no", "earlier send"} {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		se := resp.GetSendError()
		if (want == "") != (se == nil) || se != nil && !strings.Contains(se.Message, want) {
			t.Fatalf("send %d: %v, want %q", i, resp, want)
		}
	}
}

// TestGeoReplicationFullMesh: three clusters replicate one namespace to
// each other; 1,000 messages produced in each reach the other two once and
// in order, and nothing is copied on a second hop (each log holds exactly
// 3,000).
func TestGeoReplicationFullMesh(t *testing.T) {
	cfg, _ := testcluster.OwnEtcd(t, filepath.Join(t.TempDir(), "config-etcd"))
	names := []string{"a", "b", "c"}
	var cs []*testcluster.Cluster
	for _, name := range names {
		cs = append(cs, testcluster.New(t, testcluster.Config{Name: name, OwnEtcd: true, ConfigStore: cfg, Bookies: 1, Brokers: 1,
			BrokerOptions: func(i int, o *broker.Options) { o.PolicyCheckInterval = 200 * time.Millisecond }}))
	}
	ctx := ctxT(t, 3*time.Minute)
	st := tenants.NewStore(cfg, tenants.StoreOptions{LocalCluster: "a"})
	if err := st.CreateTenant(ctx, "geo", tenants.TenantInfo{AllowedClusters: names}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateNamespace(ctx, naming.MustParseNamespace(geoNS), tenants.Policies{ReplicationClusters: names}); err != nil {
		t.Fatal(err)
	}
	const topic, n = "persistent://geo/ns/mesh", 1000
	clients := make([]*client.Client, len(cs))
	for i, c := range cs {
		clients[i] = newClient(t, c)
		testutil.WaitFor(t, 30*time.Second, func() error {
			_, err := adminOf(t, c).Topics().List(ctx, geoNS)
			return err
		})
	}
	for i, name := range names {
		produceGeo(t, ctx, clients[i], topic, name, 0, n)
	}
	for _, c := range cs {
		for _, remote := range names {
			if remote != c.Name() {
				waitReplicated(t, ctx, c, topic, remote)
			}
		}
	}
	for i, c := range cs {
		got := readAll(t, ctx, clients[i], topic, len(names)*n)
		for _, origin := range names {
			checkExactlyOnce(t, "cluster "+c.Name(), origin, got[origin], 0, n)
		}
	}
}

// TestGeoReplicatorDispatchRate: the namespace's replicatorDispatchRate
// (the entry of the sending cluster) bounds what each replicator sends;
// removing it lets the rest of the backlog through at once.
func TestGeoReplicatorDispatchRate(t *testing.T) {
	g := newGeoPair(t, 1, nil)
	ctx := ctxT(t, 2*time.Minute)
	const topic, n = "persistent://geo/ns/repl-rate", 3000
	rest{t, g.a.Broker(0).B.HTTPURL()}.want(http.MethodPost, "/admin/v2/namespaces/geo/ns/replicatorDispatchRate",
		`{"dispatchThrottlingRateInMsg":200,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}`, http.StatusNoContent)
	cons, err := newClient(t, g.b).Subscribe(ctx, topic, "s", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	produceGeo(t, ctx, newClient(t, g.a), topic, "a", 0, n, client.WithoutBatching())
	countFor(t, time.Second, cons) // the limiter's initial burst
	got := countFor(t, 4*time.Second, cons)
	within(t, "replication to b", float64(got[0])/4, 200)
	rest{t, g.a.Broker(0).B.HTTPURL()}.want(http.MethodDelete, "/admin/v2/namespaces/geo/ns/replicatorDispatchRate", "", http.StatusNoContent)
	waitReplicated(t, ctx, g.a, topic, "b")
}

// TestGeoTopicReplicationClusters: a topic's own replication clusters
// replace its namespace's (Pulsar's topic-level /replication), checked
// against the tenant's allowed clusters like the namespace's; removing
// them brings the namespace's back.
func TestGeoTopicReplicationClusters(t *testing.T) {
	g := newGeoPair(t, 1, nil)
	ctx := ctxT(t, 2*time.Minute)
	const topic = "persistent://geo/ns/topic-level"
	r := rest{t, g.a.Broker(0).B.HTTPURL()}
	st := tenants.NewStore(g.cfg, tenants.StoreOptions{LocalCluster: "a"})
	if err := st.CreateCluster(ctx, "c", tenants.ClusterData{ServiceURL: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	const path = "/admin/v2/persistent/geo/ns/topic-level/replication"
	r.want(http.MethodPost, path, `["a","c"]`, http.StatusPreconditionFailed, "not allowed to use cluster", "c")
	r.want(http.MethodPost, path, `[]`, http.StatusBadRequest, "must not be empty")
	r.want(http.MethodPost, path, `["a","no/such"]`, http.StatusBadRequest)
	r.want(http.MethodGet, path, "", http.StatusNoContent)

	ca, cb := newClient(t, g.a), newClient(t, g.b)
	produceGeo(t, ctx, ca, topic, "a", 0, 100)
	waitReplicated(t, ctx, g.a, topic, "b")
	// The topic stays in A from now on.
	r.want(http.MethodPost, path, `["a"]`, http.StatusNoContent)
	r.want(http.MethodGet, path, "", http.StatusOK, `["a"]`)
	adm := adminOf(t, g.a)
	testutil.WaitFor(t, 30*time.Second, func() error {
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		if _, ok := st.Replication["b"]; ok {
			return fmt.Errorf("still replicating to b: %+v", st.Replication)
		}
		return nil
	})
	produceGeo(t, ctx, ca, topic, "a", 100, 100)
	// Removed: the namespace's clusters apply again, from then on.
	r.want(http.MethodDelete, path, "", http.StatusNoContent)
	testutil.WaitFor(t, 30*time.Second, func() error {
		st, err := adm.Topics().Stats(ctx, topic)
		if err != nil {
			return err
		}
		if _, ok := st.Replication["b"]; !ok {
			return fmt.Errorf("not replicating to b: %+v", st.Replication)
		}
		return nil
	})
	produceGeo(t, ctx, ca, topic, "a", 200, 100)
	waitReplicated(t, ctx, g.a, topic, "b")
	got := readAll(t, ctx, cb, topic, 200)["a"]
	checkExactlyOnce(t, "cluster b, before", "a", got[:100], 0, 100)
	checkExactlyOnce(t, "cluster b, after", "a", got[100:], 200, 100)
}
