package broker_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
)

type account struct {
	Name string `json:"name" avro:"name"`
	Age  int    `json:"age" avro:"age"`
}

// waitPolicy waits until the brokers' policy caches show a namespace
// policy set over REST (they follow a watch).
func waitPolicy(t *testing.T, r rest, path, want string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if _, out := r.do("GET", path, ""); !strings.Contains(out, want) {
			return errors.New(out)
		}
		return nil
	})
}

// TestSchemaPolicies: with isAllowAutoUpdateSchema off, producers may use
// the versions that exist but not add one; with schemaValidationEnforced,
// a producer without a schema is refused on a typed topic (and still
// accepted on an untyped one); versions and their checks survive the topic
// moving to another broker.
func TestSchemaPolicies(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	cl := newClient(t, c)
	ctx := ctxT(t, 2*time.Minute)
	r := rest{t, c.Broker(0).B.HTTPURL()}
	topic := "persistent://public/default/accounts"
	v1, v2 := client.JSONSchema[account](userV1), client.JSONSchema[account](userV2)
	p, err := client.NewProducer(ctx, cl, topic, v1)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()

	ns := "/admin/v2/namespaces/public/default"
	r.want("POST", ns+"/isAllowAutoUpdateSchema", "false", 204)
	waitPolicy(t, r, ns+"/isAllowAutoUpdateSchema", "false")
	// The broker learns the policy through a watch: probe on another
	// topic, with a new schema each time, until it refuses one.
	probe := "persistent://public/default/accounts-probe"
	if p, err := client.NewProducer(ctx, cl, probe, v1); err != nil {
		t.Fatal(err)
	} else {
		p.Close()
	}
	attempt := 0
	testutil.WaitFor(t, 10*time.Second, func() error {
		attempt++
		def := fmt.Sprintf(`{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"},{"name":"f%d","type":"string","default":""}]}`, attempt)
		if p, err := client.NewProducer(ctx, cl, probe, client.JSONSchema[account](def)); err == nil {
			p.Close()
			return errors.New("the broker does not apply the policy yet")
		} else if !errors.Is(err, client.ErrIncompatibleSchema) {
			return err
		}
		return nil
	})
	if p, err := client.NewProducer(ctx, cl, topic, v2); !errors.Is(err, client.ErrIncompatibleSchema) {
		if err == nil {
			p.Close()
		}
		t.Fatalf("a new version with auto update off: %v, want ErrIncompatibleSchema", err)
	}
	if p, err := client.NewProducer(ctx, cl, topic, v1); err != nil {
		t.Fatalf("an existing version with auto update off: %v", err)
	} else {
		p.Close()
	}
	r.want("POST", ns+"/isAllowAutoUpdateSchema", "true", 204)
	waitPolicy(t, r, ns+"/isAllowAutoUpdateSchema", "true")

	r.want("POST", ns+"/schemaValidationEnforced", "true", 204)
	waitPolicy(t, r, ns+"/schemaValidationEnforced", "true")
	testutil.WaitFor(t, 10*time.Second, func() error {
		if p, err := cl.CreateProducer(ctx, topic); err == nil {
			p.Close()
			return errors.New("a producer without a schema was accepted on a typed topic")
		} else if !errors.Is(err, client.ErrIncompatibleSchema) {
			return err
		}
		return nil
	})
	if p, err := cl.CreateProducer(ctx, "persistent://public/default/untyped"); err != nil {
		t.Fatalf("a producer without a schema on a topic without one: %v", err)
	} else {
		p.Close()
	}
	r.want("POST", ns+"/schemaValidationEnforced", "false", 204)

	// The topic moves: versions and checks are the same at its new owner.
	r.want("PUT", "/admin/v2/persistent/public/default/accounts/unload", "", 204)
	p2, err := client.NewProducer(ctx, cl, topic, v2)
	if err != nil {
		t.Fatal(err)
	}
	p2.Close()
	bad := client.JSONSchema[account](userX)
	if _, err := client.NewProducer(ctx, cl, topic, bad); !errors.Is(err, client.ErrIncompatibleSchema) {
		t.Fatalf("an incompatible producer after the move: %v", err)
	}
	r.want("GET", "/admin/v2/schemas/public/default/accounts/schemas", "", 200, `"version":0`, `"version":1`)
	if _, out := r.do("GET", "/admin/v2/schemas/public/default/accounts/schemas", ""); strings.Contains(out, `"version":2`) {
		t.Fatalf("a third version appeared: %s", out)
	}
}
