package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

// Topics manages persistent topics: /admin/v2/persistent/{tenant}/{ns}/{topic}/...
//
// Topic arguments take any form Strata accepts: "t" (public/default),
// "tenant/ns/t" or "persistent://tenant/ns/t".
type Topics struct{ c *Client }

// Topics returns the topic operations.
func (c *Client) Topics() *Topics { return &Topics{c} }

// topicPath returns /admin/v2/persistent/{tenant}/{ns}/{topic}{suffix}.
func topicPath(topic, suffix string) (string, error) {
	t, err := naming.ParseTopic(topic)
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	return adminPrefix + "/persistent/" + t.Path() + suffix, nil
}

func (r *Topics) do(ctx context.Context, method, topic, suffix string, q url.Values, in, out any) error {
	p, err := topicPath(topic, suffix)
	if err != nil {
		return err
	}
	_, err = r.c.Do(ctx, method, p, q, in, out)
	return err
}

func forceQuery(force bool) url.Values {
	if !force {
		return nil
	}
	return url.Values{"force": {"true"}}
}

func (r *Topics) listNS(ctx context.Context, namespace, suffix string) ([]string, error) {
	ns, err := naming.ParseNamespace(namespace)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	out := []string{}
	_, err = r.c.Do(ctx, http.MethodGet, adminPrefix+"/persistent/"+ns.String()+suffix, nil, nil, &out)
	return out, err
}

// List returns the namespace's topics, partitions included (full names).
func (r *Topics) List(ctx context.Context, namespace string) ([]string, error) {
	return r.listNS(ctx, namespace, "")
}

// ListPartitioned returns the namespace's partitioned topics (full names).
func (r *Topics) ListPartitioned(ctx context.Context, namespace string) ([]string, error) {
	return r.listNS(ctx, namespace, "/partitioned")
}

// Create creates a non-partitioned topic (409 if it exists).
func (r *Topics) Create(ctx context.Context, topic string) error {
	return r.do(ctx, http.MethodPut, topic, "", nil, nil, nil)
}

// Delete deletes a non-partitioned topic and its data; without force it is
// refused while producers or consumers are connected.
func (r *Topics) Delete(ctx context.Context, topic string, force bool) error {
	return r.do(ctx, http.MethodDelete, topic, "", forceQuery(force), nil, nil)
}

// CreatePartitioned creates a partitioned topic of n partitions.
func (r *Topics) CreatePartitioned(ctx context.Context, topic string, n int) error {
	return r.do(ctx, http.MethodPut, topic, "/partitions", nil, n, nil)
}

// UpdatePartitioned raises a partitioned topic's number of partitions to n.
func (r *Topics) UpdatePartitioned(ctx context.Context, topic string, n int) error {
	return r.do(ctx, http.MethodPost, topic, "/partitions", nil, n, nil)
}

// GetPartitioned returns a topic's partition metadata; Partitions is 0 for
// a topic that is not partitioned.
func (r *Topics) GetPartitioned(ctx context.Context, topic string) (tenants.PartitionedTopicMetadata, error) {
	var out tenants.PartitionedTopicMetadata
	err := r.do(ctx, http.MethodGet, topic, "/partitions", nil, nil, &out)
	return out, err
}

// DeletePartitioned deletes a partitioned topic and all its partitions.
func (r *Topics) DeletePartitioned(ctx context.Context, topic string, force bool) error {
	return r.do(ctx, http.MethodDelete, topic, "/partitions", forceQuery(force), nil, nil)
}

// Stats returns a non-partitioned topic's (or one partition's) statistics.
func (r *Topics) Stats(ctx context.Context, topic string) (*TopicStats, error) {
	var out TopicStats
	if err := r.do(ctx, http.MethodGet, topic, "/stats", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PartitionedStats returns a partitioned topic's statistics summed over its
// partitions, and each partition's with perPartition.
func (r *Topics) PartitionedStats(ctx context.Context, topic string, perPartition bool) (*PartitionedTopicStats, error) {
	var out PartitionedTopicStats
	q := url.Values{"perPartition": {strconv.FormatBool(perPartition)}}
	if err := r.do(ctx, http.MethodGet, topic, "/partitioned-stats", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// InternalStats returns a topic's storage statistics (ledgers, cursors).
func (r *Topics) InternalStats(ctx context.Context, topic string) (*InternalStats, error) {
	var out InternalStats
	if err := r.do(ctx, http.MethodGet, topic, "/internalStats", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Subscriptions returns the names of a topic's subscriptions.
func (r *Topics) Subscriptions(ctx context.Context, topic string) ([]string, error) {
	out := []string{}
	err := r.do(ctx, http.MethodGet, topic, "/subscriptions", nil, nil, &out)
	return out, err
}

func subPath(sub, suffix string) string { return "/subscription/" + seg(sub) + suffix }

// CreateSubscription creates durable subscription sub starting at pos
// (Earliest, Latest or a message id).
func (r *Topics) CreateSubscription(ctx context.Context, topic, sub string, pos MessageID) error {
	return r.do(ctx, http.MethodPut, topic, subPath(sub, ""), nil, pos, nil)
}

// DeleteSubscription deletes subscription sub; without force it is refused
// while consumers are connected.
func (r *Topics) DeleteSubscription(ctx context.Context, topic, sub string, force bool) error {
	return r.do(ctx, http.MethodDelete, topic, subPath(sub, ""), forceQuery(force), nil, nil)
}

// Skip acknowledges the next n unacknowledged messages of subscription sub.
func (r *Topics) Skip(ctx context.Context, topic, sub string, n int) error {
	return r.do(ctx, http.MethodPost, topic, subPath(sub, "/skip/"+strconv.Itoa(n)), nil, nil, nil)
}

// SkipAll clears subscription sub's backlog (pulsar-admin clear-backlog).
func (r *Topics) SkipAll(ctx context.Context, topic, sub string) error {
	return r.do(ctx, http.MethodPost, topic, subPath(sub, "/skip_all"), nil, nil, nil)
}

// ExpireMessages acknowledges, on subscription sub, the messages published
// more than seconds ago.
func (r *Topics) ExpireMessages(ctx context.Context, topic, sub string, seconds int64) error {
	return r.do(ctx, http.MethodPost, topic, subPath(sub, "/expireMessages/"+strconv.FormatInt(seconds, 10)), nil, nil, nil)
}

// ExpireAllMessages is ExpireMessages on every subscription of the topic.
func (r *Topics) ExpireAllMessages(ctx context.Context, topic string, seconds int64) error {
	return r.do(ctx, http.MethodPost, topic, "/all_subscription/expireMessages/"+strconv.FormatInt(seconds, 10), nil, nil, nil)
}

// ResetCursor moves subscription sub back (or forward) to the first message
// published at or after t; its consumers are disconnected and resume there.
func (r *Topics) ResetCursor(ctx context.Context, topic, sub string, t time.Time) error {
	return r.do(ctx, http.MethodPost, topic, subPath(sub, "/resetcursor/"+strconv.FormatInt(t.UnixMilli(), 10)), nil, nil, nil)
}

// ResetCursorToMessageID moves subscription sub to message id.
func (r *Topics) ResetCursorToMessageID(ctx context.Context, topic, sub string, id MessageID) error {
	return r.do(ctx, http.MethodPost, topic, subPath(sub, "/resetcursor"), nil, id, nil)
}

// LastMessageID returns the id of the topic's last persisted message.
func (r *Topics) LastMessageID(ctx context.Context, topic string) (MessageID, error) {
	var out MessageID
	err := r.do(ctx, http.MethodGet, topic, "/lastMessageId", nil, nil, &out)
	return out, err
}

// Unload closes the topic on its broker; the next client reloads it (on
// any broker).
func (r *Topics) Unload(ctx context.Context, topic string) error {
	return r.do(ctx, http.MethodPut, topic, "/unload", nil, nil, nil)
}

// Terminate seals the topic: no more messages can be published. It
// returns the id of the last message.
func (r *Topics) Terminate(ctx context.Context, topic string) (MessageID, error) {
	var out MessageID
	err := r.do(ctx, http.MethodPost, topic, "/terminate", nil, nil, &out)
	return out, err
}

// Permissions returns the roles allowed on the topic (namespace-wide and
// topic grants): role → actions.
func (r *Topics) Permissions(ctx context.Context, topic string) (map[string][]tenants.AuthAction, error) {
	out := map[string][]tenants.AuthAction{}
	err := r.do(ctx, http.MethodGet, topic, "/permissions", nil, nil, &out)
	return out, err
}

// GrantPermission sets the actions role may perform on the topic.
func (r *Topics) GrantPermission(ctx context.Context, topic, role string, actions []tenants.AuthAction) error {
	return r.do(ctx, http.MethodPost, topic, "/permissions/"+seg(role), nil, actions, nil)
}

// RevokePermission removes role's grant on the topic.
func (r *Topics) RevokePermission(ctx context.Context, topic, role string) error {
	return r.do(ctx, http.MethodDelete, topic, "/permissions/"+seg(role), nil, nil, nil)
}

// Lookup returns the broker serving the topic.
func (r *Topics) Lookup(ctx context.Context, topic string) (LookupData, error) {
	var out LookupData
	t, err := naming.ParseTopic(topic)
	if err != nil {
		return out, fmt.Errorf("admin: %w", err)
	}
	_, err = r.c.Do(ctx, http.MethodGet, "/lookup/v2/topic/persistent/"+t.Path(), nil, nil, &out)
	return out, err
}

// Offload starts moving the topic's closed ledgers before message id to
// tiered storage; OffloadStatus follows its progress.
func (r *Topics) Offload(ctx context.Context, topic string, before MessageID) error {
	return r.do(ctx, http.MethodPut, topic, "/offload", nil, before, nil)
}

// OffloadStatus returns the state of the topic's last Offload.
func (r *Topics) OffloadStatus(ctx context.Context, topic string) (OffloadStatus, error) {
	var out OffloadStatus
	err := r.do(ctx, http.MethodGet, topic, "/offload", nil, nil, &out)
	return out, err
}
