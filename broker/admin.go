package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/internal/units"
	"github.com/strata-mq/strata/ledger/managed"
	"github.com/strata-mq/strata/metadata"
	"github.com/strata-mq/strata/tenants"
	"github.com/strata-mq/strata/tenants/schema"
)

// Topic admin REST API: Pulsar's /admin/v2/persistent/... and
// /lookup/v2/topic/... paths, served next to the tenants/namespaces API of
// package tenants. Requests about a topic served by another broker are
// redirected to it (307), as Pulsar does.

type adminError struct {
	status int
	reason string
}

func (e *adminError) Error() string { return e.reason }

func httpErr(status int, format string, args ...any) error {
	return &adminError{status: status, reason: fmt.Sprintf(format, args...)}
}

// writeErr answers {"reason": ...} with the status matching err; a 401
// challenges for a bearer token, as the tenants admin handler's do.
func writeErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var ae *adminError
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.Is(err, naming.ErrInvalidName), errors.Is(err, naming.ErrUnsupportedDomain), errors.Is(err, errBadRequest),
		errors.Is(err, managed.ErrInvalidPosition):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNamespaceNotFound), errors.Is(err, ErrTopicNotFound), errors.Is(err, managed.ErrCursorNotFound),
		errors.Is(err, schema.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, schema.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, schema.ErrIncompatible):
		status = http.StatusConflict
	case errors.Is(err, ErrConsumerBusy), errors.Is(err, ErrProducerBusy), errors.Is(err, ErrTooManySubscriptions), errors.Is(err, ErrTooManyTopics):
		status = http.StatusPreconditionFailed
	case errors.Is(err, ErrNotAllowed), errors.Is(err, managed.ErrTerminated):
		status = http.StatusMethodNotAllowed
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrNotOwner), errors.Is(err, ErrTopicClosed):
		status = http.StatusServiceUnavailable
	default:
		if s := tenants.HTTPStatus(err); s != http.StatusInternalServerError {
			status = s
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
	}
	writeJSON(w, status, map[string]string{"reason": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}

// topicHandler is one topic admin operation.
type topicHandler func(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error

// adminMux serves the topic part of the admin API.
func (b *Broker) adminMux() *routeMux {
	mux := newRouteMux()
	ns := "/admin/v2/persistent/{tenant}/{namespace}"
	tp := ns + "/{topic}"
	mux.HandleFunc("GET "+ns, b.nsRoute(b.listTopics))
	mux.HandleFunc("GET "+ns+"/partitioned", b.nsRoute(b.listPartitioned))
	mux.HandleFunc("PUT "+tp, b.topicRoute(b.createTopic, false))
	mux.HandleFunc("DELETE "+tp, b.topicRoute(b.deleteTopic, true))
	mux.HandleFunc("PUT "+tp+"/partitions", b.topicRoute(b.createPartitioned, false))
	mux.HandleFunc("POST "+tp+"/partitions", b.topicRoute(b.updatePartitioned, false))
	mux.HandleFunc("GET "+tp+"/partitions", b.topicRoute(b.getPartitioned, false))
	mux.HandleFunc("DELETE "+tp+"/partitions", b.topicRoute(b.deletePartitioned, false))
	mux.HandleFunc("GET "+tp+"/stats", b.topicRoute(b.topicStats, true))
	mux.HandleFunc("GET "+tp+"/partitioned-stats", b.topicRoute(b.partitionedStats, false))
	mux.HandleFunc("GET "+tp+"/internalStats", b.topicRoute(b.internalStats, true))
	mux.HandleFunc("GET "+tp+"/subscriptions", b.partitionedRoute(b.listSubscriptions, mergeSubscriptions))
	mux.HandleFunc("PUT "+tp+"/subscription/{sub}", b.partitionedRoute(b.createSubscription, nil))
	mux.HandleFunc("DELETE "+tp+"/subscription/{sub}", b.partitionedRoute(b.deleteSubscription, nil))
	mux.HandleFunc("POST "+tp+"/subscription/{sub}/skip/{n}", b.topicRoute(b.skip, true))
	mux.HandleFunc("POST "+tp+"/subscription/{sub}/skip_all", b.partitionedRoute(b.skipAll, nil))
	mux.HandleFunc("POST "+tp+"/subscription/{sub}/expireMessages/{seconds}", b.partitionedRoute(b.expire, nil))
	mux.HandleFunc("POST "+tp+"/all_subscription/expireMessages/{seconds}", b.partitionedRoute(b.expire, nil))
	mux.HandleFunc("POST "+tp+"/subscription/{sub}/resetcursor/{timestamp}", b.partitionedRoute(b.resetCursorByTime, nil))
	mux.HandleFunc("POST "+tp+"/subscription/{sub}/resetcursor", b.topicRoute(b.resetCursorByID, true))
	mux.HandleFunc("GET "+tp+"/lastMessageId", b.topicRoute(b.lastMessageID, true))
	mux.HandleFunc("GET "+tp+"/ledger/{ledger}/entry/{entry}", b.topicRoute(b.getMessageByID, true))
	mux.HandleFunc("PUT "+tp+"/unload", b.partitionedRoute(b.unloadTopic, nil))
	mux.HandleFunc("POST "+tp+"/terminate", b.topicRoute(b.terminate, true))
	mux.HandleFunc("PUT "+tp+"/offload", b.topicRoute(b.offloadTopic, true))
	mux.HandleFunc("GET "+tp+"/offload", b.topicRoute(b.offloadStatus, true))
	b.topicPolicyRoutes(mux, tp)
	b.bookieRoutes(mux)
	mux.HandleFunc("GET "+tp+"/permissions", b.topicRoute(b.topicPermissions, false))
	mux.HandleFunc("POST "+tp+"/permissions/{role}", b.topicRoute(b.grantTopicPermission, false))
	mux.HandleFunc("DELETE "+tp+"/permissions/{role}", b.topicRoute(b.revokeTopicPermission, false))
	mux.HandleFunc("GET /lookup/v2/topic/persistent/{tenant}/{namespace}/{topic}", b.lookupREST)
	b.schemaRoutes(mux)
	mux.HandleFunc("/admin/v2/non-persistent/", func(w http.ResponseWriter, r *http.Request) {
		// Who asks is checked first, as on every other path: an anonymous
		// caller learns nothing about what this broker supports.
		if _, err := b.roleHTTP(r); err != nil {
			writeErr(w, err)
			return
		}
		// Then names, as on the persistent paths: tenant, namespace, topic.
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/admin/v2/non-persistent/"), "/", 4)
		for i, validate := range []func(string) error{naming.ValidateTenant, naming.ValidateNamespaceLocal, naming.ValidateTopicLocal} {
			if i < len(parts) && parts[i] != "" {
				if err := validate(parts[i]); err != nil {
					writeErr(w, err)
					return
				}
			}
		}
		writeErr(w, httpErr(http.StatusNotImplemented, "non-persistent topics are not supported"))
	})
	// Not a route: the answer to paths that match none.
	mux.ServeMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, httpErr(http.StatusNotFound, "no such path: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// nsRoute authenticates the request (401), parses the namespace (400) and
// checks that the role administers its tenant (403), in this order as on
// every admin path.
func (b *Broker) nsRoute(h func(ctx context.Context, w http.ResponseWriter, ns naming.Namespace) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		role, err := b.roleHTTP(r)
		var ns naming.Namespace
		if err == nil {
			ns, err = naming.NewNamespace(r.PathValue("tenant"), r.PathValue("namespace"))
		}
		if err == nil {
			err = b.authz.CanManageTenant(r.Context(), role, ns.Tenant())
		}
		if err == nil {
			if _, err = b.policies(ns); err != nil && !errors.Is(err, ErrNotReady) {
				err = httpErr(http.StatusNotFound, "namespace %s does not exist", ns)
			}
		}
		if err == nil {
			err = h(r.Context(), w, ns)
		}
		if err != nil {
			writeErr(w, err)
		}
	}
}

// topicRoute authenticates the request, parses the topic and checks that
// the role administers its tenant, as nsRoute; with owner set, a topic
// served elsewhere is redirected to its owner.
func (b *Broker) topicRoute(h topicHandler, owner bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		role, err := b.roleHTTP(r)
		var t naming.Topic
		if err == nil {
			t, err = naming.ParseTopic(fmt.Sprintf("persistent://%s/%s/%s", r.PathValue("tenant"), r.PathValue("namespace"), r.PathValue("topic")))
		}
		if err == nil {
			err = b.authz.CanManageTenant(r.Context(), role, t.Tenant())
		}
		if err == nil {
			if _, err = b.policies(t.NamespaceName()); errors.Is(err, ErrNamespaceNotFound) {
				err = httpErr(http.StatusNotFound, "namespace %s does not exist", t.NamespaceName())
			}
		}
		if err == nil && owner {
			var redirected bool
			if redirected, err = b.redirectToOwner(w, r, t); redirected {
				return
			}
		}
		if err == nil {
			err = h(r.Context(), w, r, t)
		}
		if err != nil {
			writeErr(w, err)
		}
	}
}

// redirectToOwner answers 307 to the broker serving t (assigning one if
// needed); it reports false when this broker serves t.
func (b *Broker) redirectToOwner(w http.ResponseWriter, r *http.Request, t naming.Topic) (bool, error) {
	authoritative := r.URL.Query().Get("authoritative") == "true"
	bi, redirect, err := b.lookup(r.Context(), t, authoritative)
	if err != nil {
		return false, err
	}
	if bi.ID == b.id {
		return false, nil
	}
	u := *r.URL
	target, err := url.Parse(bi.HTTPURL)
	if err != nil {
		return false, err
	}
	u.Scheme, u.Host = target.Scheme, target.Host
	if redirect {
		q := u.Query()
		q.Set("authoritative", "true")
		u.RawQuery = q.Encode()
	}
	http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
	return true, nil
}

// topicExists reports whether t has a managed ledger.
func (b *Broker) topicExists(ctx context.Context, t naming.Topic) (bool, error) {
	if _, ok := b.loadedTopic(t.String()); ok {
		return true, nil
	}
	_, err := b.md.Get(ctx, metadata.ManagedLedgersPrefix+t.Path())
	if errors.Is(err, metadata.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// existingTopic loads t, failing with 404 when it does not exist.
func (b *Broker) existingTopic(ctx context.Context, t naming.Topic) (*Topic, error) {
	ok, err := b.topicExists(ctx, t)
	if err != nil {
		return nil, err
	}
	if !ok {
		if b.isPartitioned(ctx, t) {
			return nil, httpErr(http.StatusNotFound, "topic %s is partitioned: use its partitions or the partitioned-stats path", t)
		}
		if b.declaredPartition(ctx, t) {
			return b.getTopic(ctx, t)
		}
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, t)
	}
	return b.getTopic(ctx, t)
}

// isPartitioned reports whether t is a partitioned topic.
func (b *Broker) isPartitioned(ctx context.Context, t naming.Topic) bool {
	pm, err := b.cfg.GetPartitionedTopic(ctx, t)
	return err == nil && pm.Partitions > 0
}

// declaredPartition reports whether t is a partition of a partitioned
// topic: it exists from the topic's creation on, although its log is
// created at first use.
func (b *Broker) declaredPartition(ctx context.Context, t naming.Topic) bool {
	if !t.IsPartition() {
		return false
	}
	pm, err := b.cfg.GetPartitionedTopic(ctx, t.PartitionedParent())
	return err == nil && t.PartitionIndex() < pm.Partitions
}

// ListTopics implements tenants.TopicLister: the namespace's topics
// (partitions included) that have a managed ledger.
func (b *Broker) ListTopics(ctx context.Context, ns naming.Namespace) ([]string, error) {
	prefix := metadata.ManagedLedgersPrefix + ns.String() + "/"
	kvs, err := metadata.ListAll(ctx, b.md, prefix, true)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		local := strings.TrimPrefix(kv.Key, prefix)
		if !strings.Contains(local, "/") {
			out = append(out, "persistent://"+ns.String()+"/"+local)
		}
	}
	// As in Pulsar, every partition of a partitioned topic is listed, used
	// or not.
	parted, err := b.cfg.ListPartitionedTopics(ctx, ns)
	if err != nil {
		return nil, err
	}
	for _, name := range parted {
		t, err := naming.ParseTopic(name)
		if err != nil {
			continue
		}
		pm, err := b.cfg.GetPartitionedTopic(ctx, t)
		if err != nil {
			continue // deleted meanwhile
		}
		for i := 0; i < pm.Partitions; i++ {
			out = append(out, t.Partition(i).String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (b *Broker) listTopics(ctx context.Context, w http.ResponseWriter, ns naming.Namespace) error {
	topics, err := b.ListTopics(ctx, ns)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, topics)
	return nil
}

func (b *Broker) listPartitioned(ctx context.Context, w http.ResponseWriter, ns naming.Namespace) error {
	names, err := b.cfg.ListPartitionedTopics(ctx, ns)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, names)
	return nil
}

func (b *Broker) createTopic(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	if pm, err := b.cfg.GetPartitionedTopic(ctx, t); err == nil && pm.Partitions > 0 {
		return httpErr(http.StatusConflict, "%s is a partitioned topic", t)
	}
	if ok, err := b.topicExists(ctx, t); err != nil {
		return err
	} else if ok {
		return httpErr(http.StatusConflict, "topic %s already exists", t)
	}
	if redirected, err := b.redirectToOwner(w, r, t); redirected || err != nil {
		return err
	}
	if _, err := b.getTopic(ctx, t); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) deleteTopic(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	force := r.URL.Query().Get("force") == "true"
	if np, nc, _ := tp.counts(); (np > 0 || nc > 0) && !force {
		return httpErr(http.StatusPreconditionFailed, "topic %s has %d producers and %d consumers connected (use force=true)", t, np, nc)
	}
	return b.removeTopic(ctx, w, tp)
}

func (b *Broker) removeTopic(ctx context.Context, w http.ResponseWriter, tp *Topic) error {
	tp.close(ctx, fmt.Errorf("%w: topic deleted", ErrTopicClosed))
	if err := tp.ml.Delete(ctx); err != nil {
		return err
	}
	if !tp.name.IsPartition() {
		if err := b.cfg.DeleteTopicPolicies(ctx, tp.name); err != nil {
			return err
		}
		if err := b.schemas.Purge(ctx, tp.name.String()); err != nil {
			return err
		}
	}
	if w != nil {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func readInt(r *http.Request) (int, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1024))
	if err != nil {
		return 0, err
	}
	text := strings.TrimSpace(string(body))
	if strings.HasPrefix(text, "{") {
		// Pulsar's other form: {"partitions": N, "properties": {...}}.
		var meta struct {
			Partitions *int              `json:"partitions"`
			Properties map[string]string `json:"properties"`
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&meta); err != nil || meta.Partitions == nil {
			return 0, httpErr(http.StatusBadRequest, "body must be a number of partitions or {\"partitions\": N}, got %q", body)
		}
		if len(meta.Properties) > 0 {
			return 0, httpErr(http.StatusBadRequest, "topic properties are not supported")
		}
		return *meta.Partitions, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil {
		return 0, httpErr(http.StatusBadRequest, "body must be a number of partitions, got %q", body)
	}
	return n, nil
}

func (b *Broker) createPartitioned(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	n, err := readInt(r)
	if err != nil {
		return err
	}
	if t.IsPartition() {
		return httpErr(http.StatusBadRequest, "%s is a partition name; partitioned topics cannot be nested", t)
	}
	if err := tenants.CheckRange("number of partitions", int64(n), 1, tenants.MaxPartitions, ""); err != nil {
		return err
	}
	if err := b.checkTopicLimit(ctx, t.NamespaceName(), n); err != nil {
		return err
	}
	if ok, err := b.topicExists(ctx, t); err != nil {
		return err
	} else if ok {
		return httpErr(http.StatusConflict, "a non-partitioned topic %s exists", t)
	}
	if err := b.cfg.CreatePartitionedTopic(ctx, t, n); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) updatePartitioned(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	n, err := readInt(r)
	if err != nil {
		return err
	}
	if err := b.cfg.UpdatePartitionedTopic(ctx, t, n); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) getPartitioned(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	pm, err := b.cfg.GetPartitionedTopic(ctx, t)
	if errors.Is(err, tenants.ErrNotFound) {
		pm = tenants.PartitionedTopicMetadata{}
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pm)
	return nil
}

func (b *Broker) deletePartitioned(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	pm, err := b.cfg.GetPartitionedTopic(ctx, t)
	if err != nil {
		return err
	}
	force := r.URL.Query().Get("force") == "true"
	for i := 0; i < pm.Partitions; i++ {
		p := t.Partition(i)
		ok, err := b.topicExists(ctx, p)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := b.forwardDelete(ctx, r, p, force); err != nil {
			return err
		}
	}
	if err := b.cfg.DeletePartitionedTopic(ctx, t); err != nil {
		return err
	}
	if err := b.cfg.DeleteTopicPolicies(ctx, t); err != nil {
		return err
	}
	if err := b.schemas.Purge(ctx, t.String()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// forwardDelete deletes one partition, on whichever broker serves it.
func (b *Broker) forwardDelete(ctx context.Context, r *http.Request, p naming.Topic, force bool) error {
	bi, _, err := b.lookup(ctx, p, true)
	if err != nil {
		return err
	}
	if bi.ID == b.id {
		tp, err := b.getTopic(ctx, p)
		if err != nil {
			return err
		}
		if np, nc, _ := tp.counts(); (np > 0 || nc > 0) && !force {
			return httpErr(http.StatusPreconditionFailed, "partition %s has %d producers and %d consumers connected (use force=true)", p, np, nc)
		}
		return b.removeTopic(ctx, nil, tp)
	}
	path := fmt.Sprintf("/admin/v2/persistent/%s?force=%v&authoritative=true", p.Path(), force)
	resp, err := b.forward(ctx, r, http.MethodDelete, bi.HTTPURL+path)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return httpErr(resp.StatusCode, "deleting partition %s at %s: %s", p, bi.HTTPURL, resp.Status)
	}
	return nil
}

// forward repeats an admin request at another broker with the caller's
// credentials.
func (b *Broker) forward(ctx context.Context, r *http.Request, method, target string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, err
	}
	if h := r.Header.Get("Authorization"); h != "" {
		req.Header.Set("Authorization", h)
	}
	return b.adminHTTP().Do(req)
}

func (b *Broker) listSubscriptions(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	names := []string{}
	for _, c := range tp.ml.Cursors() {
		if !isSystemCursor(c.Name()) {
			names = append(names, c.Name())
		}
	}
	slices.Sort(names)
	writeJSON(w, http.StatusOK, names)
	return nil
}

// messageIDBody is Pulsar's MessageId JSON (reset-cursor bodies may add
// isExcluded and properties).
type messageIDBody struct {
	LedgerID       int64             `json:"ledgerId"`
	EntryID        int64             `json:"entryId"`
	PartitionIndex int32             `json:"partitionIndex"`
	BatchIndex     int32             `json:"batchIndex"`
	IsExcluded     bool              `json:"isExcluded,omitempty"`
	Properties     map[string]string `json:"properties,omitempty"`
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// anything after the value; what names the value in the 400 reason.
func decodeStrict(body []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return httpErr(http.StatusBadRequest, "malformed %s: %v", what, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return httpErr(http.StatusBadRequest, "malformed %s: unexpected data after the JSON value", what)
	}
	return nil
}

// isNull reports whether a body is JSON null, which decodes as the zero
// value: it is no message id, and no valid policy value.
func isNull(body []byte) bool { return strings.TrimSpace(string(body)) == "null" }

// readMessageID reads an optional message id body; nil when the body is
// empty or null.
func readMessageID(r *http.Request) (*messageIDBody, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil || len(strings.TrimSpace(string(body))) == 0 || isNull(body) {
		return nil, err
	}
	id := messageIDBody{BatchIndex: -1, PartitionIndex: -1}
	if err := decodeStrict(body, &id, "message id"); err != nil {
		return nil, err
	}
	if id.LedgerID < -1 || id.EntryID < -1 {
		return nil, httpErr(http.StatusBadRequest, "invalid message id %d:%d", id.LedgerID, id.EntryID)
	}
	return &id, nil
}

func (b *Broker) createSubscription(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	name := r.PathValue("sub")
	if err := validSubscription(name); err != nil {
		return err
	}
	id, err := readMessageID(r)
	if err != nil {
		return err
	}
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	if _, ok := tp.ml.Cursor(name); ok {
		return httpErr(http.StatusConflict, "subscription %s already exists on %s", name, t)
	}
	initial := managed.Latest
	if id != nil && id.LedgerID == -1 {
		initial = managed.Earliest
	}
	if err := tp.checkSubscriptionLimit(); err != nil {
		return err
	}
	c, err := tp.ml.OpenCursor(ctx, name, initial)
	if err != nil {
		return err
	}
	if id != nil && id.LedgerID >= 0 {
		c.Reset(managed.Position{LedgerID: id.LedgerID, EntryID: id.EntryID})
	}
	tp.mu.Lock()
	if tp.mu.subs[name] == nil {
		tp.mu.subs[name] = newSubscription(tp, c)
	}
	tp.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// subscription returns a topic's durable subscription.
func (b *Broker) subscription(ctx context.Context, t naming.Topic, name string) (*Topic, *Subscription, error) {
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	tp.mu.Lock()
	s := tp.mu.subs[name]
	tp.mu.Unlock()
	if s == nil {
		return nil, nil, httpErr(http.StatusNotFound, "subscription %s does not exist on %s", name, t)
	}
	return tp, s, nil
}

func (b *Broker) deleteSubscription(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	tp, s, err := b.subscription(ctx, t, r.PathValue("sub"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	n := len(s.mu.consumers)
	s.mu.Unlock()
	if n > 0 && r.URL.Query().Get("force") != "true" {
		return httpErr(http.StatusPreconditionFailed, "subscription %s has %d consumers connected (use force=true)", s.name, n)
	}
	s.close(fmt.Errorf("%w: subscription deleted", ErrTopicClosed))
	if err := tp.ml.DeleteCursor(ctx, s.name); err != nil {
		return err
	}
	tp.mu.Lock()
	delete(tp.mu.subs, s.name)
	tp.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reposition resets a subscription's cursor to pos and disconnects its
// consumers (they reconnect from there), like Pulsar's reset-cursor.
func (s *Subscription) reposition(pos managed.Position, cause string) {
	s.mu.Lock()
	consumers := append([]*Consumer(nil), s.mu.consumers...)
	clear(s.mu.pending)
	s.mu.replay = nil
	clear(s.mu.replayKeys)
	clear(s.mu.redeliveries)
	clear(s.mu.flights)
	s.mu.delayed, s.mu.nextDue = nil, time.Time{}
	for _, c := range consumers {
		c.permits, c.unacked = 0, 0
	}
	s.cursor.Reset(pos)
	s.mu.Unlock()
	for _, c := range consumers {
		c.kill(fmt.Errorf("%w: %s", ErrTopicClosed, cause))
	}
	s.signal()
}

func (b *Broker) skip(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 {
		return httpErr(http.StatusBadRequest, "invalid number of messages %q", r.PathValue("n"))
	}
	tp, s, err := b.subscription(ctx, t, r.PathValue("sub"))
	if err != nil {
		return err
	}
	// Acknowledge the next n unacknowledged entries.
	from := managed.Position{LedgerID: s.cursor.MarkDeletePosition().LedgerID, EntryID: s.cursor.MarkDeletePosition().EntryID + 1}
	var ack []managed.Position
	for len(ack) < n {
		es, next, err := tp.ml.Read(ctx, from, min(n-len(ack)+100, 1000), 64<<20)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if len(ack) < n && !s.cursor.IsAcked(e.Position) {
				ack = append(ack, e.Position)
			}
		}
		from = next
	}
	if len(ack) > 0 {
		if err := s.cursor.Ack(ack...); err != nil {
			return err
		}
		s.mu.Lock()
		for _, p := range ack {
			s.settleLocked(p)
			s.removeReplayLocked(p)
		}
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) skipAll(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	tp, s, err := b.subscription(ctx, t, r.PathValue("sub"))
	if err != nil {
		return err
	}
	lc := tp.ml.LastConfirmed()
	s.reposition(managed.Position{LedgerID: lc.LedgerID, EntryID: lc.EntryID + 1}, "backlog cleared")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) expire(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	secs, err := strconv.ParseInt(r.PathValue("seconds"), 10, 64)
	if err != nil || secs < 0 || secs > math.MaxInt32 {
		return httpErr(http.StatusBadRequest, "expireTime %q: want seconds between 0 and %d", r.PathValue("seconds"), math.MaxInt32)
	}
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	var subs []*Subscription
	if name := r.PathValue("sub"); name != "" {
		_, s, err := b.subscription(ctx, t, name)
		if err != nil {
			return err
		}
		subs = []*Subscription{s}
	} else {
		tp.mu.Lock()
		for _, s := range tp.mu.subs {
			subs = append(subs, s)
		}
		tp.mu.Unlock()
	}
	if err := tp.expireOlderThan(ctx, subs, time.Now().Add(-units.Duration(secs, time.Second))); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// expireOlderThan acknowledges, on each subscription, every message
// published before cutoff.
func (t *Topic) expireOlderThan(ctx context.Context, subs []*Subscription, cutoff time.Time) error {
	pos, err := t.ml.FindByTime(ctx, cutoff.UnixMilli())
	if err != nil {
		return err
	}
	upTo := managed.Position{LedgerID: pos.LedgerID, EntryID: pos.EntryID - 1}
	for _, s := range subs {
		if upTo.EntryID < 0 || !s.cursor.MarkDeletePosition().Less(upTo) {
			continue
		}
		if err := s.cursor.AckCumulative(upTo); err != nil && !errors.Is(err, managed.ErrInvalidPosition) {
			return err
		}
		s.mu.Lock()
		for p := range s.mu.pending {
			if !upTo.Less(p) {
				s.settleLocked(p)
			}
		}
		for len(s.mu.replay) > 0 && !upTo.Less(s.mu.replay[0].pos) {
			s.removeReplayLocked(s.mu.replay[0].pos)
		}
		s.mu.Unlock()
		s.signal()
	}
	return nil
}

func (b *Broker) resetCursorByTime(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	ts, err := strconv.ParseInt(r.PathValue("timestamp"), 10, 64)
	if err != nil || ts < 0 {
		return httpErr(http.StatusBadRequest, "invalid timestamp %q (Unix milliseconds)", r.PathValue("timestamp"))
	}
	tp, s, err := b.subscription(ctx, t, r.PathValue("sub"))
	if err != nil {
		return err
	}
	pos, err := tp.ml.FindByTime(ctx, ts)
	if err != nil {
		return err
	}
	s.reposition(pos, "cursor reset")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) resetCursorByID(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	id, err := readMessageID(r)
	if err != nil {
		return err
	}
	if id == nil || id.LedgerID < 0 || id.EntryID < 0 {
		return httpErr(http.StatusBadRequest, "a message id {\"ledgerId\":..,\"entryId\":..} is required")
	}
	_, s, err := b.subscription(ctx, t, r.PathValue("sub"))
	if err != nil {
		return err
	}
	pos := managed.Position{LedgerID: id.LedgerID, EntryID: id.EntryID}
	if id.IsExcluded {
		pos.EntryID++ // start after the given message
	}
	s.reposition(pos, "cursor reset")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) lastMessageID(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	lc := tp.ml.LastConfirmed()
	writeJSON(w, http.StatusOK, messageIDBody{LedgerID: lc.LedgerID, EntryID: lc.EntryID, PartitionIndex: tp.partition, BatchIndex: -1})
	return nil
}

func (b *Broker) unloadTopic(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	if tp, ok := b.loadedTopic(t.String()); ok {
		if err := tp.close(ctx, fmt.Errorf("%w: topic unloaded", ErrTopicClosed)); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) terminate(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	if pm, err := b.cfg.GetPartitionedTopic(ctx, t); err == nil && pm.Partitions > 0 {
		return httpErr(http.StatusMethodNotAllowed, "terminating a partitioned topic is not allowed; terminate its partitions")
	}
	tp, err := b.existingTopic(ctx, t)
	if err != nil {
		return err
	}
	last, err := tp.ml.Terminate(ctx)
	if err != nil {
		return err
	}
	tp.mu.Lock()
	producers := make([]*Producer, 0, len(tp.mu.producers))
	for _, p := range tp.mu.producers {
		producers = append(producers, p)
	}
	tp.mu.Unlock()
	for _, p := range producers {
		p.kill(fmt.Errorf("%w: %s", managed.ErrTerminated, t))
	}
	writeJSON(w, http.StatusOK, messageIDBody{LedgerID: last.LedgerID, EntryID: last.EntryID, PartitionIndex: tp.partition, BatchIndex: -1})
	return nil
}

func (b *Broker) topicPermissions(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	p, err := b.cfg.GetPolicies(ctx, t.NamespaceName())
	if err != nil {
		return err
	}
	out := map[string][]tenants.AuthAction{}
	for role, actions := range p.AuthPolicies.NamespaceAuth {
		out[role] = append(out[role], actions...)
	}
	for role, actions := range p.AuthPolicies.DestinationAuth[t.String()] {
		out[role] = append(out[role], actions...)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (b *Broker) grantTopicPermission(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	role := r.PathValue("role")
	if err := tenants.ValidateRole(role); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 || isNull(body) {
		return httpErr(http.StatusBadRequest, "body must be a JSON list of actions, e.g. [\"produce\",\"consume\"]")
	}
	var actions []tenants.AuthAction
	if err := decodeStrict(body, &actions, "list of actions"); err != nil {
		return err
	}
	if err := tenants.ValidateActions(actions); err != nil {
		return err
	}
	_, err = b.cfg.UpdatePolicies(ctx, t.NamespaceName(), func(p *tenants.Policies) error {
		if p.AuthPolicies.DestinationAuth == nil {
			p.AuthPolicies.DestinationAuth = map[string]map[string][]tenants.AuthAction{}
		}
		if p.AuthPolicies.DestinationAuth[t.String()] == nil {
			p.AuthPolicies.DestinationAuth[t.String()] = map[string][]tenants.AuthAction{}
		}
		p.AuthPolicies.DestinationAuth[t.String()][role] = actions
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *Broker) revokeTopicPermission(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
	role := r.PathValue("role")
	_, err := b.cfg.UpdatePolicies(ctx, t.NamespaceName(), func(p *tenants.Policies) error {
		roles := p.AuthPolicies.DestinationAuth[t.String()]
		delete(roles, role) // revoking nothing succeeds, as on namespaces
		if len(roles) == 0 {
			delete(p.AuthPolicies.DestinationAuth, t.String())
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lookupREST is GET /lookup/v2/topic/persistent/{tenant}/{namespace}/{topic}.
func (b *Broker) lookupREST(w http.ResponseWriter, r *http.Request) {
	role, err := b.roleHTTP(r)
	var t naming.Topic
	if err == nil {
		t, err = naming.ParseTopic(fmt.Sprintf("persistent://%s/%s/%s", r.PathValue("tenant"), r.PathValue("namespace"), r.PathValue("topic")))
	}
	if err == nil {
		err = b.authz.CanLookup(r.Context(), role, t)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	bi, redirect, err := b.lookup(r.Context(), t, r.URL.Query().Get("authoritative") == "true")
	if err != nil {
		writeErr(w, err)
		return
	}
	if redirect {
		// Let the chosen broker claim the topic, then answer with it.
		if bi2, err := b.forwardLookup(r, bi, t); err == nil {
			bi = bi2
		}
	}
	writeJSON(w, http.StatusOK, b.lookupData(bi))
}

// lookupData is Pulsar's LookupData for a broker: its client port as
// pulsar:// URLs (gRPC and Pulsar's protocol share it; Strata's SDK takes
// either form) and its HTTP URL. With TLS the one port speaks TLS, so
// every URL is the TLS one.
func (b *Broker) lookupData(bi brokerInfo) map[string]string {
	u := b.pulsarURL(bi)
	if b.opts.TLS != nil {
		return map[string]string{"brokerUrl": u, "brokerUrlTls": u, "nativeUrl": u, "httpUrl": bi.HTTPURL, "httpUrlTls": bi.HTTPURL}
	}
	return map[string]string{"brokerUrl": u, "nativeUrl": u, "httpUrl": bi.HTTPURL}
}

func (b *Broker) forwardLookup(r *http.Request, bi brokerInfo, t naming.Topic) (brokerInfo, error) {
	resp, err := b.forward(r.Context(), r, http.MethodGet, bi.HTTPURL+"/lookup/v2/topic/persistent/"+t.Path()+"?authoritative=true")
	if err != nil {
		return bi, err
	}
	defer resp.Body.Close()
	var out map[string]string
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return bi, fmt.Errorf("lookup at %s: %s", bi.HTTPURL, resp.Status)
	}
	return brokerInfo{GRPCURL: hostPort(out["brokerUrl"]), HTTPURL: out["httpUrl"]}, nil
}
