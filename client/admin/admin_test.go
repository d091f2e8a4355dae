package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-mq/strata/broker"
	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/client/admin"
	"github.com/strata-mq/strata/internal/standalone"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/auth"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// server is a running standalone with authentication and authorization on;
// superuser role "admin".
type server struct {
	s      *standalone.Standalone
	secret []byte
}

func startStandalone(t *testing.T) *server {
	t.Helper()
	secret, err := auth.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "data:;base64," + auth.EncodeSecretKey(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return &server{s: testcluster.StartSecureStandalone(t, authn), secret: secret}
}

func (s *server) token(t *testing.T, role string) string {
	t.Helper()
	tok, err := auth.CreateToken(s.secret, auth.TokenOptions{Subject: role})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *server) admin(t *testing.T, role string) *admin.Client {
	t.Helper()
	var opts []admin.Option
	if role != "" {
		opts = append(opts, admin.WithToken(s.token(t, role)))
	}
	c, err := admin.New(s.s.Broker.HTTPURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr checks that err is an *admin.Error with the status and a reason
// containing substr.
func wantErr(t *testing.T, what string, err error, status int, substr string) {
	t.Helper()
	var ae *admin.Error
	if !errors.As(err, &ae) {
		t.Fatalf("%s: want *admin.Error %d, got %v", what, status, err)
	}
	if ae.Status != status || !strings.Contains(ae.Reason, substr) {
		t.Fatalf("%s: got %d %q, want %d with %q", what, ae.Status, ae.Reason, status, substr)
	}
	if ae.Error() != ae.Reason {
		t.Fatalf("%s: Error() = %q, want the reason", what, ae.Error())
	}
}

func TestClientAgainstStandalone(t *testing.T) {
	srv := startStandalone(t)
	c := srv.admin(t, "admin")
	t.Run("Auth", func(t *testing.T) { testAuth(t, srv) })
	t.Run("Clusters", func(t *testing.T) { testClusters(t, c) })
	t.Run("Tenants", func(t *testing.T) { testTenants(t, c) })
	t.Run("Namespaces", func(t *testing.T) { testNamespaces(t, srv, c) })
	t.Run("NamespacePolicies", func(t *testing.T) { testNamespacePolicies(t, c) })
	t.Run("Topics", func(t *testing.T) { testTopics(t, srv, c) })
	t.Run("PartitionedTopics", func(t *testing.T) { testPartitioned(t, c) })
	t.Run("TopicPolicies", func(t *testing.T) { testTopicPolicies(t, c) })
}

func testAuth(t *testing.T, srv *server) {
	ctx := context.Background()
	_, err := srv.admin(t, "").Tenants().List(ctx)
	wantErr(t, "list without token", err, http.StatusUnauthorized, "")
	err = srv.admin(t, "nobody").Tenants().Create(ctx, "nobody-tenant", tenants.TenantInfo{})
	wantErr(t, "create tenant as non-superuser", err, http.StatusForbidden, "superuser")
	bad, err := admin.New(srv.s.Broker.HTTPURL(), admin.WithToken("not.a.jwt"))
	check(t, "new", err)
	_, err = bad.Tenants().List(ctx)
	wantErr(t, "malformed token", err, http.StatusUnauthorized, "")
}

func testClusters(t *testing.T, c *admin.Client) {
	ctx := context.Background()
	cl := c.Clusters()
	names, err := cl.List(ctx)
	check(t, "list", err)
	if !slices.Contains(names, "standalone") {
		t.Fatalf("clusters %v lack standalone", names)
	}
	sd, err := cl.Get(ctx, "standalone")
	check(t, "get standalone", err)
	if sd.ServiceURL == "" || sd.BrokerServiceURL == "" {
		t.Fatalf("standalone cluster data %+v", sd)
	}
	west := tenants.ClusterData{ServiceURL: "http://west:8080", BrokerServiceURL: "west:6650"}
	check(t, "create west", cl.Create(ctx, "west", west))
	wantErr(t, "create west again", cl.Create(ctx, "west", west), http.StatusConflict, "west")
	got, err := cl.Get(ctx, "west")
	check(t, "get west", err)
	testutil.Equal(t, "west", got, west)
	west.ServiceURL = "http://west2:8080"
	check(t, "update west", cl.Update(ctx, "west", west))
	got, err = cl.Get(ctx, "west")
	check(t, "get west", err)
	testutil.Equal(t, "updated west", got, west)
	wantErr(t, "bad url", cl.Create(ctx, "east", tenants.ClusterData{ServiceURL: "not a url"}), http.StatusBadRequest, "serviceUrl")
	check(t, "delete west", cl.Delete(ctx, "west"))
	_, err = cl.Get(ctx, "west")
	wantErr(t, "get deleted west", err, http.StatusNotFound, "west")
}

func testTenants(t *testing.T, c *admin.Client) {
	ctx := context.Background()
	tn := c.Tenants()
	info := tenants.TenantInfo{AdminRoles: []string{"acme-admin"}, AllowedClusters: []string{"standalone"}}
	check(t, "create", tn.Create(ctx, "acme", info))
	wantErr(t, "create again", tn.Create(ctx, "acme", info), http.StatusConflict, "acme")
	list, err := tn.List(ctx)
	check(t, "list", err)
	if !slices.Contains(list, "acme") || !slices.Contains(list, "public") {
		t.Fatalf("tenants %v", list)
	}
	got, err := tn.Get(ctx, "acme")
	check(t, "get", err)
	testutil.Equal(t, "tenant", got, info)
	info.AdminRoles = []string{"acme-admin", "acme-ops"}
	check(t, "update", tn.Update(ctx, "acme", info))
	got, err = tn.Get(ctx, "acme")
	check(t, "get", err)
	testutil.Equal(t, "updated tenant", got, info)
	_, err = tn.Get(ctx, "nope")
	wantErr(t, "get missing", err, http.StatusNotFound, "nope")
	wantErr(t, "unknown cluster", tn.Create(ctx, "other", tenants.TenantInfo{AllowedClusters: []string{"mars"}}), http.StatusPreconditionFailed, "mars")
	wantErr(t, "invalid name", tn.Create(ctx, "bad name", info), http.StatusBadRequest, "")

	// A tenant with namespaces cannot be deleted.
	check(t, "create tmp", tn.Create(ctx, "tmp", tenants.TenantInfo{}))
	check(t, "create tmp/ns", c.Namespaces().Create(ctx, "tmp/ns", nil))
	wantErr(t, "delete non-empty tenant", tn.Delete(ctx, "tmp"), http.StatusConflict, "")
	check(t, "delete tmp/ns", c.Namespaces().Delete(ctx, "tmp/ns"))
	check(t, "delete tmp", tn.Delete(ctx, "tmp"))
	_, err = tn.Get(ctx, "tmp")
	wantErr(t, "get deleted", err, http.StatusNotFound, "tmp")
}

func testNamespaces(t *testing.T, srv *server, c *admin.Client) {
	ctx := context.Background()
	ns := c.Namespaces()
	check(t, "create", ns.Create(ctx, "acme/orders", nil))
	wantErr(t, "create again", ns.Create(ctx, "acme/orders", nil), http.StatusConflict, "acme/orders")
	check(t, "create with bundles", ns.Create(ctx, "acme/audit", &tenants.Policies{Bundles: &tenants.BundlesData{NumBundles: 8}}))
	wantErr(t, "create in missing tenant", ns.Create(ctx, "nope/ns", nil), http.StatusNotFound, "nope")
	if err := ns.Create(ctx, "not-a-namespace", nil); err == nil || admin.StatusCode(err) != 0 {
		t.Fatalf("bad namespace name: %v (want a local error)", err)
	}
	list, err := ns.List(ctx, "acme")
	check(t, "list", err)
	testutil.Equal(t, "namespaces", list, []string{"acme/audit", "acme/orders"})
	p, err := ns.Policies(ctx, "acme/audit")
	check(t, "policies", err)
	if p.Bundles == nil || p.Bundles.NumBundles != 8 || !slices.Equal(p.ReplicationClusters, []string{"standalone"}) {
		t.Fatalf("policies %+v", p)
	}
	_, err = ns.Policies(ctx, "acme/nope")
	wantErr(t, "policies of missing", err, http.StatusNotFound, "acme/nope")
	topics, err := ns.Topics(ctx, "acme/audit")
	check(t, "topics", err)
	testutil.Equal(t, "topics", topics, []string{})
	check(t, "delete", ns.Delete(ctx, "acme/audit"))
	wantErr(t, "delete again", ns.Delete(ctx, "acme/audit"), http.StatusNotFound, "")

	// A tenant admin manages its own tenant's namespaces, and only those.
	acme := srv.admin(t, "acme-admin")
	check(t, "tenant admin creates", acme.Namespaces().Create(ctx, "acme/team", nil))
	check(t, "tenant admin sets ttl", acme.Namespaces().SetMessageTTL(ctx, "acme/team", 60))
	check(t, "tenant admin deletes", acme.Namespaces().Delete(ctx, "acme/team"))
	wantErr(t, "tenant admin elsewhere", acme.Namespaces().Create(ctx, "public/mine", nil), http.StatusForbidden, "")
	visible, err := acme.Tenants().List(ctx)
	check(t, "tenant admin lists tenants", err)
	testutil.Equal(t, "tenants visible to acme-admin", visible, []string{"acme"})
}

func testNamespacePolicies(t *testing.T, c *admin.Client) {
	ctx := context.Background()
	ns := c.Namespaces()
	const n = "acme/orders"

	ret, err := ns.GetRetention(ctx, n)
	check(t, "get unset retention", err)
	if ret != nil {
		t.Fatalf("unset retention = %+v, want nil", ret)
	}
	want := tenants.RetentionPolicies{RetentionTimeInMinutes: 180, RetentionSizeInMB: 10240}
	check(t, "set retention", ns.SetRetention(ctx, n, want))
	ret, err = ns.GetRetention(ctx, n)
	check(t, "get retention", err)
	testutil.Equal(t, "retention", *ret, want)
	wantErr(t, "bad retention", ns.SetRetention(ctx, n, tenants.RetentionPolicies{RetentionTimeInMinutes: 0, RetentionSizeInMB: 10}), http.StatusBadRequest, "")
	check(t, "remove retention", ns.RemoveRetention(ctx, n))
	ret, err = ns.GetRetention(ctx, n)
	check(t, "get removed retention", err)
	if ret != nil {
		t.Fatalf("removed retention = %+v", ret)
	}

	check(t, "set ttl", ns.SetMessageTTL(ctx, n, 120))
	ttl, err := ns.GetMessageTTL(ctx, n)
	check(t, "get ttl", err)
	testutil.Equal(t, "ttl", *ttl, 120)
	wantErr(t, "negative ttl", ns.SetMessageTTL(ctx, n, -5), http.StatusBadRequest, "")
	check(t, "remove ttl", ns.RemoveMessageTTL(ctx, n))

	q := tenants.BacklogQuota{LimitSize: 1 << 30, LimitTime: -1, Policy: tenants.ProducerException}
	check(t, "set quota", ns.SetBacklogQuota(ctx, n, "", q))
	qa := tenants.BacklogQuota{LimitSize: -1, LimitTime: 3600, Policy: tenants.ConsumerBacklogEviction}
	check(t, "set age quota", ns.SetBacklogQuota(ctx, n, tenants.MessageAge, qa))
	qm, err := ns.GetBacklogQuotaMap(ctx, n)
	check(t, "get quotas", err)
	testutil.Equal(t, "quotas", qm, map[tenants.BacklogQuotaType]tenants.BacklogQuota{tenants.DestinationStorage: q, tenants.MessageAge: qa})
	wantErr(t, "bad quota policy", ns.SetBacklogQuota(ctx, n, "", tenants.BacklogQuota{LimitSize: 1, Policy: "drop_everything"}), http.StatusBadRequest, "")
	wantErr(t, "bad quota type", ns.SetBacklogQuota(ctx, n, "weight", q), http.StatusBadRequest, "")
	check(t, "remove age quota", ns.RemoveBacklogQuota(ctx, n, tenants.MessageAge))
	qm, err = ns.GetBacklogQuotaMap(ctx, n)
	check(t, "get quotas", err)
	testutil.Equal(t, "quotas after remove", qm, map[tenants.BacklogQuotaType]tenants.BacklogQuota{tenants.DestinationStorage: q})

	pp := tenants.PersistencePolicies{BookkeeperEnsemble: 1, BookkeeperWriteQuorum: 1, BookkeeperAckQuorum: 1, ManagedLedgerMaxMarkDeleteRate: 2}
	check(t, "set persistence", ns.SetPersistence(ctx, n, pp))
	gotPP, err := ns.GetPersistence(ctx, n)
	check(t, "get persistence", err)
	testutil.Equal(t, "persistence", *gotPP, pp)
	wantErr(t, "bad persistence", ns.SetPersistence(ctx, n, tenants.PersistencePolicies{BookkeeperEnsemble: 1, BookkeeperWriteQuorum: 2, BookkeeperAckQuorum: 1}), http.StatusBadRequest, "")
	check(t, "remove persistence", ns.RemovePersistence(ctx, n))

	check(t, "set offload threshold", ns.SetOffloadThreshold(ctx, n, 10<<20))
	ot, err := ns.GetOffloadThreshold(ctx, n)
	check(t, "get offload threshold", err)
	testutil.Equal(t, "offload threshold", *ot, int64(10<<20))
	check(t, "set offload threshold seconds", ns.SetOffloadThresholdInSeconds(ctx, n, 3600))
	ots, err := ns.GetOffloadThresholdInSeconds(ctx, n)
	check(t, "get offload threshold seconds", err)
	testutil.Equal(t, "offload threshold seconds", *ots, int64(3600))
	check(t, "set deletion lag", ns.SetOffloadDeletionLag(ctx, n, 4*3600*1000))
	lag, err := ns.GetOffloadDeletionLag(ctx, n)
	check(t, "get deletion lag", err)
	testutil.Equal(t, "deletion lag", *lag, int64(4*3600*1000))
	check(t, "clear deletion lag", ns.ClearOffloadDeletionLag(ctx, n))
	lag, err = ns.GetOffloadDeletionLag(ctx, n)
	check(t, "get cleared lag", err)
	if lag != nil {
		t.Fatalf("cleared lag = %d", *lag)
	}
	check(t, "set compaction threshold", ns.SetCompactionThreshold(ctx, n, 100<<20))
	ct, err := ns.GetCompactionThreshold(ctx, n)
	check(t, "get compaction threshold", err)
	testutil.Equal(t, "compaction threshold", *ct, int64(100<<20))

	check(t, "set clusters", ns.SetClusters(ctx, n, []string{"standalone"}))
	cls, err := ns.GetClusters(ctx, n)
	check(t, "get clusters", err)
	testutil.Equal(t, "clusters", cls, []string{"standalone"})
	wantErr(t, "unknown cluster", ns.SetClusters(ctx, n, []string{"mars"}), http.StatusPreconditionFailed, "mars")
	wantErr(t, "no cluster", ns.SetClusters(ctx, n, []string{}), http.StatusBadRequest, "empty")

	check(t, "set dedup", ns.SetDeduplication(ctx, n, true))
	dd, err := ns.GetDeduplication(ctx, n)
	check(t, "get dedup", err)
	testutil.Equal(t, "dedup", *dd, true)
	check(t, "remove dedup", ns.RemoveDeduplication(ctx, n))

	check(t, "grant", ns.GrantPermission(ctx, n, "app", []tenants.AuthAction{tenants.ActionProduce, tenants.ActionConsume}))
	check(t, "grant role with slash", ns.GrantPermission(ctx, n, "team/app 2", []tenants.AuthAction{tenants.ActionConsume}))
	perms, err := ns.Permissions(ctx, n)
	check(t, "permissions", err)
	testutil.Equal(t, "permissions", perms, map[string][]tenants.AuthAction{"app": {"produce", "consume"}, "team/app 2": {"consume"}})
	wantErr(t, "bad action", ns.GrantPermission(ctx, n, "app", []tenants.AuthAction{"fly"}), http.StatusBadRequest, "fly")
	check(t, "revoke", ns.RevokePermission(ctx, n, "team/app 2"))
	perms, err = ns.Permissions(ctx, n)
	check(t, "permissions", err)
	testutil.Equal(t, "permissions after revoke", perms, map[string][]tenants.AuthAction{"app": {"produce", "consume"}})

	check(t, "grant sub", ns.GrantSubscriptionPermission(ctx, n, "billing", []string{"app", "ops"}))
	sp, err := ns.SubscriptionPermissions(ctx, n)
	check(t, "sub permissions", err)
	testutil.Equal(t, "sub permissions", sp, map[string][]string{"billing": {"app", "ops"}})
	check(t, "revoke sub", ns.RevokeSubscriptionPermission(ctx, n, "billing", "ops"))
	sp, err = ns.SubscriptionPermissions(ctx, n)
	check(t, "sub permissions", err)
	testutil.Equal(t, "sub permissions after revoke", sp, map[string][]string{"billing": {"app"}})
	check(t, "set auth mode", ns.SetSubscriptionAuthMode(ctx, n, "Prefix"))
	mode, err := ns.GetSubscriptionAuthMode(ctx, n)
	check(t, "get auth mode", err)
	testutil.Equal(t, "auth mode", mode, "Prefix")
	check(t, "reset auth mode", ns.SetSubscriptionAuthMode(ctx, n, "None"))

	pr := tenants.PublishRate{PublishThrottlingRateInMsg: 1000, PublishThrottlingRateInByte: -1}
	check(t, "set publish rate", ns.SetPublishRate(ctx, n, pr))
	gotPR, err := ns.GetPublishRate(ctx, n)
	check(t, "get publish rate", err)
	testutil.Equal(t, "publish rate", *gotPR, pr)
	check(t, "remove publish rate", ns.RemovePublishRate(ctx, n))
	gotPR, err = ns.GetPublishRate(ctx, n)
	check(t, "get removed publish rate", err)
	if gotPR != nil {
		t.Fatalf("removed publish rate = %+v", gotPR)
	}
	dr := tenants.DispatchRate{DispatchThrottlingRateInMsg: 500, DispatchThrottlingRateInByte: -1, RatePeriodInSecond: 1}
	check(t, "set dispatch rate", ns.SetDispatchRate(ctx, n, dr))
	gotDR, err := ns.GetDispatchRate(ctx, n)
	check(t, "get dispatch rate", err)
	testutil.Equal(t, "dispatch rate", *gotDR, dr)
	check(t, "remove dispatch rate", ns.RemoveDispatchRate(ctx, n))
	check(t, "set sub dispatch rate", ns.SetSubscriptionDispatchRate(ctx, n, dr))
	gotDR, err = ns.GetSubscriptionDispatchRate(ctx, n)
	check(t, "get sub dispatch rate", err)
	testutil.Equal(t, "sub dispatch rate", *gotDR, dr)
	check(t, "remove sub dispatch rate", ns.RemoveSubscriptionDispatchRate(ctx, n))

	limits := []struct {
		name   string
		set    func(context.Context, string, int) error
		get    func(context.Context, string) (*int, error)
		remove func(context.Context, string) error
	}{
		{"max producers per topic", ns.SetMaxProducersPerTopic, ns.GetMaxProducersPerTopic, ns.RemoveMaxProducersPerTopic},
		{"max consumers per topic", ns.SetMaxConsumersPerTopic, ns.GetMaxConsumersPerTopic, ns.RemoveMaxConsumersPerTopic},
		{"max consumers per subscription", ns.SetMaxConsumersPerSubscription, ns.GetMaxConsumersPerSubscription, ns.RemoveMaxConsumersPerSubscription},
	}
	for i, l := range limits {
		check(t, "set "+l.name, l.set(ctx, n, 10+i))
		v, err := l.get(ctx, n)
		check(t, "get "+l.name, err)
		testutil.Equal(t, l.name, *v, 10+i)
		wantErr(t, "negative "+l.name, l.set(ctx, n, -1), http.StatusBadRequest, "")
		check(t, "remove "+l.name, l.remove(ctx, n))
		v, err = l.get(ctx, n)
		check(t, "get removed "+l.name, err)
		if v != nil {
			t.Fatalf("removed %s = %d", l.name, *v)
		}
	}

	// Every setting shows in the policies document.
	p, err := ns.Policies(ctx, n)
	check(t, "policies", err)
	if p.OffloadThreshold == nil || *p.OffloadThreshold != 10<<20 || p.AuthPolicies.NamespaceAuth["app"] == nil || p.BacklogQuotaMap[tenants.DestinationStorage] != q {
		t.Fatalf("policies %+v", p)
	}
	_, err = ns.GetMessageTTL(ctx, "acme/nope")
	wantErr(t, "ttl of missing namespace", err, http.StatusNotFound, "acme/nope")
}

func testTopics(t *testing.T, srv *server, c *admin.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp := c.Topics()
	const topic = "persistent://acme/orders/events"

	check(t, "create", tp.Create(ctx, "acme/orders/events"))
	wantErr(t, "create again", tp.Create(ctx, topic), http.StatusConflict, "already exists")
	wantErr(t, "create in missing namespace", tp.Create(ctx, "acme/nope/t"), http.StatusNotFound, "acme/nope")
	list, err := tp.List(ctx, "acme/orders")
	check(t, "list", err)
	testutil.Equal(t, "topics", list, []string{topic})
	nsTopics, err := c.Namespaces().Topics(ctx, "acme/orders")
	check(t, "namespace topics", err)
	testutil.Equal(t, "namespace topics", nsTopics, []string{topic})

	check(t, "create sub earliest", tp.CreateSubscription(ctx, topic, "from-start", admin.Earliest))
	wantErr(t, "create sub again", tp.CreateSubscription(ctx, topic, "from-start", admin.Earliest), http.StatusConflict, "from-start")

	cl, err := client.New(srv.s.Broker.GRPCAddr(), client.WithToken(srv.token(t, "admin")))
	check(t, "client", err)
	defer cl.Close()
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	check(t, "producer", err)
	var ids []client.MessageID
	start := time.Now()
	for i := 0; i < 10; i++ {
		id, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte(fmt.Sprint(i))})
		check(t, "send", err)
		ids = append(ids, id)
	}
	p.Close()
	check(t, "create sub latest", tp.CreateSubscription(ctx, topic, "from-now", admin.Latest))
	check(t, "create sub at id", tp.CreateSubscription(ctx, topic, "from-5", admin.MessageID{LedgerID: ids[5].LedgerID, EntryID: ids[5].EntryID, PartitionIndex: -1, BatchIndex: -1}))

	subs, err := tp.Subscriptions(ctx, topic)
	check(t, "subscriptions", err)
	testutil.Equal(t, "subscriptions", subs, []string{"from-5", "from-now", "from-start"})
	backlog := func(sub string) int64 {
		t.Helper()
		st, err := tp.Stats(ctx, topic)
		check(t, "stats", err)
		ss, ok := st.Subscriptions[sub]
		if !ok {
			t.Fatalf("stats lack subscription %s: %+v", sub, st)
		}
		return ss.MsgBacklog
	}
	st, err := tp.Stats(ctx, topic)
	check(t, "stats", err)
	if st.MsgInCounter != 10 || st.StorageSize == 0 || len(st.Subscriptions) != 3 {
		t.Fatalf("stats %+v", st)
	}
	testutil.Equal(t, "backlogs", []int64{backlog("from-start"), backlog("from-now"), backlog("from-5")}, []int64{10, 0, 5})

	is, err := tp.InternalStats(ctx, topic)
	check(t, "internal stats", err)
	if is.NumberOfEntries != 10 || len(is.Ledgers) == 0 || len(is.Cursors) != 3 || is.LastConfirmedEntry != fmt.Sprintf("%d:%d", ids[9].LedgerID, ids[9].EntryID) {
		t.Fatalf("internal stats %+v", is)
	}

	check(t, "skip 3", tp.Skip(ctx, topic, "from-start", 3))
	testutil.Equal(t, "backlog after skip", backlog("from-start"), int64(7))
	wantErr(t, "skip on missing sub", tp.Skip(ctx, topic, "nope", 1), http.StatusNotFound, "nope")
	check(t, "reset to start time", tp.ResetCursor(ctx, topic, "from-start", start.Add(-time.Minute)))
	testutil.Equal(t, "backlog after reset by time", backlog("from-start"), int64(10))
	check(t, "reset to id", tp.ResetCursorToMessageID(ctx, topic, "from-start", admin.MessageID{LedgerID: ids[8].LedgerID, EntryID: ids[8].EntryID, PartitionIndex: -1, BatchIndex: -1}))
	testutil.Equal(t, "backlog after reset by id", backlog("from-start"), int64(2))
	check(t, "skip all", tp.SkipAll(ctx, topic, "from-5"))
	testutil.Equal(t, "backlog after skip all", backlog("from-5"), int64(0))
	check(t, "expire nothing", tp.ExpireMessages(ctx, topic, "from-start", 3600))
	testutil.Equal(t, "backlog after expire of old", backlog("from-start"), int64(2))
	check(t, "expire", tp.ExpireMessages(ctx, topic, "from-start", 0))
	testutil.Equal(t, "backlog after expire", backlog("from-start"), int64(0))
	check(t, "reset to start", tp.ResetCursor(ctx, topic, "from-start", time.UnixMilli(0)))
	check(t, "expire all", tp.ExpireAllMessages(ctx, topic, 0))
	testutil.Equal(t, "backlog after expire all", backlog("from-start"), int64(0))

	last, err := tp.LastMessageID(ctx, topic)
	check(t, "last message id", err)
	testutil.Equal(t, "last message id", [2]int64{last.LedgerID, last.EntryID}, [2]int64{ids[9].LedgerID, ids[9].EntryID})

	ld, err := tp.Lookup(ctx, topic)
	check(t, "lookup", err)
	if ld.BrokerURL != "pulsar://"+srv.s.Broker.GRPCAddr() || ld.HTTPURL != srv.s.Broker.HTTPURL() {
		t.Fatalf("lookup %+v, want %s %s", ld, srv.s.Broker.GRPCAddr(), srv.s.Broker.HTTPURL())
	}

	check(t, "grant", tp.GrantPermission(ctx, topic, "reader", []tenants.AuthAction{tenants.ActionConsume}))
	perms, err := tp.Permissions(ctx, topic)
	check(t, "permissions", err)
	testutil.Equal(t, "topic permissions", perms, map[string][]tenants.AuthAction{"app": {"produce", "consume"}, "reader": {"consume"}})
	check(t, "revoke", tp.RevokePermission(ctx, topic, "reader"))
	check(t, "revoke again (nothing to revoke succeeds)", tp.RevokePermission(ctx, topic, "reader"))

	// This standalone has no offload driver: a precise refusal.
	err = tp.Offload(ctx, topic, last)
	if admin.StatusCode(err) != http.StatusPreconditionFailed || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("offload without a driver: %v", err)
	}
	if _, err := tp.OffloadStatus(ctx, topic); admin.StatusCode(err) != http.StatusPreconditionFailed {
		t.Fatalf("offload status without a driver: %v", err)
	}

	check(t, "unload", tp.Unload(ctx, topic))
	testutil.Equal(t, "backlog after unload", backlog("from-now"), int64(0))
	term, err := tp.Terminate(ctx, topic)
	check(t, "terminate", err)
	testutil.Equal(t, "terminated at", [2]int64{term.LedgerID, term.EntryID}, [2]int64{ids[9].LedgerID, ids[9].EntryID})
	if term.PartitionIndex != -1 {
		t.Fatalf("terminate partition index %d, want -1", term.PartitionIndex)
	}
	p2, err := cl.CreateProducer(ctx, topic)
	if err == nil {
		_, err = p2.Send(ctx, &client.ProducerMessage{Payload: []byte("late")})
		p2.Close()
	}
	if !errors.Is(err, client.ErrTopicTerminated) {
		t.Fatalf("a message to a terminated topic: %v, want ErrTopicTerminated", err)
	}

	check(t, "delete sub", tp.DeleteSubscription(ctx, topic, "from-5", false))
	wantErr(t, "delete sub again", tp.DeleteSubscription(ctx, topic, "from-5", false), http.StatusNotFound, "from-5")
	// A refused namespace delete leaves the namespace usable throughout:
	// requests right after it find it (it used to vanish for a moment).
	for range 10 {
		wantErr(t, "delete namespace with topics", c.Namespaces().Delete(ctx, "acme/orders"), http.StatusConflict, "")
		_, err := tp.Stats(ctx, topic)
		check(t, "stats right after a refused namespace delete", err)
	}
	check(t, "delete", tp.Delete(ctx, topic, false))
	_, err = tp.Stats(ctx, topic)
	wantErr(t, "stats of deleted", err, http.StatusNotFound, "")
	wantErr(t, "delete again", tp.Delete(ctx, topic, false), http.StatusNotFound, "")
	if _, err := tp.Stats(ctx, "a/b/c/d"); err == nil || admin.StatusCode(err) != 0 {
		t.Fatalf("bad topic name: %v (want a local error)", err)
	}
}

func testPartitioned(t *testing.T, c *admin.Client) {
	ctx := context.Background()
	tp := c.Topics()
	const topic = "persistent://acme/orders/parts"
	check(t, "create", tp.CreatePartitioned(ctx, "acme/orders/parts", 3))
	wantErr(t, "create again", tp.CreatePartitioned(ctx, topic, 3), http.StatusConflict, "")
	wantErr(t, "zero partitions", tp.CreatePartitioned(ctx, "acme/orders/zero", 0), http.StatusBadRequest, "partitions")
	md, err := tp.GetPartitioned(ctx, topic)
	check(t, "get", err)
	testutil.Equal(t, "partitions", md.Partitions, 3)
	check(t, "update", tp.UpdatePartitioned(ctx, topic, 4))
	wantErr(t, "shrink", tp.UpdatePartitioned(ctx, topic, 2), http.StatusBadRequest, "")
	md, err = tp.GetPartitioned(ctx, topic)
	check(t, "get", err)
	testutil.Equal(t, "partitions after update", md.Partitions, 4)
	plain, err := tp.GetPartitioned(ctx, "acme/orders/not-partitioned")
	check(t, "get of a non-partitioned topic", err)
	testutil.Equal(t, "partitions of a non-partitioned topic", plain.Partitions, 0)
	list, err := tp.ListPartitioned(ctx, "acme/orders")
	check(t, "list", err)
	testutil.Equal(t, "partitioned topics", list, []string{topic})

	check(t, "create partition 1", tp.Create(ctx, topic+"-partition-1"))
	check(t, "sub on partition 1", tp.CreateSubscription(ctx, topic+"-partition-1", "s", admin.Earliest))
	ps, err := tp.PartitionedStats(ctx, topic, true)
	check(t, "partitioned stats", err)
	if _, ok := ps.Subscriptions["s"]; !ok || ps.Metadata.Partitions != 4 || len(ps.Partitions) != 1 {
		t.Fatalf("partitioned stats %+v", ps)
	}
	_, err = tp.Stats(ctx, topic)
	wantErr(t, "stats of the partitioned topic", err, http.StatusNotFound, "partitioned")
	check(t, "delete", tp.DeletePartitioned(ctx, topic, false))
	list, err = tp.ListPartitioned(ctx, "acme/orders")
	check(t, "list", err)
	testutil.Equal(t, "partitioned topics after delete", list, []string{})
	_, err = tp.Stats(ctx, topic+"-partition-1")
	wantErr(t, "stats of a deleted partition", err, http.StatusNotFound, "")
}

// TestClientFollowsOwnerRedirects: with two brokers and authentication on,
// requests sent to one broker about topics the other serves are redirected
// (307) and followed with their method, body and token.
func TestClientFollowsOwnerRedirects(t *testing.T) {
	secret, err := auth.GenerateSecretKey()
	check(t, "secret", err)
	authn, err := auth.NewAuthenticator(auth.AuthenticatorOptions{SecretKey: "data:;base64," + auth.EncodeSecretKey(secret)})
	check(t, "authenticator", err)
	tc := testcluster.New(t, testcluster.Config{Bookies: 1, Brokers: 2, BrokerOptions: func(i int, o *broker.Options) {
		o.Authentication, o.AuthorizationEnabled, o.SuperUserRoles = authn, true, []string{"admin"}
	}})
	tok, err := auth.CreateToken(secret, auth.TokenOptions{Subject: "admin"})
	check(t, "token", err)
	counter := &redirectCounter{}
	c, err := admin.New(tc.Broker(0).B.HTTPURL(), admin.WithToken(tok), admin.WithHTTPClient(&http.Client{Transport: counter}))
	check(t, "new", err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Find a topic served by broker 1.
	other := tc.Broker(1).B.HTTPURL()
	var topic string
	for i := 0; i < 64 && topic == ""; i++ {
		name := fmt.Sprintf("redirected-%d", i)
		ld, err := c.Topics().Lookup(ctx, name)
		check(t, "lookup", err)
		if ld.HTTPURL == other {
			topic = name
		}
	}
	if topic == "" {
		t.Fatal("no topic was assigned to broker 1")
	}
	tp := c.Topics()
	check(t, "create", tp.Create(ctx, topic))
	check(t, "create subscription", tp.CreateSubscription(ctx, topic, "s", admin.Earliest))
	cl, err := client.New(tc.ServiceURL(), client.WithToken(tok))
	check(t, "client", err)
	defer cl.Close()
	p, err := cl.CreateProducer(ctx, topic, client.WithoutBatching())
	check(t, "producer", err)
	var ids []client.MessageID
	for i := 0; i < 4; i++ {
		id, err := p.Send(ctx, &client.ProducerMessage{Payload: []byte("m")})
		check(t, "send", err)
		ids = append(ids, id)
	}
	p.Close()
	st, err := tp.Stats(ctx, topic)
	check(t, "stats", err)
	testutil.Equal(t, "backlog", st.Subscriptions["s"].MsgBacklog, int64(4))
	check(t, "reset to id", tp.ResetCursorToMessageID(ctx, topic, "s", admin.MessageID{LedgerID: ids[3].LedgerID, EntryID: ids[3].EntryID, PartitionIndex: -1, BatchIndex: -1}))
	st, err = tp.Stats(ctx, topic)
	check(t, "stats", err)
	testutil.Equal(t, "backlog after reset", st.Subscriptions["s"].MsgBacklog, int64(1))
	last, err := tp.Terminate(ctx, topic)
	check(t, "terminate", err)
	testutil.Equal(t, "terminated at", [2]int64{last.LedgerID, last.EntryID}, [2]int64{ids[3].LedgerID, ids[3].EntryID})
	check(t, "delete", tp.Delete(ctx, topic, true))
	_, err = tp.Stats(ctx, topic)
	wantErr(t, "stats of the deleted topic", err, http.StatusNotFound, "")
	t.Logf("%d redirects followed", counter.redirects.Load())
	if n := counter.redirects.Load(); n < 6 {
		t.Fatalf("%d redirects followed, want one per topic request", n)
	}
}

// redirectCounter counts the redirect answers passing through it.
type redirectCounter struct{ redirects atomic.Int64 }

func (r *redirectCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTemporaryRedirect {
		r.redirects.Add(1)
	}
	return resp, err
}
