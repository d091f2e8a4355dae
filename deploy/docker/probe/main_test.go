package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	ready := false
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	if err := probe(srv.URL+"/healthz", time.Second); err != nil {
		t.Errorf("healthz: %v", err)
	}
	if err := probe(srv.URL+"/readyz", time.Second); err == nil {
		t.Errorf("readyz answered 503 but the probe passed")
	}
	ready = true
	if err := probe(srv.URL+"/readyz", time.Second); err != nil {
		t.Errorf("readyz: %v", err)
	}
	srv.Close()
	if err := probe(srv.URL+"/healthz", time.Second); err == nil {
		t.Errorf("server closed but the probe passed")
	}
}
