package broker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

// TestBrokerWaitsForInitialization: against an uninitialized metadata
// store the broker serves /readyz 503 with an explanation and keeps
// retrying; once the cluster is initialized it becomes ready.
func TestBrokerWaitsForInitialization(t *testing.T) {
	store, _ := testutil.Store(t)
	b, err := broker.New(broker.Options{Cluster: "late", Metadata: store, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Logger: testcluster.TestLogger(t), SessionTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	readyz := func() (int, string) {
		resp, err := http.Get(b.HTTPURL() + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if code, body := readyz(); code != 503 || !strings.Contains(body, "not initialized") || !strings.Contains(body, "strata init-cluster") {
			return fmt.Errorf("readyz %d %q", code, body)
		}
		return nil
	})
	if resp, err := http.Get(b.HTTPURL() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz while waiting: %v", err)
	}
	if err := tenants.InitializeCluster(context.Background(), store, "late", tenants.ClusterData{}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() error {
		if code, body := readyz(); code != 200 {
			return fmt.Errorf("readyz %d %q", code, body)
		}
		return nil
	})
}
