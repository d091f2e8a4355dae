// Package schema is Strata's schema registry: each topic's versioned
// schemas (Pulsar's types: Avro, JSON, Protobuf, primitives, KeyValue), the
// compatibility strategies that decide whether a new version may follow the
// ones before it, and their storage in the metadata store.
//
// Avro and JSON schemas (Pulsar's JSON type is described by an Avro record
// definition too) are checked with Avro's schema-resolution rules
// (github.com/hamba/avro). For the other types a version is compatible with
// another of the same type; different types never are, unless the strategy
// is ALWAYS_COMPATIBLE.
package schema

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"
)

// MaxSize bounds a schema definition. Schemas are kept in the metadata
// store, whose values must stay small; real definitions are a few KiB.
const MaxSize = 256 << 10

// Errors. The broker maps them to HTTP status codes and protocol errors.
var (
	// ErrInvalid: a malformed definition, an unknown type, a bad strategy.
	ErrInvalid = errors.New("schema: invalid")
	// ErrIncompatible: the candidate may not follow the existing versions.
	ErrIncompatible = errors.New("schema: incompatible")
	// ErrNotFound: no such schema or version.
	ErrNotFound = errors.New("schema: not found")
)

// Types are Pulsar's schema type names (the REST API's spelling). The
// number is the type's code in Pulsar's binary protocol.
var types = map[string]int32{
	"NONE": 0, "STRING": 1, "JSON": 2, "PROTOBUF": 3, "AVRO": 4, "BOOLEAN": 5, "INT8": 6, "INT16": 7,
	"INT32": 8, "INT64": 9, "FLOAT": 10, "DOUBLE": 11, "DATE": 12, "TIME": 13, "TIMESTAMP": 14,
	"KEY_VALUE": 15, "INSTANT": 16, "LOCAL_DATE": 17, "LOCAL_TIME": 18, "LOCAL_DATE_TIME": 19, "PROTOBUF_NATIVE": 20,
}

// TypeCode returns the protocol code of a type name.
func TypeCode(name string) (int32, bool) {
	c, ok := types[name]
	return c, ok
}

// TypeName returns the name of a protocol type code.
func TypeName(code int32) (string, bool) {
	for n, c := range types {
		if c == code {
			return n, true
		}
	}
	return "", false
}

// Schema is a schema as clients declare it.
type Schema struct {
	Type       string            // a type name (TypeCode)
	Data       []byte            // the definition: Avro JSON for AVRO and JSON, empty for primitives
	Properties map[string]string // free-form, stored with the version
}

// Validate checks a candidate: a known type (NONE, which means raw bytes,
// is not a schema to store), a definition within MaxSize, and for AVRO and
// JSON one that parses as an Avro schema.
func Validate(s Schema) error {
	if _, ok := types[s.Type]; !ok || s.Type == "NONE" {
		return fmt.Errorf("%w: unknown schema type %q", ErrInvalid, s.Type)
	}
	if len(s.Data) > MaxSize {
		return fmt.Errorf("%w: definition of %d bytes (at most %d)", ErrInvalid, len(s.Data), MaxSize)
	}
	if avroDefined(s.Type) {
		if _, err := parse(s); err != nil {
			return err
		}
	}
	return nil
}

// avroDefined reports whether a type's definition is an Avro schema.
func avroDefined(typ string) bool { return typ == "AVRO" || typ == "JSON" }

// parse parses an Avro-defined schema, with a cache of its own so that
// names in one schema never clash with another's.
func parse(s Schema) (avro.Schema, error) {
	sc, err := avro.ParseBytesWithCache(s.Data, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("%w: %s definition: %v", ErrInvalid, s.Type, err)
	}
	return sc, nil
}

// Strategy is a compatibility strategy.
type Strategy string

// Pulsar's strategies. Full is the broker default, as in Pulsar.
const (
	AlwaysIncompatible Strategy = "ALWAYS_INCOMPATIBLE"
	AlwaysCompatible   Strategy = "ALWAYS_COMPATIBLE"
	Backward           Strategy = "BACKWARD"
	Forward            Strategy = "FORWARD"
	Full               Strategy = "FULL"
	BackwardTransitive Strategy = "BACKWARD_TRANSITIVE"
	ForwardTransitive  Strategy = "FORWARD_TRANSITIVE"
	FullTransitive     Strategy = "FULL_TRANSITIVE"
	// Undefined in a policy means "inherit": the namespace's, then the
	// broker's default.
	Undefined Strategy = "UNDEFINED"
)

// Strategies lists the strategies a policy may name.
var Strategies = []Strategy{AlwaysIncompatible, AlwaysCompatible, Backward, Forward, Full,
	BackwardTransitive, ForwardTransitive, FullTransitive, Undefined}

// ParseStrategy parses a strategy name (case-insensitive).
func ParseStrategy(s string) (Strategy, error) {
	st := Strategy(strings.ToUpper(strings.TrimSpace(s)))
	if !slices.Contains(Strategies, st) {
		return "", fmt.Errorf("%w: unknown compatibility strategy %q (one of %v)", ErrInvalid, s, Strategies)
	}
	return st, nil
}

// Check reports whether candidate may be added after existing (oldest
// first, deletions already left out) under strategy, with the reason when
// it may not (ErrIncompatible).
func Check(existing []Schema, candidate Schema, strategy Strategy) error {
	if len(existing) == 0 {
		return nil
	}
	switch strategy {
	case AlwaysCompatible:
		return nil
	case AlwaysIncompatible:
		return fmt.Errorf("%w: the strategy is %s", ErrIncompatible, strategy)
	case Undefined, "":
		strategy = Full
	}
	against := existing[len(existing)-1:]
	if strings.HasSuffix(string(strategy), "_TRANSITIVE") {
		against = existing
	}
	backward := strategy == Backward || strategy == BackwardTransitive || strategy == Full || strategy == FullTransitive
	forward := strategy == Forward || strategy == ForwardTransitive || strategy == Full || strategy == FullTransitive
	for i := len(against) - 1; i >= 0; i-- {
		old := against[i]
		if old.Type != candidate.Type {
			return fmt.Errorf("%w: type %s cannot follow type %s", ErrIncompatible, candidate.Type, old.Type)
		}
		if !avroDefined(candidate.Type) {
			continue // same primitive, Protobuf or KeyValue type
		}
		newer, err := parse(candidate)
		if err != nil {
			return err
		}
		older, err := parse(old)
		if err != nil {
			return fmt.Errorf("stored schema unreadable: %w", err)
		}
		compat := avro.NewSchemaCompatibility()
		if backward {
			// Consumers with the new schema read what the old one wrote.
			if err := compat.Compatible(newer, older); err != nil {
				return fmt.Errorf("%w: %s: the new schema cannot read data written with an existing one: %v", ErrIncompatible, strategy, err)
			}
		}
		if forward {
			// Consumers with the old schema read what the new one writes.
			if err := compat.Compatible(older, newer); err != nil {
				return fmt.Errorf("%w: %s: an existing schema cannot read data written with the new one: %v", ErrIncompatible, strategy, err)
			}
		}
	}
	return nil
}

// Same reports whether two schemas are the same version: same type and
// definition (properties do not count, as in Pulsar).
func Same(a, b Schema) bool {
	return a.Type == b.Type && string(a.Data) == string(b.Data)
}
