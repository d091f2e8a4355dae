package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
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
	return g
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
				t.Fatalf("%s: %d of %d messages, then %v", topic, total, want, err)
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
	var url string
	for i := 0; ; i++ {
		if n := c.Broker(i); n.B != nil {
			url = n.B.HTTPURL()
			break
		}
	}
	adm, err := admin.New(url)
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
	produceGeo(t, ctx, ca, topic, "a", 0, n)
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
// killed mid-replication; the next owner resumes from the replicator's
// cursor and B gets every message once, in order.
func TestGeoReplicationOwnerKilled(t *testing.T) {
	g := newGeoPair(t, 2, func(cluster string, i int, o *broker.Options) {
		// A's producer resends across the failover. B deduplicates the
		// replicated entries A's next owner sends again on its own.
		o.DeduplicationEnabled = cluster == "a"
	})
	ctx := ctxT(t, 5*time.Minute)
	const topic = "persistent://geo/ns/owner"
	ca := newClient(t, g.a)
	done := produceGeoPaced(t, ctx, ca, topic, "a", 0, 3000)
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
	<-done
	waitReplicated(t, ctx, g.a, topic, "b")
	got := readAll(t, ctx, newClient(t, g.b), topic, 3000)
	checkExactlyOnce(t, "cluster b", "a", got["a"], 0, 3000)
}
