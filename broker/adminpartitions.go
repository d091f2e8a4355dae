package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants"
)

// maxFanOutBody bounds the body of a request applied to every partition.
const maxFanOutBody = 64 << 10

// partitionedRoute serves a topic admin operation that, as in Pulsar,
// applies to every partition when the topic is partitioned (subscription
// create/delete, skip-all, expire, reset by time, unload, list
// subscriptions). Each partition gets the same request, sent to the broker
// that owns it, with the caller's credentials; merge combines the answers of
// a listing, nil answers 204 once every partition succeeded.
func (b *Broker) partitionedRoute(h topicHandler, merge func(w http.ResponseWriter, bodies [][]byte) error) http.HandlerFunc {
	return b.topicRoute(func(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic) error {
		if !t.IsPartition() {
			if n, err := b.partitionCount(ctx, t); err == nil && n > 0 {
				return b.fanOut(ctx, w, r, t, n, merge)
			}
		}
		// Not partitioned: served by the topic's owner, as topicRoute's
		// routes with owner set.
		if redirected, err := b.redirectToOwner(w, r, t); err != nil || redirected {
			return err
		}
		return h(ctx, w, r, t)
	}, false)
}

// partitionCount returns the partitions of t, 0 when it is not partitioned.
func (b *Broker) partitionCount(ctx context.Context, t naming.Topic) (int, error) {
	pm, err := b.cfg.GetPartitionedTopic(ctx, t)
	if errors.Is(err, tenants.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return pm.Partitions, nil
}

// fanOut sends r to each of t's n partitions and answers once all did.
func (b *Broker) fanOut(ctx context.Context, w http.ResponseWriter, r *http.Request, t naming.Topic, n int,
	merge func(w http.ResponseWriter, bodies [][]byte) error) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFanOutBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxFanOutBody {
		return httpErr(http.StatusRequestEntityTooLarge, "request body above %d bytes", maxFanOutBody)
	}
	prefix := "/admin/v2/persistent/" + url.PathEscape(t.Tenant()) + "/" + url.PathEscape(t.Namespace()) + "/" + url.PathEscape(t.LocalName())
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	if !ok {
		return fmt.Errorf("fan out: path %s does not start with %s", r.URL.EscapedPath(), prefix)
	}
	bodies := make([][]byte, n)
	for i := 0; i < n; i++ {
		p := t.Partition(i)
		u := strings.TrimSuffix(b.httpURL, "/") + "/admin/v2/persistent/" + url.PathEscape(p.Tenant()) + "/" +
			url.PathEscape(p.Namespace()) + "/" + url.PathEscape(p.LocalName()) + rest
		if q := r.URL.Query(); len(q) > 0 {
			q.Del("authoritative")
			if enc := q.Encode(); enc != "" {
				u += "?" + enc
			}
		}
		status, out, err := b.adminRequest(ctx, r.Method, u, r.Header.Get("Authorization"), body)
		if err != nil {
			return fmt.Errorf("partition %s: %w", p, err)
		}
		if status/100 != 2 {
			var reason struct {
				Reason string `json:"reason"`
			}
			if json.Unmarshal(out, &reason) != nil || reason.Reason == "" {
				reason.Reason = strings.TrimSpace(string(out))
			}
			return httpErr(status, "partition %s: %s", p, reason.Reason)
		}
		bodies[i] = out
	}
	if merge != nil {
		return merge(w, bodies)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// adminRequest sends an admin request to a broker, following owner
// redirects itself so that the method, body and credentials go along.
func (b *Broker) adminRequest(ctx context.Context, method, u, authz string, body []byte) (int, []byte, error) {
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if len(body) > 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := b.adminHTTP().Do(req)
		if err != nil {
			return 0, nil, err
		}
		out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return 0, nil, err
		}
		if resp.StatusCode != http.StatusTemporaryRedirect || hop == 5 {
			return resp.StatusCode, out, nil
		}
		loc, err := resp.Location()
		if err != nil {
			return 0, nil, err
		}
		u = loc.String()
	}
}

// adminHTTP returns the client brokers use to call each other's admin API.
// Under TLS it trusts the CAs configured for client certificates and
// presents the broker's own certificate.
func (b *Broker) adminHTTP() *http.Client {
	b.adminClientOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if b.opts.TLS != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: b.opts.TLS.ClientCAs, Certificates: b.opts.TLS.Certificates, MinVersion: tls.VersionTLS12}
		}
		b.adminClient = &http.Client{Transport: tr, Timeout: time.Minute,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	return b.adminClient
}

// mergeSubscriptions answers the union of the partitions' subscription lists.
func mergeSubscriptions(w http.ResponseWriter, bodies [][]byte) error {
	all := []string{}
	for _, body := range bodies {
		var subs []string
		if err := json.Unmarshal(body, &subs); err != nil {
			return fmt.Errorf("partition subscriptions: %w", err)
		}
		all = append(all, subs...)
	}
	slices.Sort(all)
	writeJSON(w, http.StatusOK, slices.Compact(all))
	return nil
}
