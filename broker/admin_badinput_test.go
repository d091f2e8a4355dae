package broker_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/metadata"
)

// refusedTopicReq is a topic admin request the broker must refuse without
// changing anything.
type refusedTopicReq struct {
	method, path, body string
	status             int
	// reason holds substrings the {"reason": ...} must contain.
	reason []string
}

// topicAdminState is what the broker's admin API answers for paths, plus
// the configuration keys and values and the ledger and cursor keys of the
// metadata store (cursor and ledger values move with traffic; their
// positions are compared through internalStats instead).
func topicAdminState(t *testing.T, r rest, md metadata.Store, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		status, body := r.do("GET", p, "")
		if status != http.StatusOK && status != http.StatusNoContent {
			t.Fatalf("GET %s: %d %s; the broker stopped serving", p, status, body)
		}
		out["GET "+p] = fmt.Sprint(status, " ", body)
	}
	ctx := context.Background()
	for _, prefix := range []string{metadata.ClustersPrefix, metadata.TenantsPrefix, metadata.NamespacesPrefix,
		metadata.PartitionedTopicsPrefix, metadata.TopicPoliciesPrefix, metadata.ManagedLedgersPrefix, metadata.CursorsPrefix} {
		keysOnly := prefix == metadata.ManagedLedgersPrefix || prefix == metadata.CursorsPrefix
		kvs, err := metadata.ListAll(ctx, md, prefix, keysOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			out["key "+kv.Key] = string(kv.Value)
		}
	}
	return out
}

// TestTopicAdminBadInput: bad topic, subscription and role names, malformed
// and null bodies, invalid partition counts, message ids and topic policies
// get the exact status and a reason naming the problem; no topic,
// subscription, partition or policy is created or changed, and the broker
// goes on serving.
func TestTopicAdminBadInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 1})
	ctx := ctxT(t, 2*time.Minute)
	r := rest{t, c.Broker(0).B.HTTPURL()}
	const ns = "/admin/v2/persistent/public/default"
	base := ns + "/"
	t1, pt := base+"t1", base+"pt"
	// A name whose 9 partitions (…-partition-8) just fit in 255 bytes.
	edge := strings.Repeat("e", 255-len("-partition-8"))

	// Fixtures: a topic with a backlog, a subscription, policies and a
	// grant; a partitioned topic with a subscription on every partition.
	r.want("PUT", t1, "", 204)
	r.want("PUT", t1+"/subscription/s1", `{"ledgerId":-1,"entryId":-1}`, 204)
	p, err := newClient(t, c).CreateProducer(ctx, "t1", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	r.want("POST", t1+"/subscription/s1/skip/1", "", 204)
	r.want("POST", t1+"/maxProducers", "3", 204)
	r.want("POST", t1+"/publishRate", `{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":-1}`, 204)
	r.want("POST", t1+"/permissions/app", `["produce"]`, 204)
	r.want("PUT", pt+"/partitions", "2", 204)
	r.want("PUT", pt+"/subscription/ps", "", 204)
	r.want("PUT", base+edge+"/partitions", "9", 204)

	statePaths := []string{
		ns, ns + "/partitioned", "/admin/v2/namespaces/public/default",
		t1 + "/subscriptions", t1 + "/internalStats", t1 + "/permissions", t1 + "/partitions",
		t1 + "/maxProducers", t1 + "/publishRate", t1 + "/dispatchRate", t1 + "/messageTTL", t1 + "/deduplicationEnabled",
		pt + "/partitions", pt + "/subscriptions", base + edge + "/partitions",
	}
	long := strings.Repeat

	cases := []refusedTopicReq{
		// topic names
		{"PUT", base + "a%2Fb", "", 400, []string{`"persistent://public/default/a/b" must have the form persistent://tenant/namespace/topic`}},
		{"PUT", base + "a%00b", "", 400, []string{`topic name "a\x00b" has control character 0x00`}},
		{"PUT", base + "a%0A", "", 400, []string{`topic name "a\n" has control character 0x0a`}},
		{"PUT", base + "%7F", "", 400, []string{`topic name "\x7f" has control character 0x7f`}},
		{"PUT", base + "%2E%2E", "", 400, []string{`topic name ".." is reserved`}},
		{"PUT", base + long("t", 256), "", 400, []string{"topic name", "256 bytes long (max 255)"}},
		{"PUT", "/admin/v2/persistent/pub%2Flic/default/t", "", 400, []string{`"persistent://pub/lic/default/t" must have the form`}},
		{"PUT", "/admin/v2/persistent/public/de%00fault/t", "", 400, []string{`namespace name "de\x00fault" has control character 0x00`}},
		{"PUT", "/admin/v2/persistent/" + long("p", 256) + "/default/t", "", 400, []string{"tenant name", "256 bytes long"}},
		{"GET", "/lookup/v2/topic/persistent/public/default/a%00b", "", 400, []string{`topic name "a\x00b"`}},
		{"POST", base + "a%0Ab/maxProducers", "1", 400, []string{`topic name "a\nb"`}},
		// Paths ServeMux would redirect: cleaned, the first would delete
		// t1, the second create topic x.
		{"DELETE", t1 + "/subscription/..", "", 400, []string{`has a ".." segment`}},
		{"PUT", ns + "//x", "", 400, []string{"empty segment"}},
		{"DELETE", t1 + "/.", "", 400, []string{`has a "." segment`}},
		{"GET", "/lookup/v2/topic/persistent/public/default/../t1", "", 400, []string{`".." segment`}},

		// subscription names
		{"PUT", t1 + "/subscription/a%2Fb", "", 400, []string{`subscription name "a/b" has '/'`}},
		{"PUT", t1 + "/subscription/a%00", "", 400, []string{`subscription name "a\x00" has control character 0x00`}},
		{"PUT", t1 + "/subscription/a%0Ab", "", 400, []string{`subscription name "a\nb" has control character 0x0a`}},
		{"PUT", t1 + "/subscription/s%7F", "", 400, []string{`subscription name "s\x7f" has control character 0x7f`}},
		{"PUT", t1 + "/subscription/%2E%2E", "", 400, []string{`subscription name ".." is reserved`}},
		{"PUT", t1 + "/subscription/pulsar.dedup", "", 400, []string{`subscription name "pulsar.dedup" is reserved`, `"pulsar."`}},
		{"PUT", t1 + "/subscription/" + long("s", 1025), "", 400, []string{"subscription name", "longer than 1024 bytes"}},
		{"PUT", pt + "/subscription/a%0Ab", "", 400, []string{"pt-partition-0", `subscription name "a\nb"`}},
		{"PUT", t1 + "/subscription/s1", "", 409, []string{"subscription s1 already exists"}},
		{"PUT", pt + "/subscription/ps", "", 409, []string{"pt-partition-0", "subscription ps already exists"}},
		{"PUT", base + "nosuch/subscription/s", "", 404, []string{"persistent://public/default/nosuch"}},
		{"PUT", t1 + "/subscription/s2", `{"ledgerId":"x"}`, 400, []string{"malformed message id", "ledgerId"}},
		{"PUT", t1 + "/subscription/s2", `{"ledgerId":-2,"entryId":0}`, 400, []string{"invalid message id -2:0"}},
		{"PUT", t1 + "/subscription/s2", `{"ledgerId":-1,"entryId":-1,"position":"earliest"}`, 400, []string{`unknown field "position"`}},
		{"PUT", t1 + "/subscription/s2", `"earliest"`, 400, []string{"malformed message id"}},

		// roles and actions of topic grants
		{"POST", t1 + "/permissions/a%00", `["produce"]`, 400, []string{`role name "a\x00" has control character 0x00`}},
		{"POST", t1 + "/permissions/" + long("r", 1025), `["produce"]`, 400, []string{"role name", "longer than 1024 bytes"}},
		{"POST", t1 + "/permissions/app", `["produce","fly"]`, 400, []string{`unknown permission action "fly"`}},
		{"POST", t1 + "/permissions/app", `null`, 400, []string{"body must be a JSON list of actions"}},
		{"POST", t1 + "/permissions/app", ``, 400, []string{"body must be a JSON list of actions"}},
		{"POST", t1 + "/permissions/app", `"produce"`, 400, []string{"malformed list of actions"}},
		{"POST", t1 + "/permissions/app", `{"actions":["consume"]}`, 400, []string{"malformed list of actions", "object"}},
		{"POST", t1 + "/permissions/app", `["consume"] ["produce"]`, 400, []string{"unexpected data after the JSON value"}},
		{"POST", t1 + "/permissions/app", `["consume"]]`, 400, []string{"unexpected data after the JSON value"}},

		// partition counts
		{"PUT", base + "np/partitions", "0", 400, []string{"number of partitions must be between 1 and 1024, got 0"}},
		{"PUT", base + "np/partitions", "-3", 400, []string{"got -3"}},
		{"PUT", base + "np/partitions", "1025", 400, []string{"got 1025"}},
		{"PUT", base + "np/partitions", "abc", 400, []string{`body must be a number of partitions, got "abc"`}},
		{"PUT", base + "np/partitions", `"3"`, 400, []string{"body must be a number of partitions"}},
		{"PUT", base + "np/partitions", "3.0", 400, []string{"body must be a number of partitions"}},
		{"PUT", base + "np/partitions", "null", 400, []string{"body must be a number of partitions"}},
		{"PUT", base + "np/partitions", "", 400, []string{"body must be a number of partitions"}},
		{"PUT", base + "np/partitions", `{"properties":null}`, 400, []string{"body must be a number of partitions"}},
		{"PUT", base + "np/partitions", `{"partitions":3,"extra":1}`, 400, []string{"body must be a number of partitions"}},
		{"PUT", base + "np/partitions", `{"partitions":3,"properties":{"a":"b"}}`, 400, []string{"topic properties are not supported"}},
		{"PUT", base + "np/partitions", `{"partitions":0}`, 400, []string{"number of partitions"}},
		{"PUT", base + "np-partition-0/partitions", "2", 400, []string{"is a partition name"}},
		{"PUT", base + long("x", 250) + "/partitions", "3", 400, []string{"is too long for 3 partitions", "262 bytes long (max 255)"}},
		{"PUT", pt + "/partitions", "4", 409, []string{"partitioned topic persistent://public/default/pt already exists"}},
		{"PUT", t1 + "/partitions", "2", 409, []string{"a non-partitioned topic persistent://public/default/t1 exists"}},
		{"POST", pt + "/partitions", "1", 400, []string{"partitions can only be increased", "has 2, asked for 1"}},
		{"POST", pt + "/partitions", "2", 400, []string{"has 2, asked for 2"}},
		{"POST", pt + "/partitions", "0", 400, []string{"number of partitions must be between 1 and 1024, got 0"}},
		{"POST", pt + "/partitions", "-1", 400, []string{"got -1"}},
		{"POST", base + edge + "/partitions", "11", 400, []string{"is too long for 11 partitions", "256 bytes long"}},
		{"POST", base + "nosuch/partitions", "3", 404, []string{"partitioned topic persistent://public/default/nosuch does not exist"}},
		{"POST", t1 + "/partitions", "3", 404, []string{"partitioned topic persistent://public/default/t1 does not exist"}},
		{"PUT", pt, "", 409, []string{"persistent://public/default/pt is a partitioned topic"}},
		{"PUT", t1, "", 409, []string{"topic persistent://public/default/t1 already exists"}},
		{"PUT", base + "pt-partition-5", "", 404, []string{"pt has 2 partitions", "pt-partition-5 does not exist"}},
		{"PUT", "/admin/v2/persistent/public/nosuchns/t", "", 404, []string{"namespace public/nosuchns does not exist"}},
		{"DELETE", base + "nosuch", "", 404, []string{"persistent://public/default/nosuch"}},
		{"DELETE", base + "nosuch/partitions", "", 404, []string{"partitioned topic persistent://public/default/nosuch does not exist"}},

		// cursor operations
		{"POST", t1 + "/subscription/s1/skip/-1", "", 400, []string{`invalid number of messages "-1"`}},
		{"POST", t1 + "/subscription/s1/skip/abc", "", 400, []string{`invalid number of messages "abc"`}},
		{"POST", t1 + "/subscription/nosuch/skip/1", "", 404, []string{"subscription nosuch does not exist"}},
		{"POST", t1 + "/subscription/s1/expireMessages/-5", "", 400, []string{`want seconds between 0 and 2147483647`}},
		{"POST", t1 + "/subscription/s1/resetcursor/-1", "", 400, []string{`invalid timestamp "-1"`}},
		{"POST", t1 + "/subscription/s1/resetcursor/yesterday", "", 400, []string{`invalid timestamp "yesterday"`}},
		{"POST", t1 + "/subscription/s1/resetcursor", `null`, 400, []string{"a message id", "is required"}},
		{"POST", t1 + "/subscription/s1/resetcursor", ``, 400, []string{"a message id", "is required"}},
		{"POST", t1 + "/subscription/s1/resetcursor", `{"ledgerId":-2,"entryId":0}`, 400, []string{"invalid message id -2:0"}},
		{"POST", t1 + "/subscription/s1/resetcursor", `{"ledgerId":"1","entryId":0}`, 400, []string{"malformed message id", "ledgerId"}},
		{"POST", t1 + "/subscription/s1/resetcursor", `{"ledgerId":1,"entryId":0,"batchIdx":1}`, 400, []string{`unknown field "batchIdx"`}},
		{"POST", t1 + "/subscription/s1/resetcursor", `{"ledgerId":1,"entryId":0} {}`, 400, []string{"unexpected data after the JSON value"}},
		{"POST", t1 + "/subscription/s1/resetcursor", `[1,0]`, 400, []string{"malformed message id", "array"}},

		// topic policies
		{"POST", t1 + "/maxProducers", "-1", 400, []string{"maxProducerPerTopic must be between 0 and"}},
		{"POST", t1 + "/maxProducers", "null", 400, []string{"a value is required, got null"}},
		{"POST", t1 + "/maxProducers", `"5"`, 400, []string{"malformed value", "string"}},
		{"POST", t1 + "/maxProducers", "5 6", 400, []string{"unexpected data after the JSON value"}},
		{"POST", t1 + "/maxProducers", "", 400, []string{"a value is required in the body (or as ?maxProducers=)"}},
		{"POST", t1 + "/messageTTL?messageTTL=-5", "", 400, []string{"messageTTLInSeconds must be between 0 and"}},
		{"POST", t1 + "/messageTTL?messageTTL=1h", "", 400, []string{"malformed value"}},
		{"POST", t1 + "/maxConsumers", "-2", 400, []string{"maxConsumerPerTopic must be between 0 and"}},
		{"POST", t1 + "/maxConsumersPerSubscription", "1.5", 400, []string{"malformed value"}},
		{"POST", t1 + "/publishRate", `{"publishThrottlingRateInMsg":-5}`, 400, []string{"publishRate: publishThrottlingRateInMsg must be between -1 and"}},
		{"POST", t1 + "/publishRate", `{"publishThrottlingRateInMsgs":5}`, 400, []string{`unknown field "publishThrottlingRateInMsgs"`}},
		{"POST", t1 + "/publishRate", `null`, 400, []string{"a value is required, got null"}},
		{"POST", t1 + "/publishRate", `[100]`, 400, []string{"malformed value", "array"}},
		{"POST", t1 + "/dispatchRate", `{"dispatchThrottlingRateInMsg":5,"ratePeriodInSecond":-1}`, 400, []string{"dispatchRate: ratePeriodInSecond must be between 1 and"}},
		{"POST", t1 + "/subscriptionDispatchRate", `{"dispatchThrottlingRateInByte":-7}`, 400, []string{"subscriptionDispatchRate: dispatchThrottlingRateInByte must be between -1 and"}},
		{"POST", t1 + "/deduplicationEnabled", `"yes"`, 400, []string{"malformed value", "bool"}},
		{"POST", "/admin/v2/persistent/public/nosuchns/t/maxProducers", "1", 404, []string{"namespace public/nosuchns does not exist"}},

		{"GET", "/admin/v2/non-persistent/public/default/x/stats", "", 501, []string{"non-persistent topics are not supported"}},
	}

	before := topicAdminState(t, r, c.Store, statePaths)
	for i, cs := range cases {
		shown := cs.path
		if len(shown) > 90 {
			shown = shown[:90] + "..."
		}
		name := fmt.Sprintf("case %d: %s %s %.40q", i, cs.method, shown, cs.body)
		status, body := r.do(cs.method, cs.path, cs.body)
		if status != cs.status {
			t.Errorf("%s: status %d, want %d; body %.300s", name, status, cs.status, body)
		}
		testutil.CheckReason(t, name, body, cs.reason...)
		after := topicAdminState(t, r, c.Store, statePaths)
		if !maps.Equal(before, after) {
			for _, k := range slices.Sorted(maps.Keys(after)) {
				if before[k] != after[k] {
					t.Errorf("%s changed %s: %.300s -> %.300s", name, k, before[k], after[k])
				}
			}
			for k := range before {
				if _, ok := after[k]; !ok {
					t.Errorf("%s removed %s", name, k)
				}
			}
			before = after
		}
	}

	// Valid requests still work on the same topics.
	r.want("PUT", t1+"/subscription/s2", `{"ledgerId":-1,"entryId":-1}`, 204)
	r.want("PUT", t1+"/subscription/caf%C3%A9", "", 204)
	r.want("GET", t1+"/subscriptions", "", 200, `["café","s1","s2"]`)
	r.want("POST", t1+"/maxProducers", "5", 204)
	r.want("GET", t1+"/maxProducers", "", 200, "5")
	r.want("POST", t1+"/messageTTL?messageTTL=60", "", 204)
	r.want("POST", t1+"/permissions/app", `["produce","consume"]`, 204)
	r.want("POST", pt+"/partitions", "3", 204)
	r.want("GET", pt+"/partitions", "", 200, `"partitions":3`)
	r.want("POST", base+edge+"/partitions", "10", 204)
	r.want("PUT", base+"fresh", "", 204)
	r.want("DELETE", base+"fresh", "", 204)
}
