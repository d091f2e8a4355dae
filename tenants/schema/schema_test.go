package schema_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants/schema"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// user builds an Avro record schema "User" from field definitions.
func user(fields ...string) string {
	return `{"type":"record","name":"User","namespace":"acme","fields":[` + strings.Join(fields, ",") + `]}`
}

const (
	name      = `{"name":"name","type":"string"}`
	age       = `{"name":"age","type":"int"}`
	emailDef  = `{"name":"email","type":"string","default":""}`
	email     = `{"name":"email","type":"string"}`
	ageString = `{"name":"age","type":"string"}`
	ageLong   = `{"name":"age","type":"long"}`
	fullname  = `{"name":"fullname","type":"string","aliases":["name"]}`
)

var candidates = map[string]string{
	"added field with default":    user(name, age, emailDef),
	"added field without default": user(name, age, email),
	"removed field":               user(name),
	"type change":                 user(name, ageString),
	"type promotion int to long":  user(name, ageLong),
	"rename with alias":           user(fullname, age),
}

// TestCompatibilityMatrix: for each strategy, each change to User{name,
// age} is accepted or refused as Avro's resolution rules say, for AVRO and
// for JSON (whose definitions are Avro records too).
func TestCompatibilityMatrix(t *testing.T) {
	v1 := user(name, age)
	ok, no := true, false
	want := map[string]map[schema.Strategy]bool{
		"added field with default":    {schema.Backward: ok, schema.Forward: ok, schema.Full: ok},
		"added field without default": {schema.Backward: no, schema.Forward: ok, schema.Full: no},
		"removed field":               {schema.Backward: ok, schema.Forward: no, schema.Full: no},
		"type change":                 {schema.Backward: no, schema.Forward: no, schema.Full: no},
		"type promotion int to long":  {schema.Backward: ok, schema.Forward: no, schema.Full: no},
		"rename with alias":           {schema.Backward: ok, schema.Forward: no, schema.Full: no},
	}
	for _, typ := range []string{"AVRO", "JSON"} {
		for change, def := range candidates {
			for _, st := range []schema.Strategy{schema.Backward, schema.Forward, schema.Full, schema.BackwardTransitive,
				schema.ForwardTransitive, schema.FullTransitive, schema.AlwaysCompatible, schema.AlwaysIncompatible, schema.Undefined} {
				var expect bool
				switch st {
				case schema.AlwaysCompatible:
					expect = true
				case schema.AlwaysIncompatible:
					expect = false
				case schema.Undefined:
					expect = want[change][schema.Full] // the broker default
				default:
					// With one existing version, transitive is the same.
					expect = want[change][schema.Strategy(strings.TrimSuffix(string(st), "_TRANSITIVE"))]
				}
				err := schema.Check([]schema.Schema{{Type: typ, Data: []byte(v1)}}, schema.Schema{Type: typ, Data: []byte(def)}, st)
				if expect && err != nil {
					t.Errorf("%s %s under %s: refused (%v), want accepted", typ, change, st, err)
				}
				if !expect && !errors.Is(err, schema.ErrIncompatible) {
					t.Errorf("%s %s under %s: %v, want refused as incompatible", typ, change, st, err)
				}
			}
		}
	}
}

// TestTransitive: a candidate compatible with the latest version but not
// with an older one is accepted by BACKWARD and refused, naming why, by
// BACKWARD_TRANSITIVE.
func TestTransitive(t *testing.T) {
	existing := []schema.Schema{{Type: "AVRO", Data: []byte(user(name, age))}, {Type: "AVRO", Data: []byte(user(name, age, emailDef))}}
	cand := schema.Schema{Type: "AVRO", Data: []byte(user(name, email))} // needs email, which v0 data lacks
	if err := schema.Check(existing, cand, schema.Backward); err != nil {
		t.Fatalf("BACKWARD: %v", err)
	}
	err := schema.Check(existing, cand, schema.BackwardTransitive)
	if !errors.Is(err, schema.ErrIncompatible) || !strings.Contains(err.Error(), "email") {
		t.Fatalf("BACKWARD_TRANSITIVE: %v, want refused naming the field", err)
	}
}

// TestTypes: other types are compatible with the same type only; a
// different type never follows, unless the strategy is ALWAYS_COMPATIBLE.
func TestTypes(t *testing.T) {
	str := []schema.Schema{{Type: "STRING"}}
	if err := schema.Check(str, schema.Schema{Type: "STRING"}, schema.Full); err != nil {
		t.Fatal(err)
	}
	for _, cand := range []schema.Schema{{Type: "INT32"}, {Type: "AVRO", Data: []byte(user(name))}} {
		if err := schema.Check(str, cand, schema.Full); !errors.Is(err, schema.ErrIncompatible) {
			t.Errorf("%s after STRING: %v, want incompatible", cand.Type, err)
		}
		if err := schema.Check(str, cand, schema.AlwaysCompatible); err != nil {
			t.Errorf("%s after STRING, ALWAYS_COMPATIBLE: %v", cand.Type, err)
		}
	}
}

// TestValidate: malformed definitions, unknown types and oversize schemas
// are ErrInvalid.
func TestValidate(t *testing.T) {
	for what, s := range map[string]schema.Schema{
		"malformed Avro":     {Type: "AVRO", Data: []byte(`{"type":"record","name":"X","fields":[{"name":"a"}]}`)},
		"not JSON":           {Type: "JSON", Data: []byte(`{not json`)},
		"unknown type name":  {Type: "AVRO", Data: []byte(`{"type":"record","name":"X","fields":[{"name":"a","type":"nosuch"}]}`)},
		"unknown schema":     {Type: "XML"},
		"NONE is not stored": {Type: "NONE"},
		"1 MB":               {Type: "STRING", Data: make([]byte, 1<<20)},
	} {
		if err := schema.Validate(s); !errors.Is(err, schema.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	if err := schema.Validate(schema.Schema{Type: "AVRO", Data: []byte(user(name, age))}); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.ParseStrategy("full_transitive"); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.ParseStrategy("SOMETIMES"); !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("unknown strategy: %v", err)
	}
}

// TestRegistry: versions count up from 0, the same schema is not stored
// twice, an incompatible one is refused with nothing stored, a deletion
// ends the history in force (the next schema starts a new one, its version
// still counting up), and purging removes everything.
func TestRegistry(t *testing.T) {
	md, _ := testutil.Store(t)
	r := schema.NewRegistry(md)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "persistent://acme/ns/users"
	if _, err := r.Latest(ctx, topic); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("latest of a topic without schema: %v", err)
	}
	add := func(def string, st schema.Strategy) (schema.Version, bool, error) {
		return r.Add(ctx, topic, schema.Schema{Type: "AVRO", Data: []byte(def), Properties: map[string]string{"by": "test"}}, st)
	}
	v0, created, err := add(user(name, age), schema.Full)
	if err != nil || !created || v0.Version != 0 {
		t.Fatalf("first: %+v %v %v", v0, created, err)
	}
	if again, created, err := add(user(name, age), schema.Full); err != nil || created || again.Version != 0 {
		t.Fatalf("same again: %+v %v %v", again, created, err)
	}
	if v1, created, err := add(user(name, age, emailDef), schema.Full); err != nil || !created || v1.Version != 1 {
		t.Fatalf("compatible: %+v %v %v", v1, created, err)
	}
	if _, _, err := add(user(name, ageString), schema.Full); !errors.Is(err, schema.ErrIncompatible) {
		t.Fatalf("incompatible: %v", err)
	}
	if vs, _ := r.Versions(ctx, topic); len(vs) != 2 {
		t.Fatalf("%d versions stored after a refusal, want 2", len(vs))
	}
	if v, err := r.Get(ctx, topic, 0); err != nil || v.Properties["by"] != "test" || v.Type != "AVRO" {
		t.Fatalf("version 0: %+v %v", v, err)
	}
	if d, err := r.Delete(ctx, topic); err != nil || d != 2 {
		t.Fatalf("delete: %d %v", d, err)
	}
	if _, err := r.Latest(ctx, topic); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("latest after delete: %v", err)
	}
	if _, err := r.Get(ctx, topic, 2); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("the deletion as a version: %v", err)
	}
	if _, err := r.Get(ctx, topic, 0); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("a version before the deletion: %v", err)
	}
	// After a deletion anything may start the history again.
	if v3, created, err := add(user(name, ageString), schema.Full); err != nil || !created || v3.Version != 3 {
		t.Fatalf("after delete: %+v %v %v", v3, created, err)
	}
	if err := r.Purge(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if vs, _ := r.Versions(ctx, topic); len(vs) != 0 {
		t.Fatalf("%d versions after purge", len(vs))
	}
}

// TestRegistryConcurrentAdds: two writers adding different compatible
// schemas at once get distinct versions, both stored.
func TestRegistryConcurrentAdds(t *testing.T) {
	md, _ := testutil.Store(t)
	r := schema.NewRegistry(md)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "persistent://acme/ns/race"
	var wg sync.WaitGroup
	versions := make([]int64, 8)
	for i := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := fmt.Sprintf(`{"name":"f%d","type":"int","default":0}`, i)
			v, _, err := r.Add(ctx, topic, schema.Schema{Type: "AVRO", Data: []byte(user(name, f))}, schema.AlwaysCompatible)
			if err != nil {
				t.Error(err)
			}
			versions[i] = v.Version
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, v := range versions {
		if seen[v] {
			t.Fatalf("two adds got version %d: %v", v, versions)
		}
		seen[v] = true
	}
}
