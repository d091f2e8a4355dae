package pulsarcompat

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	strata "github.com/strata-mq/strata/client"
)

type userV1 struct {
	Name string `json:"name" avro:"name"`
	Age  int    `json:"age" avro:"age"`
}

type userV2 struct {
	Name  string `json:"name" avro:"name"`
	Age   int    `json:"age" avro:"age"`
	Email string `json:"email" avro:"email"`
}

const (
	avroV1 = `{"type":"record","name":"User","namespace":"acme","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}`
	// v2 adds a field with a default: FULL-compatible with v1.
	avroV2 = `{"type":"record","name":"User","namespace":"acme","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"},{"name":"email","type":"string","default":""}]}`
	// bad changes age's type: incompatible either way.
	avroBad = `{"type":"record","name":"User","namespace":"acme","fields":[{"name":"name","type":"string"},{"name":"age","type":"string"}]}`
)

// TestSchemaEvolution: typed producers register versions; a compatible new
// version is added, an incompatible one is refused with the reason, and a
// consumer with the older schema reads messages written with the newer.
func TestSchemaEvolution(t *testing.T) {
	for _, kind := range []string{"avro", "json"} {
		t.Run(kind, func(t *testing.T) {
			mk := func(def string) pulsar.Schema {
				if kind == "avro" {
					return pulsar.NewAvroSchema(def, nil)
				}
				return pulsar.NewJSONSchema(def, nil)
			}
			c := newClient(t)
			topic := topicName(t)
			ctx := ctxT(t, time.Minute)
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Schema: mk(avroV1)})
			p1, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: mk(avroV1)})
			if err != nil {
				t.Fatal(err)
			}
			defer p1.Close()
			if _, err := p1.Send(ctx, &pulsar.ProducerMessage{Value: &userV1{Name: "ada", Age: 36}}); err != nil {
				t.Fatal(err)
			}
			p2, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: mk(avroV2)})
			if err != nil {
				t.Fatalf("a compatible new version: %v", err)
			}
			defer p2.Close()
			if _, err := p2.Send(ctx, &pulsar.ProducerMessage{Value: &userV2{Name: "grace", Age: 85, Email: "g@navy.mil"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: mk(avroBad)}); err == nil || !strings.Contains(err.Error(), "IncompatibleSchema") {
				t.Fatalf("an incompatible version: %v, want IncompatibleSchema", err)
			}
			var got []userV1
			for range 2 {
				m, err := cons.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var u userV1
				if err := m.GetSchemaValue(&u); err != nil {
					t.Fatal(err)
				}
				got = append(got, u)
				cons.Ack(m)
			}
			if got[0] != (userV1{"ada", 36}) || got[1] != (userV1{"grace", 85}) {
				t.Fatalf("the v1 consumer read %+v", got)
			}
		})
	}
}

// TestSchemaStringAndBytes: a STRING schema is registered and used; a
// producer without a schema may still write to the topic (validation is
// not enforced by default).
func TestSchemaStringAndBytes(t *testing.T) {
	c := newClient(t)
	topic := topicName(t)
	ctx := ctxT(t, time.Minute)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewStringSchema(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Value: "typed"}); err != nil {
		t.Fatal(err)
	}
	raw, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatalf("a producer without a schema: %v", err)
	}
	raw.Close()
	var stored struct {
		Type string `json:"type"`
	}
	adminGet(t, "/admin/v2/schemas/public/default/"+topic[len("persistent://public/default/"):]+"/schema", &stored)
	if stored.Type != "STRING" {
		t.Fatalf("stored schema type %q", stored.Type)
	}
}

// TestSchemaInterop: Strata's typed producer (Avro) and a Pulsar client
// with the same schema read each other's values, on one schema version.
func TestSchemaInterop(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	pc := newClient(t)
	sc := newStrataClient(t)
	topic := topicName(t)
	avroSchema, err := strata.AvroSchema[userV1](avroV1)
	if err != nil {
		t.Fatal(err)
	}
	pcons := subscribe(t, pc, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "p", Schema: pulsar.NewAvroSchema(avroV1, nil)})
	scons, err := strata.NewConsumer(ctx, sc, topic, "s", avroSchema, strata.WithInitialPosition(strata.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	defer scons.Close()
	sp, err := strata.NewProducer(ctx, sc, topic, avroSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	pp, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(avroV1, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	if _, err := sp.SendValue(ctx, &strata.TypedMessage[userV1]{Value: userV1{"from-strata", 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pp.Send(ctx, &pulsar.ProducerMessage{Value: &userV1{"from-pulsar", 2}}); err != nil {
		t.Fatal(err)
	}
	var fromPulsar []userV1
	for range 2 {
		m, err := pcons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var u userV1
		if err := m.GetSchemaValue(&u); err != nil {
			t.Fatal(err)
		}
		fromPulsar = append(fromPulsar, u)
	}
	var fromStrata []userV1
	for range 2 {
		v, _, err := scons.ReceiveValue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fromStrata = append(fromStrata, v)
	}
	want := []userV1{{"from-strata", 1}, {"from-pulsar", 2}}
	if !slices.Equal(fromPulsar, want) || !slices.Equal(fromStrata, want) {
		t.Fatalf("Pulsar consumer read %v, Strata consumer %v, want %v", fromPulsar, fromStrata, want)
	}
}
