package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
)

// TestPolicyOverflowExpiresNothing: durations and sizes so large that
// multiplying them into nanoseconds or bytes overflows are refused with a
// 400 naming the allowed range — namespace and topic message TTL, a
// message-age backlog quota with eviction, retention, expire-messages — and
// such values stored before they were checked expire nothing: the overflow
// used to put the expiry cut-off in the future and expire the whole backlog.
func TestPolicyOverflowExpiresNothing(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	cons, err := cl.Subscribe(ctx, "ovf", "s")
	if err != nil {
		t.Fatal(err)
	}
	cons.Close()
	p, err := cl.CreateProducer(ctx, "ovf", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 5)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	const topic = "persistent://public/default/ovf"
	huge := int64(10_000_000_000)
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"namespace message TTL", adm.Namespaces().SetMessageTTL(ctx, "public/default", int(huge))},
		{"topic message TTL", adm.Topics().SetMessageTTL(ctx, topic, int(huge))},
		{"message-age quota", adm.Namespaces().SetBacklogQuota(ctx, "public/default", tenants.MessageAge,
			tenants.BacklogQuota{LimitSize: -1, LimitTime: huge, Policy: tenants.ConsumerBacklogEviction})},
		{"retention time", adm.Namespaces().SetRetention(ctx, "public/default", tenants.RetentionPolicies{RetentionTimeInMinutes: int(huge * 1000), RetentionSizeInMB: -1})},
		{"retention size", adm.Namespaces().SetRetention(ctx, "public/default", tenants.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: 1 << 60})},
		{"expire messages", adm.Topics().ExpireMessages(ctx, topic, "s", 1<<63-1)},
		{"expire all messages", adm.Topics().ExpireAllMessages(ctx, topic, 1<<63-1)},
	} {
		if admin.StatusCode(tc.err) != http.StatusBadRequest || !strings.Contains(tc.err.Error(), "between") {
			t.Errorf("%s of %d: %v, want 400 naming the allowed range", tc.what, huge, tc.err)
		}
	}
	if b := subBacklog(t, c, "ovf", "s"); b != 5 {
		t.Fatalf("backlog %d after refused policies, want 5", b)
	}

	// Values stored before the API checked them saturate instead of
	// overflowing: nothing expires.
	kv, err := c.Store.Get(ctx, tenants.NamespaceKey(naming.MustParseNamespace("public/default")))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(kv.Value, &raw); err != nil {
		t.Fatal(err)
	}
	raw["message_ttl_in_seconds"] = huge
	raw["backlog_quota_map"] = map[string]any{"message_age": map[string]any{"limitSize": -1, "limitTime": huge, "policy": "consumer_backlog_eviction"}}
	raw["retention_policies"] = map[string]any{"retentionTimeInMinutes": huge * 1000, "retentionSizeInMB": int64(1) << 60}
	data, _ := json.Marshal(raw)
	if _, err := c.Store.Put(ctx, kv.Key, data, metadata.AnyVersion); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error { // the broker serves the stored values
		ttl, err := adm.Namespaces().GetMessageTTL(context.Background(), "public/default")
		if err != nil || ttl == nil || int64(*ttl) != huge {
			return fmt.Errorf("message TTL %v (%v)", ttl, err)
		}
		return nil
	})
	// Twenty policy intervals (100 ms each) with the overflowing values.
	holdsFor(t, 2*time.Second, func() error {
		if b := subBacklog(t, c, "ovf", "s"); b != 5 {
			return fmt.Errorf("backlog %d with overflowing policies in force, want 5 (messages expired)", b)
		}
		return nil
	})
}

// holdsFor fails the test if cond fails at any check during d.
func holdsFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAPILimitsMatchEveryLayer: what the API accepts, every layer can do.
// An ensemble the ledger client cannot use (1,000 bookies) and a partition
// count beyond the bound are refused with the allowed range instead of
// being stored and failing every produce later.
func TestAPILimitsMatchEveryLayer(t *testing.T) {
	if tenants.MaxEnsembleSize != ledger.MaxEnsembleSize {
		t.Fatalf("the API allows ensembles of %d, ledgers of %d", tenants.MaxEnsembleSize, ledger.MaxEnsembleSize)
	}
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	err = adm.Namespaces().SetPersistence(ctx, "public/default", tenants.PersistencePolicies{BookkeeperEnsemble: 1000, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 2})
	if admin.StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "64 >= bookkeeperEnsemble") {
		t.Fatalf("ensemble of 1000: %v, want 400 naming the limit", err)
	}
	err = adm.Topics().CreatePartitioned(ctx, "many", tenants.MaxPartitions+1)
	if admin.StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "between 1 and 1024") {
		t.Fatalf("%d partitions: %v, want 400 naming the limit", tenants.MaxPartitions+1, err)
	}
}

// poisonEntry is an entry whose metadata claims 2^31-1 messages in a batch
// of one: decoding it trustingly allocates 64 GiB.
func poisonEntry(t *testing.T) []byte {
	t.Helper()
	payload, err := pulsarpb.EncodeBatch([]pulsarpb.BatchMessage{{Meta: &pulsarpb.SingleMessageMetadata{}, Payload: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String("attacker"), SequenceId: proto.Uint64(0),
		PublishTime: proto.Uint64(uint64(time.Now().UnixMilli())), NumMessagesInBatch: proto.Int32(1<<31 - 1)}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPoisonBatch: a producer's entry whose batch count its bytes cannot
// back is refused (INVALID_MESSAGE) and nothing is stored; one already in a
// log (written before the broker checked) reaches SDK consumers as an
// ErrUndecodable error with the message to acknowledge — or, with a
// dead-letter policy, goes to the dead-letter topic — and the messages
// after it are delivered. (It used to crash every consumer with an
// out-of-memory, again after each reconnect.)
func TestPoisonBatch(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	raw := rawClient(t, c.Broker(0).GRPCAddr)
	s, err := openProducer(t, raw, "persistent://public/default/poison-sent")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{SequenceId: 0, Entry: poisonEntry(t)}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil || resp.GetSendError().GetError() != clientpb.ServerError_INVALID_MESSAGE {
		t.Fatalf("poison entry sent: %v %v, want INVALID_MESSAGE", resp, err)
	}
	cl := newClient(t, c)
	if id, err := cl.LastMessageID(ctx, "poison-sent"); err != nil || id.EntryID >= 0 {
		t.Fatalf("last message of the topic after the refused entry: %v %v (nothing may be stored)", id, err)
	}

	// A log that already holds one, between two good messages.
	good := func(s string) []byte {
		e, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(0),
			PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, topic := range []string{"stored", "stored-dlq"} {
		ml, err := managed.Open(ctx, "public/default/"+topic, managed.Options{Ledgers: c.LedgerClient(), Metadata: c.Store})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range [][]byte{good("before"), poisonEntry(t), good("after")} {
			if _, err := ml.Append(ctx, e, time.Now().UnixMilli()); err != nil {
				t.Fatal(err)
			}
		}
		if err := ml.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := cl.Subscribe(ctx, "stored", "s", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	next := func(cons *client.Consumer) (client.Message, error) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return cons.Receive(rctx)
	}
	m, err := next(cons)
	if err != nil || string(m.Payload) != "before" {
		t.Fatalf("first message: %q %v", m.Payload, err)
	}
	cons.Ack(m)
	m, err = next(cons)
	if !errors.Is(err, client.ErrUndecodable) || m.DecodeError == nil || m.ID.EntryID != 1 {
		t.Fatalf("poison entry: message %v, error %v; want ErrUndecodable with the message", m.ID, err)
	}
	if err := cons.Ack(m); err != nil {
		t.Fatal(err)
	}
	if m, err = next(cons); err != nil || string(m.Payload) != "after" {
		t.Fatalf("message after the poison entry: %q %v", m.Payload, err)
	}
	cons.Ack(m)

	dlqCons, err := cl.Subscribe(ctx, "stored-dlq", "s", client.WithInitialPosition(client.Earliest),
		client.WithDLQ(client.DLQPolicy{MaxRedeliveries: 3, InitialSubscription: "audit"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"before", "after"} {
		m, err := next(dlqCons)
		if err != nil || string(m.Payload) != want {
			t.Fatalf("with a dead-letter policy: %q %v, want %q", m.Payload, err, want)
		}
		dlqCons.Ack(m)
	}
	audit, err := cl.Subscribe(ctx, "stored-dlq-s-DLQ", "audit")
	if err != nil {
		t.Fatal(err)
	}
	m, err = next(audit)
	if err != nil || m.Properties[client.PropertyDecodeError] == "" {
		t.Fatalf("dead letter of the poison entry: %v %v (properties %v)", m.ID, err, m.Properties)
	}
	if md, err := pulsarpb.DecodeMetadata(m.Payload); err != nil || md.GetNumMessagesInBatch() != 1<<31-1 {
		t.Fatalf("the dead letter's payload is not the raw poison entry: %v", err)
	}
}

// TestNamesAreCheckedEverywhere: names that would break what every tenant
// shares are refused where they come in — a subscription or role that is
// not UTF-8, a producer name with control characters, a name that reads as
// a partition of another topic to a Pulsar client — and /metrics still
// answers when such a name is already stored: a subscription named "%FF"
// used to turn every scrape into a 500, for every tenant, across restarts.
func TestNamesAreCheckedEverywhere(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, time.Minute)
	r := rest{t, c.Broker(0).B.HTTPURL()}
	const tp = "/admin/v2/persistent/public/default/names"
	r.want("PUT", tp, "", 204)
	r.want("PUT", tp+"/subscription/%FF", "", 400, "UTF-8")
	r.want("PUT", tp+"/subscription/ok%C3%A9", "", 204) // é: non-ASCII is fine
	r.want("POST", "/admin/v2/namespaces/public/default/permissions/%FF", `["produce"]`, 400, "UTF-8")
	r.want("POST", tp+"/permissions/%FF", `["produce"]`, 400, "UTF-8")

	cl := newClient(t, c)
	if _, err := cl.CreateProducer(ctx, "persistent://public/default/names", client.WithProducerName("bad\x01name")); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Fatalf("producer named with a control character: %v", err)
	}
	if _, err := cl.CreateProducer(ctx, "persistent://public/default/names", client.WithProducerName(strings.Repeat("p", tenants.MaxProducerNameLength+1))); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("producer name of %d bytes: %v", tenants.MaxProducerNameLength+1, err)
	}

	// "data-partition--1" next to the partitioned "data": refused on
	// every path, not created as an ordinary topic.
	r.want("PUT", "/admin/v2/persistent/public/default/data/partitions", "2", 204)
	for _, name := range []string{"data-partition--1", "data-partition-01"} {
		r.want("PUT", "/admin/v2/persistent/public/default/"+name, "", 400, "partition index")
		if _, err := cl.CreateProducer(ctx, "persistent://public/default/"+name); err == nil || !strings.Contains(err.Error(), "partition index") {
			t.Fatalf("producer on %s: %v", name, err)
		}
	}
	if out := r.want("GET", "/admin/v2/persistent/public/default", "", 200); strings.Contains(out, "partition--1") || strings.Contains(out, "partition-01") {
		t.Fatalf("topics listed: %s", out)
	}

	// A subscription stored before names were checked: its name is not
	// UTF-8. The broker loads it, and /metrics answers with the name's bad
	// bytes replaced.
	good, err := c.Store.Get(ctx, metadata.CursorsPrefix+"public/default/names/ok\u00e9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Create(ctx, metadata.CursorsPrefix+"public/default/names/\xff", good.Value); err != nil {
		t.Fatal(err)
	}
	r.want("PUT", tp+"/unload", "", 204)
	r.want("GET", tp+"/stats", "", 200)
	metrics := r.want("GET", "/metrics", "", 200)
	if !strings.Contains(metrics, "subscription=\"\uFFFD\"") {
		t.Fatalf("metrics lack the stored subscription with its name repaired")
	}
}

// TestMetricsNeedATokenWithAuthentication: with authentication on and
// authorization off, /metrics (which names every tenant's topics) needs a
// valid token like every other path but the probes, and so does the
// non-persistent admin path that only answers "not supported". A token
// whose exp claim is 0 expired in 1970.
func TestMetricsNeedATokenWithAuthentication(t *testing.T) {
	secret, err := auth.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "data:;base64," + auth.EncodeSecretKey(secret)})
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.Authentication = authn
	}})
	valid, err := auth.CreateToken(secret, auth.TokenOptions{Subject: "app"})
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "app", "exp": 0}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", c.Broker(0).B.HTTPURL()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/metrics", "", 401},
		{"/metrics", epoch, 401},
		{"/metrics", valid, 200},
		{"/admin/v2/non-persistent/public/default/x/stats", "", 401},
		{"/admin/v2/non-persistent/public/default/x/stats", valid, 501},
		{"/healthz", "", 200},
	} {
		if code, body := get(tc.path, tc.token); code != tc.code {
			t.Errorf("GET %s (token %t): %d %.100s, want %d", tc.path, tc.token != "", code, body, tc.code)
		}
	}
}
