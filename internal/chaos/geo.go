package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

// ClusterOutage stops every broker of a cluster for a while (a region
// down, for the other cluster's replicators); for geo runs only.
const ClusterOutage Fault = "cluster-outage"

// GeoFaults are the faults RunGeo draws from, on either cluster.
var GeoFaults = []Fault{BrokerKill, BrokerTerm, BrokerPause, EtcdLink, Unload, ClusterOutage}

// GeoConfig configures a geo-replication run.
type GeoConfig struct {
	Seed     uint64
	Duration time.Duration // how long the nemesis injects faults
	// Break names testfault switches the processes run with.
	Break []string
	// HealTimeout bounds how long after healing every producer must be
	// acknowledged again and every subscription caught up; default 90 s.
	HealTimeout time.Duration
}

// RunGeo runs two clusters, "a" and "b", as separate processes: each with
// its own etcd, a bookie and two brokers, sharing a configuration-store
// etcd, with namespace chaos/ns replicated between them. Producers in A
// write topics t0, t1 and a partitioned topic, producers in B topic u0;
// every subscription and reader reads in the other cluster. The nemesis
// kills, stops, pauses and cuts off brokers of either cluster, unloads
// topics and takes a whole cluster's brokers down; after healing, every
// message acknowledged in one cluster must reach the other's
// subscriptions, readers and a new subscription: once in its log, in order
// per partition.
func RunGeo(t testing.TB, cfg GeoConfig) *Report {
	t.Helper()
	if cfg.HealTimeout == 0 {
		cfg.HealTimeout = 90 * time.Second
	}
	logf := t.Logf
	bins, err := FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+15*time.Minute)
	defer cancel()
	cfgEtcd, cfgAddr, err := startConfigEtcd(t, bins)
	if err != nil {
		t.Fatalf("configuration store: %v", err)
	}
	defer cfgEtcd.kill()
	clusters := map[string]*cluster{}
	for _, name := range []string{"a", "b"} {
		cc := Config{Bookies: 1, Brokers: 2, Break: cfg.Break, name: name, configStore: cfgAddr, skipNamespace: true}
		cc.defaults()
		cc.ensemble, cc.wq, cc.aq = 1, 1, 1
		c, err := startCluster(ctx, t, cc, bins)
		defer c.stop()
		if err != nil {
			t.Fatalf("start cluster %s: %v", name, err)
		}
		clusters[name] = c
	}
	a, b := clusters["a"], clusters["b"]
	if err := setupGeo(ctx, a, b); err != nil {
		t.Fatalf("geo-replication set-up: %v", err)
	}
	fromA := []topicSpec{{name: "persistent://" + namespace + "/t0"}, {name: "persistent://" + namespace + "/t1"},
		{name: "persistent://" + namespace + "/parted", partitions: 3}}
	fromB := []topicSpec{{name: "persistent://" + namespace + "/u0"}}
	adm, err := a.admin()
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Topics().CreatePartitioned(ctx, fromA[2].name, fromA[2].partitions); err != nil {
		t.Fatal(err)
	}
	wa, err := startWorkload(ctx, a.serviceURL(), b.serviceURL(), fromA, logf)
	if err != nil {
		t.Fatalf("workload a->b: %v", err)
	}
	defer wa.close()
	wb, err := startWorkload(ctx, b.serviceURL(), a.serviceURL(), fromB, logf)
	if err != nil {
		t.Fatalf("workload b->a: %v", err)
	}
	defer wb.close()
	for _, c := range []*cluster{a, b} {
		wa.consumers.Go(func() { c.poll(wa.consumeCtx, append(append([]topicSpec(nil), fromA...), fromB...)) })
	}

	r := &Report{Seed: cfg.Seed, Duration: cfg.Duration, Faults: map[Fault]int{}, Delivered: map[string]int{}}
	start := time.Now()
	sleepCtx(ctx, 3*time.Second)
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))
	all := append(append([]topicSpec(nil), fromA...), fromB...)
	faults := append([]Fault(nil), GeoFaults...)
	rng.Shuffle(len(faults), func(i, j int) { faults[i], faults[j] = faults[j], faults[i] })
	for i := 0; (i < len(faults) || time.Since(start) < cfg.Duration) && ctx.Err() == nil; i++ {
		f := faults[i%len(faults)]
		if i >= len(faults) {
			f = GeoFaults[rng.IntN(len(GeoFaults))]
		}
		name := []string{"a", "b"}[rng.IntN(2)]
		c := clusters[name]
		n := &nemesis{c: c, rng: rng, topics: all, start: start, logf: logf}
		at := time.Since(start)
		var detail string
		var hold time.Duration
		var heal func()
		if f == ClusterOutage {
			for _, br := range c.brokers {
				br.proc.kill()
			}
			detail, hold, heal = "every broker", n.between(5*time.Second, 12*time.Second), c.restartDead
		} else {
			detail, hold, heal = n.apply(ctx, f)
		}
		logf("chaos: %6.1fs %-17s %s: %s (%v)", at.Seconds(), f, name, detail, hold.Round(100*time.Millisecond))
		sleepCtx(ctx, hold)
		heal()
		c.restartDead()
		r.Faults[f]++
		r.Events = append(r.Events, fmt.Sprintf("%6.1fs %-17s %s: %s", at.Seconds(), f, name, detail))
		sleepCtx(ctx, n.between(time.Second, 3*time.Second))
	}

	for _, c := range []*cluster{a, b} {
		c.healAll()
	}
	healed := time.Now()
	for {
		waiting := append(wa.rec.notAckedSince(fromA, healed), wb.rec.notAckedSince(fromB, healed)...)
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
	wa.stopProducers()
	wb.stopProducers()
	for deadline := time.Now().Add(cfg.HealTimeout); !(wa.caughtUp() && wb.caughtUp()) && time.Now().Before(deadline); {
		sleepCtx(ctx, 500*time.Millisecond)
	}
	for _, w := range []*workload{wa, wb} {
		if err := w.finalRead(ctx, 30*time.Second); err != nil {
			r.Problems = append(r.Problems, err.Error())
		}
	}
	wb.stopConsume()
	wb.consumers.Wait()
	wa.stopConsume()
	wa.consumers.Wait()
	check(r, wa.rec, fromA)
	check(r, wb.rec, fromB)
	return r
}

// startConfigEtcd starts the etcd both clusters keep their configuration
// in.
func startConfigEtcd(t testing.TB, bins Binaries) (*proc, string, error) {
	dir := t.TempDir()
	addr, peer := testutil.FreeAddr(t), testutil.FreeAddr(t)
	p := &proc{name: "config-etcd", bin: bins.Etcd, env: os.Environ(), logPath: filepath.Join(dir, "etcd.log"), args: []string{
		"--name", "config", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://" + addr, "--advertise-client-urls", "http://" + addr,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "config=http://" + peer, "--unsafe-no-fsync", "--log-level", "warn",
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1m",
	}}
	return p, addr, p.start()
}

// setupGeo registers each cluster's real URLs (brokers started after
// init-cluster chose none), allows both on tenant chaos and replicates
// namespace chaos/ns between them, keeping everything.
func setupGeo(ctx context.Context, a, b *cluster) error {
	adm, err := a.admin()
	if err != nil {
		return err
	}
	for _, c := range []*cluster{a, b} {
		var grpcs []string
		for _, br := range c.brokers {
			grpcs = append(grpcs, br.grpcAddr)
		}
		data := tenants.ClusterData{ServiceURL: "http://" + c.brokers[0].httpAddr, BrokerServiceURL: "pulsar://" + strings.Join(grpcs, ",")}
		if err := adm.Clusters().Update(ctx, c.cfg.name, data); err != nil {
			return fmt.Errorf("cluster %s: %w", c.cfg.name, err)
		}
	}
	if err := adm.Tenants().Create(ctx, "chaos", tenants.TenantInfo{AllowedClusters: []string{"a", "b"}}); err != nil {
		return err
	}
	if err := adm.Namespaces().Create(ctx, namespace, &tenants.Policies{ReplicationClusters: []string{"a", "b"}}); err != nil {
		return err
	}
	if err := adm.Namespaces().SetRetention(ctx, namespace, tenants.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -1}); err != nil {
		return err
	}
	// Both clusters' brokers know the namespace before the workload starts.
	for _, c := range []*cluster{a, b} {
		for _, br := range c.brokers {
			if err := waitNamespace(ctx, "http://"+br.httpAddr); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitNamespace waits until the broker at url has the namespace in its
// configuration cache.
func waitNamespace(ctx context.Context, url string) error {
	adm, err := admin.New(url)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := adm.Topics().List(ctx, namespace)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}
