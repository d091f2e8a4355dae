package pulsarcompat

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsar/crypto"

	strata "github.com/strata-mq/strata/client"
)

// rsaKeyFiles writes an RSA key pair as the PEM files the client's
// FileKeyReader reads.
func rsaKeyFiles(t *testing.T) (pub, priv string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub, priv = filepath.Join(dir, "pub.pem"), filepath.Join(dir, "priv.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestEncryptionPassesThrough: end-to-end encrypted messages (batched or
// not, compressed or not) are stored and delivered untouched: a consumer with
// the private key reads them, Strata's broker never sees the plain text.
func TestEncryptionPassesThrough(t *testing.T) {
	pub, priv := rsaKeyFiles(t)
	keys := crypto.NewFileKeyReader(pub, priv)
	c := newClient(t)
	topic := topicName(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Decryption: &pulsar.MessageDecryptionInfo{KeyReader: keys}})
	var want []string
	for _, o := range []pulsar.ProducerOptions{
		{DisableBatching: true},
		{BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Hour},
		{BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Hour, CompressionType: pulsar.LZ4},
	} {
		o.Topic = topic
		o.Encryption = &pulsar.ProducerEncryptionInfo{KeyReader: keys, Keys: []string{"app.key"}}
		p, err := c.CreateProducer(o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			body := "secret-" + string(rune('a'+len(want))) + string(rune('0'+i))
			want = append(want, body)
			p.SendAsync(ctxT(t, time.Minute), &pulsar.ProducerMessage{Payload: []byte(body)}, nil)
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	if got := texts(receive(t, cons, len(want), true)); !slices.Equal(got, want) {
		t.Fatalf("decrypted %v, want %v", got, want)
	}
	// What Strata stored is the cipher text.
	ctx := ctxT(t, time.Minute)
	r, err := newStrataClient(t).CreateReader(ctx, topic, strata.EarliestMessageID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(m.Payload, []byte("secret-")) {
		t.Fatalf("the stored message is plain text: %q", m.Payload)
	}
}
