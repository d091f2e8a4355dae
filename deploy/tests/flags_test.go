package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// strataFlags are the flags of each `strata` subcommand that the chart and the compose file may
// pass. Every flag also reads the environment variable STRATA_<FLAG_IN_UPPER_SNAKE_CASE>.
// A deployment artifact using a flag outside this list fails the tests: add the flag here only
// once the binary has it.
var strataFlags = map[string][]string{
	"bookie": {
		"etcd-endpoints", "addr", "advertised-address", "http-addr", "data-dir", "session-ttl",
		"disk-usage-threshold", "journal-sync", "gc-interval",
	},
	"broker": {
		"etcd-endpoints", "config-store-endpoints", "cluster", "grpc-addr", "http-addr",
		"advertised-address", "session-ttl", "default-ensemble-size", "default-write-quorum",
		"default-ack-quorum", "max-entries-per-ledger", "max-ledger-rollover-time", "min-ledger-rollover-time",
		"authentication-enabled", "authorization-enabled", "token-secret-key", "token-public-key",
		"superuser-roles", "tls-cert-file", "tls-key-file", "tls-trust-certs-file",
		"tls-require-client-cert", "offload-driver", "offload-s3-endpoint", "offload-s3-bucket",
		"offload-s3-region", "offload-s3-access-key", "offload-s3-secret-key", "offload-fs-dir",
		"offload-block-size", "offload-read-ahead", "offload-s3-path-style", "offload-threshold",
		"offload-deletion-lag", "broker-deduplication-enabled",
	},
	"init-cluster": {
		"cluster", "etcd-endpoints", "config-store-endpoints", "service-url", "broker-service-url",
		"timeout",
	},
	"standalone": {"data-dir"},
}

// strataEnv lists the environment variables (besides STRATA_<FLAG>) the processes read.
var strataEnv = map[string]bool{"AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true}

// envFlag maps STRATA_ETCD_ENDPOINTS to etcd-endpoints.
func envFlag(env string) (string, bool) {
	rest, ok := strings.CutPrefix(env, "STRATA_")
	if !ok {
		return "", false
	}
	return strings.ReplaceAll(strings.ToLower(rest), "_", "-"), true
}

// checkStrataArgs fails for an unknown subcommand or a flag the subcommand does not have.
// args is the container's argument list: subcommand first.
func checkStrataArgs(t *testing.T, where string, args []string, env []string) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: no strata subcommand", where)
		return
	}
	known, ok := strataFlags[args[0]]
	if !ok {
		t.Errorf("%s: unknown strata subcommand %q", where, args[0])
		return
	}
	has := map[string]bool{}
	for _, f := range known {
		has[f] = true
	}
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%s: argument %q is not a --flag=value (flags and values must not be split)", where, a)
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !has[name] {
			t.Errorf("%s: `strata %s` has no flag --%s", where, args[0], name)
		}
	}
	for _, e := range env {
		if f, ok := envFlag(e); ok && !has[f] {
			t.Errorf("%s: %s maps to --%s, which `strata %s` does not have", where, e, f, args[0])
		}
	}
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestStrataFlagsExist builds the binary and checks that every flag listed
// in strataFlags is one its subcommand really has.
func TestStrataFlagsExist(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", bin, "./cmd/strata")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for sub, flags := range strataFlags {
		out, err := exec.Command(bin, sub, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("strata %s --help: %v\n%s", sub, err, out)
		}
		for _, f := range flags {
			if !strings.Contains(string(out), "--"+f+" ") {
				t.Errorf("strata %s has no flag --%s", sub, f)
			}
		}
	}
}
