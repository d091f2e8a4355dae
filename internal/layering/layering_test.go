// Package layering checks the package layering of DESIGN.md §1: lower
// layers never import higher ones. Only non-test code is checked; tests may
// use any harness.
package layering

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/strata-mq/strata/"

// helpers are importable from anywhere: small shared packages with no
// dependency on a layer.
var helpers = []string{"internal/naming", "internal/units", "internal/ordered", "internal/grpcbuf", "internal/testfault"}

// allowed maps a package (or a tree, by prefix) to the module packages its
// non-test code may import besides helpers and itself. The most specific
// prefix wins.
var allowed = map[string][]string{
	"api":      {"api"},
	"metadata": {},
	"offload":  {},
	"bookie":   {"api", "metadata"},
	"ledger":   {"api", "metadata", "offload", "ledger"},
	"tenants":  {"metadata", "tenants"},
	// Replicators produce to other clusters with the SDK, as Pulsar's use
	// its client.
	"broker": {"api", "metadata", "ledger", "offload", "tenants", "client", "internal/pulsarwire"},
	"client": {"api"},
	// The admin client shares the policy JSON types with the server, so
	// both always agree on Pulsar's field names.
	"client/admin": {"tenants"},
	// Test harness and process wiring: everything below the binary.
	"internal/testutil":    {"metadata"},
	"internal/testcluster": {"api", "metadata", "bookie", "ledger", "offload", "tenants", "broker", "internal/testutil", "internal/standalone"},
	"internal/standalone":  {"metadata", "bookie", "tenants", "broker"},
	"internal/s3test":      {"internal/testutil"}, // free ports
	// The fault harness drives processes as a user would and reads the
	// ledger metadata to check replication.
	"internal/chaos":      {"client", "metadata", "ledger", "tenants", "internal/testutil", "internal/s3test"},
	"internal/grpcbuf":    {},
	"internal/naming":     {},
	"internal/units":      {},
	"internal/ordered":    {},
	"internal/testfault":  {},
	"internal/pulsarwire": {"api"}, // Pulsar's frames: for the broker, and a proxy to come
	"internal/layering":   {},
	"internal/compat":     {}, // tests only
	"cmd":                 {"*"},
}

func rule(pkg string) ([]string, bool) {
	best, ok := "", false
	for prefix := range allowed {
		if (pkg == prefix || strings.HasPrefix(pkg, prefix+"/")) && len(prefix) >= len(best) {
			best, ok = prefix, true
		}
	}
	return allowed[best], ok
}

func permitted(pkg, imp string, rules []string) bool {
	if imp == pkg || strings.HasPrefix(imp, pkg+"/") {
		return true // itself and its own subpackages
	}
	for _, r := range append(rules, helpers...) {
		if r == "*" || imp == r || strings.HasPrefix(imp, r+"/") {
			return true
		}
	}
	return false
}

func TestImportLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], module)
		if !ok {
			continue
		}
		rules, ok := rule(pkg)
		if !ok {
			t.Errorf("package %s has no layering rule: add it to allowed", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			imp, ok := strings.CutPrefix(imp, module)
			if ok && !permitted(pkg, imp, rules) {
				t.Errorf("%s imports %s: not allowed (may import %v and the helpers %v)", pkg, imp, rules, helpers)
			}
		}
	}
}

// TestRulesCatchViolations proves the check can fail.
func TestRulesCatchViolations(t *testing.T) {
	for _, c := range []struct{ pkg, imp string }{
		{"ledger", "broker"}, {"ledger/managed", "tenants"}, {"bookie", "ledger"}, {"offload", "ledger"},
		{"client", "broker"}, {"tenants", "ledger"}, {"metadata", "tenants"}, {"api/clientpb", "metadata"},
		{"broker", "internal/testcluster"},
	} {
		rules, _ := rule(c.pkg)
		if permitted(c.pkg, c.imp, rules) {
			t.Errorf("%s importing %s passes the check", c.pkg, c.imp)
		}
	}
	if rules, _ := rule("ledger/managed"); !permitted("ledger/managed", "ledger", rules) || !permitted("ledger/managed", "offload", rules) {
		t.Error("ledger/managed may import ledger and offload")
	}
}
