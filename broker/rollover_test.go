package broker_test

import (
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/testcluster"
)

// TestMinLedgerRolloverTime: with a minimum rollover time, a topic that
// reaches MaxEntriesPerLedger keeps its ledger until the ledger is that old
// (one ledger for 30 entries at 5 per ledger), which bounds the ledger list
// of a busy topic.
func TestMinLedgerRolloverTime(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.MaxEntriesPerLedger = 5
		o.MinLedgerRolloverTime = time.Hour
	}})
	ctx := ctxT(t, time.Minute)
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, "slow-roll", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	adm, err := admin.New(c.Broker(0).B.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	st, err := adm.Topics().InternalStats(ctx, "slow-roll")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ledgers) != 1 || st.CurrentLedgerEntries != 30 {
		t.Fatalf("%d ledgers, %d entries in the current one; want 1 ledger of 30", len(st.Ledgers), st.CurrentLedgerEntries)
	}
}

func TestMinLedgerRolloverTimeIsChecked(t *testing.T) {
	o := broker.Options{Cluster: "c", MinLedgerRolloverTime: -time.Second}
	c := testcluster.New(t, testcluster.Config{Bookies: 0, Brokers: 0})
	o.Metadata = c.Store
	if err := o.Validate(); err == nil {
		t.Fatal("a negative minimum rollover time was accepted")
	}
}
