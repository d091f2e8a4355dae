package broker_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/internal/testcluster"
)

func schemaPayload(typ, def string) string {
	b, _ := json.Marshal(map[string]any{"type": typ, "schema": def, "properties": map[string]string{"owner": "billing"}})
	return string(b)
}

const (
	userV1 = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}`
	userV2 = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"},{"name":"email","type":"string","default":""}]}`
	userX  = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"string"}]}`
)

// TestSchemaREST: upload, read by version and all, test a candidate, look
// a version up, delete; the strategy comes from the namespace and the
// topic; versions survive a broker restart.
func TestSchemaREST(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	r := rest{t, c.Broker(0).B.HTTPURL()}
	r.want("PUT", "/admin/v2/persistent/public/default/users", "", 204)
	ns := "/admin/v2/namespaces/public/default"
	r.want("GET", ns+"/schemaCompatibilityStrategy", "", 200, `"UNDEFINED"`)
	r.want("GET", ns+"/isAllowAutoUpdateSchema", "", 200, `true`)
	r.want("GET", ns+"/schemaValidationEnforced", "", 200, `false`)
	s := "/admin/v2/schemas/public/default/users"
	r.want("GET", s+"/schema", "", 404, "no schema")
	r.want("POST", s+"/schema", schemaPayload("AVRO", userV1), 200, `"version":0`)
	r.want("POST", s+"/schema", schemaPayload("AVRO", userV1), 200, `"version":0`) // the same: no new version
	r.want("POST", s+"/compatibility", schemaPayload("AVRO", userX), 200, `"isCompatible":false`, `"schemaCompatibilityStrategy":"FULL"`)
	r.want("POST", s+"/schema", schemaPayload("AVRO", userX), 409, "incompatible")
	r.want("POST", s+"/schema", schemaPayload("AVRO", userV2), 200, `"version":1`)
	r.want("GET", s+"/schema", "", 200, `"version":1`, `"type":"AVRO"`, `"owner":"billing"`, `email`)
	r.want("GET", s+"/schema/0", "", 200, `"version":0`)
	r.want("GET", s+"/schemas", "", 200, `"getSchemaResponses"`, `"version":0`, `"version":1`)
	r.want("POST", s+"/version", schemaPayload("AVRO", userV1), 200, `"version":0`)
	// ALWAYS_COMPATIBLE at the topic level lets the incompatible one in.
	r.want("POST", "/admin/v2/persistent/public/default/users/schemaCompatibilityStrategy", `"ALWAYS_COMPATIBLE"`, 204)
	testutilWaitTopicPolicy(t, r, s, schemaPayload("AVRO", userX))
	r.want("POST", s+"/schema", schemaPayload("AVRO", userX), 200, `"version":2`)
	// A restarted broker serves the same versions.
	c.StopBroker(0)
	if err := c.StartBroker(0); err != nil {
		t.Fatal(err)
	}
	r = rest{t, c.Broker(0).B.HTTPURL()}
	r.want("GET", s+"/schema/1", "", 200, `"version":1`, `email`)
	r.want("DELETE", s+"/schema", "", 200, `"version":3`)
	r.want("GET", s+"/schema", "", 404)
	r.want("GET", s+"/schema/3", "", 404)
	// After a deletion the history starts again, the version counting on.
	r.want("POST", s+"/schema", schemaPayload("STRING", ""), 200, `"version":4`)
	// Deleting the topic deletes its schemas.
	r.want("DELETE", "/admin/v2/persistent/public/default/users", "", 204)
	r.want("PUT", "/admin/v2/persistent/public/default/users", "", 204)
	r.want("GET", s+"/schema", "", 404)
}

// testutilWaitTopicPolicy waits until the broker applies the topic-level
// strategy (its policy cache follows a watch).
func testutilWaitTopicPolicy(t *testing.T, r rest, s, candidate string) {
	t.Helper()
	for range 100 {
		if code, out := r.do("POST", s+"/compatibility", candidate); code == 200 && strings.Contains(out, `"isCompatible":true`) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the topic-level strategy never applied")
}

// TestSchemaRESTBadInput: malformed definitions, unknown types, a 1 MB
// schema and a schema for a topic that does not exist get a precise 4xx,
// and nothing is stored.
func TestSchemaRESTBadInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	r := rest{t, c.Broker(0).B.HTTPURL()}
	r.want("PUT", "/admin/v2/persistent/public/default/t", "", 204)
	s := "/admin/v2/schemas/public/default/t"
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{schemaPayload("AVRO", `{"type":"record","name":"X","fields":[{"name":"a"}]}`), 400, "AVRO definition"},
		{schemaPayload("JSON", `{not json`), 400, "JSON definition"},
		{schemaPayload("AVRO", `{"type":"record","name":"X","fields":[{"name":"a","type":"nosuch"}]}`), 400, "AVRO definition"},
		{schemaPayload("XML", "<x/>"), 400, "unknown schema type"},
		{schemaPayload("STRING", strings.Repeat("x", 300<<10)), 400, "at most"},
		{schemaPayload("STRING", strings.Repeat("x", 1<<20)), 413, "larger than"},
		{`{"type":"STRING","schema":"","bogus":1}`, 400, "malformed schema payload"},
		{`not json`, 400, "malformed schema payload"},
	} {
		r.want("POST", s+"/schema", tc.body, tc.code, tc.want)
	}
	r.want("GET", s+"/schemas", "", 404)
	r.want("POST", "/admin/v2/schemas/public/default/nosuch/schema", schemaPayload("STRING", ""), 404, "nosuch")
	r.want("GET", "/admin/v2/schemas/public/default/nosuch/schema", "", 404)
	r.want("GET", s+"/schema/abc", "", 400, "schema version")
	r.want("PUT", "/admin/v2/namespaces/public/default/schemaCompatibilityStrategy", `"SOMETIMES"`, 400, "unknown compatibility strategy")
	// Names are case-insensitive; UNDEFINED goes back to the default.
	r.want("PUT", "/admin/v2/namespaces/public/default/schemaCompatibilityStrategy", `"backward"`, 204)
	r.want("GET", "/admin/v2/namespaces/public/default/schemaCompatibilityStrategy", "", 200, `"BACKWARD"`)
	r.want("PUT", "/admin/v2/namespaces/public/default/schemaCompatibilityStrategy", `"UNDEFINED"`, 204)
	r.want("GET", "/admin/v2/namespaces/public/default/schemaCompatibilityStrategy", "", 200, `"UNDEFINED"`)
	r.want("POST", "/admin/v2/persistent/public/default/t/schemaCompatibilityStrategy", `"SOMETIMES"`, 400, "schemaCompatibilityStrategy")
	r.want("POST", "/admin/v2/schemas/public/nosuchns/t/schema", schemaPayload("STRING", ""), 404, "namespace")
}
