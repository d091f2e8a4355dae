package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// namedProducer is a raw gRPC produce stream with a fixed producer name, so
// a test controls exactly which sequence ids reach which broker.
type namedProducer struct {
	t      *testing.T
	name   string
	s      clientpb.Broker_ProduceClient
	opened *clientpb.ProducerOpened
}

// openNamed opens a produce stream named name on topic at cli.
func openNamed(t *testing.T, cli clientpb.BrokerClient, topic, name string) (*namedProducer, error) {
	t.Helper()
	s, err := cli.Produce(ctxT(t, 2*time.Minute))
	if err != nil {
		return nil, err
	}
	if err := s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Open{Open: &clientpb.ProducerOpen{Topic: topic, ProducerName: name}}}); err != nil {
		return nil, err
	}
	resp, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if resp.GetOpened() == nil {
		t.Fatalf("first reply %v, want opened", resp)
	}
	return &namedProducer{t: t, name: name, s: s, opened: resp.GetOpened()}, nil
}

// send sends one unbatched entry carrying sequence id seq.
func (p *namedProducer) send(seq int64, payload string) {
	p.t.Helper()
	e, err := pulsarpb.EncodeEntry(&pulsarpb.MessageMetadata{ProducerName: proto.String(p.name), SequenceId: proto.Uint64(uint64(seq)),
		PublishTime: proto.Uint64(uint64(time.Now().UnixMilli()))}, []byte(payload))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.s.Send(&clientpb.ProduceRequest{Cmd: &clientpb.ProduceRequest_Send{Send: &clientpb.Send{SequenceId: seq, HighestSequenceId: seq, NumMessages: 1, Entry: e}}}); err != nil {
		p.t.Fatalf("send %d: %v", seq, err)
	}
}

// receipt reads the next reply, which must be a receipt for seq.
func (p *namedProducer) receipt(seq int64) *clientpb.MessageId {
	p.t.Helper()
	resp, err := p.s.Recv()
	if err != nil {
		p.t.Fatalf("receipt for %d: %v", seq, err)
	}
	r := resp.GetReceipt()
	if r == nil || r.SequenceId != seq {
		p.t.Fatalf("reply %v, want the receipt of sequence %d", resp, seq)
	}
	return r.MessageId
}

type entryPos struct{ ledger, entry int64 }

func posOf(id *clientpb.MessageId) entryPos { return entryPos{id.LedgerId, id.EntryId} }

// topicCounts returns a topic's stored entries and subscription sub's backlog.
func topicCounts(t *testing.T, httpURL, topic, sub string) (entries, backlog int64) {
	t.Helper()
	var in struct {
		NumberOfEntries int64 `json:"numberOfEntries"`
	}
	getJSON(t, httpURL+"/admin/v2/persistent/public/default/"+topic+"/internalStats", &in)
	var st struct {
		Subscriptions map[string]struct {
			MsgBacklog int64 `json:"msgBacklog"`
		} `json:"subscriptions"`
	}
	getJSON(t, httpURL+"/admin/v2/persistent/public/default/"+topic+"/stats", &st)
	s, ok := st.Subscriptions[sub]
	if !ok {
		t.Fatalf("%s has no subscription %s", topic, sub)
	}
	return in.NumberOfEntries, s.MsgBacklog
}

// consumeAll reads topic's subscription sub to its end and returns the
// payloads in delivery order.
func consumeAll(t *testing.T, cl *client.Client, topic, sub string) []string {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	cons, err := cl.Subscribe(ctx, topic, sub, client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := cons.Receive(rctx)
		cancel()
		if err != nil {
			return got
		}
		got = append(got, string(m.Payload))
		cons.Ack(m)
	}
}

// persistedDedupSnapshot returns the deduplication snapshot of topic as
// stored in metadata (what a new owner starts from).
func persistedDedupSnapshot(t *testing.T, c *testcluster.Cluster, topic string) (props map[string]int64, markDelete entryPos, ok bool) {
	t.Helper()
	kvs, err := metadata.ListAll(context.Background(), c.Store, metadata.CursorsPrefix, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		if !strings.HasSuffix(kv.Key, "/"+topic+"/pulsar.dedup") {
			continue
		}
		var st struct {
			MarkDelete struct {
				LedgerID int64 `json:"ledgerId"`
				EntryID  int64 `json:"entryId"`
			} `json:"markDelete"`
			Properties map[string]int64 `json:"properties"`
		}
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			t.Fatalf("snapshot cursor %s: %v (%s)", kv.Key, err, kv.Value)
		}
		return st.Properties, entryPos{st.MarkDelete.LedgerID, st.MarkDelete.EntryID}, true
	}
	return nil, entryPos{}, false
}

// TestDeduplicationStateRebuiltByNewOwner: the owner stores sequence ids
// 0..9 of producer "dp" (a snapshot covers 0..7, 8 and 9 are only in the
// log), then is killed. The first sends the new owner receives are re-sends
// of 0..9: each is acknowledged without being stored, so the new owner must
// have rebuilt the state from the snapshot and the log tail. Duplicates of
// ids replayed from the log tail are answered with their original message
// id; ids known only from the snapshot with -1:-1 (as Pulsar answers every
// duplicate).
func TestDeduplicationStateRebuiltByNewOwner(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.DeduplicationEnabled = true
		o.DeduplicationSnapshotInterval = 4
	}})
	const topic = "dedup-rebuild"
	full := "persistent://public/default/" + topic
	owner := c.BrokerIndex(ownerOf(t, c, full))
	survivor := 1 - owner
	r := rest{t, c.Broker(owner).B.HTTPURL()}
	r.want("PUT", "/admin/v2/persistent/public/default/"+topic+"/subscription/s", `{"ledgerId":-1,"entryId":-1}`, 204)

	p, err := openNamed(t, rawClient(t, c.Broker(owner).GRPCAddr), full, "dp")
	if err != nil {
		t.Fatal(err)
	}
	if p.opened.LastSequenceId != -1 {
		t.Fatalf("first open: last sequence id %d, want -1", p.opened.LastSequenceId)
	}
	const n = 10
	orig := map[int64]entryPos{}
	for seq := int64(0); seq < n; seq++ {
		p.send(seq, fmt.Sprint(seq))
		orig[seq] = posOf(p.receipt(seq))
	}
	// The snapshot after the 8th entry (sequence 7) must be in metadata
	// before the kill; 8 and 9 are known only from the log.
	testutil.WaitFor(t, 10*time.Second, func() error {
		props, md, ok := persistedDedupSnapshot(t, c, topic)
		if !ok || props["dp"] != 7 || md != orig[7] {
			return fmt.Errorf("persisted snapshot %v at %v (found %v), want dp=7 at %v", props, md, ok, orig[7])
		}
		return nil
	})
	c.KillBroker(owner)

	var np *namedProducer
	cli := rawClient(t, c.Broker(survivor).GRPCAddr)
	testutil.WaitFor(t, 30*time.Second, func() error { // the old owner's lease expires
		np, err = openNamed(t, cli, full, "dp")
		return err
	})
	if np.opened.LastSequenceId != n-1 {
		t.Fatalf("new owner: last sequence id of dp %d, want %d", np.opened.LastSequenceId, n-1)
	}
	for seq := int64(0); seq < n; seq++ {
		np.send(seq, fmt.Sprintf("%d-again", seq))
	}
	np.send(n, fmt.Sprint(n))
	for seq := int64(0); seq < n; seq++ {
		got := posOf(np.receipt(seq))
		want := entryPos{-1, -1}
		if seq > 7 {
			want = orig[seq]
		}
		if got != want {
			t.Errorf("duplicate of sequence %d acknowledged as %v, want %v (original %v)", seq, got, want, orig[seq])
		}
	}
	fresh := posOf(np.receipt(n))
	if fresh.ledger < 0 || fresh == orig[n-1] {
		t.Fatalf("new sequence %d stored at %v", n, fresh)
	}

	httpURL := c.Broker(survivor).B.HTTPURL()
	if entries, backlog := topicCounts(t, httpURL, topic, "s"); entries != n+1 || backlog != n+1 {
		t.Fatalf("after the re-sends: %d entries stored, backlog %d, want %d and %d", entries, backlog, n+1, n+1)
	}
	got := consumeAll(t, newClient(t, c), topic, "s")
	var want []string
	for i := 0; i <= n; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumed %v, want %v", got, want)
	}
}

// TestDeduplicationEnabledLive: turning deduplication on through the
// namespace policy while a producer is connected makes the loaded topic
// drop re-sent sequence ids from then on (the state is rebuilt from the
// whole log); turning it off stores them again.
func TestDeduplicationEnabledLive(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: fastPolicies})
	const topic = "dedup-live"
	full := "persistent://public/default/" + topic
	r := rest{t, c.Broker(0).B.HTTPURL()}
	base := "/admin/v2/persistent/public/default/" + topic
	r.want("PUT", base, "", 204)
	r.want("PUT", base+"/subscription/s", `{"ledgerId":-1,"entryId":-1}`, 204)
	p, err := openNamed(t, rawClient(t, c.Broker(0).GRPCAddr), full, "lp")
	if err != nil {
		t.Fatal(err)
	}
	status := func() string {
		var st struct {
			DeduplicationStatus string `json:"deduplicationStatus"`
		}
		getJSON(t, c.Broker(0).B.HTTPURL()+base+"/stats", &st)
		return st.DeduplicationStatus
	}
	if s := status(); s != "Disabled" {
		t.Fatalf("deduplication status %q before the policy, want Disabled", s)
	}
	first := map[int64]entryPos{}
	for seq := int64(0); seq < 3; seq++ {
		p.send(seq, fmt.Sprintf("%d-a", seq))
		first[seq] = posOf(p.receipt(seq))
	}
	// Off: the same sequence ids are stored again.
	for seq := int64(0); seq < 3; seq++ {
		p.send(seq, fmt.Sprintf("%d-b", seq))
		if pos := posOf(p.receipt(seq)); pos == first[seq] || pos.ledger < 0 {
			t.Fatalf("re-send of %d with deduplication off acknowledged as %v (first at %v), want a new entry", seq, pos, first[seq])
		}
	}

	on := true
	setPolicies(t, c, func(p *tenants.Policies) { p.DeduplicationEnabled = &on })
	testutil.WaitFor(t, 10*time.Second, func() error {
		if s := status(); s != "Enabled" {
			return fmt.Errorf("deduplication status %q", s)
		}
		return nil
	})
	// On: 0..2 are duplicates, answered with their first position.
	for seq := int64(0); seq < 3; seq++ {
		p.send(seq, fmt.Sprintf("%d-c", seq))
		if pos := posOf(p.receipt(seq)); pos != first[seq] {
			t.Errorf("re-send of %d with deduplication on acknowledged as %v, want the original %v", seq, pos, first[seq])
		}
	}
	p.send(3, "3-a")
	three := posOf(p.receipt(3))
	p.send(3, "3-b")
	if pos := posOf(p.receipt(3)); pos != three {
		t.Errorf("re-send of 3 acknowledged as %v, want %v", pos, three)
	}
	if entries, backlog := topicCounts(t, c.Broker(0).B.HTTPURL(), topic, "s"); entries != 7 || backlog != 7 {
		t.Fatalf("with deduplication on: %d entries, backlog %d, want 7 and 7", entries, backlog)
	}

	off := false
	setPolicies(t, c, func(p *tenants.Policies) { p.DeduplicationEnabled = &off })
	testutil.WaitFor(t, 10*time.Second, func() error {
		if s := status(); s != "Disabled" {
			return fmt.Errorf("deduplication status %q", s)
		}
		return nil
	})
	p.send(3, "3-c")
	if pos := posOf(p.receipt(3)); pos == three || pos.ledger < 0 {
		t.Fatalf("re-send of 3 after turning deduplication off acknowledged as %v, want a new entry", pos)
	}
	got := consumeAll(t, newClient(t, c), topic, "s")
	want := "[0-a 1-a 2-a 0-b 1-b 2-b 3-a 3-c]"
	if fmt.Sprint(got) != want {
		t.Fatalf("consumed %v, want %s", got, want)
	}
}
