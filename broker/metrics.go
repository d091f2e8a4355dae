package broker

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics exposes Pulsar-style series (pulsar_*) per topic, computed from
// the loaded topics at scrape time, plus a publish latency histogram.
type metrics struct {
	b   *Broker
	reg *prometheus.Registry

	publishLatency *prometheus.HistogramVec
}

var (
	labels = []string{"cluster", "namespace", "topic"}
	descs  = map[string]*prometheus.Desc{}
)

func desc(name, help string, extra ...string) *prometheus.Desc {
	if d, ok := descs[name]; ok {
		return d
	}
	d := prometheus.NewDesc(name, help, append(append([]string(nil), labels...), extra...), nil)
	descs[name] = d
	return d
}

var (
	descInMsgs      = desc("pulsar_in_messages_total", "Messages published to the topic.")
	descInBytes     = desc("pulsar_in_bytes_total", "Bytes published to the topic.")
	descOutMsgs     = desc("pulsar_out_messages_total", "Messages dispatched from the topic.")
	descOutBytes    = desc("pulsar_out_bytes_total", "Bytes dispatched from the topic.")
	descRateIn      = desc("pulsar_rate_in", "Publish rate, messages/s (last interval).")
	descRateOut     = desc("pulsar_rate_out", "Dispatch rate, messages/s (last interval).")
	descThrIn       = desc("pulsar_throughput_in", "Publish throughput, bytes/s (last interval).")
	descThrOut      = desc("pulsar_throughput_out", "Dispatch throughput, bytes/s (last interval).")
	descBacklog     = desc("pulsar_msg_backlog", "Unacknowledged entries over all subscriptions.")
	descSubBacklog  = desc("pulsar_subscription_back_log", "Unacknowledged entries of a subscription.", "subscription")
	descStorage     = desc("pulsar_storage_size", "Bytes stored for the topic (bookies and tiered storage).")
	descOffloaded   = desc("pulsar_storage_offloaded_size", "Bytes of the topic offloaded to tiered storage.")
	descBookieSize  = desc("strata_storage_bookie_size", "Bytes of the topic stored on bookies (offloaded ledgers count until their bookie copy is deleted).")
	descOffBytes    = desc("strata_offload_bytes_total", "Bytes offloaded to tiered storage since the topic was loaded on this broker.")
	descOffLedgers  = desc("strata_offload_ledgers_total", "Ledgers offloaded to tiered storage since the topic was loaded on this broker.")
	descOffErrors   = desc("strata_offload_errors_total", "Failed ledger offloads since the topic was loaded on this broker.")
	descOffLast     = desc("strata_offload_last_duration_seconds", "How long the last ledger offload of the topic took.")
	descProducers   = desc("pulsar_producers_count", "Connected producers.")
	descConsumers   = desc("pulsar_consumers_count", "Connected consumers.")
	descSubs        = desc("pulsar_subscriptions_count", "Subscriptions.")
	descReplBacklog = desc("pulsar_replication_backlog", "Entries not yet replicated to the remote cluster.", "remote_cluster")
	descReplRateOut = desc("pulsar_replication_rate_out", "Replication rate to the remote cluster, messages/s (last interval).", "remote_cluster")
	descReplThrOut  = desc("pulsar_replication_throughput_out", "Replication throughput to the remote cluster, bytes/s (last interval).", "remote_cluster")
	descReplRateIn  = desc("pulsar_replication_rate_in", "Replication rate from the remote cluster, messages/s (last interval).", "remote_cluster")
	descReplThrIn   = desc("pulsar_replication_throughput_in", "Replication throughput from the remote cluster, bytes/s (last interval).", "remote_cluster")
	descReplConn    = desc("pulsar_replication_connected_count", "1 while the replicator to the remote cluster is connected.", "remote_cluster")
	descReplDelay   = desc("pulsar_replication_delay_in_seconds", "With a replication backlog, the age of the last message the remote cluster acknowledged.", "remote_cluster")
	descReplOut     = desc("strata_replication_out_messages_total", "Messages the remote cluster acknowledged since the topic was loaded on this broker.", "remote_cluster")
	descTopicsCount = prometheus.NewDesc("pulsar_topics_count", "Topics loaded on this broker.", []string{"cluster"}, nil)
)

func newMetrics(b *Broker) *metrics {
	m := &metrics{b: b, reg: prometheus.NewRegistry()}
	m.publishLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pulsar_storage_write_latency_seconds",
		Help:    "Publish latency: from receiving a message to its durable append.",
		Buckets: []float64{0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 1},
	}, labels)
	m.reg.MustRegister(m, m.publishLatency, recoveryCollector{b}, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_publish_buffer_bytes",
			Help: "Bytes of sends the broker holds (received, not yet answered); bounded by --max-message-publish-buffer.",
		}, func() float64 { return float64(b.pub.used()) }))
	return m
}

// observer returns the publish latency observer for a topic.
func (m *metrics) observer(t *Topic) func(time.Duration) {
	h := m.publishLatency.WithLabelValues(m.b.opts.Cluster, t.name.NamespaceName().String(), t.name.String())
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
	ch <- descTopicsCount
}

// Collect emits every topic's series.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	topics := m.b.loadedTopics()
	cluster := m.b.opts.Cluster
	ch <- prometheus.MustNewConstMetric(descTopicsCount, prometheus.GaugeValue, float64(len(topics)), cluster)
	for _, t := range topics {
		lv := []string{cluster, t.name.NamespaceName().String(), t.name.String()}
		s := t.stats
		in, bin, out, bout := s.in.msgs.Load(), s.in.bytes.Load(), s.out.msgs.Load(), s.out.bytes.Load()
		r := t.rates()
		counter := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
		}
		gauge := func(d *prometheus.Desc, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(append([]string(nil), lv...), extra...)...)
		}
		counter(descInMsgs, in)
		counter(descInBytes, bin)
		counter(descOutMsgs, out)
		counter(descOutBytes, bout)
		gauge(descRateIn, r.rateIn)
		gauge(descThrIn, r.thrIn)
		gauge(descRateOut, r.rateOut)
		gauge(descThrOut, r.thrOut)
		st := t.ml.Stats()
		gauge(descStorage, float64(st.Size))
		gauge(descOffloaded, float64(st.OffloadedSize))
		if m.b.opts.Offload.Store != nil {
			gauge(descBookieSize, float64(st.Offload.BookieSize))
			counter(descOffBytes, st.Offload.OffloadedBytesTotal)
			counter(descOffLedgers, st.Offload.OffloadedLedgersTotal)
			counter(descOffErrors, st.Offload.ErrorsTotal)
			gauge(descOffLast, st.Offload.LastDuration.Seconds())
		}
		var backlog int64
		for _, cs := range st.Cursors {
			if isSystemCursor(cs.Name) {
				continue
			}
			backlog += cs.Backlog
			// Label values must be UTF-8; a subscription stored before
			// names were checked is shown with replacement characters.
			gauge(descSubBacklog, float64(cs.Backlog), strings.ToValidUTF8(cs.Name, "\uFFFD"))
		}
		gauge(descBacklog, float64(backlog))
		repl := map[string]replicatorStats{}
		t.replicationStats(repl)
		for remote, rs := range repl {
			connected := 0.0
			if rs.Connected {
				connected = 1
			}
			gauge(descReplBacklog, float64(rs.ReplicationBacklog), remote)
			gauge(descReplRateOut, rs.MsgRateOut, remote)
			gauge(descReplThrOut, rs.MsgThroughputOut, remote)
			gauge(descReplRateIn, rs.MsgRateIn, remote)
			gauge(descReplThrIn, rs.MsgThroughputIn, remote)
			gauge(descReplConn, connected, remote)
			gauge(descReplDelay, float64(rs.ReplicationDelayInSeconds), remote)
			ch <- prometheus.MustNewConstMetric(descReplOut, prometheus.CounterValue, float64(rs.MsgOutCounter), append(append([]string(nil), lv...), remote)...)
		}
		np, nc, ns := t.counts()
		gauge(descProducers, float64(np))
		gauge(descConsumers, float64(nc))
		gauge(descSubs, float64(ns))
	}
}

// counts returns producers, consumers and subscriptions of a topic.
func (t *Topic) counts() (producers, consumers, subs int) {
	t.mu.Lock()
	producers, subs = len(t.mu.producers), len(t.mu.subs)
	ss := make([]*Subscription, 0, len(t.mu.subs))
	for _, s := range t.mu.subs {
		ss = append(ss, s)
	}
	t.mu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		consumers += len(s.mu.consumers)
		s.mu.Unlock()
	}
	return producers, consumers, subs
}
