package broker_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-mq/strata/client"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/testcluster"
	"github.com/strata-mq/strata/internal/testutil"
	"github.com/strata-mq/strata/tenants"
)

// routeAccess is who may call a route of the broker's HTTP API.
type routeAccess int

const (
	open        routeAccess = iota // anyone, without a token
	anyRole                        // any authenticated role
	lookupRole                     // roles granted produce or consume, the tenant's admins, superusers
	tenantAdmin                    // the tenant's admins and superusers
	superUser                      // superusers only
)

// routeCase is how the matrix calls a route and what the callers allowed get.
type routeCase struct {
	access routeAccess
	// vals overrides routeValues for this route ("name=value ...");
	// {name} in the path, rest and body is replaced by the value.
	vals string
	body string
	rest string // appended to a pattern ending in "/" (a subtree)
	// want is the status of the first allowed caller (of every allowed
	// caller for a GET); 0 means any 2xx.
	want int
	// inert: a successful call changes nothing tenantSnapshot shows.
	inert bool
}

// routeValues fill the path wildcards: tenant tb's resources.
var routeValues = map[string]string{
	"tenant": "tb", "namespace": "ns", "topic": "t1", "sub": "s1", "subscription": "s1",
	"role": "reader", "cluster": testcluster.ClusterName, "n": "1", "seconds": "0", "timestamp": "0", "version": "0", "entry": "0",
}

// matrixCallers call every route, in this order: no token, a superuser
// token signed with another key, an expired superuser token, a role with
// no permission,
// a role granted produce on tb/ns (no admin right), tenant ta's admin,
// tenant tb's admin, a superuser.
var matrixCallers = []string{"none", "badsig", "expired", "nobody", "app", "alice", "bob", "superuser"}

// authenticated reports whether who has a valid token.
func authenticated(who string) bool { return who != "none" && who != "badsig" && who != "expired" }

func (a routeAccess) allows(who string) bool {
	switch a {
	case open:
		return true
	case anyRole:
		return authenticated(who)
	case lookupRole:
		return who == "app" || who == "bob" || who == "superuser"
	case tenantAdmin:
		return who == "bob" || who == "superuser"
	default:
		return who == "superuser"
	}
}

// routeTable classifies every route of the broker's HTTP API.
func routeTable() map[string]routeCase {
	const (
		cl   = "/admin/v2/clusters/{cluster}"
		tn   = "/admin/v2/tenants/{tenant}"
		ns   = "/admin/v2/namespaces/{tenant}/{namespace}"
		pns  = "/admin/v2/persistent/{tenant}/{namespace}"
		tp   = pns + "/{topic}"
		pub  = `{"publishThrottlingRateInMsg":100,"publishThrottlingRateInByte":0}`
		disp = `{"dispatchThrottlingRateInMsg":100,"dispatchThrottlingRateInByte":0,"ratePeriodInSecond":1}`
		msg  = `{"ledgerId":{ledger},"entryId":0}`
		sch  = "/admin/v2/schemas/{tenant}/{namespace}/{topic}"
		str  = `{"type":"STRING","schema":"","properties":{}}`
	)
	return map[string]routeCase{
		"GET /healthz": {access: open},
		"GET /readyz":  {access: open},
		"GET /metrics": {access: superUser}, // it covers every tenant
		// Non-persistent topics are not supported: 501 to anyone authenticated.
		"/admin/v2/non-persistent/":                                    {access: anyRole, rest: "{tenant}/{namespace}/{topic}/stats", want: 501},
		"GET /lookup/v2/topic/persistent/{tenant}/{namespace}/{topic}": {access: lookupRole},

		// Bookies are cluster-wide. Decommissioning the test cluster's only
		// bookie would stop every later write: an unknown one gets 404.
		"GET /admin/v2/bookies/all":                      {access: superUser},
		"GET /admin/v2/bookies/underreplicated":          {access: superUser},
		"GET /admin/v2/bookies/autorecovery":             {access: superUser},
		"PUT /admin/v2/bookies/{bookie}/decommission":    {access: superUser, vals: "bookie=no-such-bookie:1", want: 404, inert: true},
		"DELETE /admin/v2/bookies/{bookie}/decommission": {access: superUser, vals: "bookie=no-such-bookie:1", want: 404, inert: true},

		"GET /admin/v2/clusters": {access: anyRole},
		"GET " + cl:              {access: superUser},
		"PUT " + cl:              {access: superUser, vals: "cluster=c-new", body: `{"serviceUrl":"http://c-new:8080"}`},
		"POST " + cl:             {access: superUser, vals: "cluster=c-upd", body: `{"serviceUrl":"http://c-upd:9090"}`},
		"DELETE " + cl:           {access: superUser, vals: "cluster=c-del"},

		"GET /admin/v2/tenants": {access: anyRole},
		"GET " + tn:             {access: tenantAdmin},
		"PUT " + tn:             {access: superUser, vals: "tenant=tnew"},
		"POST " + tn:            {access: superUser, body: `{"adminRoles":["bob","eve"],"allowedClusters":["test","c-upd"]}`},
		"DELETE " + tn:          {access: superUser, vals: "tenant=tdel"},

		"GET /admin/v2/namespaces/{tenant}": {access: tenantAdmin},
		"PUT " + ns:                         {access: tenantAdmin, vals: "namespace=nsnew"},
		"GET " + ns:                         {access: tenantAdmin},
		"DELETE " + ns:                      {access: tenantAdmin, vals: "namespace=nsdel"},
		"GET " + ns + "/topics":             {access: tenantAdmin},

		"GET " + ns + "/retention":                                {access: tenantAdmin},
		"POST " + ns + "/retention":                               {access: tenantAdmin, body: `{"retentionTimeInMinutes":60,"retentionSizeInMB":10}`},
		"DELETE " + ns + "/retention":                             {access: tenantAdmin},
		"GET " + ns + "/messageTTL":                               {access: tenantAdmin},
		"POST " + ns + "/messageTTL":                              {access: tenantAdmin, body: "120"},
		"DELETE " + ns + "/messageTTL":                            {access: tenantAdmin},
		"GET " + ns + "/persistence":                              {access: tenantAdmin},
		"POST " + ns + "/persistence":                             {access: tenantAdmin, body: `{"bookkeeperEnsemble":1,"bookkeeperWriteQuorum":1,"bookkeeperAckQuorum":1,"managedLedgerMaxMarkDeleteRate":0}`},
		"DELETE " + ns + "/persistence":                           {access: tenantAdmin},
		"GET " + ns + "/deduplication":                            {access: tenantAdmin},
		"POST " + ns + "/deduplication":                           {access: tenantAdmin, body: "true"},
		"DELETE " + ns + "/deduplication":                         {access: tenantAdmin},
		"GET " + ns + "/offloadThreshold":                         {access: tenantAdmin},
		"PUT " + ns + "/offloadThreshold":                         {access: tenantAdmin, body: "1048576"},
		"DELETE " + ns + "/offloadThreshold":                      {access: tenantAdmin},
		"GET " + ns + "/offloadThresholdInSeconds":                {access: tenantAdmin},
		"PUT " + ns + "/offloadThresholdInSeconds":                {access: tenantAdmin, body: "3600"},
		"DELETE " + ns + "/offloadThresholdInSeconds":             {access: tenantAdmin},
		"GET " + ns + "/offloadDeletionLagMs":                     {access: tenantAdmin},
		"PUT " + ns + "/offloadDeletionLagMs":                     {access: tenantAdmin, body: "60000"},
		"DELETE " + ns + "/offloadDeletionLagMs":                  {access: tenantAdmin},
		"GET " + ns + "/compactionThreshold":                      {access: tenantAdmin},
		"PUT " + ns + "/compactionThreshold":                      {access: tenantAdmin, body: "1048576"},
		"DELETE " + ns + "/compactionThreshold":                   {access: tenantAdmin},
		"GET " + ns + "/maxProducersPerTopic":                     {access: tenantAdmin},
		"POST " + ns + "/maxProducersPerTopic":                    {access: tenantAdmin, body: "5"},
		"DELETE " + ns + "/maxProducersPerTopic":                  {access: tenantAdmin},
		"GET " + ns + "/maxConsumersPerTopic":                     {access: tenantAdmin},
		"POST " + ns + "/maxConsumersPerTopic":                    {access: tenantAdmin, body: "5"},
		"DELETE " + ns + "/maxConsumersPerTopic":                  {access: tenantAdmin},
		"GET " + ns + "/maxConsumersPerSubscription":              {access: tenantAdmin},
		"POST " + ns + "/maxConsumersPerSubscription":             {access: tenantAdmin, body: "5"},
		"DELETE " + ns + "/maxConsumersPerSubscription":           {access: tenantAdmin},
		"GET " + ns + "/maxSubscriptionsPerTopic":                 {access: tenantAdmin},
		"POST " + ns + "/maxSubscriptionsPerTopic":                {access: tenantAdmin, body: "5"},
		"DELETE " + ns + "/maxSubscriptionsPerTopic":              {access: tenantAdmin},
		"GET " + ns + "/maxTopicsPerNamespace":                    {access: tenantAdmin},
		"POST " + ns + "/maxTopicsPerNamespace":                   {access: tenantAdmin, body: "5"},
		"DELETE " + ns + "/maxTopicsPerNamespace":                 {access: tenantAdmin},
		"GET " + ns + "/publishRate":                              {access: tenantAdmin},
		"POST " + ns + "/publishRate":                             {access: tenantAdmin, body: pub},
		"DELETE " + ns + "/publishRate":                           {access: tenantAdmin},
		"GET " + ns + "/dispatchRate":                             {access: tenantAdmin},
		"POST " + ns + "/dispatchRate":                            {access: tenantAdmin, body: disp},
		"DELETE " + ns + "/dispatchRate":                          {access: tenantAdmin},
		"GET " + ns + "/subscriptionDispatchRate":                 {access: tenantAdmin},
		"POST " + ns + "/subscriptionDispatchRate":                {access: tenantAdmin, body: disp},
		"DELETE " + ns + "/subscriptionDispatchRate":              {access: tenantAdmin},
		"GET " + ns + "/replicatorDispatchRate":                   {access: tenantAdmin},
		"POST " + ns + "/replicatorDispatchRate":                  {access: tenantAdmin, body: disp},
		"DELETE " + ns + "/replicatorDispatchRate":                {access: tenantAdmin},
		"GET " + ns + "/backlogQuotaMap":                          {access: tenantAdmin},
		"POST " + ns + "/backlogQuota":                            {access: tenantAdmin, body: `{"limitSize":1048576,"policy":"producer_request_hold"}`},
		"DELETE " + ns + "/backlogQuota":                          {access: tenantAdmin},
		"GET " + ns + "/replication":                              {access: tenantAdmin},
		"POST " + ns + "/replication":                             {access: tenantAdmin, body: `["test","c-upd"]`},
		"GET " + ns + "/permissions":                              {access: tenantAdmin},
		"POST " + ns + "/permissions/{role}":                      {access: tenantAdmin, body: `["consume"]`},
		"DELETE " + ns + "/permissions/{role}":                    {access: tenantAdmin},
		"GET " + ns + "/permissions/subscription":                 {access: tenantAdmin},
		"POST " + ns + "/permissions/subscription/{subscription}": {access: tenantAdmin, body: `["reader"]`},
		"DELETE " + ns + "/permissions/{subscription}/{role}":     {access: tenantAdmin},
		"GET " + ns + "/subscriptionAuthMode":                     {access: tenantAdmin},
		"POST " + ns + "/subscriptionAuthMode":                    {access: tenantAdmin, body: `"Prefix"`},

		"GET " + pns:                                                  {access: tenantAdmin},
		"GET " + pns + "/partitioned":                                 {access: tenantAdmin},
		"PUT " + tp:                                                   {access: tenantAdmin, vals: "topic=tnew"},
		"DELETE " + tp:                                                {access: tenantAdmin, vals: "topic=tdel"},
		"PUT " + tp + "/partitions":                                   {access: tenantAdmin, vals: "topic=ptnew", body: "2"},
		"POST " + tp + "/partitions":                                  {access: tenantAdmin, vals: "topic=pt", body: "3"},
		"GET " + tp + "/partitions":                                   {access: tenantAdmin, vals: "topic=pt"},
		"DELETE " + tp + "/partitions":                                {access: tenantAdmin, vals: "topic=ptdel"},
		"GET " + tp + "/stats":                                        {access: tenantAdmin},
		"GET " + tp + "/partitioned-stats":                            {access: tenantAdmin, vals: "topic=pt"},
		"GET " + tp + "/internalStats":                                {access: tenantAdmin},
		"GET " + tp + "/subscriptions":                                {access: tenantAdmin},
		"PUT " + tp + "/subscription/{sub}":                           {access: tenantAdmin, vals: "sub=snew"},
		"DELETE " + tp + "/subscription/{sub}":                        {access: tenantAdmin, vals: "sub=sdel"},
		"POST " + tp + "/subscription/{sub}/skip/{n}":                 {access: tenantAdmin, vals: "sub=s-skip"},
		"POST " + tp + "/subscription/{sub}/skip_all":                 {access: tenantAdmin, vals: "sub=s-skipall"},
		"POST " + tp + "/subscription/{sub}/expireMessages/{seconds}": {access: tenantAdmin, vals: "sub=s-expire"},
		"POST " + tp + "/all_subscription/expireMessages/{seconds}":   {access: tenantAdmin, vals: "topic=texp"},
		"POST " + tp + "/subscription/{sub}/resetcursor/{timestamp}":  {access: tenantAdmin, vals: "sub=s-reset"},
		"POST " + tp + "/subscription/{sub}/resetcursor":              {access: tenantAdmin, vals: "sub=s-resetid", body: msg},
		"GET " + tp + "/lastMessageId":                                {access: tenantAdmin},
		"PUT " + tp + "/unload":                                       {access: tenantAdmin, inert: true},
		"POST " + tp + "/terminate":                                   {access: tenantAdmin, vals: "topic=tterm"},
		// Tiered storage is not configured: 412 once authorized.
		"PUT " + tp + "/offload":                        {access: tenantAdmin, body: msg, want: 412, inert: true},
		"GET " + tp + "/offload":                        {access: tenantAdmin, want: 412},
		"GET " + tp + "/deduplicationEnabled":           {access: tenantAdmin},
		"POST " + tp + "/deduplicationEnabled":          {access: tenantAdmin, body: "true"},
		"DELETE " + tp + "/deduplicationEnabled":        {access: tenantAdmin},
		"GET " + tp + "/publishRate":                    {access: tenantAdmin},
		"POST " + tp + "/publishRate":                   {access: tenantAdmin, body: pub},
		"DELETE " + tp + "/publishRate":                 {access: tenantAdmin},
		"GET " + tp + "/dispatchRate":                   {access: tenantAdmin},
		"POST " + tp + "/dispatchRate":                  {access: tenantAdmin, body: disp},
		"DELETE " + tp + "/dispatchRate":                {access: tenantAdmin},
		"GET " + tp + "/subscriptionDispatchRate":       {access: tenantAdmin},
		"POST " + tp + "/subscriptionDispatchRate":      {access: tenantAdmin, body: disp},
		"DELETE " + tp + "/subscriptionDispatchRate":    {access: tenantAdmin},
		"GET " + tp + "/maxProducers":                   {access: tenantAdmin},
		"POST " + tp + "/maxProducers":                  {access: tenantAdmin, body: "5"},
		"DELETE " + tp + "/maxProducers":                {access: tenantAdmin},
		"GET " + tp + "/maxConsumers":                   {access: tenantAdmin},
		"POST " + tp + "/maxConsumers":                  {access: tenantAdmin, body: "5"},
		"DELETE " + tp + "/maxConsumers":                {access: tenantAdmin},
		"GET " + tp + "/maxConsumersPerSubscription":    {access: tenantAdmin},
		"POST " + tp + "/maxConsumersPerSubscription":   {access: tenantAdmin, body: "5"},
		"DELETE " + tp + "/maxConsumersPerSubscription": {access: tenantAdmin},
		"GET " + tp + "/messageTTL":                     {access: tenantAdmin},
		"POST " + tp + "/messageTTL":                    {access: tenantAdmin, body: "120"},
		"GET " + tp + "/replication":                    {access: tenantAdmin},
		"POST " + tp + "/replication":                   {access: tenantAdmin, body: `["test"]`},
		"DELETE " + tp + "/replication":                 {access: tenantAdmin},
		"DELETE " + tp + "/messageTTL":                  {access: tenantAdmin},
		"GET " + tp + "/permissions":                    {access: tenantAdmin},
		"POST " + tp + "/permissions/{role}":            {access: tenantAdmin, body: `["consume"]`},
		"DELETE " + tp + "/permissions/{role}":          {access: tenantAdmin},
		"GET " + tp + "/schemaCompatibilityStrategy":    {access: tenantAdmin},
		"POST " + tp + "/schemaCompatibilityStrategy":   {access: tenantAdmin, body: `"FORWARD"`},
		"DELETE " + tp + "/schemaCompatibilityStrategy": {access: tenantAdmin},

		"GET " + ns + "/schemaCompatibilityStrategy": {access: tenantAdmin},
		"PUT " + ns + "/schemaCompatibilityStrategy": {access: tenantAdmin, body: `"BACKWARD"`},
		"GET " + ns + "/isAllowAutoUpdateSchema":     {access: tenantAdmin},
		"POST " + ns + "/isAllowAutoUpdateSchema":    {access: tenantAdmin, body: "false"},
		"GET " + ns + "/schemaValidationEnforced":    {access: tenantAdmin},
		"POST " + ns + "/schemaValidationEnforced":   {access: tenantAdmin, body: "true"},

		// Reading schemas needs produce or consume; changing them, tenant admin.
		"GET " + tp + "/ledger/{ledger}/entry/{entry}": {access: tenantAdmin},
		"GET " + sch + "/schema":                       {access: lookupRole, want: 404},
		"GET " + sch + "/schema/{version}":             {access: lookupRole, want: 404},
		"GET " + sch + "/schemas":                      {access: lookupRole, want: 404},
		"POST " + sch + "/schema":                      {access: tenantAdmin, body: str, inert: true},
		"DELETE " + sch + "/schema":                    {access: tenantAdmin, inert: true},
		"POST " + sch + "/compatibility":               {access: lookupRole, body: str, inert: true},
		"POST " + sch + "/version":                     {access: lookupRole, body: str, want: 404, inert: true},
	}
}

// TestIsolationMatrixAllRoutes calls every route the broker's HTTP API
// lists (Broker.HTTPRoutes), with its path naming tenant tb's resources, as
// each of matrixCallers, in registration order: the callers a route does not
// allow get exactly 401 (no valid token, even with an invalid name in the
// path) or 403, with a JSON reason, and change nothing; the allowed ones reach the operation (a success, or a
// precise non-auth error once an earlier caller changed the resource).
// A route missing from routeTable, or a table entry no longer served,
// fails the test.
func TestIsolationMatrixAllRoutes(t *testing.T) {
	s := newSecured(t)
	routes := s.c.Broker(0).B.HTTPRoutes()
	table := routeTable()
	for _, r := range routes {
		if _, ok := table[r]; !ok {
			t.Errorf("route %q is not classified in routeTable", r)
		}
	}
	for r := range table {
		if !slices.Contains(routes, r) {
			t.Errorf("routeTable classifies %q, which the broker does not serve", r)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	vals := setupTenantB(t, s)
	snapshot := tenantSnapshot(t, s)
	for _, route := range routes {
		rc := table[route]
		method, path, ok := strings.Cut(route, " ")
		if !ok {
			method, path = http.MethodGet, route+rc.rest
		}
		values := withValues(vals, rc.vals)
		pattern := path
		path, body := fill(t, pattern, values), fill(t, rc.body, values)
		// Authentication comes before names: with an invalid name, no
		// token still gets 401 (the superuser gets 400).
		for _, name := range []string{"tenant", "cluster"} {
			if rc.access == open || !strings.Contains(pattern, "{"+name+"}") {
				continue
			}
			bad := fill(t, pattern, withValues(values, name+"=bad%00name"))
			for _, w := range []struct {
				who  string
				code int
			}{{"none", http.StatusUnauthorized}, {"superuser", http.StatusBadRequest}} {
				if code, _, out := s.call(t, w.who, method, bad, body); code != w.code {
					t.Errorf("%s %s as %s: %d %s, want %d", method, bad, w.who, code, out, w.code)
				}
			}
		}
		var allowed []string
		var before string
		if method != http.MethodGet {
			before = snapshot()
		}
		for _, who := range matrixCallers {
			if rc.access.allows(who) {
				allowed = append(allowed, who)
				continue
			}
			want := http.StatusForbidden
			if !authenticated(who) {
				want = http.StatusUnauthorized
			}
			code, h, out := s.call(t, who, method, path, body)
			if code != want {
				t.Errorf("%s %s as %s: %d %s, want %d", method, path, who, code, out, want)
				continue
			}
			checkReason(t, method, path, who, code, out)
			if code == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s as %s: 401 without WWW-Authenticate: Bearer (got %q)", method, path, who, h.Get("WWW-Authenticate"))
			}
		}
		if method != http.MethodGet {
			if after := snapshot(); after != before {
				t.Errorf("%s %s: refused callers changed tenant tb:\nbefore:\n%s\nafter:\n%s", method, path, before, after)
				before = after
			}
		}
		for i, who := range allowed {
			code, _, out := s.call(t, who, method, path, body)
			want := rc.want
			switch {
			case code == http.StatusUnauthorized || code == http.StatusForbidden:
				t.Errorf("%s %s as %s: %d %s, want access", method, path, who, code, out)
			case i == 0 || method == http.MethodGet:
				if (want != 0 && code != want) || (want == 0 && code/100 != 2) {
					t.Errorf("%s %s as %s: %d %s, want %s", method, path, who, code, out, wantText(want))
				} else if code >= 400 {
					checkReason(t, method, path, who, code, out)
				}
			case code/100 != 2:
				// The first allowed caller changed the resource: an
				// error about it, not about the route or the caller.
				if code >= 500 {
					t.Errorf("%s %s as %s: %d %s, want success or a 4xx", method, path, who, code, out)
				}
				checkReason(t, method, path, who, code, out)
			}
			if route == "GET /admin/v2/tenants" {
				checkTenantList(t, who, out)
			}
		}
		if method != http.MethodGet && !rc.inert && snapshot() == before {
			t.Errorf("%s %s: the allowed callers changed nothing tenantSnapshot shows: it cannot see a refused change either", method, path)
		}
	}
}

func wantText(code int) string {
	if code == 0 {
		return "2xx"
	}
	return strconv.Itoa(code)
}

// checkReason checks that an error answer is JSON {"reason": ...} about the
// request, not a routing 404/405 (the route was reached).
func checkReason(t *testing.T, method, path, who string, code int, out string) {
	t.Helper()
	var e struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Reason == "" {
		t.Errorf("%s %s as %s: %d with body %q, want JSON {\"reason\": ...}", method, path, who, code, out)
		return
	}
	for _, routing := range []string{"no such path", "no such admin path", "method not allowed on this path"} {
		if strings.HasPrefix(e.Reason, routing) {
			t.Errorf("%s %s as %s: %d %q: the route was not reached", method, path, who, code, e.Reason)
		}
	}
}

// checkTenantList checks that GET /admin/v2/tenants lists exactly what who
// administers among ta and tb.
func checkTenantList(t *testing.T, who, out string) {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Errorf("GET /admin/v2/tenants as %s: %q: %v", who, out, err)
		return
	}
	want := map[string][]bool{ // who -> sees ta, sees tb
		"nobody": {false, false}, "app": {false, false}, "alice": {true, false}, "bob": {false, true}, "superuser": {true, true},
	}[who]
	if slices.Contains(list, "ta") != want[0] || slices.Contains(list, "tb") != want[1] {
		t.Errorf("GET /admin/v2/tenants as %s: %v; sees ta %v and tb %v, want %v and %v",
			who, list, slices.Contains(list, "ta"), slices.Contains(list, "tb"), want[0], want[1])
	}
}

// withValues returns base with the "name=value ..." overrides applied.
func withValues(base map[string]string, overrides string) map[string]string {
	out := maps.Clone(base)
	for _, kv := range strings.Fields(overrides) {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// wildcard is a {name} to fill (JSON bodies' braces are not).
var wildcard = regexp.MustCompile(`\{\w+\}`)

// fill replaces each {name} of s with its value.
func fill(t *testing.T, s string, values map[string]string) string {
	t.Helper()
	return wildcard.ReplaceAllStringFunc(s, func(w string) string {
		v, ok := values[w[1:len(w)-1]]
		if !ok {
			t.Fatalf("no value for %s in %q", w, s)
		}
		return v
	})
}

// setupTenantB creates, as the superuser, the resources of tenant tb the
// routes name, and returns routeValues plus {ledger}, the ledger of t1's
// messages.
func setupTenantB(t *testing.T, s *secured) map[string]string {
	t.Helper()
	su := func(method, path, body string) string {
		t.Helper()
		code, _, out := s.call(t, "superuser", method, path, body)
		if code/100 != 2 {
			t.Fatalf("setup %s %s: %d %s", method, path, code, out)
		}
		return out
	}
	const tp = "/admin/v2/persistent/tb/ns"
	su("PUT", "/admin/v2/clusters/c-upd", `{"serviceUrl":"http://c-upd:8080"}`)
	su("PUT", "/admin/v2/clusters/c-del", "")
	su("POST", "/admin/v2/tenants/tb", `{"adminRoles":["bob"],"allowedClusters":["test","c-upd"]}`)
	su("PUT", "/admin/v2/tenants/tdel", "")
	su("PUT", "/admin/v2/namespaces/tb/nsdel", "")
	su("POST", "/admin/v2/namespaces/tb/ns/permissions/app", `["produce"]`)
	for _, topic := range []string{"t1", "texp", "tdel", "tterm"} {
		su("PUT", tp+"/"+topic, "")
	}
	su("PUT", tp+"/pt/partitions", "2")
	su("PUT", tp+"/ptdel/partitions", "2")
	cl, err := client.New(s.c.ServiceURL(), client.WithToken(s.tokens["superuser"]), client.WithLogger(s.c.Log))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxT(t, time.Minute)
	for _, topic := range []string{"t1", "texp"} {
		p, err := cl.CreateProducer(ctx, "persistent://tb/ns/"+topic, client.WithoutBatching())
		if err != nil {
			t.Fatal(err)
		}
		produceN(t, p, 0, 5)
		p.Close()
	}
	// Subscriptions from the first message (backlog 5) or the end (0).
	const earliest = `{"ledgerId":-1,"entryId":-1}`
	for sub, from := range map[string]string{"s1": earliest, "sdel": earliest, "s-skip": earliest, "s-skipall": earliest,
		"s-expire": earliest, "s-reset": "", "s-resetid": ""} {
		su("PUT", tp+"/t1/subscription/"+sub, from)
	}
	su("PUT", tp+"/texp/subscription/s", earliest)
	var last struct {
		LedgerID int64 `json:"ledgerId"`
	}
	if err := json.Unmarshal([]byte(su("GET", tp+"/t1/lastMessageId", "")), &last); err != nil {
		t.Fatal(err)
	}
	// The broker learns the grant to app through its configuration watch.
	testutil.WaitFor(t, 10*time.Second, func() error {
		if code, _, out := s.call(t, "app", "GET", "/lookup/v2/topic/persistent/tb/ns/t1", ""); code != 200 {
			return fmt.Errorf("lookup as app: %d %s", code, out)
		}
		return nil
	})
	return withValues(routeValues, "ledger="+strconv.FormatInt(last.LedgerID, 10))
}

// tenantSnapshot returns a function describing, as the superuser sees
// them, the clusters, the tenants, tenant tb's namespaces, policies, topics,
// partitions, subscriptions and their backlogs, whether tterm is terminated
// and t1's topic policies: what a refused request must not change.
func tenantSnapshot(t *testing.T, s *secured) func() string {
	st := tenants.NewStore(s.c.Store, tenants.StoreOptions{LocalCluster: testcluster.ClusterName})
	t1 := naming.MustParseTopic("persistent://tb/ns/t1")
	return func() string {
		t.Helper()
		var b strings.Builder
		for _, p := range []string{"/admin/v2/clusters", "/admin/v2/clusters/c-upd", "/admin/v2/tenants", "/admin/v2/tenants/tb",
			"/admin/v2/namespaces/tb", "/admin/v2/namespaces/tb/ns", "/admin/v2/persistent/tb/ns",
			"/admin/v2/persistent/tb/ns/partitioned", "/admin/v2/persistent/tb/ns/pt/partitions",
			"/admin/v2/persistent/tb/ns/t1/subscriptions"} {
			code, _, out := s.call(t, "superuser", "GET", p, "")
			fmt.Fprintf(&b, "%s: %d %s\n", p, code, strings.TrimSpace(out))
		}
		// Stats carry rates and sizes: keep the backlogs only.
		for _, topic := range []string{"t1", "texp"} {
			var stats struct {
				Subscriptions map[string]struct {
					MsgBacklog int64 `json:"msgBacklog"`
				} `json:"subscriptions"`
			}
			code, _, out := s.call(t, "superuser", "GET", "/admin/v2/persistent/tb/ns/"+topic+"/stats", "")
			json.Unmarshal([]byte(out), &stats)
			fmt.Fprintf(&b, "%s stats: %d\n", topic, code)
			for _, sub := range slices.Sorted(maps.Keys(stats.Subscriptions)) {
				fmt.Fprintf(&b, "backlog %s/%s: %d\n", topic, sub, stats.Subscriptions[sub].MsgBacklog)
			}
		}
		var internal struct {
			State string `json:"state"`
		}
		code, _, out := s.call(t, "superuser", "GET", "/admin/v2/persistent/tb/ns/tterm/internalStats", "")
		json.Unmarshal([]byte(out), &internal)
		fmt.Fprintf(&b, "tterm: %d terminated %v\n", code, internal.State == "Terminated")
		tpol, err := st.GetTopicPolicies(ctxT(t, 10*time.Second), t1)
		js, _ := json.Marshal(tpol)
		fmt.Fprintf(&b, "t1 policies: %s %v\n", js, err)
		return b.String()
	}
}
