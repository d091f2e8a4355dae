package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/s3test"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/offload"
	"github.com/strata-mq/strata/tenants"
)

// offloadPayload is message i's payload: distinct bytes of every value.
func offloadPayload(i int) []byte {
	b := []byte(fmt.Sprintf("msg-%06d-", i))
	for j := 0; j < 64; j++ {
		b = append(b, byte(i*31+j*7))
	}
	return b
}

// metricValue returns the value of the series named with its labels.
// publishOffloadPayloads publishes offloadPayload(0..n-1) to topic
// unbatched, one entry each, and returns once every send succeeded.
func publishOffloadPayloads(t *testing.T, ctx context.Context, cl *client.Client, topic string, n int) *client.Producer {
	t.Helper()
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		p.SendAsync(ctx, &client.ProducerMessage{Payload: offloadPayload(i)}, func(_ client.MessageID, _ *client.ProducerMessage, err error) { errs <- err })
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("send %s: %v", topic, err)
		}
	}
	return p
}

func metricValue(t *testing.T, metrics, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("series %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

func s3Store(t *testing.T, srv *s3test.Server) *offload.S3Store {
	t.Helper()
	st, err := offload.NewS3Store(offload.S3Options{
		Endpoint: srv.URL(), Region: srv.Region, Bucket: srv.Bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true, MaxRetries: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestOffloadThroughBroker offloads a topic through the admin API to a real
// S3 server, then replays it through the broker: with the bookie copies
// deleted, and with every bookie stopped (including a seek by time into an
// offloaded ledger); finally retention deletes the objects.
func TestOffloadThroughBroker(t *testing.T) {
	srv := s3test.Start(t)
	store := s3Store(t, srv)
	const n, perLedger = 50000, 2500
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxEntriesPerLedger = perLedger
		o.RetentionCheckInterval = 200 * time.Millisecond
		o.Offload = broker.OffloadOptions{Store: store, Driver: "s3", KeyPrefix: "strata",
			Write: offload.WriteOptions{BlockSize: 128 << 10}, CheckInterval: 200 * time.Millisecond}
	}})
	ctx := ctxT(t, 5*time.Minute)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	const ns, topic = "public/default", "persistent://public/default/offloaded"
	// Bad requests first: no message id, unknown topic.
	r := rest{t, c.Broker(0).B.HTTPURL()}
	r.want("PUT", "/admin/v2/persistent/public/default/offloaded/offload", `{"ledgerId":1,"entryId":0}`, 404, "offloaded")

	// Keep everything (nothing subscribes yet), as a replay archive does.
	if err := adm.Namespaces().SetRetention(ctx, ns, tenants.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -1}); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	publishOffloadPayloads(t, ctx, cl, topic, n)
	r.want("PUT", "/admin/v2/persistent/public/default/offloaded/offload", "", 400, "message id")
	r.want("PUT", "/admin/v2/persistent/public/default/offloaded/offload", `{"ledgerId":"x"}`, 400, "malformed")

	// Bookie copies go as soon as the offload completes.
	if err := adm.Namespaces().SetOffloadDeletionLag(ctx, ns, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the broker's policy cache follows etcd
	last, err := adm.Topics().LastMessageID(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Topics().Offload(ctx, topic, last); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 3*time.Minute, func() error {
		st, err := adm.Topics().OffloadStatus(ctx, topic)
		if err != nil {
			return err
		}
		if st.Status != admin.OffloadSuccess {
			return fmt.Errorf("offload status %+v", st)
		}
		if st.FirstUnoffloadedMessage == nil || st.FirstUnoffloadedMessage.LedgerID != last.LedgerID {
			is, _ := adm.Topics().InternalStats(ctx, topic)
			return fmt.Errorf("first unoffloaded %+v, want ledger %d; ledgers %+v", st.FirstUnoffloadedMessage, last.LedgerID, is.Ledgers)
		}
		return nil
	})
	is, err := adm.Topics().InternalStats(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var offloadedIDs []int64
	offloadedEntries, offloadedBytes := int64(0), int64(0)
	for _, l := range is.Ledgers {
		if l.LedgerID >= last.LedgerID {
			if l.Offloaded {
				t.Fatalf("ledger %d (from the given message id on) offloaded", l.LedgerID)
			}
			continue
		}
		if !l.Offloaded {
			t.Fatalf("ledger %+v before %d not offloaded", l, last.LedgerID)
		}
		offloadedIDs = append(offloadedIDs, l.LedgerID)
		offloadedEntries += l.Entries
		offloadedBytes += l.Size
	}
	if len(offloadedIDs) < n/perLedger-1 || offloadedEntries != int64(n)-(last.EntryID+1) {
		t.Fatalf("offloaded %d ledgers with %d entries; last message %+v", len(offloadedIDs), offloadedEntries, last)
	}
	lc := c.LedgerClient()
	testutil.WaitFor(t, time.Minute, func() error {
		for _, id := range offloadedIDs {
			if _, err := lc.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
				return fmt.Errorf("ledger %d still on bookies: %v", id, err)
			}
		}
		return nil
	})
	metrics := r.want("GET", "/metrics", "", 200)
	for _, want := range []string{
		fmt.Sprintf(`strata_offload_ledgers_total{cluster="%s",namespace="public/default",topic="%s"} %d`, testcluster.ClusterName, topic, len(offloadedIDs)),
		fmt.Sprintf(`strata_offload_errors_total{cluster="%s",namespace="public/default",topic="%s"} 0`, testcluster.ClusterName, topic),
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
	labels := fmt.Sprintf(`{cluster="%s",namespace="public/default",topic="%s"}`, testcluster.ClusterName, topic)
	for name, want := range map[string]float64{
		"pulsar_storage_offloaded_size": float64(offloadedBytes),
		"strata_offload_bytes_total":    float64(offloadedBytes),
	} {
		if got := metricValue(t, metrics, name+labels); got != want {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
	if d := metricValue(t, metrics, "strata_offload_last_duration_seconds"+labels); d <= 0 {
		t.Fatalf("strata_offload_last_duration_seconds = %v", d)
	}
	if b := metricValue(t, metrics, "strata_storage_bookie_size"+labels); b >= float64(offloadedBytes) {
		t.Fatalf("strata_storage_bookie_size = %v after deleting %d offloaded bytes from bookies", b, offloadedBytes)
	}

	// A new subscription from the earliest message receives every message,
	// byte-identical and in order: all but the last ledger come from S3.
	cons, err := cl.Subscribe(ctx, topic, "replay", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	got := recvN(t, cons, n, true)
	for i, m := range got {
		if !bytes.Equal(m.Payload, offloadPayload(i)) {
			t.Fatalf("message %d: %q, want %q", i, m.Payload, offloadPayload(i))
		}
	}

	// Every bookie stopped: the offloaded range still replays, and a seek
	// by time lands inside an offloaded ledger.
	c.StopBookie(0)
	rd, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < int(offloadedEntries); i++ {
		m, err := rd.Next(ctx)
		if err != nil {
			t.Fatalf("replay with bookies down: message %d: %v", i, err)
		}
		if !bytes.Equal(m.Payload, offloadPayload(i)) {
			t.Fatalf("replay with bookies down: message %d: %q", i, m.Payload)
		}
	}
	rd.Close()
	target := 2*perLedger + 1234 // in the third ledger
	at := got[target].PublishTime
	first := target
	for first > 0 && !got[first-1].PublishTime.Before(at) {
		first--
	}
	if err := cons.SeekByTime(ctx, at); err != nil {
		t.Fatal(err)
	}
	if m := recvN(t, cons, 1, false)[0]; !bytes.Equal(m.Payload, offloadPayload(first)) {
		t.Fatalf("seek by time %v with bookies down: got %q, want message %d", at, m.Payload, first)
	}
	cons.Close()

	// Retention that keeps nothing consumed deletes the offloaded ledgers'
	// objects once every subscription consumed them.
	c.RestartBookie(0)
	if err := adm.Namespaces().SetRetention(ctx, ns, tenants.RetentionPolicies{}); err != nil {
		t.Fatal(err)
	}
	cons2, err := cl.Subscribe(ctx, topic, "replay")
	if err != nil {
		t.Fatal(err)
	}
	if err := cons2.AckCumulative(recvN(t, cons2, n-first, false)[n-first-1]); err != nil {
		t.Fatal(err)
	}
	mc, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, time.Minute, func() error {
		var keys []string
		for obj := range mc.ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Prefix: "strata/public/default/offloaded/", Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			keys = append(keys, obj.Key)
		}
		if len(keys) > 0 {
			return fmt.Errorf("objects left: %v", keys)
		}
		return nil
	})
}

// TestOffloadThresholdPolicy sets the namespace offload threshold through
// the admin API: the broker keeps offloading so that a topic's data on
// bookies stays within the threshold plus one ledger.
func TestOffloadThresholdPolicy(t *testing.T) {
	store, err := offload.NewFSStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const ledgerEntries, size = 256, 1024 // ≈ 256 KiB ledgers of 1 KiB messages
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxEntriesPerLedger = ledgerEntries
		o.Offload = broker.OffloadOptions{Store: store, Driver: "filesystem", CheckInterval: 100 * time.Millisecond}
	}})
	ctx := ctxT(t, 3*time.Minute)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	const topic = "persistent://public/default/threshold"
	if err := adm.Namespaces().SetOffloadThreshold(ctx, "public/default", 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := adm.Namespaces().SetOffloadDeletionLag(ctx, "public/default", 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{'x'}, size)
	ledgerBytes := int64(ledgerEntries * size)
	bookieSize := func() (int64, error) {
		var st struct {
			Ledgers []struct {
				Size      int64 `json:"size"`
				Offloaded bool  `json:"offloaded"`
			} `json:"ledgers"`
		}
		getJSON(t, c.Broker(0).B.HTTPURL()+"/admin/v2/persistent/public/default/threshold/internalStats", &st)
		var onBookies int64
		for _, l := range st.Ledgers {
			if !l.Offloaded {
				onBookies += l.Size
			}
		}
		return onBookies, nil
	}
	for round := 0; round < 8; round++ {
		for i := 0; i < 2*ledgerEntries; i++ {
			if _, err := p.Send(ctx, &client.ProducerMessage{Payload: payload}); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitFor(t, time.Minute, func() error {
			b, err := bookieSize()
			if err != nil {
				return err
			}
			// Entries carry metadata too: allow 10 % over the payload bytes.
			if limit := (1<<20 + ledgerBytes) * 11 / 10; b > limit {
				return fmt.Errorf("round %d: %d bytes not offloaded, want <= %d", round, b, limit)
			}
			return nil
		})
	}
	objs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) < 2*4 { // ≥ 4 ledgers offloaded, two objects each
		t.Fatalf("only %d objects offloaded", len(objs))
	}
}

// TestOffloadAdminErrors: a broker without tiered storage says so clearly.
func TestOffloadAdminErrors(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, "no-offload")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 10)
	r := rest{t, c.Broker(0).B.HTTPURL()}
	base := "/admin/v2/persistent/public/default/no-offload/offload"
	r.want("PUT", base, `{"ledgerId":1,"entryId":0}`, 412, "not configured")
	r.want("GET", base, "", 412, "not configured")
	// A partitioned topic is offloaded partition by partition.
	r.want("PUT", "/admin/v2/persistent/public/default/parted/partitions", "2", 204)
	r.want("GET", "/admin/v2/persistent/public/default/parted/offload", "", 405, "parted-partition-0")
}

// TestOffloadStoreCheckedAtStart: the broker checks its store before
// serving: wrong credentials and a bucket it may not create stop it with an
// error naming the store; a missing bucket is created.
func TestOffloadStoreCheckedAtStart(t *testing.T) {
	srv := s3test.Start(t)
	c := testcluster.New(t, testcluster.Config{Bookies: 1})
	newBroker := func(s3 offload.S3Options) (*broker.Broker, error) {
		s3.Endpoint, s3.Region, s3.PathStyle, s3.MaxRetries = srv.URL(), srv.Region, true, 1
		if s3.AccessKey == "" {
			s3.AccessKey, s3.SecretKey = srv.AccessKey, srv.SecretKey
		}
		store, err := offload.NewS3Store(s3)
		if err != nil {
			t.Fatal(err)
		}
		return broker.New(broker.Options{Cluster: testcluster.ClusterName, Metadata: c.Store, Logger: c.Log,
			GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Offload: broker.OffloadOptions{Store: store, Driver: "s3"}})
	}
	_, err := newBroker(offload.S3Options{Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: "wrong-secret"})
	if err == nil || !strings.Contains(err.Error(), "credentials rejected") || !strings.Contains(err.Error(), srv.Bucket) {
		t.Fatalf("broker with a wrong S3 secret: %v", err)
	}
	_, err = newBroker(offload.S3Options{Bucket: "absent-bucket", DisableCreateBucket: true})
	if !errors.Is(err, offload.ErrBucketNotFound) || !strings.Contains(err.Error(), "create it first") {
		t.Fatalf("broker with a missing bucket it may not create: %v", err)
	}
	b, err := newBroker(offload.S3Options{Bucket: "created-bucket"})
	if err != nil {
		t.Fatalf("broker with a missing bucket: %v", err)
	}
	b.Close()
	mc, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := mc.BucketExists(ctxT(t, time.Minute), "created-bucket"); !ok || err != nil {
		t.Fatalf("bucket not created: %v %v", ok, err)
	}
}

// gatedStore holds the gateAt-th Put until its context ends (the uploading
// broker dies), after signalling blocked.
type gatedStore struct {
	offload.BlobStore
	gateAt  int32
	puts    atomic.Int32
	blocked chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if g.puts.Add(1) == g.gateAt {
		close(g.blocked)
		<-ctx.Done()
		return ctx.Err()
	}
	return g.BlobStore.Put(ctx, key, r, size, meta)
}

// TestOffloadBrokerKilledMidOffload kills the owning broker while it
// uploads a ledger whose data object is already stored: the new owner
// never sees that ledger marked offloaded, cleans the abandoned object up,
// offloads everything again, and every message replays.
func TestOffloadBrokerKilledMidOffload(t *testing.T) {
	srv := s3test.Start(t)
	// Ledger 1's data and index, ledger 2's data, then ledger 2's index
	// blocks: ledger 2's data object is an orphan unless cleaned up.
	store := &gatedStore{BlobStore: s3Store(t, srv), gateAt: 4, blocked: make(chan struct{})}
	const n, perLedger = 4000, 500
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxEntriesPerLedger = perLedger
		o.Offload = broker.OffloadOptions{Store: store, Driver: "s3", KeyPrefix: "strata",
			Write: offload.WriteOptions{BlockSize: 64 << 10}, CheckInterval: 200 * time.Millisecond}
	}})
	ctx := ctxT(t, 3*time.Minute)
	const ns, topic = "public/default", "persistent://public/default/killed-offload"
	adm0, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	if err := adm0.Namespaces().SetRetention(ctx, ns, tenants.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -1}); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	publishOffloadPayloads(t, ctx, cl, topic, n).Close()
	owner := c.BrokerIndex(ownerOf(t, c, topic))
	adm, err := admin.New(c.Broker(owner).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	last, err := adm.Topics().LastMessageID(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Topics().Offload(ctx, topic, last); err != nil {
		t.Fatal(err)
	}
	select {
	case <-store.blocked:
	case <-ctx.Done():
		t.Fatal("the offload never reached ledger 2's index")
	}
	c.KillBroker(owner)

	// The other broker takes the topic over.
	other := 1 - owner
	adm1, err := admin.New(c.Broker(other).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	var is *admin.InternalStats
	testutil.WaitFor(t, time.Minute, func() error {
		is, err = adm1.Topics().InternalStats(ctx, topic)
		return err
	})
	offloadedBefore := 0
	for _, l := range is.Ledgers {
		if l.Offloaded {
			offloadedBefore++
		}
	}
	if offloadedBefore != 1 {
		t.Fatalf("after the kill %d ledgers are marked offloaded, want exactly the first: %+v", offloadedBefore, is.Ledgers)
	}
	if err := adm1.Topics().Offload(ctx, topic, last); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 2*time.Minute, func() error {
		st, err := adm1.Topics().OffloadStatus(ctx, topic)
		if err != nil {
			return err
		}
		if st.Status != admin.OffloadSuccess {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	is, err = adm1.Topics().InternalStats(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offloaded := 0
	for _, l := range is.Ledgers {
		if l.LedgerID < last.LedgerID && !l.Offloaded {
			t.Fatalf("ledger %d not offloaded", l.LedgerID)
		}
		if l.Offloaded {
			offloaded++
		}
	}
	// Exactly two objects per offloaded ledger: the killed attempt's data
	// object was deleted.
	mc, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, time.Minute, func() error {
		var keys []string
		for obj := range mc.ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Prefix: "strata/public/default/killed-offload/", Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			keys = append(keys, obj.Key)
		}
		if len(keys) != 2*offloaded {
			return fmt.Errorf("%d objects for %d offloaded ledgers: %v", len(keys), offloaded, keys)
		}
		return nil
	})
	cons, err := cl.Subscribe(ctx, topic, "replay", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range recvN(t, cons, n, true) {
		if !bytes.Equal(m.Payload, offloadPayload(i)) {
			t.Fatalf("message %d: %q", i, m.Payload)
		}
	}
}

// TestOffloadEveryTopicName: a topic whose name the object store could not
// hold as it is (longest allowed, leading '.') offloads and replays from
// the store like any other; with tiered storage configured, such a topic
// used to fail to load at all (its object keys were invalid).
func TestOffloadEveryTopicName(t *testing.T) {
	dir := t.TempDir()
	store, err := offload.NewFSStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	const perLedger, n = 10, 35
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxEntriesPerLedger = perLedger
		o.RetentionCheckInterval = 100 * time.Millisecond
		o.Offload = broker.OffloadOptions{Store: store, Driver: "filesystem", CheckInterval: 100 * time.Millisecond}
	}})
	ctx := ctxT(t, 3*time.Minute)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Namespaces().SetRetention(ctx, "public/default", tenants.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -1}); err != nil {
		t.Fatal(err)
	}
	if err := adm.Namespaces().SetOffloadDeletionLag(ctx, "public/default", 0); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	for _, local := range []string{strings.Repeat("n", 255), ".hidden", "..x"} {
		topic := "persistent://public/default/" + local
		t.Run(local[:min(len(local), 8)], func(t *testing.T) {
			publishOffloadPayloads(t, ctx, cl, topic, n)
			last, err := adm.Topics().LastMessageID(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if err := adm.Topics().Offload(ctx, topic, last); err != nil {
				t.Fatal(err)
			}
			var offloaded []int64
			testutil.WaitFor(t, time.Minute, func() error {
				st, err := adm.Topics().OffloadStatus(ctx, topic)
				if err != nil {
					return err
				}
				if st.Status != admin.OffloadSuccess {
					return fmt.Errorf("offload status %+v", st)
				}
				is, err := adm.Topics().InternalStats(ctx, topic)
				if err != nil {
					return err
				}
				offloaded = offloaded[:0]
				for _, l := range is.Ledgers {
					if l.Offloaded {
						offloaded = append(offloaded, l.LedgerID)
					}
				}
				if len(offloaded) != n/perLedger {
					return fmt.Errorf("ledgers %+v, want %d offloaded", is.Ledgers, n/perLedger)
				}
				return nil
			})
			lc := c.LedgerClient()
			testutil.WaitFor(t, time.Minute, func() error {
				for _, id := range offloaded {
					if _, err := lc.Metadata(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
						return fmt.Errorf("ledger %d still on bookies: %v", id, err)
					}
				}
				return nil
			})
			rd, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			for i := 0; i < n; i++ {
				m, err := rd.Next(ctx)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(m.Payload, offloadPayload(i)) {
					t.Fatalf("message %d: %q, want %q", i, m.Payload, offloadPayload(i))
				}
			}
		})
	}
	objs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * 2 * (n / perLedger); len(objs) != want {
		t.Fatalf("%d objects in the store, want %d", len(objs), want)
	}
}
