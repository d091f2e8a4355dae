//go:build fixturegen

package compat_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/offload"
	"github.com/strata-mq/strata/tenants"
)

// TestGenerateFixture writes a standalone data directory, made by the build
// it runs in, to $STRATA_FIXTURE_OUT (a .tar.gz), with fixture.json saying
// what it holds. Regenerate with
//
//	STRATA_FIXTURE_OUT=$PWD/internal/compat/testdata/NAME.tar.gz \
//	  go test -tags fixturegen -run TestGenerateFixture ./internal/compat/
//
// It holds: topic "moved", written by a second broker and then, after that
// broker stopped, by the standalone's broker, whose ledger ids were lower
// (its id block was reserved first), with subscriptions made before the move;
// "holes", with a subscription that acknowledged two messages in three; and
// "offloaded", whose closed ledgers are in the filesystem offload store and no
// longer on the bookie; in namespace public/dedup, "dd" with a named producer
// and deduplication on.
func TestGenerateFixture(t *testing.T) {
	out := os.Getenv("STRATA_FIXTURE_OUT")
	if out == "" {
		t.Fatal("set STRATA_FIXTURE_OUT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fsStore, err := offload.NewFSStore(filepath.Join(dir, "offload"))
	if err != nil {
		t.Fatal(err)
	}
	policy := managed.OffloadPolicy{ThresholdBytes: -1, ThresholdSeconds: -1, DeletionLag: 0}
	brokerOpts := func() broker.Options {
		return broker.Options{GRPCAddr: freeAddr(t), HTTPAddr: freeAddr(t), SessionTTL: 2 * time.Second,
			MaxEntriesPerLedger: 5, CursorPersistInterval: 100 * time.Millisecond,
			Offload: broker.OffloadOptions{Store: fsStore, Driver: "filesystem", Policy: &policy, CheckInterval: 100 * time.Millisecond}}
	}
	s, err := standalone.Start(ctx, standalone.Options{DataDir: dir, EtcdClientAddr: freeAddr(t), EtcdPeerAddr: freeAddr(t),
		BookieAddr: freeAddr(t), Broker: brokerOpts(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	xo := brokerOpts()
	xo.Cluster, xo.Metadata, xo.Logger = standalone.Cluster, s.Store, logger
	x, err := broker.New(xo)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	for !x.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	cl, err := client.New(s.Broker.GRPCAddr()+","+x.GRPCAddr(), client.WithOperationTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	adm, err := admin.New(s.Broker.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	// own makes broker addr own the bundle of topic.
	own := func(addr, topic string) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		resp, err := clientpb.NewBrokerClient(cc).Lookup(ctx, &clientpb.LookupRequest{Topic: topic, Authoritative: true})
		if err != nil || resp.BrokerUrl != addr {
			t.Fatalf("make %s own %s: %v %v", addr, topic, resp, err)
		}
	}
	payload := func(topic string, i int) string {
		return fmt.Sprintf("%s/%03d/%s", topic, i, strings.Repeat("z", (i*137)%1500))
	}
	produce := func(p *client.Producer, topic string, from, n int) {
		for i := from; i < from+n; i++ {
			if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(payload(topic, i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	receiveAck := func(c *client.Consumer, n int, ack func(i int) bool) {
		for i := 0; i < n; i++ {
			m, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ack(i) {
				if err := c.AckWithResponse(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	manifest := map[string]any{}

	// The standalone's broker reserves the first ledger-id block.
	own(s.Broker.GRPCAddr(), "persistent://public/default/warm")
	warm, err := cl.CreateProducer(ctx, "warm")
	if err != nil {
		t.Fatal(err)
	}
	produce(warm, "warm", 0, 1)
	warm.Close()
	// "moved" lands on the other broker, which reserves the next block.
	moved := "persistent://public/default/moved"
	own(x.GRPCAddr(), moved)
	sub, err := cl.Subscribe(ctx, moved, "sub-before", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	shared, err := cl.Subscribe(ctx, moved, "shared-before", client.WithSubscriptionType(client.Shared), client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, moved, client.WithBatching(3, 1<<20, time.Millisecond), client.WithSendTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	produce(p, "moved", 0, 40)
	receiveAck(sub, 10, func(int) bool { return true })
	receiveAck(shared, 4, func(int) bool { return true })
	sub.Close()
	shared.Close()
	p.Close()
	if err := x.Close(); err != nil { // graceful: the topic moves to the standalone's broker
		t.Fatal(err)
	}
	p, err = cl.CreateProducer(ctx, moved, client.WithBatching(3, 1<<20, time.Millisecond), client.WithSendTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	produce(p, "moved", 40, 40)
	p.Close()
	manifest["moved"] = map[string]any{"sent": 80, "acked": map[string]int{"sub-before": 10, "shared-before": 4}}

	holes, err := cl.Subscribe(ctx, "holes", "holes", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err = cl.CreateProducer(ctx, "holes", client.WithBatching(1, 1<<20, 0))
	if err != nil {
		t.Fatal(err)
	}
	produce(p, "holes", 0, 30)
	p.Close()
	receiveAck(holes, 30, func(i int) bool { return i%3 != 1 })
	holes.Close()
	manifest["holes"] = map[string]any{"sent": 30, "unacked": "every third from 1"}

	p, err = cl.CreateProducer(ctx, "offloaded")
	if err != nil {
		t.Fatal(err)
	}
	var last client.MessageID
	for i := 0; i < 40; i++ {
		if last, err = p.Send(ctx, &client.ProducerMessage{Payload: []byte(payload("offloaded", i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if err := adm.Topics().Offload(ctx, "offloaded", admin.MessageID{LedgerID: last.LedgerID, EntryID: last.EntryID, PartitionIndex: -1, BatchIndex: -1}); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := adm.Topics().OffloadStatus(ctx, "offloaded")
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == "SUCCESS" {
			break
		}
		if st.Status == "ERROR" {
			t.Fatalf("offload: %s", st.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // bookie copies deleted (deletion lag 0)
	manifest["offloaded"] = map[string]any{"sent": 40}

	on := true
	if err := adm.Namespaces().Create(ctx, "public/dedup", &tenants.Policies{DeduplicationEnabled: &on}); err != nil {
		t.Fatal(err)
	}
	p, err = cl.CreateProducer(ctx, "persistent://public/dedup/dd", client.WithProducerName("dd-producer"))
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 10; i++ {
		seq := i
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint("dd-", i)), SequenceID: &seq}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	manifest["dd"] = map[string]any{"sent": 10, "producer": "dd-producer"}

	cl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := json.MarshalIndent(manifest, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "fixture.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeTarGz(out, dir); err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeTarGz(out, dir string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}
