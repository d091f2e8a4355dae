package tests

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads deploy/compose/docker-compose.yml the way `docker compose` does: schema
// validation, anchors and merges, variable defaults.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir := filepath.Join("..", "compose")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir), cli.WithEnv(nil), cli.WithName("strata"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// TestComposeCluster checks the compose cluster's shape and start-up order: etcd (healthy) →
// init-cluster (completed) → bookies (healthy) → brokers, with S3 offload credentials from the
// object store's settings.
func TestComposeCluster(t *testing.T) {
	p := loadCompose(t)
	var bookies, brokers []types.ServiceConfig
	for _, s := range p.Services {
		if len(s.Command) > 0 && s.Build != nil {
			switch s.Command[0] {
			case "bookie":
				bookies = append(bookies, s)
			case "broker":
				brokers = append(brokers, s)
			}
		}
	}
	if len(bookies) != 3 || len(brokers) != 2 {
		t.Fatalf("want 3 bookies and 2 brokers, have %d and %d", len(bookies), len(brokers))
	}
	for _, name := range []string{"etcd", "init-cluster", "minio", "minio-bucket"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no %s service", name)
		}
	}
	// Every rollover rewrites a topic's ledger list and every cursor flush its cursor: an etcd
	// that keeps all history fills its quota and refuses writes (the fault harness's soak did
	// in 8 minutes).
	if etcd := p.Services["etcd"].Command; !slices.Contains(etcd, "--auto-compaction-mode=periodic") ||
		!slices.ContainsFunc(etcd, func(a string) bool { return strings.HasPrefix(a, "--auto-compaction-retention=") }) {
		t.Errorf("etcd does not compact its history: %q", etcd)
	}

	root, _ := filepath.Abs(repoRoot)
	for name, s := range p.Services {
		oneShot := s.Restart == types.RestartPolicyNo
		if !oneShot && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
			t.Errorf("service %s: long-running without a healthcheck", name)
		}
		if s.Build != nil {
			ctx, _ := filepath.Abs(s.Build.Context)
			if ctx != root || s.Build.Dockerfile != "deploy/docker/Dockerfile" {
				t.Errorf("service %s builds %s from %s, want deploy/docker/Dockerfile from the repository root", name, s.Build.Dockerfile, ctx)
			}
			var env []string
			for k := range s.Environment {
				env = append(env, k)
			}
			checkStrataArgs(t, "compose service "+name, s.Command, env)
			for _, k := range env {
				if _, isFlag := envFlag(k); !isFlag && !strataEnv[k] {
					t.Errorf("compose service %s: environment %s is read by nothing", name, k)
				}
			}
		}
	}

	needs := func(svc types.ServiceConfig, dep, cond string) {
		t.Helper()
		d, ok := svc.DependsOn[dep]
		if !ok || d.Condition != cond {
			t.Errorf("service %s: want depends_on %s with condition %s, have %+v", svc.Name, dep, cond, d)
		}
	}
	needs(p.Services["init-cluster"], "etcd", types.ServiceConditionHealthy)
	if c := p.Services["init-cluster"].Command; len(c) == 0 || c[0] != "init-cluster" {
		t.Errorf("init-cluster service runs %v", c)
	}
	addrs := map[string]bool{}
	for _, b := range bookies {
		needs(b, "etcd", types.ServiceConditionHealthy)
		addr, _ := flagValue(b.Command, "advertised-address")
		if addr != b.Hostname+":3181" || addrs[addr] {
			t.Errorf("bookie %s advertises %q: want its own hostname:3181", b.Name, addr)
		}
		addrs[addr] = true
		if len(b.Volumes) != 1 || b.Volumes[0].Type != types.VolumeTypeVolume {
			t.Errorf("bookie %s: want one named data volume", b.Name)
		}
		if hc := strings.Join(b.HealthCheck.Test, " "); !strings.Contains(hc, ":8000/readyz") {
			t.Errorf("bookie %s healthcheck %q does not probe /readyz on the bookie HTTP port", b.Name, hc)
		}
	}
	for _, b := range brokers {
		needs(b, "init-cluster", types.ServiceConditionCompletedSuccessfully)
		needs(b, "minio-bucket", types.ServiceConditionCompletedSuccessfully)
		for _, bk := range bookies {
			needs(b, bk.Name, types.ServiceConditionHealthy)
		}
		if hc := strings.Join(b.HealthCheck.Test, " "); !strings.Contains(hc, ":8080/readyz") {
			t.Errorf("broker %s healthcheck %q does not probe /readyz", b.Name, hc)
		}
		if v, _ := flagValue(b.Command, "offload-driver"); v != "s3" {
			t.Errorf("broker %s: offload driver %q, want s3", b.Name, v)
		}
		minio := p.Services["minio"].Environment
		for k, from := range map[string]string{"AWS_ACCESS_KEY_ID": "MINIO_ROOT_USER", "AWS_SECRET_ACCESS_KEY": "MINIO_ROOT_PASSWORD"} {
			if b.Environment[k] == nil || minio[from] == nil || *b.Environment[k] != *minio[from] {
				t.Errorf("broker %s: %s does not match minio's %s", b.Name, k, from)
			}
		}
	}
	if slices.ContainsFunc(brokers, func(b types.ServiceConfig) bool { return len(b.Ports) == 0 }) {
		t.Errorf("every broker should publish its ports for local clients")
	}
}
