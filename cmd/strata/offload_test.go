package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/offload"
)

// TestAdminOffloadCommands: `strata admin topics offload` and
// `offload-status` against a standalone with the filesystem driver.
func TestAdminOffloadCommands(t *testing.T) {
	dir := t.TempDir()
	var bo broker.Options
	var off offloadFlags
	f := pflag.NewFlagSet("standalone", pflag.ContinueOnError)
	off.register(f, "filesystem", "")
	if err := f.Parse([]string{"--offload-fs-dir", dir + "/offload", "--offload-block-size", "64k", "--offload-deletion-lag", "0s"}); err != nil {
		t.Fatal(err)
	}
	if err := off.apply(&bo); err != nil {
		t.Fatal(err)
	}
	bo.GRPCAddr, bo.HTTPAddr, bo.SessionTTL, bo.MaxEntriesPerLedger = testutil.FreeAddr(t), testutil.FreeAddr(t), 2*time.Second, 100
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := standalone.Start(ctx, standalone.Options{DataDir: dir, EtcdClientAddr: testutil.FreeAddr(t),
		EtcdPeerAddr: testutil.FreeAddr(t), BookieAddr: testutil.FreeAddr(t), Broker: bo, Logger: testcluster.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t.Setenv("STRATA_ADMIN_URL", s.Broker.HTTPURL())
	t.Setenv("STRATA_TOKEN", "")
	const topic = "persistent://public/default/archive"
	mutate(t, "admin", "namespaces", "set-retention", "public/default", "--size", "-1", "--time", "-1")

	cl, err := client.New(s.Broker.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 1024)
	for i := 0; i < 1000; i++ {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Equal(t, "status before any offload", jsonOut[admin.OffloadStatus](t, mustStrata(t, "admin", "topics", "offload-status", topic)).Status, admin.OffloadNotRun)
	failStrata(t, "--size-threshold", "admin", "topics", "offload", topic, "--size-threshold", "lots")
	mutate(t, "admin", "topics", "offload", topic, "--size-threshold", "0")
	st := jsonOut[admin.OffloadStatus](t, mustStrata(t, "admin", "topics", "offload-status", topic, "-w"))
	if st.Status != admin.OffloadSuccess || st.FirstUnoffloadedMessage == nil {
		t.Fatalf("offload status %+v", st)
	}
	is := jsonOut[admin.InternalStats](t, mustStrata(t, "admin", "topics", "stats-internal", topic))
	offloaded := 0
	for _, l := range is.Ledgers {
		if l.Offloaded {
			offloaded++
			if l.LedgerID >= st.FirstUnoffloadedMessage.LedgerID {
				t.Fatalf("ledger %d offloaded, first unoffloaded %+v", l.LedgerID, st.FirstUnoffloadedMessage)
			}
		}
	}
	if offloaded < 9 {
		t.Fatalf("%d ledgers offloaded: %+v", offloaded, is.Ledgers)
	}
	// Replay from the filesystem store.
	cons, err := cl.Subscribe(ctx, topic, "replay", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		m, err := cons.Receive(ctx)
		if err != nil || !bytes.Equal(m.Payload, payload) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// TestOffloadFlags checks the flag validation of --offload-*.
func TestOffloadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--offload-driver", "gcs"}, `want s3, filesystem or empty`},
		{[]string{"--offload-driver", "s3"}, "--offload-s3-bucket"},
		{[]string{"--offload-driver", "filesystem"}, "--offload-fs-dir"},
		{[]string{"--offload-driver", "filesystem", "--offload-fs-dir", t.TempDir(), "--offload-block-size", "1"}, "--offload-block-size"},
		{[]string{"--offload-driver", "filesystem", "--offload-fs-dir", t.TempDir(), "--offload-read-ahead", "-5"}, "--offload-read-ahead"},
		{[]string{"--offload-driver", "filesystem", "--offload-fs-dir", t.TempDir(), "--offload-threshold", "ten"}, "--offload-threshold"},
		{[]string{"--offload-driver", "s3", "--offload-s3-bucket", "bucket", "--offload-s3-endpoint", "ftp://x"}, "scheme"},
	} {
		var off offloadFlags
		f := pflag.NewFlagSet("broker", pflag.ContinueOnError)
		off.register(f, "", "")
		if err := f.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var bo broker.Options
		err := off.apply(&bo)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	// Valid flags fill the broker's options.
	var off offloadFlags
	f := pflag.NewFlagSet("broker", pflag.ContinueOnError)
	off.register(f, "", "")
	if err := f.Parse([]string{"--offload-driver", "s3", "--offload-s3-bucket", "bucket", "--offload-s3-endpoint", "http://127.0.0.1:9000",
		"--offload-block-size", "8M", "--offload-read-ahead", "0", "--offload-threshold", "1G", "--offload-deletion-lag", "1h"}); err != nil {
		t.Fatal(err)
	}
	var bo broker.Options
	if err := off.apply(&bo); err != nil {
		t.Fatal(err)
	}
	o := bo.Offload
	if _, ok := o.Store.(*offload.S3Store); !ok || o.Driver != "s3" || o.Write.BlockSize != 8<<20 || !o.Read.DisableReadAhead ||
		o.Policy.ThresholdBytes != 1<<30 || o.Policy.ThresholdSeconds != -1 || o.Policy.DeletionLag != time.Hour {
		t.Fatalf("options %+v policy %+v", o, *o.Policy)
	}
}
