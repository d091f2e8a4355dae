package broker_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

// series is one scraped sample: metric name, labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads /metrics in the Prometheus text format.
func scrape(t *testing.T, url string) []series {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	var out []series
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s := series{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(s.name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(s.name[i+1:], "}"), ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
			s.name = s.name[:i]
		}
		out = append(out, s)
	}
	return out
}

// metric returns the value of the one series named name whose labels
// include want; found is false if there is none.
func metric(t *testing.T, all []series, name string, want map[string]string) (v float64, found bool) {
	t.Helper()
	n := 0
next:
	for _, s := range all {
		if s.name != name {
			continue
		}
		for k, w := range want {
			if s.labels[k] != w {
				continue next
			}
		}
		v, found = s.value, true
		n++
	}
	if n > 1 {
		t.Fatalf("%d series %s%v", n, name, want)
	}
	return v, found
}

// TestTopicMetrics: /metrics reports a topic's traffic, backlogs, storage,
// connections and publish latency with exact values.
func TestTopicMetrics(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	const topic = "persistent://public/default/metrics-t"
	a, err := cl.Subscribe(ctx, topic, "a", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	b, err := cl.Subscribe(ctx, topic, "b", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	b.Close() // a subscription without consumers
	single, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, single, 0, 20) // 20 entries of one message
	batched, err := cl.CreateProducer(ctx, topic, client.WithBatching(10, 1<<20, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, batched, 20, 10) // one entry of 10 messages

	msgs := recvN(t, a, 30, false)
	for _, m := range msgs[:15] { // the first 15 entries, all unbatched
		if err := a.AckWithResponse(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var in struct {
		TotalSize int64 `json:"totalSize"`
	}
	getJSON(t, c.Broker(0).B.HTTPURL()+"/admin/v2/persistent/public/default/metrics-t/internalStats", &in)

	all := scrape(t, c.Broker(0).B.HTTPURL())
	lt := map[string]string{"cluster": testcluster.ClusterName, "namespace": "public/default", "topic": topic}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range lt {
			m[k] = v
		}
		return m
	}
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"pulsar_in_messages_total", lt, 30},
		{"pulsar_out_messages_total", lt, 30},
		{"pulsar_subscription_back_log", with("subscription", "a"), 6}, // 5 unbatched entries + the batch
		{"pulsar_subscription_back_log", with("subscription", "b"), 21},
		{"pulsar_msg_backlog", lt, 27},
		{"pulsar_storage_size", lt, float64(in.TotalSize)},
		{"pulsar_producers_count", lt, 2},
		{"pulsar_consumers_count", lt, 1},
		{"pulsar_subscriptions_count", lt, 2},
		{"pulsar_storage_write_latency_seconds_count", lt, 21}, // one observation per entry
		{"pulsar_topics_count", map[string]string{"cluster": testcluster.ClusterName}, 1},
	}
	for _, w := range want {
		got, ok := metric(t, all, w.name, w.labels)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	if in.TotalSize <= 0 {
		t.Errorf("storage size %d, want > 0", in.TotalSize)
	}
	if got, ok := metric(t, all, "pulsar_in_bytes_total", lt); !ok || got <= 0 {
		t.Errorf("pulsar_in_bytes_total = %v (found %v), want > 0", got, ok)
	}
	if got, ok := metric(t, all, "pulsar_storage_write_latency_seconds_bucket", with("le", "+Inf")); !ok || got != 21 {
		t.Errorf("latency histogram +Inf bucket = %v (found %v), want 21", got, ok)
	}

	// Connections going away show at the next scrape.
	a.Close()
	single.Close()
	testutil.WaitFor(t, 10*time.Second, func() error {
		all := scrape(t, c.Broker(0).B.HTTPURL())
		p, pok := metric(t, all, "pulsar_producers_count", lt)
		cs, cok := metric(t, all, "pulsar_consumers_count", lt)
		if !pok || !cok || p != 1 || cs != 0 {
			return fmt.Errorf("producers %v (found %v) consumers %v (found %v), want 1 and 0", p, pok, cs, cok)
		}
		return nil
	})
}

// TestMetricsHideSystemCursors: with deduplication on, the broker's
// snapshot cursor is no subscription: it shows in no subscription series,
// in no backlog and in no subscription list.
func TestMetricsHideSystemCursors(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) {
		o.DeduplicationEnabled = true
	}})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	const topic = "persistent://public/default/metrics-dedup"
	a, err := cl.Subscribe(ctx, topic, "a", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 5)
	for _, m := range recvN(t, a, 5, false) {
		if err := a.AckWithResponse(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	all := scrape(t, c.Broker(0).B.HTTPURL())
	lt := map[string]string{"topic": topic}
	for _, s := range all {
		if s.labels["topic"] == topic && s.labels["subscription"] != "" && s.labels["subscription"] != "a" {
			t.Errorf("series %s%v: only subscription a exists", s.name, s.labels)
		}
	}
	// A missing series would read as 0: require it.
	if got, ok := metric(t, all, "pulsar_msg_backlog", lt); !ok || got != 0 {
		t.Errorf("pulsar_msg_backlog = %v (found %v) after every message was acknowledged, want 0", got, ok)
	}
	if got, ok := metric(t, all, "pulsar_subscriptions_count", lt); !ok || got != 1 {
		t.Errorf("pulsar_subscriptions_count = %v (found %v), want 1", got, ok)
	}
	r := rest{t, c.Broker(0).B.HTTPURL()}
	if body := r.want("GET", "/admin/v2/persistent/public/default/metrics-dedup/subscriptions", "", 200); strings.TrimSpace(body) != `["a"]` {
		t.Errorf("subscriptions %s, want [\"a\"]", body)
	}
}
