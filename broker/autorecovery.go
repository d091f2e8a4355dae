package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-mq/strata/ledger/autorecovery"
	"github.com/strata-mq/strata/tenants"
)

// AutoRecoveryOptions configures the bookie auto-recovery every broker runs:
// it competes for the auditor role and re-replicates ledgers of lost or
// decommissioned bookies (package ledger/autorecovery).
type AutoRecoveryOptions struct {
	// Disabled turns auto-recovery off in this broker.
	Disabled bool
	// LostBookieDelay: an unregistered bookie is lost after this long;
	// default 5 min.
	LostBookieDelay time.Duration
	// CheckInterval: the auditor's full scan period; default 1 h.
	CheckInterval time.Duration
	// OpenLedgerGracePeriod: an open ledger on a lost bookie is recovered
	// (its writer fenced) after this long; default 30 s.
	OpenLedgerGracePeriod time.Duration
}

func (b *Broker) startAutoRecovery() error {
	o := b.opts.AutoRecovery
	if o.Disabled {
		return nil
	}
	svc, err := autorecovery.Start(autorecovery.Options{
		Metadata: b.md, Ledgers: b.ledgers, NodeID: b.id,
		LostBookieDelay: o.LostBookieDelay, CheckInterval: o.CheckInterval, OpenLedgerGracePeriod: o.OpenLedgerGracePeriod,
		SessionTTL: b.opts.SessionTTL, Logger: b.log,
	})
	if err != nil {
		return err
	}
	b.recovery = svc
	return nil
}

func (b *Broker) stopAutoRecovery() {
	if b.recovery != nil {
		b.recovery.Close()
	}
}

var (
	descARAuditor  = prometheus.NewDesc("strata_autorecovery_auditor", "1 on the broker elected auto-recovery auditor.", []string{"cluster"}, nil)
	descARUnder    = prometheus.NewDesc("strata_autorecovery_underreplicated_ledgers", "Ledgers marked under-replicated at the auditor's last scan (reported by the auditor).", []string{"cluster"}, nil)
	descARLost     = prometheus.NewDesc("strata_autorecovery_lost_bookies", "Bookies counted lost or decommissioning at the auditor's last scan (reported by the auditor).", []string{"cluster"}, nil)
	descARLedgers  = prometheus.NewDesc("strata_autorecovery_ledgers_replicated_total", "Ledgers this broker brought back to their full replica count.", []string{"cluster"}, nil)
	descARSegments = prometheus.NewDesc("strata_autorecovery_segments_replicated_total", "Ledger segments this broker re-replicated to a replacement bookie.", []string{"cluster"}, nil)
	descAREntries  = prometheus.NewDesc("strata_autorecovery_entries_replicated_total", "Entries this broker copied to replacement bookies.", []string{"cluster"}, nil)
	descARBytes    = prometheus.NewDesc("strata_autorecovery_bytes_replicated_total", "Bytes this broker copied to replacement bookies.", []string{"cluster"}, nil)
	descARRecov    = prometheus.NewDesc("strata_autorecovery_ledgers_recovered_total", "Open ledgers on a lost bookie this broker recovered (fencing their writer) before copying them.", []string{"cluster"}, nil)
	descARFail     = prometheus.NewDesc("strata_autorecovery_failures_total", "Re-replication attempts that failed and will be retried.", []string{"cluster"}, nil)
)

// recoveryCollector exports this broker's auto-recovery figures.
type recoveryCollector struct{ b *Broker }

func (c recoveryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descARAuditor, descARUnder, descARLost, descARLedgers, descARSegments, descAREntries, descARBytes, descARRecov, descARFail} {
		ch <- d
	}
}

func (c recoveryCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b.recovery == nil {
		return
	}
	s := c.b.recovery.Stats()
	cl := c.b.opts.Cluster
	auditor := 0.0
	if s.Auditor {
		auditor = 1
	}
	for _, m := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v float64
	}{
		{descARAuditor, prometheus.GaugeValue, auditor},
		{descARUnder, prometheus.GaugeValue, float64(s.Underreplicated)},
		{descARLost, prometheus.GaugeValue, float64(s.LostBookies)},
		{descARLedgers, prometheus.CounterValue, float64(s.LedgersReplicated)},
		{descARSegments, prometheus.CounterValue, float64(s.SegmentsReplicated)},
		{descAREntries, prometheus.CounterValue, float64(s.EntriesReplicated)},
		{descARBytes, prometheus.CounterValue, float64(s.BytesReplicated)},
		{descARRecov, prometheus.CounterValue, float64(s.LedgersRecovered)},
		{descARFail, prometheus.CounterValue, float64(s.Failures)},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v, cl)
	}
}

// bookieRoutes serves /admin/v2/bookies/...: the bookies, the ledgers being
// re-replicated, and decommissioning. Superusers only (with authorization
// on): it is cluster-wide.
func (b *Broker) bookieRoutes(mux *routeMux) {
	const p = "/admin/v2/bookies"
	route := func(h func(ctx context.Context, r *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			role, err := b.roleHTTP(r)
			if err == nil && b.opts.AuthorizationEnabled && !b.authz.IsSuperUser(role) {
				err = fmt.Errorf("%w: bookie administration is for superusers", tenants.ErrForbidden)
			}
			var v any
			if err == nil {
				v, err = h(r.Context(), r)
			}
			switch {
			case errors.Is(err, autorecovery.ErrUnknownBookie):
				writeErr(w, httpErr(http.StatusNotFound, "%v", err))
			case err != nil:
				writeErr(w, err)
			case v == nil:
				w.WriteHeader(http.StatusNoContent)
			default:
				writeJSON(w, http.StatusOK, v)
			}
		}
	}
	mux.HandleFunc("GET "+p+"/all", route(func(ctx context.Context, r *http.Request) (any, error) {
		bs, err := autorecovery.Bookies(ctx, b.md)
		return map[string]any{"bookies": bs}, err
	}))
	mux.HandleFunc("GET "+p+"/underreplicated", route(func(ctx context.Context, r *http.Request) (any, error) {
		return autorecovery.ListUnderreplicated(ctx, b.md)
	}))
	mux.HandleFunc("GET "+p+"/autorecovery", route(func(ctx context.Context, r *http.Request) (any, error) {
		return autorecovery.GetStatus(ctx, b.md)
	}))
	mux.HandleFunc("PUT "+p+"/{bookie}/decommission", route(func(ctx context.Context, r *http.Request) (any, error) {
		err := autorecovery.Decommission(ctx, b.md, r.PathValue("bookie"))
		if err == nil && b.recovery != nil {
			b.recovery.Audit()
		}
		return nil, err
	}))
	mux.HandleFunc("DELETE "+p+"/{bookie}/decommission", route(func(ctx context.Context, r *http.Request) (any, error) {
		return nil, autorecovery.Recommission(ctx, b.md, r.PathValue("bookie"))
	}))
}
