package client

import (
	"slices"
	"strings"
	"testing"
)

func TestParseServiceURL(t *testing.T) {
	for _, c := range []struct {
		in    string
		hosts []string
		tls   bool
	}{
		{"127.0.0.1:6650", []string{"127.0.0.1:6650"}, false},
		{" a:1 , b:2 ", []string{"a:1", "b:2"}, false},
		{"grpc://a:1", []string{"a:1"}, false},
		{"pulsar://localhost:6650", []string{"localhost:6650"}, false},
		{"pulsar://localhost:6650/", []string{"localhost:6650"}, false},
		{"pulsar://localhost", []string{"localhost:6650"}, false},
		{"pulsar://a:6650,b:6651,c", []string{"a:6650", "b:6651", "c:6650"}, false},
		{"pulsar://a:6650,pulsar://b:6650", []string{"a:6650", "b:6650"}, false},
		{"PULSAR+SSL://broker.example", []string{"broker.example:6651"}, true},
		{"pulsar+ssl://a:7000,b", []string{"a:7000", "b:6651"}, true},
		{"pulsar://[::1]:6650", []string{"[::1]:6650"}, false},
		{"pulsar://[::1]", []string{"[::1]:6650"}, false},
	} {
		u, err := parseServiceURL(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !slices.Equal(u.hosts, c.hosts) || u.tls != c.tls {
			t.Errorf("%q: hosts %q tls %v, want %q tls %v", c.in, u.hosts, u.tls, c.hosts, c.tls)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{" , ", "empty"},
		{"pulsar://", "empty"},
		{"http://localhost:8080", `scheme "http"`},
		{"pulsar://a:6650/persistent/x", "not host[:port]"},
		{"pulsar://user@a:6650", "not host[:port]"},
		{"a:1:2", "IPv6"},
		{"pulsar://a:6650,pulsar+ssl://b:6651", "mixes TLS"},
	} {
		if _, err := parseServiceURL(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one mentioning %q", c.in, err, c.want)
		}
	}
}
