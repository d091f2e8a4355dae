package broker_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

// TestGetMessageByID: GET .../ledger/{l}/entry/{e} answers a message's
// payload with its id, publish time, key and properties in X-Pulsar-*
// headers, and a batch's payload with its message count; ids that are not
// entries are 404, malformed ones 400.
func TestGetMessageByID(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	p, err := cl.CreateProducer(ctx, "by-id", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("hello"), Key: "k", Properties: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	bp, err := cl.CreateProducer(ctx, "by-id", client.WithBatching(3, 1<<20, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var last client.MessageID
	for i := range 3 {
		bp.SendAsync(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint(i))}, func(id client.MessageID, _ *client.ProducerMessage, err error) { last = id })
	}
	if err := bp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	base := c.Broker(0).B.HTTPURL() + "/admin/v2/persistent/public/default/by-id/ledger/"
	get := func(l, e int64) (*http.Response, string) {
		resp, err := http.Get(fmt.Sprintf("%s%d/entry/%d", base, l, e))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get(id.LedgerID, id.EntryID)
	h := resp.Header
	if resp.StatusCode != 200 || body != "hello" || h.Get("X-Pulsar-Message-ID") != fmt.Sprintf("%d:%d", id.LedgerID, id.EntryID) ||
		h.Get("X-Pulsar-Key") != "k" || h.Get("X-Pulsar-Property") != `{"a":"b"}` || h.Get("X-Pulsar-Publish-Time") == "" {
		t.Fatalf("message: %d %q %v", resp.StatusCode, body, h)
	}
	resp, body = get(last.LedgerID, last.EntryID)
	if resp.StatusCode != 200 || resp.Header.Get("X-Pulsar-Num-Batch-Message") != "3" || len(body) == 0 {
		t.Fatalf("batch: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _ := get(last.LedgerID, last.EntryID+100); resp.StatusCode != 404 {
		t.Fatalf("an entry that does not exist: %d", resp.StatusCode)
	}
	r, err := http.Get(base + "x/entry/0")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 400 {
		t.Fatalf("a malformed ledger id: %d", r.StatusCode)
	}
}
