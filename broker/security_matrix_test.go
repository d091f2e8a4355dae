package broker_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
)

// TestIsolationMatrixRESTMutations: each mutating admin path of tenant ta
// (namespaces, policies, permissions, subscriptions, topics), partitioned
// stats and lookup answer exactly 401 without a token, 403 to the admin of
// another tenant (and to a role that only produces), and succeed for ta's
// admin; a refused request changes nothing.
func TestIsolationMatrixRESTMutations(t *testing.T) {
	s := newSecured(t)
	su := func(method, path, body string, code int) string {
		t.Helper()
		got, out := s.http(t, "superuser", method, path, body)
		if got != code {
			t.Fatalf("setup %s %s: %d %s, want %d", method, path, got, out, code)
		}
		return out
	}
	const ns, tp = "/admin/v2/namespaces/ta", "/admin/v2/persistent/ta/ns"
	su("PUT", tp+"/t1", "", 204)
	su("PUT", tp+"/t1/subscription/s1", `{"ledgerId":-1,"entryId":-1}`, 204)
	su("PUT", tp+"/tdel", "", 204)
	su("PUT", tp+"/tterm", "", 204)
	su("PUT", tp+"/pt/partitions", "2", 204)
	su("PUT", ns+"/nsdel", "", 204)
	cl, err := client.New(s.c.ServiceURL(), client.WithToken(s.tokens["superuser"]), client.WithLogger(s.c.Log))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxT(t, time.Minute)
	p, err := cl.CreateProducer(ctx, "persistent://ta/ns/t1", client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	produceN(t, p, 0, 5)
	p.Close()
	backlog := func() int64 {
		t.Helper()
		var st struct {
			Subscriptions map[string]struct {
				MsgBacklog int64 `json:"msgBacklog"`
			} `json:"subscriptions"`
		}
		if err := json.Unmarshal([]byte(su("GET", tp+"/t1/stats", "", 200)), &st); err != nil {
			t.Fatal(err)
		}
		return st.Subscriptions["s1"].MsgBacklog
	}
	wantBacklog := func(n int64) func() error {
		return func() error {
			if b := backlog(); b != n {
				return fmt.Errorf("backlog of s1 %d, want %d", b, n)
			}
			return nil
		}
	}
	status := func(method, path string, code int) func() error {
		return func() error {
			if got, out := s.http(t, "superuser", method, path, ""); got != code {
				return fmt.Errorf("%s %s: %d %s, want %d", method, path, got, out, code)
			}
			return nil
		}
	}
	body := func(path string, want bool, substr string) func() error {
		return func() error {
			_, out := s.http(t, "superuser", "GET", path, "")
			if strings.Contains(out, substr) != want {
				return fmt.Errorf("GET %s: %s; contains %q: %v, want %v", path, out, substr, !want, want)
			}
			return nil
		}
	}
	terminated := func(want bool) func() error {
		return func() error {
			var in struct {
				State string `json:"state"`
			}
			json.Unmarshal([]byte(su("GET", tp+"/tterm/internalStats", "", 200)), &in)
			if (in.State == "Terminated") != want {
				return fmt.Errorf("tterm state %q, terminated want %v", in.State, want)
			}
			return nil
		}
	}
	ops := []struct {
		method, path, body string
		ok                 int          // alice's answer
		app                int          // the producer role's answer (403 unless it may look up)
		before, after      func() error // state after the refused attempts / after alice
	}{
		{"PUT", ns + "/ns-{who}", "", 204, 403, body(ns, false, "ta/ns-"), body(ns, true, "ta/ns-alice")},
		{"DELETE", ns + "/nsdel", "", 204, 403, status("GET", ns+"/nsdel", 200), status("GET", ns+"/nsdel", 404)},
		{"POST", ns + "/ns/messageTTL", "{ttl}", 204, 403, body(ns+"/ns/messageTTL", false, "1"), body(ns+"/ns/messageTTL", true, "120")},
		{"POST", ns + "/ns/permissions/role-{who}", `["consume"]`, 204, 403, body(ns+"/ns/permissions", false, "role-"), body(ns+"/ns/permissions", true, `"role-alice":["consume"]`)},
		{"DELETE", ns + "/ns/permissions/reader", "", 204, 403, body(ns+"/ns/permissions", true, `"reader"`), body(ns+"/ns/permissions", false, `"reader"`)},
		{"POST", tp + "/t1/permissions/trole-{who}", `["produce"]`, 204, 403, body(tp+"/t1/permissions", false, "trole-"), body(tp+"/t1/permissions", true, `"trole-alice":["produce"]`)},
		{"DELETE", tp + "/t1/permissions/trole-alice", "", 204, 403, body(tp+"/t1/permissions", true, "trole-alice"), body(tp+"/t1/permissions", false, "trole-alice")},
		{"POST", tp + "/t1/subscription/s1/skip_all", "", 204, 403, wantBacklog(5), wantBacklog(0)},
		{"POST", tp + "/t1/subscription/s1/resetcursor/0", "", 204, 403, wantBacklog(0), wantBacklog(5)},
		{"POST", tp + "/t1/subscription/s1/expireMessages/0", "", 204, 403, wantBacklog(5), wantBacklog(0)},
		{"POST", tp + "/tterm/terminate", "", 200, 403, terminated(false), terminated(true)},
		{"PUT", tp + "/tnew-{who}", "", 204, 403, body(tp, false, "tnew-"), body(tp, true, "persistent://ta/ns/tnew-alice")},
		{"DELETE", tp + "/tdel", "", 204, 403, status("GET", tp+"/tdel/stats", 200), status("GET", tp+"/tdel/stats", 404)},
		{"GET", tp + "/pt/partitioned-stats", "", 200, 403, nil, nil},
		{"GET", "/lookup/v2/topic/persistent/ta/ns/t1", "", 200, 200, nil, nil},
	}
	ttl := map[string]string{"none": "1", "bob": "11", "app": "111", "alice": "120"}
	for _, op := range ops {
		want := []struct {
			who  string
			code int
		}{{"none", 401}, {"bob", 403}, {"app", op.app}, {"alice", op.ok}}
		for _, w := range want {
			if w.who == "alice" && op.before != nil {
				if err := op.before(); err != nil {
					t.Errorf("%s %s after the refused attempts: %v", op.method, op.path, err)
				}
			}
			path := strings.ReplaceAll(op.path, "{who}", w.who)
			got, out := s.http(t, w.who, op.method, path, strings.ReplaceAll(op.body, "{ttl}", ttl[w.who]))
			if got != w.code {
				t.Errorf("%s %s as %s: %d %s, want %d", op.method, path, w.who, got, out, w.code)
			}
		}
		if op.after != nil {
			if err := op.after(); err != nil {
				t.Errorf("%s %s after ta's admin: %v", op.method, op.path, err)
			}
		}
	}
}
