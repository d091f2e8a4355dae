package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/ledger"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
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
