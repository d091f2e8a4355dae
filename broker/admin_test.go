package broker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/testcluster"
)

type rest struct {
	t    *testing.T
	base string
}

func (r rest) do(method, path, body string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r rest) want(method, path, body string, code int, contains ...string) string {
	r.t.Helper()
	got, out := r.do(method, path, body)
	if got != code {
		r.t.Fatalf("%s %s: %d %s, want %d", method, path, got, out, code)
	}
	for _, c := range contains {
		if !strings.Contains(out, c) {
			r.t.Fatalf("%s %s: body %s lacks %q", method, path, out, c)
		}
	}
	return out
}

// TestTopicAdminREST round-trips every topic admin path with Pulsar's JSON
// field names, across two brokers (requests for a topic served elsewhere
// are redirected).
func TestTopicAdminREST(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	ctx := ctxT(t, 2*time.Minute)
	// Either broker answers every request.
	for i := 0; i < 2; i++ {
		r := rest{t, c.Broker(i).B.HTTPURL()}
		topic := fmt.Sprintf("admin-%d", i)
		base := "/admin/v2/persistent/public/default/" + topic
		r.want("PUT", base, "", 204)
		r.want("PUT", base, "", 409, "already exists")
		r.want("GET", "/admin/v2/persistent/public/default", "", 200, "persistent://public/default/"+topic)
		// Produce a few messages through the SDK, then inspect.
		cl := newClient(t, c)
		p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
		if err != nil {
			t.Fatal(err)
		}
		var start time.Time
		for j := 0; j < 10; j++ {
			if j == 5 {
				time.Sleep(20 * time.Millisecond)
				start = time.Now()
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint(j))}); err != nil {
				t.Fatal(err)
			}
		}
		r.want("PUT", base+"/subscription/sub1", `{"ledgerId":-1,"entryId":-1}`, 204)
		r.want("PUT", base+"/subscription/sub1", "", 409)
		r.want("GET", base+"/subscriptions", "", 200, `"sub1"`)
		stats := r.want("GET", base+"/stats", "", 200, `"msgInCounter":10`, `"publishers"`, `"subscriptions"`, `"storageSize"`, `"deduplicationStatus"`)
		var st struct {
			Subscriptions map[string]struct {
				MsgBacklog int64  `json:"msgBacklog"`
				Type       string `json:"type"`
			} `json:"subscriptions"`
		}
		json.Unmarshal([]byte(stats), &st)
		if st.Subscriptions["sub1"].MsgBacklog != 10 {
			t.Fatalf("sub1 backlog %d, want 10 (%s)", st.Subscriptions["sub1"].MsgBacklog, stats)
		}
		r.want("GET", base+"/internalStats", "", 200, `"ledgers"`, `"cursors"`, `"markDeletePosition"`, `"lastConfirmedEntry"`, `"numberOfEntries":10`, `"individuallyDeletedMessages":"[`)
		r.want("POST", base+"/subscription/sub1/skip/3", "", 204)
		checkBacklog := func(want int64) {
			t.Helper()
			var st struct {
				Subscriptions map[string]struct {
					MsgBacklog int64 `json:"msgBacklog"`
				} `json:"subscriptions"`
			}
			json.Unmarshal([]byte(r.want("GET", base+"/stats", "", 200)), &st)
			if got := st.Subscriptions["sub1"].MsgBacklog; got != want {
				t.Fatalf("backlog %d, want %d", got, want)
			}
		}
		checkBacklog(7)
		r.want("POST", fmt.Sprintf("%s/subscription/sub1/resetcursor/%d", base, start.UnixMilli()), "", 204)
		checkBacklog(5)
		r.want("POST", base+"/subscription/sub1/skip_all", "", 204)
		checkBacklog(0)
		last := r.want("GET", base+"/lastMessageId", "", 200, `"ledgerId"`, `"entryId":9`)
		var id struct {
			LedgerID int64 `json:"ledgerId"`
		}
		json.Unmarshal([]byte(last), &id)
		r.want("POST", base+"/subscription/sub1/resetcursor", fmt.Sprintf(`{"ledgerId":%d,"entryId":2}`, id.LedgerID), 204)
		checkBacklog(8)
		r.want("POST", base+"/subscription/sub1/expireMessages/0", "", 204)
		checkBacklog(0)
		r.want("POST", base+"/all_subscription/expireMessages/0", "", 204)
		r.want("POST", base+"/subscription/nosuch/skip/1", "", 404)
		r.want("POST", base+"/subscription/sub1/skip/-1", "", 400)
		r.want("POST", base+"/subscription/sub1/resetcursor", `{"ledgerId":"x"}`, 400)
		r.want("POST", base+"/subscription/sub1/resetcursor", `{"ledgerId":1,"entryId":1,"bogus":1}`, 400)
		r.want("POST", base+"/subscription/sub1/resetcursor", fmt.Sprintf(`{"ledgerId":%d,"entryId":2,"isExcluded":true}`, id.LedgerID), 204)
		checkBacklog(7)
		r.want("DELETE", base+"/subscription/sub1", "", 204)
		r.want("PUT", base+"/unload", "", 204)
		r.want("GET", base+"/stats", "", 200) // reloads on demand
		r.want("POST", base+"/terminate", "", 200, `"entryId":9`)
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("late")}); !errors.Is(err, client.ErrTopicTerminated) {
			t.Fatalf("send to a terminated topic: %v, want ErrTopicTerminated", err)
		}
		r.want("DELETE", base, "", 204)
		r.want("GET", base+"/stats", "", 404)
		r.want("GET", "/lookup/v2/topic/persistent/public/default/"+topic, "", 200, `"brokerUrl"`, `"httpUrl"`)
	}

	r := rest{t, c.Broker(0).B.HTTPURL()}
	// Partitioned topics.
	pt := "/admin/v2/persistent/public/default/parted"
	r.want("PUT", pt+"/partitions", "3", 204)
	r.want("GET", pt+"/partitions", "", 200, `"partitions":3`)
	r.want("POST", pt+"/partitions", "5", 204)
	r.want("POST", pt+"/partitions", "2", 400, "only be increased")
	r.want("GET", "/admin/v2/persistent/public/default/partitioned", "", 200, "persistent://public/default/parted")
	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, "parted")
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 50; j++ {
		if _, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	r.want("GET", pt+"/partitioned-stats?perPartition=true", "", 200, `"msgInCounter":50`, `"metadata":{"partitions":5}`, "parted-partition-0")
	p.Close()
	r.want("DELETE", pt+"/partitions", "", 204)
	r.want("GET", pt+"/partitions", "", 200, `"partitions":0`)

	// Bad input.
	r.want("PUT", "/admin/v2/persistent/public/default/bad%01name", "", 400)
	r.want("PUT", "/admin/v2/persistent/public/nosuchns/t", "", 404, "namespace")
	r.want("PUT", pt+"/partitions", "-1", 400)
	r.want("PUT", pt+"/partitions", "abc", 400)
	r.want("GET", "/admin/v2/persistent/public/default/never-created/stats", "", 404)
	r.want("GET", "/admin/v2/non-persistent/public/default/x/stats", "", 501)
	// Topic permissions.
	r.want("POST", "/admin/v2/persistent/public/default/admin-1/permissions/app", `["produce"]`, 204)
	r.want("GET", "/admin/v2/persistent/public/default/admin-1/permissions", "", 200, `"app":["produce"]`)
	r.want("POST", "/admin/v2/persistent/public/default/admin-1/permissions/app", `["fly"]`, 400)
	r.want("DELETE", "/admin/v2/persistent/public/default/admin-1/permissions/app", "", 204)
	r.want("GET", "/admin/v2/persistent/public/default/admin-1/permissions", "", 200, `{}`)
	// Revoking a permission that is not there succeeds (docs/behaviour.md).
	r.want("DELETE", "/admin/v2/persistent/public/default/admin-1/permissions/never-granted", "", 204)
	r.want("GET", "/admin/v2/persistent/public/default/admin-1/permissions", "", 200, `{}`)
}

// TestPartitionedTopicAdminFanOut: subscription operations, unload and
// listings on a partitioned topic apply to every partition, as in Pulsar,
// whichever of two brokers owns each partition.
func TestPartitionedTopicAdminFanOut(t *testing.T) {
	c := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2})
	ctx := ctxT(t, 2*time.Minute)
	r := rest{t, c.Broker(0).B.HTTPURL()}
	const n = 3
	pt := "/admin/v2/persistent/public/default/fan"
	r.want("PUT", pt+"/partitions", fmt.Sprint(n), 204)
	r.want("GET", "/admin/v2/persistent/public/default", "", 200,
		"fan-partition-0", "fan-partition-1", "fan-partition-2")
	// The subscription exists on every partition, unused ones included.
	r.want("PUT", pt+"/subscription/s", `{"ledgerId":-1,"entryId":-1}`, 204)
	for i := 0; i < n; i++ {
		r.want("GET", fmt.Sprintf("%s-partition-%d/subscriptions", pt, i), "", 200, `"s"`)
	}
	r.want("PUT", pt+"/subscription/s", "", 409, "partition-0", "already exists")
	r.want("GET", pt+"/subscriptions", "", 200, `["s"]`)

	cl := newClient(t, c)
	p, err := cl.CreateProducer(ctx, "fan")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 30; i++ {
		if _, err := p.Send(ctx, &client.ProducerMessage{Key: fmt.Sprint(i), Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	backlog := func() int64 {
		var st struct {
			Subscriptions map[string]struct {
				MsgBacklog int64 `json:"msgBacklog"`
			} `json:"subscriptions"`
		}
		body := r.want("GET", pt+"/partitioned-stats", "", 200)
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return st.Subscriptions["s"].MsgBacklog
	}
	if b := backlog(); b != 30 {
		t.Fatalf("backlog %d, want 30", b)
	}
	r.want("POST", pt+"/subscription/s/skip_all", "", 204)
	if b := backlog(); b != 0 {
		t.Fatalf("backlog after skip_all %d, want 0", b)
	}
	r.want("POST", fmt.Sprintf("%s/subscription/s/resetcursor/%d", pt, start.Add(-time.Second).UnixMilli()), "", 204)
	if b := backlog(); b != 30 {
		t.Fatalf("backlog after reset by time %d, want 30", b)
	}
	r.want("POST", pt+"/all_subscription/expireMessages/0", "", 204)
	if b := backlog(); b != 0 {
		t.Fatalf("backlog after expiring everything %d, want 0", b)
	}
	r.want("POST", pt+"/subscription/nope/skip_all", "", 404, "partition-0", "subscription nope does not exist")
	r.want("PUT", pt+"/unload", "", 204)
	r.want("DELETE", pt+"/subscription/s", "", 204)
	r.want("GET", pt+"/subscriptions", "", 200, `[]`)
}
