package units

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "100", want: 100},
		{in: "0", want: 0},
		{in: "-1", want: Unlimited},
		{in: "1024K", want: 1024 * 1024},
		{in: "1024k", want: 1024 * 1024},
		{in: "512M", want: 512 << 20},
		{in: "10G", want: 10 << 30},
		{in: "10g", want: 10 << 30},
		{in: "2T", want: 2 << 40},
		{in: " 5M ", want: 5 << 20},
		{in: "", wantErr: "empty size"},
		{in: "G", wantErr: "has no number"},
		{in: "-2", wantErr: "is negative"},
		{in: "-1G", wantErr: "is negative"},
		{in: "1.5G", wantErr: "not a whole number"},
		{in: "10GB", wantErr: "not a whole number"},
		{in: "10X", wantErr: "not a whole number"},
		{in: "abc", wantErr: "not a whole number"},
		{in: "9999999999999999999", wantErr: "overflows"},
		{in: "9000000000T", wantErr: "overflows"},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if tc.wantErr != "" {
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSizeMB(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"10G", 10240, true},
		{"512M", 512, true},
		{"1024K", 1, true},
		{"-1", -1, true},
		{"0", 0, true},
		{"100", 0, false},
		{"1500K", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseSizeMB(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSizeMB(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseRelativeTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "45s", want: 45 * time.Second},
		{in: "30m", want: 30 * time.Minute},
		{in: "2h", want: 2 * time.Hour},
		{in: "3d", want: 72 * time.Hour},
		{in: "1w", want: 7 * 24 * time.Hour},
		{in: "1y", want: 365 * 24 * time.Hour},
		{in: "100", want: 100 * time.Second},
		{in: "0", want: 0},
		{in: "-1", want: UnlimitedDuration},
		{in: "", wantErr: "empty relative time"},
		{in: "h", wantErr: "has no number"},
		{in: "1M", wantErr: `unknown unit "M"`},
		{in: "5x", wantErr: `unknown unit "x"`},
		{in: "-5m", wantErr: "is negative"},
		{in: "1.5h", wantErr: "not a whole number"},
		{in: "999999999999y", wantErr: "overflows"},
	}
	for _, tc := range tests {
		got, err := ParseRelativeTime(tc.in)
		if tc.wantErr != "" {
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRelativeTime(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRelativeTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRelativeTimeUnits(t *testing.T) {
	secs := []struct {
		in   string
		want int64
	}{{"2m", 120}, {"1d", 86400}, {"-1", -1}, {"7", 7}}
	for _, tc := range secs {
		if got, err := ParseRelativeTimeSeconds(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseRelativeTimeSeconds(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	mins := []struct {
		in   string
		want int64
		ok   bool
	}{{"3h", 180, true}, {"120s", 2, true}, {"-1", -1, true}, {"90s", 0, false}, {"bad", 0, false}}
	for _, tc := range mins {
		got, err := ParseRelativeTimeMinutes(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseRelativeTimeMinutes(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestScaleSaturates(t *testing.T) {
	for _, tc := range []struct{ n, unit, want int64 }{
		{3, 1 << 20, 3 << 20},
		{-1, 60, -60},
		{1 << 60, 1 << 20, math.MaxInt64},
		{-(1 << 60), 1 << 20, math.MinInt64},
		{math.MaxInt64, 1, math.MaxInt64},
		{0, math.MaxInt64, 0},
	} {
		if got := Scale(tc.n, tc.unit); got != tc.want {
			t.Errorf("Scale(%d, %d) = %d, want %d", tc.n, tc.unit, got, tc.want)
		}
	}
	if d := Duration(10_000_000_000, time.Second); d != math.MaxInt64 {
		t.Errorf("Duration(1e10 s) = %v, want the maximum", d)
	}
	if d := Duration(90, time.Minute); d != 90*time.Minute {
		t.Errorf("Duration(90 min) = %v", d)
	}
}
