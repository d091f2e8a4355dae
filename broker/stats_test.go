package broker_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

// TestStatsRatesAndBacklogSize: per-publisher and per-consumer rates come
// from their own traffic, and backlogSize is in bytes, as in Pulsar.
func TestStatsRatesAndBacklogSize(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	const size = 1000
	lagging, err := cl.Subscribe(ctx, "rates", "lagging")
	if err != nil {
		t.Fatal(err)
	}
	lagging.Close() // keeps its backlog
	cons, err := cl.Subscribe(ctx, "rates", "reading")
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "rates", client.WithProducerName("rate-producer"), client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	type stats struct {
		BacklogSize int64 `json:"backlogSize"`
		Publishers  []struct {
			ProducerName   string  `json:"producerName"`
			MsgRateIn      float64 `json:"msgRateIn"`
			AverageMsgSize float64 `json:"averageMsgSize"`
		} `json:"publishers"`
		Subscriptions map[string]struct {
			MsgBacklog int64   `json:"msgBacklog"`
			MsgRateOut float64 `json:"msgRateOut"`
			Consumers  []struct {
				MsgRateOut float64 `json:"msgRateOut"`
			} `json:"consumers"`
		} `json:"subscriptions"`
	}
	url := c.Broker(0).B.HTTPURL() + "/admin/v2/persistent/public/default/rates/stats"
	var st stats
	getJSON(t, url, &st) // starts the rate windows
	start := time.Now()
	payload := bytes.Repeat([]byte{'r'}, size)
	const n = 300
	for i := 0; i < n; i++ {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: payload}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Millisecond)
	}
	recvN(t, cons, n, true)
	time.Sleep(time.Until(start.Add(5500 * time.Millisecond)))
	elapsed := time.Since(start).Seconds()
	getJSON(t, url, &st)
	want := float64(n) / elapsed
	if len(st.Publishers) != 1 || st.Publishers[0].ProducerName != "rate-producer" {
		t.Fatalf("publishers %+v", st.Publishers)
	}
	if r := st.Publishers[0].MsgRateIn; r < want*0.9 || r > want*1.1 {
		t.Fatalf("publisher msgRateIn %.1f, want %.1f ±10%%", r, want)
	}
	if s := st.Publishers[0].AverageMsgSize; s < size {
		t.Fatalf("publisher averageMsgSize %.0f, want >= %d", s, size)
	}
	rd := st.Subscriptions["reading"]
	if len(rd.Consumers) != 1 || rd.Consumers[0].MsgRateOut < want*0.9 || rd.Consumers[0].MsgRateOut > want*1.1 || rd.MsgRateOut != rd.Consumers[0].MsgRateOut {
		t.Fatalf("reading subscription %+v, want msgRateOut %.1f ±10%%", rd, want)
	}
	if b := st.Subscriptions["lagging"].MsgBacklog; b != n {
		t.Fatalf("lagging backlog %d, want %d", b, n)
	}
	// n messages of size bytes plus metadata are behind the lagging cursor.
	if st.BacklogSize < n*size || st.BacklogSize > n*size*3/2 {
		t.Fatalf("backlogSize %d bytes, want about %d", st.BacklogSize, n*size)
	}
}
