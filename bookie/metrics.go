package bookie

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bookie's Prometheus series (BookKeeper-style names under
// the strata_bookie_ prefix). Each bookie has its own registry so several can
// run in one process (tests, standalone).
type metrics struct {
	reg          *prometheus.Registry
	addEntries   *prometheus.CounterVec // by code
	addBytes     prometheus.Counter
	addLatency   prometheus.Histogram
	readEntries  *prometheus.CounterVec // by code
	readBytes    prometheus.Counter
	groupSize    prometheus.Histogram
	groupLatency prometheus.Histogram
	readOnly     prometheus.Gauge
	gcLedgers    prometheus.Counter

	checkpoints       prometheus.Counter
	checkpointSeconds prometheus.Histogram
	compactedSegments prometheus.Counter
	compactedBytes    prometheus.Counter
	relocatedBytes    prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		addEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_bookie_add_entries_total", Help: "Add requests completed, by outcome code.",
		}, []string{"code"}),
		addBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_bookie_add_bytes_total", Help: "Bytes of entries durably added.",
		}),
		addLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_bookie_add_latency_seconds", Help: "Time from receiving an add to its durable completion.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		readEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_bookie_read_entries_total", Help: "Entries read, by outcome code.",
		}, []string{"code"}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_bookie_read_bytes_total", Help: "Bytes of entries read.",
		}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_bookie_journal_group_ops", Help: "Requests per journal group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		groupLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_bookie_journal_commit_seconds", Help: "Duration of a group commit including its sync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		readOnly: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_bookie_read_only", Help: "1 when the bookie is in read-only mode.",
		}),
		gcLedgers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_bookie_gc_ledgers_deleted_total", Help: "Ledgers removed by garbage collection.",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_bookie_checkpoints_total", Help: "Checkpoints that made the index durable.",
		}),
		checkpointSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_bookie_checkpoint_seconds", Help: "Duration of a checkpoint's index sync.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		compactedSegments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_bookie_compacted_segments_total", Help: "Entry-log segments deleted by compaction.",
		}),
		compactedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_bookie_compacted_bytes_total", Help: "Entry-log bytes freed by compaction.",
		}),
		relocatedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_bookie_relocated_bytes_total", Help: "Live entry bytes compaction moved out of sparse segments.",
		}),
	}
	m.reg.MustRegister(m.addEntries, m.addBytes, m.addLatency, m.readEntries, m.readBytes,
		m.groupSize, m.groupLatency, m.readOnly, m.gcLedgers,
		m.checkpoints, m.checkpointSeconds, m.compactedSegments, m.compactedBytes, m.relocatedBytes,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeGroup(ops int, d time.Duration) {
	m.groupSize.Observe(float64(ops))
	m.groupLatency.Observe(d.Seconds())
}

// watchLedgers exports the size of the ledger-state cache and the number of
// long polls waiting.
func (m *metrics) watchLedgers(l *ledgers) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_bookie_ledger_states", Help: "Ledger states cached (ledgers this bookie holds, or is asked to wait on).",
		}, func() float64 { n, _ := l.counts(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_bookie_lac_waiters", Help: "Long polls (WaitLAC) waiting for a ledger's LAC to advance.",
		}, func() float64 { _, n := l.counts(); return float64(n) }),
	)
}
