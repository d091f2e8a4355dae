package broker

import "testing"

func TestMurmur3Vectors(t *testing.T) {
	for _, v := range []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"hello", 0x248bfa47},
		{"The quick brown fox jumps over the lazy dog", 0x2e4ff723},
	} {
		if got := murmur3([]byte(v.in)); got != v.want {
			t.Errorf("murmur3(%q) = %#x, want %#x", v.in, got, v.want)
		}
	}
}
