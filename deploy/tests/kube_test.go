package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kubeAPI is a kube-apiserver (with its etcd) started on loopback for one test. No kubelet,
// scheduler or controllers run: objects are validated, defaulted, admitted and stored, but no pod
// ever starts. That is the point: the chart's objects must pass the real API server.
type kubeAPI struct {
	URL        string
	Token      string
	Kubeconfig string
	client     *http.Client
}

// startKubeAPI starts etcd and kube-apiserver for the test and stops them when it ends.
func startKubeAPI(t *testing.T) *kubeAPI {
	t.Helper()
	etcdBin := requireTool(t, "etcd")
	apiBin := requireTool(t, "kube-apiserver")
	dir := t.TempDir()

	// etcd, in memory-speed mode: the data is thrown away with the test.
	clientPort, peerPort := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcdAlive := startProcess(t, "etcd", filepath.Join(dir, "etcd.log"), etcdBin,
		"--name=kube-test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kube-test="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	waitFor(t, 30*time.Second, "etcd "+etcdURL, func() error {
		if err := etcdAlive(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(b, []byte(`"health":"true"`)) {
			return fmt.Errorf("health: %s", b)
		}
		return nil
	})

	// Service account signing keys, generated here.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	writeFile(t, pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))

	// One static token in system:masters.
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(tok)
	tokenFile := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokenFile, []byte(token+",strata-test-admin,strata-test-admin,system:masters\n"))

	port := freePort(t)
	certDir := filepath.Join(dir, "certs")
	apiAlive := startProcess(t, "kube-apiserver", filepath.Join(dir, "kube-apiserver.log"), apiBin,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port), "--cert-dir="+certDir,
		"--token-auth-file="+tokenFile, "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pubFile, "--service-account-signing-key-file="+keyFile,
		"--service-cluster-ip-range=10.96.0.0/16",
		// No controller manager runs to maintain the kubernetes Service endpoints.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false", "--profiling=false")

	k := &kubeAPI{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Token: token}
	// The server writes its self-signed serving certificate on start; trust it once it exists.
	waitFor(t, 90*time.Second, "kube-apiserver "+k.URL+"/readyz", func() error {
		if err := apiAlive(); err != nil {
			t.Fatal(err)
		}
		ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return fmt.Errorf("no certificate in apiserver.crt yet")
		}
		k.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		code, body, err := k.do("GET", "/readyz", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", code, body)
		}
		return nil
	})

	k.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, k.URL, filepath.Join(certDir, "apiserver.crt"), token)
	writeFile(t, k.Kubeconfig, []byte(kc)) // 0600: helm warns about group-readable kubeconfigs
	return k
}

// do sends an authenticated request and returns the status code and body.
func (k *kubeAPI) do(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+k.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	for _, w := range resp.Header.Values("Warning") {
		err = fmt.Errorf("API warning: %s", w)
	}
	return resp.StatusCode, b, err
}

// mustDo is do that fails the test unless the server answers one of the wanted codes.
func (k *kubeAPI) mustDo(t *testing.T, method, path string, body any, want ...int) []byte {
	t.Helper()
	code, b, err := k.do(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	for _, w := range want {
		if code == w {
			return b
		}
	}
	t.Fatalf("%s %s: %d %s", method, path, code, b)
	return nil
}

// objectPath is the REST path of a namespaced object.
func objectPath(o object) string {
	plural := strings.ToLower(o.Kind)
	if strings.HasSuffix(plural, "y") {
		plural = strings.TrimSuffix(plural, "y") + "ies"
	} else {
		plural += "s"
	}
	prefix := "/apis/" + o.APIVersion
	if !strings.Contains(o.APIVersion, "/") {
		prefix = "/api/" + o.APIVersion
	}
	return fmt.Sprintf("%s/namespaces/%s/%s/%s", prefix, o.Namespace, plural, o.Name)
}

// createNamespace creates a namespace that enforces the "restricted" Pod Security Standard, so
// the server rejects (and warns about) any pod template that is not hardened.
func (k *kubeAPI) createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name, "labels": map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
			"pod-security.kubernetes.io/audit":   "restricted",
		}},
	}
	k.mustDo(t, "POST", "/api/v1/namespaces", ns, http.StatusCreated)
}

// installServiceMonitorCRD registers a minimal ServiceMonitor CRD (any spec accepted), so the
// chart's optional ServiceMonitors can be stored like on a cluster with the Prometheus Operator.
func (k *kubeAPI) installServiceMonitorCRD(t *testing.T) {
	t.Helper()
	crd := map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "servicemonitors.monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor", "listKind": "ServiceMonitorList"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}
	k.mustDo(t, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, http.StatusCreated)
	waitFor(t, 30*time.Second, "ServiceMonitor CRD established", func() error {
		code, _, err := k.do("GET", "/apis/monitoring.coreos.com/v1/servicemonitors", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("list servicemonitors: %d", code)
		}
		return nil
	})
}

// startProcess runs a server for the rest of the test, logging to logFile, and stops it (and
// shows the log's tail if the test failed) at cleanup. The returned function reports an error
// once the process has exited.
func startProcess(t *testing.T, name, logFile, bin string, args ...string) (alive func() error) {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		f.Close()
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(logFile, 40))
		}
	})
	return func() error {
		select {
		case <-exited:
			return fmt.Errorf("%s exited: %v; log:\n%s", name, cmd.ProcessState, tail(logFile, 30))
		default:
			return nil
		}
	}
}

func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls f until it succeeds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
