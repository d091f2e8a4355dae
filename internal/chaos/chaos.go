// Package chaos is Strata's fault harness: a cluster of separate processes
// (etcd, bookies, brokers, an S3 server) on loopback, a workload that
// records every send, acknowledgement and delivery, a nemesis that injects
// faults on a seeded schedule, and a checker that compares what was
// acknowledged with what every subscription and reader received.
//
// The cluster: etcd, Config.Bookies bookies (bookie 0 behind a fault proxy)
// and Config.Brokers brokers (each reaching etcd through its own fault
// proxy), ledgers with E=3, Qw=3, Qa=2, deduplication on, everything
// retained, closed ledgers offloaded to S3 at once. The workload: plain
// topics and a partitioned one; on each a durable subscription and (plain
// topics) a reader made before the faults, and a producer sending with
// explicit sequence ids, resending an id until it is acknowledged.
//
// After the faults everything heals; the run then checks that producing
// works again within Config.HealTimeout, that every ledger gets its full
// replica count back (auto-recovery) within Config.ReplicationTimeout, and
// that every acknowledged message reached every subscription, every reader
// and a new subscription reading from the start — exactly once in the log,
// in order per partition, and nothing that was never sent.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// Config configures a run.
type Config struct {
	Seed     uint64
	Duration time.Duration // how long the nemesis injects faults
	Bookies  int           // default 4
	Brokers  int           // default 3
	// Topics plain topics and one partitioned topic with Partitions
	// partitions (0: none); defaults 3 and 3.
	Topics, Partitions int
	// Faults to draw from; nil: AllFaults.
	Faults []Fault
	// Break names testfault switches the processes run with, to show that
	// the checker sees what they break.
	Break []string
	// HealTimeout bounds how long after healing every producer must be
	// acknowledged again; default 90 s.
	HealTimeout time.Duration
	// ReplicationTimeout bounds how long after healing every ledger must
	// have its full replica count; default 2 min.
	ReplicationTimeout time.Duration
	// LostBookieDelay is the brokers' --lost-bookie-recovery-delay;
	// default 10 s.
	LostBookieDelay time.Duration
	// EntriesPerLedger is the brokers' --max-entries-per-ledger; default
	// 200, so that ledgers close (and are offloaded) every second or so.
	EntriesPerLedger int

	// For a cluster of a geo-replicated pair (RunGeo): its name (default
	// "chaos") and the etcd address of the configuration store it shares
	// (default: its own etcd); ledgers' ensemble, write and ack quorums
	// (default 3, 3, 2).
	name             string
	configStore      string
	ensemble, wq, aq int
	skipNamespace    bool
}

func (c *Config) defaults() {
	if c.Bookies == 0 {
		c.Bookies = 4
	}
	if c.Brokers == 0 {
		c.Brokers = 3
	}
	if c.Topics == 0 {
		c.Topics = 3
	}
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.Faults == nil {
		c.Faults = AllFaults
	}
	if c.HealTimeout == 0 {
		c.HealTimeout = 90 * time.Second
	}
	if c.ReplicationTimeout == 0 {
		c.ReplicationTimeout = 2 * time.Minute
	}
	if c.EntriesPerLedger == 0 {
		c.EntriesPerLedger = 200
	}
	if c.LostBookieDelay == 0 {
		c.LostBookieDelay = 10 * time.Second
	}
	if c.name == "" {
		c.name = clusterName
	}
	if c.ensemble == 0 {
		c.ensemble, c.wq, c.aq = 3, 3, 2
	}
}

// Report is the outcome of a run.
type Report struct {
	Seed     uint64
	Duration time.Duration
	Faults   map[Fault]int
	Events   []string // every fault, in order

	Sent, Acked int // messages (sequence ids) attempted and acknowledged
	// Delivered counts deliveries per kind of stream: "live"
	// subscriptions, "reader"s and the "final" subscription.
	Delivered map[string]int

	Lost       int // acknowledged messages a stream never received
	Duplicated int // messages stored more than once (the final read)
	Reordered  int // deliveries out of order within a partition
	Phantom    int // deliveries of messages never sent
	Details    []string

	LongestUnavailable time.Duration // longest wait for an acknowledgement
	HealTime           time.Duration // from healing to every topic acknowledged again
	// ReplicationTime is the longest time from a bookie's loss until no
	// ledger listed it; LostBookies counts the bookies lost for good.
	ReplicationTime time.Duration
	LostBookies     int
	Problems        []string // bounds exceeded, harness trouble
}

// OK reports whether nothing was lost, duplicated, reordered or invented,
// and every bound held.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 && r.Phantom == 0 && len(r.Problems) == 0
}

// Table prints the report.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, faults for %v\n", r.Seed, r.Duration.Round(time.Second))
	kinds := make([]string, 0, len(r.Faults))
	for f := range r.Faults {
		kinds = append(kinds, string(f))
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "%-28s %8s\n", "fault", "count")
	for _, k := range kinds {
		fmt.Fprintf(&b, "%-28s %8d\n", k, r.Faults[Fault(k)])
	}
	row := func(name string, v any) { fmt.Fprintf(&b, "%-28s %8v\n", name, v) }
	row("messages sent", r.Sent)
	row("messages acknowledged", r.Acked)
	for _, k := range []string{"live", "reader", "final"} {
		row("delivered ("+k+")", r.Delivered[k])
	}
	row("lost", r.Lost)
	row("duplicated", r.Duplicated)
	row("reordered", r.Reordered)
	row("never sent", r.Phantom)
	row("longest unavailability", r.LongestUnavailable.Round(100*time.Millisecond))
	row("heal time", r.HealTime.Round(100*time.Millisecond))
	row("bookies lost for good", r.LostBookies)
	row("time to full replication", r.ReplicationTime.Round(100*time.Millisecond))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	for _, d := range r.Details {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	return b.String()
}

// Run starts a cluster, runs the workload under the nemesis for
// cfg.Duration, heals, checks and returns the report. It fails t only when
// the harness itself cannot work (a process does not start, ...).
func Run(t testing.TB, cfg Config) *Report {
	t.Helper()
	cfg.defaults()
	logf := t.Logf
	bins, err := FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+15*time.Minute)
	defer cancel()
	c, err := startCluster(ctx, t, cfg, bins)
	defer c.stop()
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	topics := make([]topicSpec, 0, cfg.Topics+1)
	for i := range cfg.Topics {
		topics = append(topics, topicSpec{name: fmt.Sprintf("persistent://%s/t%d", namespace, i)})
	}
	if cfg.Partitions > 0 {
		adm, err := c.admin()
		if err != nil {
			t.Fatal(err)
		}
		tp := topicSpec{name: "persistent://" + namespace + "/parted", partitions: cfg.Partitions}
		if err := adm.Topics().CreatePartitioned(ctx, tp.name, cfg.Partitions); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, tp)
	}
	w, err := startWorkload(ctx, c.serviceURL(), c.serviceURL(), topics, logf)
	if err != nil {
		t.Fatalf("workload: %v", err)
	}
	defer w.close()
	// Operators' tools and other clients look topics up all the time: a
	// topic whose broker stopped answering moves as soon as its lease ends.
	w.consumers.Go(func() { c.poll(w.consumeCtx, topics) })
	w.consumers.Go(func() { c.repl.watch(w.consumeCtx) })

	r := &Report{Seed: cfg.Seed, Duration: cfg.Duration, Faults: map[Fault]int{}, Delivered: map[string]int{}}
	start := time.Now()
	sleepCtx(ctx, 3*time.Second) // some traffic before the first fault
	n := &nemesis{c: c, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)), faults: cfg.Faults, topics: topics, start: start, logf: logf}
	n.run(ctx, start.Add(cfg.Duration))
	for _, e := range n.events {
		r.Faults[e.fault]++
		r.Events = append(r.Events, fmt.Sprintf("%6.1fs %-17s %s (%v)", e.at.Seconds(), e.fault, e.detail, e.held.Round(100*time.Millisecond)))
	}

	// Heal, then produce and consume must work again within a bound, and
	// every ledger must get its full replica count back.
	c.healAll()
	healed := time.Now()
	replicated := make(chan error, 1)
	go func() { replicated <- c.waitFullyReplicated(ctx, healed.Add(cfg.ReplicationTimeout)) }()
	for {
		waiting := w.rec.notAckedSince(topics, healed)
		if len(waiting) == 0 {
			break
		}
		if time.Since(healed) > cfg.HealTimeout {
			r.Problems = append(r.Problems, fmt.Sprintf("not acknowledged within %v of healing: %s", cfg.HealTimeout, strings.Join(waiting, ", ")))
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	r.HealTime = time.Since(healed)
	sleepCtx(ctx, 2*time.Second)
	w.stopProducers()
	for deadline := time.Now().Add(cfg.HealTimeout); !w.caughtUp() && time.Now().Before(deadline); {
		sleepCtx(ctx, 500*time.Millisecond)
	}
	if err := w.finalRead(ctx, 30*time.Second); err != nil {
		r.Problems = append(r.Problems, err.Error())
	}
	w.stopConsume()
	w.consumers.Wait()

	if err := <-replicated; err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("within %v of healing: %v", cfg.ReplicationTimeout, err))
	}
	r.ReplicationTime, r.LostBookies = c.repl.longest()
	check(r, w.rec, topics)
	return r
}

// check compares the history: for every topic, what was acknowledged with
// what each stream received.
func check(r *Report, rec *recorder, topics []topicSpec) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r.LongestUnavailable = rec.longestAck
	detail := func(format string, args ...any) {
		if len(r.Details) < 20 {
			r.Details = append(r.Details, fmt.Sprintf(format, args...))
		}
	}
	for _, tp := range topics {
		sent := rec.sent[tp.name]
		r.Sent += len(sent)
		for _, s := range sent {
			if s.acked {
				r.Acked++
			}
		}
		kinds := []string{"live", "final"}
		if tp.partitions == 0 {
			kinds = append(kinds, "reader")
		}
		for _, kind := range kinds {
			ds := rec.streams[kind+"/"+tp.name]
			r.Delivered[kind] += len(ds)
			got := map[int64]int{}
			lastSeq := map[int32]int64{} // per partition: the last first-delivery
			for _, d := range ds {
				if _, ok := sent[d.seq]; !ok {
					r.Phantom++
					detail("%s %s: delivered %v, which was never sent", kind, tp.name, d.id)
					continue
				}
				got[d.seq]++
				if got[d.seq] > 1 {
					continue // a redelivery (at-least-once), or a duplicate (counted below)
				}
				if prev, ok := lastSeq[d.id.Partition]; ok && d.seq < prev {
					r.Reordered++
					detail("%s %s: seq %d (%v) after seq %d in partition %d", kind, tp.name, d.seq, d.id, prev, d.id.Partition)
				}
				lastSeq[d.id.Partition] = max(lastSeq[d.id.Partition], d.seq)
			}
			seqs := make([]int64, 0, len(sent))
			for seq := range sent {
				seqs = append(seqs, seq)
			}
			slices.Sort(seqs)
			// Lost messages, reported as runs of consecutive acknowledged ones.
			var run []int64
			flush := func() {
				switch n := len(run); {
				case n == 1:
					detail("%s %s: seq %d, acknowledged as %v, never delivered", kind, tp.name, run[0], sent[run[0]].id)
				case n > 1:
					detail("%s %s: seqs %d..%d (%d), acknowledged as %v..%v, never delivered",
						kind, tp.name, run[0], run[n-1], n, sent[run[0]].id, sent[run[n-1]].id)
				}
				run = run[:0]
			}
			for _, seq := range seqs {
				switch s := sent[seq]; {
				case !s.acked:
				case got[seq] == 0:
					r.Lost++
					run = append(run, seq)
				default:
					flush()
				}
			}
			flush()
			if kind == "final" {
				for _, seq := range seqs {
					if got[seq] > 1 {
						r.Duplicated += got[seq] - 1
						detail("final %s: seq %d stored %d times", tp.name, seq, got[seq])
					}
				}
			}
		}
	}
}
