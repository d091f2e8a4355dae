package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

type order struct {
	ID   int64  `json:"id" avro:"id"`
	Item string `json:"item" avro:"item"`
}

const (
	orderV1 = `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}`
	orderX  = `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"item","type":"string"}]}`
)

// TestTypedProducerConsumer: typed producers and consumers round-trip
// values with JSON, Avro and primitive schemas, registering the schema; a
// producer whose schema is incompatible gets ErrIncompatibleSchema.
func TestTypedProducerConsumer(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	cl := newClient(t, c)
	ctx := ctxT(t, time.Minute)
	avroOrders, err := client.AvroSchema[order](orderV1)
	if err != nil {
		t.Fatal(err)
	}
	for name, schema := range map[string]client.Schema[order]{"json": client.JSONSchema[order](orderV1), "avro": avroOrders} {
		topic := uniqueTopic(t, "typed-"+name)
		cons, err := client.NewConsumer(ctx, cl, topic, "s", schema, client.WithInitialPosition(client.Earliest))
		if err != nil {
			t.Fatal(err)
		}
		p, err := client.NewProducer(ctx, cl, topic, schema)
		if err != nil {
			t.Fatal(err)
		}
		want := order{ID: 7, Item: "tea"}
		if _, err := p.SendValue(ctx, &client.TypedMessage[order]{Value: want, Key: "k"}); err != nil {
			t.Fatal(err)
		}
		got, m, err := cons.ReceiveValue(ctx)
		if err != nil || got != want || m.Key != "k" {
			t.Fatalf("%s: received %+v %v (key %q), want %+v", name, got, err, m.Key, want)
		}
		cons.Ack(m)
		if schema.Info().Type == "AVRO" {
			bad, _ := client.AvroSchema[order](orderX)
			if _, err := client.NewProducer(ctx, cl, topic, bad); !errors.Is(err, client.ErrIncompatibleSchema) {
				t.Fatalf("an incompatible producer: %v, want ErrIncompatibleSchema", err)
			}
			if _, err := client.NewConsumer(ctx, cl, topic, "other", bad); !errors.Is(err, client.ErrIncompatibleSchema) {
				t.Fatalf("an incompatible consumer: %v, want ErrIncompatibleSchema", err)
			}
		}
		p.Close()
		cons.Close()
	}
	// Protobuf: any generated message, described by an Avro record as
	// Pulsar's PROTOBUF type is.
	ptopic := uniqueTopic(t, "typed-proto")
	ids := client.ProtoSchema[*clientpb.MessageId](`{"type":"record","name":"MessageId","fields":[{"name":"ledger_id","type":"long"}]}`,
		func() *clientpb.MessageId { return &clientpb.MessageId{} })
	pp, err := client.NewProducer(ctx, cl, ptopic, ids)
	if err != nil {
		t.Fatal(err)
	}
	pcons, err := client.NewConsumer(ctx, cl, ptopic, "s", ids, client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pp.SendValue(ctx, &client.TypedMessage[*clientpb.MessageId]{Value: &clientpb.MessageId{LedgerId: 42, EntryId: 7}}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := pcons.ReceiveValue(ctx); err != nil || got.LedgerId != 42 || got.EntryId != 7 {
		t.Fatalf("protobuf: %v %v", got, err)
	}
	// Primitives, and a STRING topic refusing an INT32 producer.
	topic := uniqueTopic(t, "typed-int")
	ints, err := client.NewProducer(ctx, cl, topic, client.Int32Schema())
	if err != nil {
		t.Fatal(err)
	}
	cons, err := client.NewConsumer(ctx, cl, topic, "s", client.Int32Schema(), client.WithInitialPosition(client.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int32{-1, 0, 1 << 30} {
		if _, err := ints.SendValue(ctx, &client.TypedMessage[int32]{Value: v}); err != nil {
			t.Fatal(err)
		}
		if got, _, err := cons.ReceiveValue(ctx); err != nil || got != v {
			t.Fatalf("int32 %d: received %d %v", v, got, err)
		}
	}
	if _, err := client.NewProducer(ctx, cl, topic, client.StringSchema()); !errors.Is(err, client.ErrIncompatibleSchema) {
		t.Fatalf("a STRING producer on an INT32 topic: %v, want ErrIncompatibleSchema", err)
	}
}

// TestPrimitiveCodecs: Pulsar's encodings of the primitive types, and
// values of the wrong size are errors.
func TestPrimitiveCodecs(t *testing.T) {
	b, _ := client.Int64Schema().Encode(-2)
	if v, err := client.Int64Schema().Decode(b); err != nil || v != -2 || len(b) != 8 {
		t.Fatalf("int64: %x %d %v", b, v, err)
	}
	b, _ = client.DoubleSchema().Encode(1.5)
	if v, err := client.DoubleSchema().Decode(b); err != nil || v != 1.5 {
		t.Fatalf("double: %v %v", v, err)
	}
	if _, err := client.Int32Schema().Decode([]byte{1, 2}); err == nil {
		t.Fatal("a 2-byte INT32 decoded")
	}
	if v, _ := client.BoolSchema().Decode([]byte{1}); !v {
		t.Fatal("bool")
	}
}
