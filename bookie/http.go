package bookie

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpHandler serves liveness, readiness and metrics.
func (b *Bookie) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case b.failed.Load():
			http.Error(w, "journal failed; bookie is read-only", http.StatusServiceUnavailable)
		case !b.registered.Load():
			http.Error(w, "not registered in the metadata store", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("ok\n"))
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// newTicker is time.NewTicker that tolerates a zero interval by never firing.
func newTicker(d time.Duration) *time.Ticker {
	if d <= 0 {
		d = time.Duration(1<<63 - 1)
	}
	return time.NewTicker(d)
}
