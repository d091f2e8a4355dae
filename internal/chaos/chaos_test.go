package chaos_test

import (
	"os"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/chaos"
)

func TestMain(m *testing.M) {
	code := m.Run()
	chaos.RemoveBuilt()
	os.Exit(code)
}

// TestChaosBounded is the bounded run of `make test`: a fixed seed, every
// fault kind once and more until 90 s have passed, against etcd, 4 bookies,
// 3 brokers and an S3 server as separate processes. Nothing acknowledged may be lost,
// duplicated or reordered, producing must work again soon after the faults
// heal, and every ledger must get its full replica count back.
func TestChaosBounded(t *testing.T) {
	r := chaos.Run(t, chaos.Config{Seed: 20261207, Duration: 90 * time.Second})
	t.Logf("chaos report:\n%s", r.Table())
	if !r.OK() {
		t.Fatalf("the run lost, duplicated or reordered messages, or a bound failed:\n%s", r.Table())
	}
}

// TestGeoChaosBounded is the bounded geo-replication run of `make test`:
// two clusters of processes replicating one namespace both ways while
// brokers of either are killed, stopped, paused, cut off from etcd, topics
// unloaded and a whole cluster's brokers taken down. Everything
// acknowledged in one cluster must reach the other once and in order.
func TestGeoChaosBounded(t *testing.T) {
	r := chaos.RunGeo(t, chaos.GeoConfig{Seed: 20261207, Duration: 60 * time.Second})
	t.Logf("geo chaos report:\n%s", r.Table())
	if !r.OK() {
		t.Fatalf("the run lost, duplicated or reordered messages, or a bound failed:\n%s", r.Table())
	}
}
