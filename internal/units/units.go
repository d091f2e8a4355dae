// Package units parses the human-friendly sizes and relative times that
// pulsar-admin style commands accept: "10G", "512M", "1024K", "100" (bytes),
// and "3d", "2h", "30m", "45s", "1w", "1y"; "-1" means unlimited for both.
package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("units: invalid value")

// Unlimited is returned by ParseSize, ParseRelativeTimeSeconds and
// ParseRelativeTimeMinutes for the input "-1".
const Unlimited int64 = -1

// UnlimitedDuration is returned by ParseRelativeTime for the input "-1".
const UnlimitedDuration time.Duration = -1

// Size multipliers (powers of 1024, as in pulsar-admin).
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
	TiB int64 = 1 << 40
)

// ParseSize parses a size in bytes: an integer optionally followed by one
// of k, m, g, t (either case, powers of 1024). "-1" returns Unlimited; any
// other negative value, a fraction or an overflow is an error.
func ParseSize(s string) (int64, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "-1" {
		return Unlimited, nil
	}
	if s == "" {
		return 0, fmt.Errorf("%w: empty size", ErrSyntax)
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = KiB
	case 'm', 'M':
		mult = MiB
	case 'g', 'G':
		mult = GiB
	case 't', 'T':
		mult = TiB
	}
	digits := s
	if mult != 1 {
		digits = s[:len(s)-1]
	}
	n, err := parseCount(in, digits, "size", "k, m, g or t")
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%w: size %q overflows 64 bits", ErrSyntax, in)
	}
	return n * mult, nil
}

// ParseSizeMB parses a size like ParseSize and converts it to whole
// megabytes (MiB), as retention policies store it. "-1" returns Unlimited; a
// size that is not a whole number of megabytes is an error rather than being
// silently truncated.
func ParseSizeMB(s string) (int64, error) {
	n, err := ParseSize(s)
	if err != nil || n == Unlimited {
		return n, err
	}
	if n%MiB != 0 {
		return 0, fmt.Errorf("%w: size %q is not a whole number of megabytes", ErrSyntax, s)
	}
	return n / MiB, nil
}

// timeUnits maps a relative-time suffix to its length.
var timeUnits = map[byte]time.Duration{
	's': time.Second,
	'm': time.Minute,
	'h': time.Hour,
	'd': 24 * time.Hour,
	'w': 7 * 24 * time.Hour,
	'y': 365 * 24 * time.Hour,
}

// ParseRelativeTime parses a relative time: an integer followed by s
// (seconds), m (minutes), h (hours), d (days), w (weeks) or y (365 days); an
// integer without a unit is seconds. Units are lower case, so "1M" is
// rejected instead of being read as minutes or months. "-1" returns
// UnlimitedDuration; any other negative value is an error.
func ParseRelativeTime(s string) (time.Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "-1" {
		return UnlimitedDuration, nil
	}
	if s == "" {
		return 0, fmt.Errorf("%w: empty relative time", ErrSyntax)
	}
	unit := time.Second
	digits := s
	last := s[len(s)-1]
	if u, ok := timeUnits[last]; ok {
		unit = u
		digits = s[:len(s)-1]
	} else if last < '0' || last > '9' {
		return 0, fmt.Errorf("%w: relative time %q has unknown unit %q (use s, m, h, d, w or y)", ErrSyntax, in, string(rune(last)))
	}
	n, err := parseCount(in, digits, "relative time", "s, m, h, d, w or y")
	if err != nil {
		return 0, err
	}
	if n > int64(math.MaxInt64/unit) {
		return 0, fmt.Errorf("%w: relative time %q overflows", ErrSyntax, in)
	}
	return time.Duration(n) * unit, nil
}

// ParseRelativeTimeSeconds parses like ParseRelativeTime and returns whole
// seconds; "-1" returns Unlimited.
func ParseRelativeTimeSeconds(s string) (int64, error) {
	d, err := ParseRelativeTime(s)
	if err != nil {
		return 0, err
	}
	if d == UnlimitedDuration {
		return Unlimited, nil
	}
	return int64(d / time.Second), nil
}

// ParseRelativeTimeMinutes parses like ParseRelativeTime and returns whole
// minutes, as retention policies store time; "-1" returns Unlimited. A time
// that is not a whole number of minutes ("90s") is an error rather than being
// silently truncated.
func ParseRelativeTimeMinutes(s string) (int64, error) {
	d, err := ParseRelativeTime(s)
	if err != nil {
		return 0, err
	}
	if d == UnlimitedDuration {
		return Unlimited, nil
	}
	if d%time.Minute != 0 {
		return 0, fmt.Errorf("%w: relative time %q is not a whole number of minutes", ErrSyntax, s)
	}
	return int64(d / time.Minute), nil
}

// parseCount parses the non-negative integer part of a size or time.
func parseCount(in, digits, what, units string) (int64, error) {
	if digits == "" {
		return 0, fmt.Errorf("%w: %s %q has no number", ErrSyntax, what, in)
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c == '-' && i == 0 {
			return 0, fmt.Errorf("%w: %s %q is negative (only -1, meaning unlimited, is allowed)", ErrSyntax, what, in)
		}
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s %q is not a whole number with an optional unit (%s)", ErrSyntax, what, in, units)
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q overflows 64 bits", ErrSyntax, what, in)
	}
	return n, nil
}

// Scale returns n×unit (unit > 0) saturated to the int64 range: limits and
// durations users send never wrap around into small or negative values.
func Scale(n, unit int64) int64 {
	switch {
	case n > 0 && n > math.MaxInt64/unit:
		return math.MaxInt64
	case n < 0 && n < math.MinInt64/unit:
		return math.MinInt64
	}
	return n * unit
}

// Duration returns n units as a time.Duration, saturated like Scale.
func Duration(n int64, unit time.Duration) time.Duration {
	return time.Duration(Scale(n, int64(unit)))
}
