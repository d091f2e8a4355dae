package broker_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

// TestProducerSurvivesRepeatedUnloads: a producer with thousands of sends
// pending while its topic is unloaded 20 times in 2 s gets every send
// acknowledged, none failed, soon after the unloads stop.
func TestProducerSurvivesRepeatedUnloads(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl, err := client.New(c.ServiceURL(), client.WithLogger(c.Log), client.WithOperationTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Close without waiting: a deadlocked producer is released when the
	// cluster (closed next) drops its connection.
	t.Cleanup(func() { go cl.Close() })
	ctx := ctxT(t, 2*time.Minute)
	p, err := cl.CreateProducer(ctx, "unloads", client.WithoutBatching(), client.WithMaxPendingMessages(5000))
	if err != nil {
		t.Fatal(err)
	}
	var sent, acked, failed atomic.Int64
	var errOnce sync.Once
	var firstErr error
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		r := rest{t, c.Broker(0).B.HTTPURL()}
		for i := 0; i < 20; i++ {
			time.Sleep(100 * time.Millisecond)
			if code, body := r.do("PUT", "/admin/v2/persistent/public/default/unloads/unload", ""); code != 204 {
				t.Errorf("unload %d: %d %s", i, code, body)
			}
		}
	}()
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		for {
			select {
			case <-stop:
				return
			default:
			}
			wg.Add(1)
			sent.Add(1)
			p.SendAsync(ctx, &client.ProducerMessage{Payload: []byte("x")}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
				defer wg.Done()
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Add(1)
					return
				}
				acked.Add(1)
			})
		}
	}()
	done := make(chan struct{})
	go func() { <-sending; wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		t.Fatalf("40 s after the start: %d of %d sends answered (%d acknowledged, %d failed); the producer is stuck",
			acked.Load()+failed.Load(), sent.Load(), acked.Load(), failed.Load())
	}
	if failed.Load() != 0 || acked.Load() != sent.Load() {
		t.Fatalf("%d of %d sends acknowledged, %d failed (first: %v)", acked.Load(), sent.Load(), failed.Load(), firstErr)
	}
}
