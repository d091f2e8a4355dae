package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// installScript installs every binary these tests run.
const installScript = "scripts/install-deploy-test-deps.sh"

// Paths inside the repository, relative to this package's directory.
var (
	repoRoot = filepath.Join("..", "..")
	chartDir = filepath.Join("..", "helm", "strata")
	ciDir    = filepath.Join("..", "helm", "ci")
	badDir   = filepath.Join("testdata", "bad")
	// kubeVersion is the Kubernetes version `helm template` renders for: the kube-apiserver's.
	kubeVersion = "1.37.2"
)

// inCI reports whether a missing tool must fail the run instead of skipping.
func inCI() bool {
	for _, k := range []string{"STRATA_CI", "CI"} {
		switch strings.ToLower(os.Getenv(k)) {
		case "", "0", "false", "no":
		default:
			return true
		}
	}
	return false
}

// toolsBin is where scripts/install-deploy-test-deps.sh installs binaries.
func toolsBin() string {
	if d := os.Getenv("STRATA_TOOLS"); d != "" {
		return filepath.Join(d, "bin")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "strata-tools", "bin")
}

// findTool returns the path of a binary: the install script's directory first, then PATH.
func findTool(name string) (string, bool) {
	p := filepath.Join(toolsBin(), name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, true
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	return "", false
}

// requireTool returns the path of a binary the test needs. When it is missing the test skips
// with a message naming the install script, or fails under CI (CI or STRATA_CI set), where a
// skip would hide that the deployment was never tested.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	if p, ok := findTool(name); ok {
		return p
	}
	msg := fmt.Sprintf("%s not found in %s or on PATH: run %s (from the repository root) to build it",
		name, toolsBin(), installScript)
	if inCI() {
		t.Fatal(msg)
	}
	warnMissing(name, msg)
	t.Skip(msg)
	return ""
}

var warned = map[string]bool{}

// warnMissing prints a banner once per missing tool. `go test ./...` hides the output of passing
// packages, so the banner also goes to the terminal when there is one.
func warnMissing(name, msg string) {
	if warned[name] {
		return
	}
	warned[name] = true
	bar := strings.Repeat("!", 100)
	banner := fmt.Sprintf("\n%s\n!!! SKIPPING the deployment tests that need %s:\n!!! %s\n%s\n\n", bar, name, msg, bar)
	fmt.Fprint(os.Stderr, banner)
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprint(tty, banner)
		tty.Close()
	}
}

// run executes a command with a deadline and extra environment variables, and returns its
// stdout and stderr.
func run(ctx context.Context, env []string, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Env = append(os.Environ(), env...)
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\nstdout:\n%s\nstderr:\n%s", filepath.Base(name),
			strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String(), e.String(), err
}

// helm runs the helm binary with its configuration, cache and data in a temp directory, so it
// never reads the user's repositories, plugins or kube context.
func helm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := requireTool(t, "helm")
	home := helmHome(t)
	env := []string{
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"),
	}
	return run(context.Background(), env, bin, args...)
}

var helmHomeDir string

func helmHome(t testing.TB) string {
	if helmHomeDir == "" {
		d, err := os.MkdirTemp("", "strata-helm-home-")
		if err != nil {
			t.Fatal(err)
		}
		helmHomeDir = d
	}
	return helmHomeDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if helmHomeDir != "" {
		os.RemoveAll(helmHomeDir)
	}
	os.Exit(code)
}

// Resolve the paths above from this file's directory, wherever the test binary runs.
func init() {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return
	}
	dir := filepath.Dir(file)
	for _, p := range []*string{&repoRoot, &chartDir, &ciDir, &badDir} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}
