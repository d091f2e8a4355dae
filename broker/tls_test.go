package broker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/tenants"
)

// testPKI is a CA with a server and a client certificate, as PEM files.
type testPKI struct {
	dir                           string
	caFile, serverCert, serverKey string
	clientCert, clientKey         string
	ca                            *x509.CertPool
	server, client                tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	serial := int64(0)
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, caKey, caPEM, _ := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "strata test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, nil)
	// Brokers also present their certificate as clients (admin calls to each other).
	_, _, srvPEM, srvKey := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "broker"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}, ca, caKey)
	_, _, cliPEM, cliKey := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "app"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)
	p := &testPKI{dir: dir, caFile: write("ca.pem", caPEM), serverCert: write("broker.pem", srvPEM), serverKey: write("broker-key.pem", srvKey),
		clientCert: write("client.pem", cliPEM), clientKey: write("client-key.pem", cliKey), ca: x509.NewCertPool()}
	p.ca.AddCert(ca)
	var err error
	if p.server, err = tls.X509KeyPair(srvPEM, srvKey); err != nil {
		t.Fatal(err)
	}
	if p.client, err = tls.X509KeyPair(cliPEM, cliKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// brokerTLS builds the broker's TLS configuration as `strata broker` does
// from --tls-cert-file, --tls-key-file, --tls-trust-certs-file and
// --tls-require-client-cert (securityFlags.apply).
func (p *testPKI) brokerTLS(t *testing.T, requireClientCert bool) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// httpsClient trusts the test CA and presents the client certificate when withCert.
func (p *testPKI) httpsClient(trustCA, withCert bool) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if trustCA {
		cfg.RootCAs = p.ca
	}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.client}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

func httpsGet(t *testing.T, hc *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func tlsClient(t *testing.T, c *testcluster.Cluster, timeout time.Duration, ca, cert, key string) *client.Client {
	t.Helper()
	cl, err := client.New(c.ServiceURL(), client.WithTLS(ca, cert, key), client.WithLogger(c.Log), client.WithOperationTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestTLSRequireClientCert: brokers serving gRPC and HTTPS with a
// certificate of a private CA and requiring client certificates.
func TestTLSRequireClientCert(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.brokerTLS(t, true)
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) { o.TLS = cfg }})
	ctx := ctxT(t, 2*time.Minute)
	for i := 0; i < 2; i++ {
		if u := c.Broker(i).B.HTTPURL(); !strings.HasPrefix(u, "https://") {
			t.Fatalf("broker %d HTTP URL %s, want https", i, u)
		}
	}

	// The CA and a client certificate: produce and consume.
	cl := tlsClient(t, c, 30*time.Second, pki.caFile, pki.clientCert, pki.clientKey)
	cons, err := cl.Subscribe(ctx, "tls", "s", client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreateProducer(ctx, "tls")
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 20)
	for i, m := range recvN(t, cons, 20, true) {
		if want := fmt.Sprintf("msg-%06d", i); string(m.Payload) != want {
			t.Fatalf("message %d over TLS: %q, want %q", i, m.Payload, want)
		}
	}

	// Without the CA the broker's certificate is not trusted.
	noCA := tlsClient(t, c, 3*time.Second, "", pki.clientCert, pki.clientKey)
	if _, err := noCA.CreateProducer(ctx, "tls"); err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Errorf("producer without the CA: %v, want an unknown-authority certificate error", err)
	}
	// Without a client certificate the broker refuses the handshake (under
	// TLS 1.3 the client learns it at its first read) and the SDK gets no
	// producer.
	conn, err := tls.Dial("tcp", c.Broker(0).GRPCAddr, &tls.Config{RootCAs: pki.ca, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	if err == nil {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "tls: certificate required") {
		t.Errorf("TLS handshake without a client certificate: %v, want the certificate-required alert", err)
	}
	noCert := tlsClient(t, c, 3*time.Second, pki.caFile, "", "")
	if _, err := noCert.CreateProducer(ctx, "tls"); err == nil {
		t.Error("producer without a client certificate succeeded")
	}
	// A plaintext client gets nothing either.
	plain, err := client.New(c.ServiceURL(), client.WithLogger(c.Log), client.WithOperationTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.CreateProducer(ctx, "tls"); err == nil {
		t.Error("plaintext producer against a TLS broker succeeded")
	}

	// HTTPS admin: with the client certificate; the probes without one.
	withCert := pki.httpsClient(true, true)
	for i := 0; i < 2; i++ {
		base := c.Broker(i).B.HTTPURL()
		if code, body, err := httpsGet(t, withCert, base+"/admin/v2/persistent/public/default"); err != nil || code != 200 || !strings.Contains(body, "persistent://public/default/tls") {
			t.Errorf("broker %d: admin with a client certificate: %d %s %v", i, code, body, err)
		}
		if code, body, err := httpsGet(t, withCert, base+"/admin/v2/persistent/public/default/tls/stats"); err != nil || code != 200 || !strings.Contains(body, `"msgInCounter":20`) {
			t.Errorf("broker %d: topic stats (served or redirected to the owner): %d %s %v", i, code, body, err)
		}
		noCertHTTP := pki.httpsClient(true, false)
		for _, probe := range []string{"/healthz", "/readyz"} {
			if code, body, err := httpsGet(t, noCertHTTP, base+probe); err != nil || code != 200 {
				t.Errorf("broker %d: %s without a client certificate: %d %s %v", i, probe, code, body, err)
			}
		}
		if code, body, err := httpsGet(t, noCertHTTP, base+"/admin/v2/persistent/public/default"); err != nil || code != 401 || !strings.Contains(body, "client certificate is required") {
			t.Errorf("broker %d: admin without a client certificate: %d %s %v, want 401", i, code, body, err)
		}
		if code, body, err := httpsGet(t, noCertHTTP, base+"/metrics"); err != nil || code != 401 {
			t.Errorf("broker %d: metrics without a client certificate: %d %.80s %v, want 401", i, code, body, err)
		}
		if _, _, err := httpsGet(t, pki.httpsClient(false, true), base+"/healthz"); err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
			t.Errorf("broker %d: HTTPS without trusting the CA: %v, want an unknown-authority error", i, err)
		}
	}
}

// TestTLSBrokerToBrokerAdmin: a broker answering for a partitioned topic
// calls the other broker's HTTPS admin API (stats of the partitions it
// does not own), trusting the CA of --tls-trust-certs-file and presenting
// its own certificate.
func TestTLSBrokerToBrokerAdmin(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.brokerTLS(t, true)
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) { o.TLS = cfg }})
	ctx := ctxT(t, 2*time.Minute)
	st := tenants.NewStore(c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	const parts = 4
	if err := st.CreatePartitionedTopic(ctx, naming.MustParseTopic("tls-parts"), parts); err != nil {
		t.Fatal(err)
	}
	cl := tlsClient(t, c, 30*time.Second, pki.caFile, pki.clientCert, pki.clientKey)
	p, err := cl.CreateProducer(ctx, "tls-parts", client.WithoutBatching(), client.WithMessageRouter(routeByProperty))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("x"), Properties: map[string]string{"part": fmt.Sprint(i % parts)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Ask a broker that does not own every partition.
	asker := -1
	for i := 0; i < 2; i++ {
		owned := 0
		for j := 0; j < parts; j++ {
			if c.Broker(i).B.OwnsTopic(fmt.Sprintf("persistent://public/default/tls-parts-partition-%d", j)) {
				owned++
			}
		}
		if owned < parts {
			asker = i
		}
	}
	code, body, err := httpsGet(t, pki.httpsClient(true, true), c.Broker(asker).B.HTTPURL()+"/admin/v2/persistent/public/default/tls-parts/partitioned-stats")
	if err != nil || code != 200 {
		t.Fatalf("partitioned stats from broker %d: %d %s %v", asker, code, body, err)
	}
	var ps struct {
		MsgInCounter int64 `json:"msgInCounter"`
	}
	if err := json.Unmarshal([]byte(body), &ps); err != nil || ps.MsgInCounter != 40 {
		t.Fatalf("partitioned stats: msgInCounter %d (%v), want 40: %s", ps.MsgInCounter, err, body)
	}
}

// TestTLSClientCertOptional: with a trusted CA but no requirement, a
// client without a certificate produces over gRPC and reads the admin API.
func TestTLSClientCertOptional(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.brokerTLS(t, false)
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) { o.TLS = cfg }})
	ctx := ctxT(t, time.Minute)
	cl := tlsClient(t, c, 30*time.Second, pki.caFile, "", "")
	p, err := cl.CreateProducer(ctx, "tls-opt")
	if err != nil {
		t.Fatalf("producer without a client certificate: %v", err)
	}
	produceN(t, p, 0, 5)
	base := c.Broker(0).B.HTTPURL()
	if code, body, err := httpsGet(t, pki.httpsClient(true, true), base+"/admin/v2/persistent/public/default/tls-opt/stats"); err != nil || code != 200 || !strings.Contains(body, `"msgInCounter":5`) {
		t.Errorf("admin with a client certificate: %d %s %v", code, body, err)
	}
	noCert := pki.httpsClient(true, false)
	if code, body, err := httpsGet(t, noCert, base+"/healthz"); err != nil || code != 200 {
		t.Errorf("healthz without a client certificate: %d %s %v", code, body, err)
	}
}

// TestTLSClientCertOptionalHTTP: with client certificates optional, the
// admin API answers a client without one, as gRPC does.
func TestTLSClientCertOptionalHTTP(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.brokerTLS(t, false)
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1, BrokerOptions: func(i int, o *broker.Options) { o.TLS = cfg }})
	r := pki.httpsClient(true, false)
	base := c.Broker(0).B.HTTPURL()
	if code, body, err := httpsGet(t, r, base+"/admin/v2/persistent/public/default"); err != nil || code != 200 {
		t.Fatalf("admin without a client certificate (not required): %d %s %v", code, body, err)
	}
}
