package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/s3test"
	"github.com/strata-mq/strata/internal/testfault"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
)

// Timing of the cluster under test: short leases so that faults move topics
// and lose bookies within a bounded run.
const (
	sessionTTL  = 4 * time.Second
	clusterName = "chaos"
	namespace   = "chaos/ns"
)

// Binaries locates the programs the harness runs.
type Binaries struct {
	// Strata is the strata binary (STRATA_BIN, else built from this module).
	Strata string
	// Etcd is the etcd binary (STRATA_ETCD, $STRATA_TOOLS/bin/etcd or PATH).
	Etcd string
}

var (
	buildOnce sync.Once
	buildDir  string
	built     string
	buildErr  error
)

// FindBinaries returns the binaries, building strata once per process
// (into a directory RemoveBuilt deletes) when STRATA_BIN is not set.
func FindBinaries() (Binaries, error) {
	var b Binaries
	if p := os.Getenv("STRATA_BIN"); p != "" {
		b.Strata = p
	} else {
		buildOnce.Do(func() {
			if buildDir, buildErr = os.MkdirTemp("", "strata-chaos-"); buildErr != nil {
				return
			}
			built = filepath.Join(buildDir, "strata")
			out, err := exec.Command("go", "build", "-o", built, "github.com/strata-mq/strata/cmd/strata").CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("build strata: %v\n%s", err, out)
			}
		})
		if buildErr != nil {
			return b, buildErr
		}
		b.Strata = built
	}
	etcd, err := toolPath("STRATA_ETCD", "etcd")
	if err != nil {
		return b, err
	}
	b.Etcd = etcd
	return b, nil
}

// RemoveBuilt deletes the strata binary FindBinaries built.
func RemoveBuilt() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// toolPath finds a tool installed by scripts/install-test-deps.sh.
func toolPath(env, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	tools := os.Getenv("STRATA_TOOLS")
	if tools == "" {
		if home, err := os.UserHomeDir(); err == nil {
			tools = filepath.Join(home, ".cache", "strata-tools")
		}
	}
	if p := filepath.Join(tools, "bin", name); fileExists(p) {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in $%s, $STRATA_TOOLS/bin or PATH; install it with scripts/install-test-deps.sh", name, env)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// bookieNode is one bookie process. Bookie 0 is reached through a fault
// proxy: it advertises the proxy's address, so every broker's traffic to it
// passes the proxy.
type bookieNode struct {
	proc  *proc
	id    string // its id: the advertised address
	dir   string
	proxy *faultProxy // nil except for bookie 0
}

// brokerNode is one broker process, reaching etcd through its own proxy.
type brokerNode struct {
	proc      *proc
	grpcAddr  string
	httpAddr  string
	etcdProxy *faultProxy
}

// cluster is the system under test: etcd, bookies, brokers and an S3 server,
// each a separate process.
type cluster struct {
	t        testing.TB
	cfg      Config
	bins     Binaries
	dir      string
	env      []string
	etcd     *proc
	etcdAddr string
	bookies  []*bookieNode
	lost     []string // ids of bookies removed for good
	brokers  []*brokerNode
	s3       *s3test.Server
	store    metadata.Store // the harness's own view of the metadata
	repl     *replication
}

func startCluster(ctx context.Context, t testing.TB, cfg Config, bins Binaries) (*cluster, error) {
	c := &cluster{t: t, cfg: cfg, bins: bins, dir: t.TempDir()}
	if keep := os.Getenv("STRATA_CHAOS_DIR"); keep != "" {
		// Keep the data and logs of the run for a look afterwards.
		var err error
		if c.dir, err = os.MkdirTemp(keep, "run-"); err != nil {
			return c, err
		}
		t.Logf("chaos: processes' data and logs in %s", c.dir)
	}
	c.env = append(os.Environ(), "STRATA_TOKEN=", testfault.EnvVar+"="+strings.Join(append([]string{testfault.DiskFullFile}, cfg.Break...), ","))
	c.etcdAddr = testutil.FreeAddr(t)
	peer := testutil.FreeAddr(t)
	c.etcd = &proc{name: "etcd", bin: bins.Etcd, env: os.Environ(), logPath: filepath.Join(c.dir, "etcd.log"), args: []string{
		"--name", "chaos", "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", "http://" + c.etcdAddr, "--advertise-client-urls", "http://" + c.etcdAddr,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "chaos=http://" + peer, "--unsafe-no-fsync", "--log-level", "warn",
		// As a production etcd should be: history compacted, or its
		// 2 GB quota fills within minutes of this workload.
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1m",
	}}
	if err := c.etcd.start(); err != nil {
		return c, err
	}
	store, err := metadata.NewEtcdStore(metadata.EtcdConfig{Endpoints: []string{c.etcdAddr}, Root: metadata.DefaultRoot})
	if err != nil {
		return c, err
	}
	c.store = store
	c.repl = newReplication(store)
	initArgs := []string{"init-cluster", "--cluster", cfg.name, "--etcd-endpoints", c.etcdAddr, "--timeout", "1m"}
	if cfg.configStore != "" {
		initArgs = append(initArgs, "--config-store-endpoints", cfg.configStore)
	}
	if err := c.strata(ctx, initArgs...); err != nil {
		return c, err
	}
	c.s3 = s3test.Start(t)
	for range cfg.Bookies {
		if _, err := c.addBookie(); err != nil {
			return c, err
		}
	}
	for i := range cfg.Brokers {
		if err := c.addBroker(i); err != nil {
			return c, err
		}
	}
	if err := c.waitReady(ctx, time.Minute); err != nil {
		return c, err
	}
	if cfg.skipNamespace {
		return c, nil
	}
	return c, c.setupNamespace(ctx)
}

// strata runs a strata command to completion.
func (c *cluster) strata(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.bins.Strata, args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// addBookie starts a new bookie with a new identity.
func (c *cluster) addBookie() (*bookieNode, error) {
	i := len(c.bookies)
	n := &bookieNode{dir: filepath.Join(c.dir, fmt.Sprintf("bookie-%d", i))}
	listen := testutil.FreeAddr(c.t)
	n.id = listen
	if i == 0 {
		p, err := newFaultProxy(listen)
		if err != nil {
			return nil, err
		}
		n.proxy, n.id = p, p.addr()
	}
	n.proc = &proc{name: fmt.Sprintf("bookie-%d", i), bin: c.bins.Strata, env: c.env, logPath: n.dir + ".log", args: []string{
		"bookie", "--etcd-endpoints", c.etcdAddr, "--addr", listen, "--advertised-address", n.id,
		"--http-addr", testutil.FreeAddr(c.t), "--data-dir", n.dir, "--session-ttl", sessionTTL.String(),
		"--disk-check-interval", "500ms", "--gc-interval", "30s", "--checkpoint-interval", "5s",
		"--log-level", "warn",
	}}
	c.bookies = append(c.bookies, n)
	return n, n.proc.start()
}

// addBroker starts broker i.
func (c *cluster) addBroker(i int) error {
	p, err := newFaultProxy(c.etcdAddr)
	if err != nil {
		return err
	}
	n := &brokerNode{grpcAddr: testutil.FreeAddr(c.t), httpAddr: testutil.FreeAddr(c.t), etcdProxy: p}
	args := []string{
		"broker", "--cluster", c.cfg.name, "--etcd-endpoints", p.addr(),
		"--grpc-addr", n.grpcAddr, "--http-addr", n.httpAddr, "--session-ttl", sessionTTL.String(),
		"--default-ensemble-size", fmt.Sprint(c.cfg.ensemble), "--default-write-quorum", fmt.Sprint(c.cfg.wq), "--default-ack-quorum", fmt.Sprint(c.cfg.aq),
		"--max-entries-per-ledger", fmt.Sprint(c.cfg.EntriesPerLedger), "--min-ledger-rollover-time", "0", "--broker-deduplication-enabled",
		"--retention-check-interval", "5s", "--policy-check-interval", "5s",
		"--lost-bookie-recovery-delay", c.cfg.LostBookieDelay.String(), "--open-ledger-rereplication-grace-period", "5s",
		"--auditor-check-interval", "30s", "--log-level", "warn",
	}
	if c.cfg.configStore != "" {
		args = append(args, "--config-store-endpoints", c.cfg.configStore)
	}
	args = append(args, "--offload-driver", "s3", "--offload-s3-endpoint", "http://"+c.s3.Endpoint,
		"--offload-s3-bucket", c.s3.Bucket, "--offload-s3-region", c.s3.Region, "--offload-s3-path-style",
		"--offload-s3-access-key", c.s3.AccessKey, "--offload-s3-secret-key", c.s3.SecretKey,
		"--offload-check-interval", "5s")
	n.proc = &proc{name: fmt.Sprintf("broker-%d", i), bin: c.bins.Strata, env: c.env, logPath: filepath.Join(c.dir, fmt.Sprintf("broker-%d.log", i)), args: args}
	c.brokers = append(c.brokers, n)
	return n.proc.start()
}

// serviceURL lists every broker for clients.
func (c *cluster) serviceURL() string {
	var addrs []string
	for _, b := range c.brokers {
		addrs = append(addrs, b.grpcAddr)
	}
	return strings.Join(addrs, ",")
}

// admin returns an admin client on a running broker.
func (c *cluster) admin() (*admin.Client, error) {
	for _, b := range c.brokers {
		if b.proc.running() && ready(b.httpAddr) {
			return admin.New("http://" + b.httpAddr)
		}
	}
	return nil, errors.New("no broker is ready")
}

func ready(httpAddr string) bool {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady waits until every running broker is ready and every running
// bookie is registered.
func (c *cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.notReady(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ready after %v: %w", timeout, err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *cluster) notReady(ctx context.Context) error {
	for i, b := range c.brokers {
		if b.proc.running() && !ready(b.httpAddr) {
			return fmt.Errorf("broker-%d not ready", i)
		}
	}
	regs, err := metadata.ListBookies(ctx, c.store)
	if err != nil {
		return err
	}
	for i, b := range c.bookies {
		if !b.proc.running() {
			continue
		}
		found := false
		for _, r := range regs {
			found = found || r.ID == b.id
		}
		if !found {
			return fmt.Errorf("bookie-%d (%s) not registered", i, b.id)
		}
	}
	return nil
}

// setupNamespace creates the tenant and namespace the workload uses: keep
// everything (readers replay from the start), offload closed ledgers at once
// and drop their bookie copies, so that replays read from S3 too.
func (c *cluster) setupNamespace(ctx context.Context) error {
	adm, err := c.admin()
	if err != nil {
		return err
	}
	if err := adm.Tenants().Create(ctx, "chaos", tenants.TenantInfo{AllowedClusters: []string{clusterName}}); err != nil {
		return err
	}
	if err := adm.Namespaces().Create(ctx, namespace, nil); err != nil {
		return err
	}
	ns := adm.Namespaces()
	if err := ns.SetRetention(ctx, namespace, tenants.RetentionPolicies{RetentionTimeInMinutes: -1, RetentionSizeInMB: -1}); err != nil {
		return err
	}
	if err := ns.SetOffloadThreshold(ctx, namespace, 64<<10); err != nil {
		return err
	}
	return ns.SetOffloadDeletionLag(ctx, namespace, 0)
}

// poll asks a broker for a topic's last message id every 300 ms, a
// different broker and topic each time, as monitoring would.
func (c *cluster) poll(ctx context.Context, topics []topicSpec) {
	for i := 0; ctx.Err() == nil; i++ {
		b := c.brokers[i%len(c.brokers)]
		if adm, err := admin.New("http://" + b.httpAddr); err == nil {
			tp := topics[i%len(topics)]
			name := tp.name
			if tp.partitions > 0 {
				name += "-partition-" + fmt.Sprint(i%tp.partitions)
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			adm.Topics().LastMessageID(pctx, name)
			cancel()
		}
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// stop ends every process.
func (c *cluster) stop() {
	for _, b := range c.brokers {
		b.proc.kill()
		b.etcdProxy.close()
	}
	for _, b := range c.bookies {
		b.proc.kill()
		if b.proxy != nil {
			b.proxy.close()
		}
	}
	if c.s3 != nil {
		c.s3.Stop()
	}
	if c.store != nil {
		c.store.Close()
	}
	if c.etcd != nil {
		c.etcd.kill()
	}
}
