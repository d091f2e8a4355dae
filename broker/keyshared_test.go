package broker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

// TestKeySharedStableMembership: while the same three consumers stay
// connected, every message of a key goes to one and the same consumer,
// each message exactly once and in order, and the keys spread over the
// consumers. Keys are random-looking (similar keys such as "k0".."k29"
// cluster on the ring: TestKeySharedRingSpreadsSimilarKeys).
func TestKeySharedStableMembership(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, 2*time.Minute)
	const keys, perKey, consumers = 100, 20, 3
	rnd := rand.New(rand.NewPCG(7, 8))
	names := make([]string, keys)
	for k := range names {
		names[k] = fmt.Sprintf("%016x", rnd.Uint64())
	}
	var cons []*client.Consumer
	for i := 0; i < consumers; i++ {
		cs, err := cl.Subscribe(ctx, "ks-stable", "s", client.WithSubscriptionType(client.KeyShared), client.WithReceiverQueueSize(20))
		if err != nil {
			t.Fatal(err)
		}
		cons = append(cons, cs)
	}
	p, err := cl.CreateProducer(ctx, "ks-stable", client.WithBatching(10, 1<<20, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for seq := 0; seq < perKey; seq++ {
		for k := 0; k < keys; k++ {
			p.SendAsync(ctx, &client.ProducerMessage{Key: names[k], Payload: []byte(strconv.Itoa(seq))}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
				if err != nil {
					t.Errorf("send: %v", err)
				}
			})
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	owner := map[string]map[int]bool{}    // key -> consumers that received it
	next := map[string]int{}              // key -> next expected sequence
	perConsumer := make([]int, consumers) // messages per consumer
	total := 0
	var wg sync.WaitGroup
	for i, cs := range cons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				m, err := cs.Receive(rctx)
				cancel()
				if err != nil {
					return // drained
				}
				seq, _ := strconv.Atoi(string(m.Payload))
				mu.Lock()
				if owner[m.Key] == nil {
					owner[m.Key] = map[int]bool{}
				}
				owner[m.Key][i] = true
				if seq != next[m.Key] {
					t.Errorf("key %s: message %d at consumer %d, want %d (a repeat or a gap)", m.Key, seq, i, next[m.Key])
				}
				next[m.Key] = seq + 1
				perConsumer[i]++
				total++
				mu.Unlock()
				if err := cs.Ack(m); err != nil {
					t.Errorf("consumer %d: ack %v: %v", i, m.ID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if total != keys*perKey {
		t.Fatalf("received %d messages, want %d", total, keys*perKey)
	}
	used := 0
	for _, key := range names {
		if len(owner[key]) != 1 {
			t.Errorf("key %s delivered to consumers %v, want exactly one", key, owner[key])
		}
		if next[key] != perKey {
			t.Errorf("key %s: %d messages, want %d", key, next[key], perKey)
		}
	}
	for _, n := range perConsumer {
		if n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("%d keys all went to one consumer: %v", keys, perConsumer)
	}
	t.Logf("messages per consumer: %v", perConsumer)
}
