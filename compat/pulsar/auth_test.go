package pulsarcompat

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// strataOut runs the strata binary and returns its trimmed stdout.
func strataOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(strataBin, args...).Output()
	if err != nil {
		t.Fatalf("strata %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// TestTokenAuthentication: against a standalone requiring JWTs, the
// client's token authentication (CONNECT with the "token" method) gets in
// with a valid token and is refused without one or with a forged one.
func TestTokenAuthentication(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "secret.key")
	strataOut(t, "tokens", "create-secret-key", "-o", key)
	other := filepath.Join(dir, "other.key")
	strataOut(t, "tokens", "create-secret-key", "-o", other)
	admin := strataOut(t, "tokens", "create", "--secret-key", key, "-s", "admin")
	forged := strataOut(t, "tokens", "create", "--secret-key", other, "-s", "admin")
	ps := freePorts(5)
	proc, err := startProcess(filepath.Join(dir, "data"), ps, "--authentication-enabled", "--authorization-enabled",
		"--superuser-roles", "admin", "--token-secret-key", "file://"+key)
	if err != nil {
		t.Fatal(err)
	}
	defer stopProcess(proc)
	url := "pulsar://" + ps[0]
	topic := topicName(t)
	try := func(auth pulsar.Authentication) error {
		c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Authentication: auth, OperationTimeout: 5 * time.Second,
			ConnectionTimeout: 5 * time.Second, Logger: quiet})
		if err != nil {
			return err
		}
		defer c.Close()
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		if err != nil {
			return err
		}
		defer p.Close()
		_, err = p.Send(ctxT(t, 30*time.Second), &pulsar.ProducerMessage{Payload: []byte("authenticated")})
		return err
	}
	if err := try(nil); err == nil {
		t.Fatal("a client without a token produced")
	}
	if err := try(pulsar.NewAuthenticationToken(forged)); err == nil {
		t.Fatal("a client with a token signed by another key produced")
	}
	if err := try(pulsar.NewAuthenticationToken(admin)); err != nil {
		t.Fatalf("a client with a valid token: %v", err)
	}
}
