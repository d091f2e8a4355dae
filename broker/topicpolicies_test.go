package broker_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// TestTopicPolicies sets topic-level policies through the admin API: they
// override the namespace's for that topic only (and for every partition of
// a partitioned topic), take effect without a restart, and removing one
// restores the namespace's.
func TestTopicPolicies(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: fastPolicies})
	ctx := ctxT(t, 2*time.Minute)
	r := rest{t, c.Broker(0).B.HTTPURL()}
	const base = "/admin/v2/persistent/public/default/"

	// Bad input first.
	r.want("GET", base+"limited/maxProducers", "", 204)
	r.want("POST", base+"limited/maxProducers", "", 400, "value is required")
	r.want("POST", base+"limited/maxProducers", "-1", 400, "must be between 0 and 2147483647")
	r.want("POST", base+"limited/publishRate", `{"publishThrottlingRateInMsg":-5}`, 400, "publishThrottlingRateInMsg")
	r.want("POST", base+"limited/publishRate", `{"bogus":1}`, 400, "malformed")
	r.want("POST", "/admin/v2/persistent/public/nope/limited/maxProducers", "1", 404, "does not exist")

	// maxProducers on one topic; another topic is unaffected.
	r.want("POST", base+"limited/maxProducers", "1", 204)
	r.want("GET", base+"limited/maxProducers", "", 200, "1")
	cl := newClient(t, c)
	p1, err := cl.CreateProducer(ctx, "limited")
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		p, err := cl.CreateProducer(ctx, "limited")
		if err == nil {
			p.Close()
			return errors.New("a second producer was accepted")
		}
		if !errors.Is(err, client.ErrProducerBusy) {
			return fmt.Errorf("second producer: %v", err)
		}
		return nil
	})
	for i := 0; i < 2; i++ {
		p, err := cl.CreateProducer(ctx, "unlimited")
		if err != nil {
			t.Fatalf("producer %d on another topic: %v", i, err)
		}
		defer p.Close()
	}
	r.want("DELETE", base+"limited/maxProducers", "", 204)
	r.want("GET", base+"limited/maxProducers", "", 204)
	testutil.WaitFor(t, 10*time.Second, func() error {
		p, err := cl.CreateProducer(ctx, "limited")
		if err != nil {
			return err
		}
		return p.Close()
	})
	p1.Close()

	// Deduplication on one partitioned topic, off in the namespace: every
	// partition drops re-sent sequence ids; another topic keeps them.
	r.want("PUT", base+"orders/partitions", "2", 204)
	r.want("POST", base+"orders/deduplicationEnabled", "true", 204)
	r.want("GET", base+"orders/deduplicationEnabled", "", 200, "true")
	time.Sleep(300 * time.Millisecond) // cache + one policy interval
	sendTwice := func(topic string) map[int]int {
		t.Helper()
		p, err := cl.CreateProducer(ctx, topic, client.WithProducerName(topic+"-producer"), client.WithoutBatching())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		cons, err := cl.Subscribe(ctx, topic, "s", client.WithInitialPosition(client.Earliest))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		for round := 0; round < 2; round++ {
			for i := 0; i < 20; i++ {
				seq := int64(i)
				if _, err := p.Send(ctx, &client.ProducerMessage{Key: strconv.Itoa(i), Payload: []byte(strconv.Itoa(i)), SequenceID: &seq}); err != nil {
					t.Fatal(err)
				}
			}
		}
		counts := map[int]int{}
		for _, m := range recvN(t, cons, 20, true) {
			v, _ := strconv.Atoi(string(m.Payload))
			counts[v]++
		}
		noMore(t, cons, time.Second)
		return counts
	}
	for i, n := range sendTwice("orders") {
		if n != 1 {
			t.Fatalf("orders: sequence id %d stored %d times with topic-level deduplication", i, n)
		}
	}
	// Without the topic policy the namespace's (off) applies: all 40 stored.
	p, err := cl.CreateProducer(ctx, "plain", client.WithProducerName("plain-producer"), client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < 5; i++ {
			seq := int64(i)
			if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("x"), SequenceID: &seq}); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.Close()
	var st struct {
		MsgInCounter int64 `json:"msgInCounter"`
	}
	getJSON(t, c.Broker(c.BrokerIndex(ownerOf(t, c, "persistent://public/default/plain"))).B.HTTPURL()+base+"plain/stats", &st)
	if st.MsgInCounter != 10 {
		t.Fatalf("plain: %d messages stored, want 10 (no deduplication)", st.MsgInCounter)
	}

	// Deleting the partitioned topic deletes its policies.
	r.want("DELETE", base+"orders/partitions?force=true", "", 204)
	r.want("GET", base+"orders/deduplicationEnabled", "", 204)
}
