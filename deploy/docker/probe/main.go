// Command strata-probe is the health check the container image ships for runtimes that probe
// by running a command inside the container (docker compose healthchecks): the runtime image
// has no shell, curl or wget. Kubernetes does not need it; its kubelet probes over HTTP.
//
// Usage: strata-probe [-timeout 3s] URL
//
// It exits 0 when GET URL answers 2xx within the timeout, and 1 otherwise, saying why on stderr.
// Certificates are not verified, so it works against a TLS listener with a private CA; it only
// reads a status code.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: strata-probe [-timeout 3s] URL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := probe(flag.Arg(0), *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "strata-probe:", err)
		os.Exit(1)
	}
}

// probe GETs url and returns nil for a 2xx answer.
func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // status code only
	}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
