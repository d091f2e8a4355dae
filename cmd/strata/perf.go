package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/client"
)

func newPerfCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "perf", Short: "Load generators with throughput and latency percentiles (like pulsar-perf)"}
	cmd.AddCommand(newPerfProduceCmd(), newPerfConsumeCmd())
	return cmd
}

// recorder accumulates latencies (µs) and counts for periodic reports.
type recorder struct {
	mu            sync.Mutex
	interval, all *hdr.Histogram
	msgs, bytes   atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{interval: hdr.New(1, 60_000_000, 3), all: hdr.New(1, 60_000_000, 3)}
}

func (r *recorder) record(lat time.Duration, size int) {
	us := max(lat.Microseconds(), 1)
	r.mu.Lock()
	r.interval.RecordValue(us)
	r.all.RecordValue(us)
	r.mu.Unlock()
	r.msgs.Add(1)
	r.bytes.Add(int64(size))
}

func pct(h *hdr.Histogram) string {
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return fmt.Sprintf("p50 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms", ms(50), ms(95), ms(99), ms(99.9), float64(h.Max())/1000)
}

// report prints a line every interval until ctx ends, then the summary.
func (r *recorder) report(ctx context.Context, w io.Writer, what string, every time.Duration) {
	start, last := time.Now(), time.Now()
	var lastMsgs, lastBytes int64
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			el := time.Since(start).Seconds()
			m, b := r.msgs.Load(), r.bytes.Load()
			r.mu.Lock()
			fmt.Fprintf(w, "Aggregated: %d msgs in %.1fs: %.0f msg/s, %.2f MB/s | %s latency: %s\n", m, el, float64(m)/el, float64(b)/el/1e6, what, pct(r.all))
			r.mu.Unlock()
			return
		}
		now := time.Now()
		el := now.Sub(last).Seconds()
		m, b := r.msgs.Load(), r.bytes.Load()
		r.mu.Lock()
		fmt.Fprintf(w, "%.0f msg/s, %.2f MB/s | %s latency: %s\n", float64(m-lastMsgs)/el, float64(b-lastBytes)/el/1e6, what, pct(r.interval))
		r.interval.Reset()
		r.mu.Unlock()
		last, lastMsgs, lastBytes = now, m, b
	}
}

func newPerfProduceCmd() *cobra.Command {
	var (
		conn                  connFlags
		rate, size, messages  int
		duration, every       time.Duration
		batch                 bool
		batchMsgs, batchBytes int
		batchDelay            time.Duration
		maxPending            int
		key                   string
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Publish at a rate and report throughput and publish latency",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if size < 8 {
				return errors.New("--size must be at least 8 bytes")
			}
			ctx, cancel := signalContext()
			defer cancel()
			if duration > 0 {
				var c2 context.CancelFunc
				ctx, c2 = context.WithTimeout(ctx, duration)
				defer c2()
			}
			cl, err := conn.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			opts := []client.ProducerOption{client.WithMaxPendingMessages(maxPending), client.WithSendTimeout(0)}
			if batch {
				opts = append(opts, client.WithBatching(batchMsgs, batchBytes, batchDelay))
			} else {
				opts = append(opts, client.WithoutBatching())
			}
			p, err := cl.CreateProducer(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			defer p.Close()
			rec := newRecorder()
			repCtx, repCancel := context.WithCancel(context.Background())
			repDone := make(chan struct{})
			go func() { rec.report(repCtx, cmd.OutOrStdout(), "publish", every); close(repDone) }()
			payload := make([]byte, size)
			var failed atomic.Int64
			var firstErr atomic.Pointer[error]
			start := time.Now()
			for i := 0; messages == 0 || i < messages; i++ {
				if ctx.Err() != nil {
					break
				}
				if rate > 0 {
					if ahead := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); ahead > 0 {
						time.Sleep(ahead)
					}
				}
				sent := time.Now()
				p.SendAsync(ctx, &client.ProducerMessage{Payload: payload, Key: key}, func(_ client.MessageID, _ *client.ProducerMessage, err error) {
					if err != nil {
						if failed.Add(1) == 1 {
							firstErr.Store(&err)
						}
						return
					}
					rec.record(time.Since(sent), size)
				})
			}
			fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
			p.Flush(fctx)
			fcancel()
			repCancel()
			<-repDone
			if n := failed.Load(); n > 0 && !errors.Is(*firstErr.Load(), context.Canceled) && !errors.Is(*firstErr.Load(), context.DeadlineExceeded) {
				return fmt.Errorf("%d sends failed, first: %v", n, *firstErr.Load())
			}
			return nil
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.IntVarP(&rate, "rate", "r", 0, "messages per second (0: as fast as possible)")
	f.IntVarP(&size, "size", "s", 1024, "message size in bytes")
	f.IntVarP(&messages, "messages", "m", 0, "messages to send (0: until --duration or interrupted)")
	f.DurationVarP(&duration, "duration", "d", 0, "stop after this long (0: no limit)")
	f.DurationVar(&every, "report-interval", 5*time.Second, "how often to print a line")
	f.BoolVar(&batch, "batch", true, "batch messages")
	f.IntVar(&batchMsgs, "batch-max-messages", 1000, "messages per batch")
	f.IntVar(&batchBytes, "batch-max-bytes", 128<<10, "bytes per batch")
	f.DurationVar(&batchDelay, "batch-max-delay", time.Millisecond, "longest a batch waits")
	f.IntVar(&maxPending, "max-pending", 20000, "messages in flight")
	f.StringVarP(&key, "key", "k", "", "message key")
	return cmd
}

func newPerfConsumeCmd() *cobra.Command {
	var (
		conn            connFlags
		sub, typ, pos   string
		messages        int
		duration, every time.Duration
		queue           int
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Consume and report throughput and end-to-end latency (publish to receive)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := client.ParseSubscriptionType(typ)
			if err != nil {
				return err
			}
			initial := client.Latest
			if strings.EqualFold(pos, "earliest") {
				initial = client.Earliest
			}
			ctx, cancel := signalContext()
			defer cancel()
			if duration > 0 {
				var c2 context.CancelFunc
				ctx, c2 = context.WithTimeout(ctx, duration)
				defer c2()
			}
			cl, err := conn.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			cons, err := cl.Subscribe(ctx, args[0], sub, client.WithSubscriptionType(st), client.WithInitialPosition(initial), client.WithReceiverQueueSize(queue))
			if err != nil {
				return err
			}
			defer cons.Close()
			rec := newRecorder()
			repCtx, repCancel := context.WithCancel(context.Background())
			repDone := make(chan struct{})
			go func() { rec.report(repCtx, cmd.OutOrStdout(), "end-to-end", every); close(repDone) }()
			for i := 0; messages == 0 || i < messages; i++ {
				m, err := cons.Receive(ctx)
				if err != nil {
					break
				}
				rec.record(time.Since(m.PublishTime), len(m.Payload))
				cons.Ack(m)
			}
			repCancel()
			<-repDone
			return nil
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.StringVarP(&sub, "subscription", "s", "perf", "subscription name")
	f.StringVarP(&typ, "subscription-type", "t", "Exclusive", "Exclusive, Shared, Failover or Key_Shared")
	f.StringVarP(&pos, "subscription-position", "p", "Latest", "Earliest or Latest")
	f.IntVarP(&messages, "messages", "m", 0, "messages to consume (0: until --duration or interrupted)")
	f.DurationVarP(&duration, "duration", "d", 0, "stop after this long")
	f.DurationVar(&every, "report-interval", 5*time.Second, "how often to print a line")
	f.IntVar(&queue, "receiver-queue-size", 1000, "flow-control window")
	return cmd
}
