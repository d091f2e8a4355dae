package client

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// serviceURL is a parsed service URL: the brokers to ask, and whether the
// URL asks for TLS.
type serviceURL struct {
	hosts []string // host:port
	tls   bool
}

// Default ports of Pulsar's URL schemes, used when a host has none.
const (
	defaultPort    = "6650"
	defaultTLSPort = "6651"
)

// parseServiceURL accepts the forms a Pulsar user knows and the plain one:
//
//	host:port[,host:port...]           plain gRPC
//	grpc://host:port                   plain gRPC
//	pulsar://host[:6650][,host2...]    plain; the scheme once, several hosts
//	pulsar+ssl://host[:6651][,host2]   TLS
//
// A trailing slash is ignored; any other scheme or a path is refused.
func parseServiceURL(s string) (serviceURL, error) {
	var u serviceURL
	rest := strings.TrimSpace(s)
	port := defaultPort
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		switch strings.ToLower(scheme) {
		case "grpc", "pulsar":
		case "grpcs", "pulsar+ssl":
			u.tls, port = true, defaultTLSPort
		default:
			return u, fmt.Errorf("strata: service URL %q: scheme %q is not a broker URL (use host:port, pulsar://host:port or pulsar+ssl://host:port)", s, scheme)
		}
		rest = after
	}
	rest = strings.TrimSuffix(rest, "/")
	for h := range strings.SplitSeq(rest, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.Contains(h, "://") {
			// Every host may carry the scheme too (pulsar://a:6650,pulsar://b:6650).
			one, err := parseServiceURL(h)
			if err != nil {
				return u, err
			}
			if one.tls != u.tls && len(u.hosts) > 0 {
				return u, fmt.Errorf("strata: service URL %q mixes TLS and plain hosts", s)
			}
			u.tls = one.tls
			u.hosts = append(u.hosts, one.hosts...)
			continue
		}
		if strings.ContainsAny(h, "/?#@") {
			return u, fmt.Errorf("strata: service URL %q: %q is not host[:port]", s, h)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			var ae *net.AddrError
			if !errors.As(err, &ae) || ae.Err != "missing port in address" {
				return u, fmt.Errorf("strata: service URL %q: %q is not host[:port] (an IPv6 address goes in brackets: [::1]:6650)", s, h)
			}
			h = net.JoinHostPort(strings.Trim(h, "[]"), port) // the scheme's default port
		}
		u.hosts = append(u.hosts, h)
	}
	if len(u.hosts) == 0 {
		return u, fmt.Errorf("strata: empty service URL")
	}
	return u, nil
}
