package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"time"

	"github.com/hamba/avro/v2"
	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
)

// SchemaInfo describes a topic schema as Pulsar names it (docs/schemas.md):
// a type name (AVRO, JSON, PROTOBUF, STRING, INT32, ...), a definition (an
// Avro record schema, as JSON text, for AVRO, JSON and PROTOBUF; empty for
// primitives) and free-form properties.
type SchemaInfo struct {
	Type       string
	Definition string
	Properties map[string]string
}

func (s *SchemaInfo) pb() *clientpb.Schema {
	if s == nil {
		return nil
	}
	return &clientpb.Schema{Type: s.Type, Data: []byte(s.Definition), Properties: maps.Clone(s.Properties)}
}

// Schema is a codec for messages of type T that the broker knows by its
// SchemaInfo. The encodings are Pulsar's, so Pulsar clients with the same
// schema read what Strata's SDK writes, and the other way round.
type Schema[T any] interface {
	Info() SchemaInfo
	Encode(v T) ([]byte, error)
	Decode(data []byte) (T, error)
}

// JSONSchema encodes T as JSON (encoding/json); definition is the Avro
// record schema that describes T, as Pulsar's JSON schema requires.
func JSONSchema[T any](definition string) Schema[T] {
	return jsonSchema[T]{SchemaInfo{Type: "JSON", Definition: definition}}
}

type jsonSchema[T any] struct{ info SchemaInfo }

func (s jsonSchema[T]) Info() SchemaInfo           { return s.info }
func (s jsonSchema[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }
func (s jsonSchema[T]) Decode(b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// AvroSchema encodes T in Avro's binary encoding with the record schema
// definition (github.com/hamba/avro: fields map by `avro:"name"` tags).
func AvroSchema[T any](definition string) (Schema[T], error) {
	sc, err := avro.ParseWithCache(definition, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("strata: Avro schema: %w", err)
	}
	return avroSchema[T]{info: SchemaInfo{Type: "AVRO", Definition: definition}, schema: sc}, nil
}

type avroSchema[T any] struct {
	info   SchemaInfo
	schema avro.Schema
}

func (s avroSchema[T]) Info() SchemaInfo           { return s.info }
func (s avroSchema[T]) Encode(v T) ([]byte, error) { return avro.Marshal(s.schema, v) }
func (s avroSchema[T]) Decode(b []byte) (T, error) {
	var v T
	err := avro.Unmarshal(s.schema, b, &v)
	return v, err
}

// ProtoSchema encodes protobuf messages in their wire format; definition
// is the Avro record schema Pulsar's PROTOBUF type describes them with
// (Pulsar's clients take it the same way). newT returns an empty message.
func ProtoSchema[T proto.Message](definition string, newT func() T) Schema[T] {
	return protoSchema[T]{info: SchemaInfo{Type: "PROTOBUF", Definition: definition}, newT: newT}
}

type protoSchema[T proto.Message] struct {
	info SchemaInfo
	newT func() T
}

func (s protoSchema[T]) Info() SchemaInfo           { return s.info }
func (s protoSchema[T]) Encode(v T) ([]byte, error) { return proto.Marshal(v) }
func (s protoSchema[T]) Decode(b []byte) (T, error) {
	v := s.newT()
	err := proto.Unmarshal(b, v)
	return v, err
}

// primitive is a schema of one of Pulsar's primitive types.
type primitive[T any] struct {
	typ string
	enc func(T) []byte
	dec func([]byte) (T, error)
}

func (s primitive[T]) Info() SchemaInfo           { return SchemaInfo{Type: s.typ} }
func (s primitive[T]) Encode(v T) ([]byte, error) { return s.enc(v), nil }
func (s primitive[T]) Decode(b []byte) (T, error) { return s.dec(b) }

func fixed[T any](typ string, n int, enc func(T) []byte, dec func([]byte) T) Schema[T] {
	return primitive[T]{typ: typ, enc: enc, dec: func(b []byte) (T, error) {
		var zero T
		if len(b) != n {
			return zero, fmt.Errorf("strata: %s value of %d bytes, want %d", typ, len(b), n)
		}
		return dec(b), nil
	}}
}

// StringSchema is Pulsar's STRING: UTF-8 text.
func StringSchema() Schema[string] {
	return primitive[string]{typ: "STRING", enc: func(v string) []byte { return []byte(v) },
		dec: func(b []byte) (string, error) { return string(b), nil }}
}

// BoolSchema is Pulsar's BOOLEAN: one byte, 0 or 1.
func BoolSchema() Schema[bool] {
	return fixed("BOOLEAN", 1, func(v bool) []byte {
		if v {
			return []byte{1}
		}
		return []byte{0}
	}, func(b []byte) bool { return b[0] != 0 })
}

// Int8Schema is Pulsar's INT8.
func Int8Schema() Schema[int8] {
	return fixed("INT8", 1, func(v int8) []byte { return []byte{byte(v)} }, func(b []byte) int8 { return int8(b[0]) })
}

// Int16Schema is Pulsar's INT16: 2 bytes, big-endian.
func Int16Schema() Schema[int16] {
	return fixed("INT16", 2, func(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) },
		func(b []byte) int16 { return int16(binary.BigEndian.Uint16(b)) })
}

// Int32Schema is Pulsar's INT32: 4 bytes, big-endian.
func Int32Schema() Schema[int32] {
	return fixed("INT32", 4, func(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) },
		func(b []byte) int32 { return int32(binary.BigEndian.Uint32(b)) })
}

// Int64Schema is Pulsar's INT64: 8 bytes, big-endian.
func Int64Schema() Schema[int64] {
	return fixed("INT64", 8, func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) },
		func(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) })
}

// FloatSchema is Pulsar's FLOAT: IEEE 754, 4 bytes, big-endian.
func FloatSchema() Schema[float32] {
	return fixed("FLOAT", 4, func(v float32) []byte { return binary.BigEndian.AppendUint32(nil, math.Float32bits(v)) },
		func(b []byte) float32 { return math.Float32frombits(binary.BigEndian.Uint32(b)) })
}

// DoubleSchema is Pulsar's DOUBLE: IEEE 754, 8 bytes, big-endian.
func DoubleSchema() Schema[float64] {
	return fixed("DOUBLE", 8, func(v float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(v)) },
		func(b []byte) float64 { return math.Float64frombits(binary.BigEndian.Uint64(b)) })
}

// TypedMessage is a message of a typed producer: a value and what a
// ProducerMessage carries besides its payload.
type TypedMessage[T any] struct {
	Value       T
	Key         string
	OrderingKey string
	Properties  map[string]string
	EventTime   time.Time
}

// TypedProducer sends values of T, encoded with its schema, which the
// broker checked and registered when the producer connected.
type TypedProducer[T any] struct {
	*Producer
	schema Schema[T]
}

// NewProducer creates a producer of values of T on topic, declaring the
// schema's SchemaInfo; an incompatible schema fails with
// ErrIncompatibleSchema.
func NewProducer[T any](ctx context.Context, c *Client, topic string, schema Schema[T], opts ...ProducerOption) (*TypedProducer[T], error) {
	p, err := c.CreateProducer(ctx, topic, append(opts, WithProducerSchema(schema.Info()))...)
	if err != nil {
		return nil, err
	}
	return &TypedProducer[T]{Producer: p, schema: schema}, nil
}

// SendValue encodes and sends one message.
func (p *TypedProducer[T]) SendValue(ctx context.Context, m *TypedMessage[T]) (MessageID, error) {
	payload, err := p.schema.Encode(m.Value)
	if err != nil {
		return MessageID{}, fmt.Errorf("strata: encode %s value: %w", p.schema.Info().Type, err)
	}
	return p.Send(ctx, &ProducerMessage{Payload: payload, Key: m.Key, OrderingKey: m.OrderingKey, Properties: m.Properties, EventTime: m.EventTime})
}

// TypedConsumer receives values of T, decoded with its schema.
type TypedConsumer[T any] struct {
	*Consumer
	schema Schema[T]
}

// NewConsumer subscribes to topic declaring the schema's SchemaInfo; a
// schema that cannot read the topic's versions fails with
// ErrIncompatibleSchema.
func NewConsumer[T any](ctx context.Context, c *Client, topic, subscription string, schema Schema[T], opts ...ConsumerOption) (*TypedConsumer[T], error) {
	cons, err := c.Subscribe(ctx, topic, subscription, append(opts, WithConsumerSchema(schema.Info()))...)
	if err != nil {
		return nil, err
	}
	return &TypedConsumer[T]{Consumer: cons, schema: schema}, nil
}

// ReceiveValue returns the next message and its decoded value. A value
// that does not decode is an error with the message (to acknowledge or
// negatively acknowledge).
func (c *TypedConsumer[T]) ReceiveValue(ctx context.Context) (T, Message, error) {
	var zero T
	m, err := c.Receive(ctx)
	if err != nil {
		return zero, m, err
	}
	v, err := c.schema.Decode(m.Payload)
	if err != nil {
		return zero, m, fmt.Errorf("strata: decode %s value of message %v: %w", c.schema.Info().Type, m.ID, err)
	}
	return v, m, nil
}
