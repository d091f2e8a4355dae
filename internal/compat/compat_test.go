// Package compat_test checks that data written by older builds keeps
// working: a standalone data directory made by an earlier build (see
// fixture_gen_test.go for what it holds and how to make one) is opened by
// this build and read through the SDK.
package compat_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/offload"
)

// TestOpensDataDirOfOlderBuild opens the standalone data directory build
// 936b31e left (the last build before the entry log and ledger-id ordering)
// on other ports, and reads everything back:
//   - "moved" lists ledgers of its second owner after higher-numbered ones;
//     the build that wrote it left its subscriptions stuck at the move. They
//     now get every message after their acknowledgements, once, in order,
//     and a reader gets all 80;
//   - "holes": exactly the unacknowledged third of its messages;
//   - "offloaded": every message, from the filesystem offload store (the
//     bookie copies are gone);
//   - "dd": deduplication still drops a producer's old sequence ids;
//   - the bookie's entries, which that build kept in Badger, are served
//     from the entry log they were moved into.
func TestOpensDataDirOfOlderBuild(t *testing.T) {
	dir := t.TempDir()
	if err := extractTarGz(filepath.Join("testdata", "standalone-936b31e.tar.gz"), dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fsStore, err := offload.NewFSStore(filepath.Join(dir, "offload"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := standalone.Start(ctx, standalone.Options{DataDir: dir, EtcdClientAddr: testutil.FreeAddr(t), EtcdPeerAddr: testutil.FreeAddr(t),
		BookieAddr: testutil.FreeAddr(t), Logger: testcluster.TestLogger(t),
		Broker: broker.Options{GRPCAddr: testutil.FreeAddr(t), HTTPAddr: testutil.FreeAddr(t), SessionTTL: 2 * time.Second,
			Offload: broker.OffloadOptions{Store: fsStore, Driver: "filesystem"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cl, err := client.New(s.Broker.GRPCAddr(), client.WithOperationTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	payload := func(topic string, i int) string {
		return fmt.Sprintf("%s/%03d/%s", topic, i, strings.Repeat("z", (i*137)%1500))
	}
	receive := func(c *client.Consumer, want []string) {
		t.Helper()
		for i, w := range want {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			m, err := c.Receive(rctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: message %d of %d (%.20q...): %v", c.Subscription(), i, len(want), w, err)
			}
			if string(m.Payload) != w {
				t.Fatalf("%s: message %d is %.20q..., want %.20q...", c.Subscription(), i, m.Payload, w)
			}
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if m, err := c.Receive(rctx); err == nil {
			t.Fatalf("%s: unexpected message %.20q...", c.Subscription(), m.Payload)
		}
	}
	read := func(topic string, n int) {
		t.Helper()
		r, err := cl.CreateReader(ctx, topic, client.EarliestMessageID)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		short := topic[strings.LastIndex(topic, "/")+1:]
		for i := 0; i < n; i++ {
			m, err := r.Next(ctx)
			if err != nil || string(m.Payload) != payload(short, i) {
				t.Fatalf("reader of %s: message %d is %.20q... (%v)", topic, i, m.Payload, err)
			}
		}
	}
	series := func(topic string, from, to int, keep func(int) bool) []string {
		var out []string
		for i := from; i < to; i++ {
			if keep == nil || keep(i) {
				out = append(out, payload(topic, i))
			}
		}
		return out
	}

	moved := "persistent://public/default/moved"
	for sub, acked := range map[string]int{"sub-before": 10, "shared-before": 4} {
		opts := []client.ConsumerOption{}
		if sub == "shared-before" {
			opts = append(opts, client.WithSubscriptionType(client.Shared))
		}
		c, err := cl.Subscribe(ctx, moved, sub, opts...)
		if err != nil {
			t.Fatal(err)
		}
		receive(c, series("moved", acked, 80, nil))
		c.Close()
	}
	read(moved, 80)
	var info struct {
		Ledgers    []struct{ LedgerID int64 } `json:"ledgers"`
		Renumbered map[string]int64           `json:"renumbered"`
	}
	kv, err := s.Store.Get(ctx, metadata.ManagedLedgersPrefix+"public/default/moved")
	if err != nil || json.Unmarshal(kv.Value, &info) != nil {
		t.Fatalf("ledger list of moved: %v", err)
	}
	if len(info.Renumbered) == 0 {
		t.Fatalf("moved needed no renumbering: the fixture lacks the out-of-order ledger list it is for (%s)", kv.Value)
	}
	for i := 1; i < len(info.Ledgers); i++ {
		if info.Ledgers[i].LedgerID <= info.Ledgers[i-1].LedgerID {
			t.Fatalf("ledger list of moved still out of order: %s", kv.Value)
		}
	}

	holes, err := cl.Subscribe(ctx, "holes", "holes")
	if err != nil {
		t.Fatal(err)
	}
	receive(holes, series("holes", 0, 30, func(i int) bool { return i%3 == 1 }))
	holes.Close()
	read("persistent://public/default/holes", 30)
	read("persistent://public/default/offloaded", 40)

	p, err := cl.CreateProducer(ctx, "persistent://public/dedup/dd", client.WithProducerName("dd-producer"))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int64{5, 9, 10} {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint("dd-", seq)), SequenceID: &seq}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	r, err := cl.CreateReader(ctx, "persistent://public/dedup/dd", client.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i <= 10; i++ {
		m, err := r.Next(ctx)
		if err != nil || string(m.Payload) != fmt.Sprint("dd-", i) {
			t.Fatalf("dd: message %d is %q (%v); old sequence ids must be dropped", i, m.Payload, err)
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	defer rcancel()
	if m, err := r.Next(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dd: a duplicate got through: %q (%v)", m.Payload, err)
	}
}

func extractTarGz(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(name, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("fixture entry %q escapes the directory", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			out, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(hdr.Mode)&0o777)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			out.Close()
			if err != nil {
				return err
			}
		}
	}
}
