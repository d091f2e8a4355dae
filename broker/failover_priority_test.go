package broker_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/tenants"
)

func failoverConsumer(t *testing.T, cl *client.Client, topic, name string, priority int32) *client.Consumer {
	t.Helper()
	cs, err := cl.Subscribe(ctxT(t, time.Minute), topic, "s", client.WithSubscriptionType(client.Failover),
		client.WithConsumerName(name), client.WithPriorityLevel(priority), client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatalf("subscribe %s: %v", name, err)
	}
	return cs
}

// recvAcked receives n messages, acknowledging each with the broker's
// answer (so a later close redelivers none of them), and returns their
// payloads.
func recvAcked(t *testing.T, cs *client.Consumer, n int) []string {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	var out []string
	for _, m := range recvN(t, cs, n, false) {
		if err := cs.AckWithResponse(ctx, m); err != nil {
			t.Fatalf("ack %q: %v", m.Payload, err)
		}
		out = append(out, string(m.Payload))
	}
	return out
}

func payloads(from, n int) string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf("msg-%06d", i))
	}
	return fmt.Sprint(out)
}

// TestFailoverPriorityLevel: the consumer with the lowest priority level is
// active whatever the names and the order of subscription; when it leaves,
// the next level takes over; a joining consumer of a lower level takes over
// at once.
func TestFailoverPriorityLevel(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	// Names sort opposite to priorities: the level decides, not the name.
	prio2 := failoverConsumer(t, cl, "prio", "a-prio2", 2)
	prio0 := failoverConsumer(t, cl, "prio", "c-prio0", 0)
	prio1 := failoverConsumer(t, cl, "prio", "b-prio1", 1)
	p, err := cl.CreateProducer(ctx, "prio", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 10)
	if got := fmt.Sprint(recvAcked(t, prio0, 10)); got != payloads(0, 10) {
		t.Fatalf("priority 0 received %s, want %s", got, payloads(0, 10))
	}
	noMore(t, prio1, 300*time.Millisecond)
	noMore(t, prio2, 300*time.Millisecond)

	prio0.Close()
	produceN(t, p, 10, 10)
	if got := fmt.Sprint(recvAcked(t, prio1, 10)); got != payloads(10, 10) {
		t.Fatalf("after priority 0 left, priority 1 received %s, want %s", got, payloads(10, 10))
	}
	noMore(t, prio2, 300*time.Millisecond)

	again0 := failoverConsumer(t, cl, "prio", "d-prio0", 0)
	produceN(t, p, 20, 5)
	if got := fmt.Sprint(recvAcked(t, again0, 5)); got != payloads(20, 5) {
		t.Fatalf("a joining priority 0 consumer received %s, want %s", got, payloads(20, 5))
	}
	noMore(t, prio1, 300*time.Millisecond)
	noMore(t, prio2, 300*time.Millisecond)

	again0.Close()
	prio1.Close()
	produceN(t, p, 25, 5)
	if got := fmt.Sprint(recvAcked(t, prio2, 5)); got != payloads(25, 5) {
		t.Fatalf("last consumer (priority 2) received %s, want %s", got, payloads(25, 5))
	}
	if b := subBacklog(t, c, "prio", "s"); b != 0 {
		t.Fatalf("backlog %d after every message was acknowledged", b)
	}
}

// partitionAssignment sends one message to each partition of topic (round
// tag) and returns, for each consumer name, the partitions whose message it
// received; every message must arrive exactly once.
func partitionAssignment(t *testing.T, p *client.Producer, parts int, round string, cons map[string]*client.Consumer) map[string][]int {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	for i := 0; i < parts; i++ {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(round), Properties: map[string]string{"part": strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string][]int{}
	seen := map[int]string{}
	for len(seen) < parts {
		progress := false
		for name, cs := range cons {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			m, err := cs.Receive(rctx)
			cancel()
			if err != nil {
				continue
			}
			progress = true
			if string(m.Payload) != round {
				t.Fatalf("%s received %q (partition %d) in round %s", name, m.Payload, m.ID.Partition, round)
			}
			part := int(m.ID.Partition)
			if strconv.Itoa(part) != m.Properties["part"] {
				t.Fatalf("message for partition %s arrived from partition %d", m.Properties["part"], part)
			}
			if other, dup := seen[part]; dup {
				t.Fatalf("round %s: partition %d delivered to %s and %s", round, part, other, name)
			}
			seen[part] = name
			out[name] = append(out[name], part)
			if err := cs.AckWithResponse(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if !progress && ctx.Err() != nil {
			t.Fatalf("round %s: only partitions %v delivered", round, seen)
		}
	}
	for name, cs := range cons { // nothing more: each partition has one active consumer
		noMore(t, cs, 200*time.Millisecond)
		sort.Ints(out[name])
	}
	return out
}

func routeByProperty(msg *client.ProducerMessage, n int) int {
	i, _ := strconv.Atoi(msg.Properties["part"])
	return i % n
}

// TestFailoverPartitionAssignment: on a partitioned topic, partition i goes
// to the (i mod n)-th of the n consumers at the highest priority level,
// sorted by name (Pulsar's AbstractDispatcherSingleActiveConsumer).
func TestFailoverPartitionAssignment(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	ctx := ctxT(t, time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	const parts = 4
	if err := st.CreatePartitionedTopic(ctx, naming.MustParseTopic("fo-parts"), parts); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, "fo-parts", client.WithoutBatching(), client.WithMessageRouter(routeByProperty))
	if err != nil {
		t.Fatal(err)
	}
	y := failoverConsumer(t, cl, "fo-parts", "y", 0)
	x := failoverConsumer(t, cl, "fo-parts", "x", 0)
	got := partitionAssignment(t, p, parts, "1", map[string]*client.Consumer{"x": x, "y": y})
	if want := "map[x:[0 2] y:[1 3]]"; fmt.Sprint(got) != want {
		t.Fatalf("two consumers of one level: %v, want %s", got, want)
	}
	x.Close()
	got = partitionAssignment(t, p, parts, "2", map[string]*client.Consumer{"y": y})
	if want := "map[y:[0 1 2 3]]"; fmt.Sprint(got) != want {
		t.Fatalf("after x left: %v, want %s", got, want)
	}
}

// TestFailoverPartitionAssignmentIgnoresLowerLevels: a consumer of a lower
// priority (higher level) gets no partition while higher-priority
// consumers are connected: Pulsar spreads partitions over the consumers
// of the highest priority level only.
func TestFailoverPartitionAssignmentIgnoresLowerLevels(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	ctx := ctxT(t, time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	const parts = 4
	if err := st.CreatePartitionedTopic(ctx, naming.MustParseTopic("fo-levels"), parts); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, "fo-levels", client.WithoutBatching(), client.WithMessageRouter(routeByProperty))
	if err != nil {
		t.Fatal(err)
	}
	cons := map[string]*client.Consumer{
		"a": failoverConsumer(t, cl, "fo-levels", "a", 1), // sorts first by name, lower priority
		"x": failoverConsumer(t, cl, "fo-levels", "x", 0),
		"y": failoverConsumer(t, cl, "fo-levels", "y", 0),
	}
	got := partitionAssignment(t, p, parts, "1", cons)
	if want := "map[x:[0 2] y:[1 3]]"; fmt.Sprint(got) != want {
		t.Fatalf("levels 0,0,1: %v, want %s (the priority-1 consumer stands by)", got, want)
	}
	cons["x"].Close()
	cons["y"].Close()
	delete(cons, "x")
	delete(cons, "y")
	got = partitionAssignment(t, p, parts, "2", cons)
	if want := "map[a:[0 1 2 3]]"; fmt.Sprint(got) != want {
		t.Fatalf("after the level-0 consumers left: %v, want %s", got, want)
	}
}
