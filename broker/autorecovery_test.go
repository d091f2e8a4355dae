package broker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// TestAutoRecoveryThroughBrokers: with a producer and a consumer running, a
// bookie is decommissioned through the admin API and another is lost for
// good; the brokers' auto-recovery drains the first and replaces the
// second, the producer never fails, and the consumer gets every
// acknowledged message once, in order.
func TestAutoRecoveryThroughBrokers(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 5, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.DefaultEnsembleSize, o.DefaultWriteQuorum, o.DefaultAckQuorum = 3, 3, 2
		o.MaxEntriesPerLedger = 50
		o.AutoRecovery = broker.AutoRecoveryOptions{LostBookieDelay: time.Second, OpenLedgerGracePeriod: 2 * time.Second}
	}})
	ctx := ctxT(t, 4*time.Minute)
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	const topic = "persistent://public/default/recovered"
	cons, err := cl.Subscribe(ctx, topic, "sub", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		done  = make(chan error, 1)
	)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			m := fmt.Sprintf("m%05d", i)
			if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(m)}); err != nil {
				done <- fmt.Errorf("send %s: %v", m, err)
				return
			}
			mu.Lock()
			acked = append(acked, m)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	ledgersOn := func(id string) (int, error) {
		bs, err := adm.Bookies().List(ctx)
		if err != nil {
			return 0, err
		}
		if i := slices.IndexFunc(bs, func(b admin.Bookie) bool { return b.ID == id }); i >= 0 {
			return bs[i].Ledgers, nil
		}
		return 0, nil
	}
	time.Sleep(500 * time.Millisecond) // a few ledgers first
	drained, lost := c.Bookie(0).Addr, c.Bookie(1).Addr
	if err := adm.Bookies().Decommission(ctx, drained); err != nil {
		t.Fatal(err)
	}
	c.KillBookie(1)
	testutil.WaitFor(t, 2*time.Minute, func() error {
		for _, id := range []string{drained, lost} {
			if n, err := ledgersOn(id); err != nil || n > 0 {
				return fmt.Errorf("bookie %s: %d ledgers (%v)", id, n, err)
			}
		}
		ur, err := adm.Bookies().Underreplicated(ctx)
		if err != nil || len(ur) > 0 {
			return fmt.Errorf("under-replicated: %+v (%v)", ur, err)
		}
		return nil
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := adm.Bookies().AutoRecovery(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Auditor == "" {
		t.Fatalf("no auditor: %+v", st)
	}
	var auditors, copied float64
	for i := range 2 {
		a, _ := testutil.MetricValue(t, c.Broker(i).HTTPAddr, `strata_autorecovery_auditor{cluster="test"}`)
		e, _ := testutil.MetricValue(t, c.Broker(i).HTTPAddr, `strata_autorecovery_entries_replicated_total{cluster="test"}`)
		auditors, copied = auditors+a, copied+e
	}
	if auditors != 1 || copied == 0 {
		t.Fatalf("%v auditors, %v entries copied", auditors, copied)
	}
	mu.Lock()
	want := slices.Clone(acked)
	mu.Unlock()
	got := recvN(t, cons, len(want), true)
	for i, m := range got {
		if string(m.Payload) != want[i] {
			t.Fatalf("message %d: %q, want %q", i, m.Payload, want[i])
		}
	}
	t.Logf("%d messages through a decommission and a lost bookie; %v entries re-replicated", len(want), copied)
	// Nothing more than what was acknowledged.
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if m, err := cons.Receive(rctx); err == nil {
		t.Fatalf("unexpected message %q", m.Payload)
	}
}
