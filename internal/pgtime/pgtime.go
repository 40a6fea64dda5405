// Package pgtime parses the points in time operators give pgguard (a
// recovery target, a WAL range): always with a zone, since a time without
// one would silently mean the server's.
package pgtime

import (
	"fmt"
	"strings"
	"time"
)

// layouts are accepted after RFC 3339; every one carries a zone.
var layouts = []string{
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999 MST",
}

// Parse reads a time with a zone: RFC 3339, or PostgreSQL's own form
// ('2026-11-23 10:00:00+00'); a zone abbreviation Go does not know is
// refused rather than read as UTC.
func Parse(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			if l == layouts[len(layouts)-1] && t.Location() != time.UTC {
				if _, off := t.Zone(); off == 0 && !strings.HasSuffix(s, "UTC") && !strings.HasSuffix(s, "GMT") {
					continue // an unknown abbreviation parses as a zero offset: refuse it
				}
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want e.g. '2026-11-23 10:00:00+00' or '2026-11-23T10:00:00Z' (with a zone offset)", s)
}

// Since reads a "since" an operator gives: empty (the beginning), a
// duration back from now, or an RFC 3339 time; flag names the option in
// the error.
func Since(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: give a duration (30m, 2h) or an RFC 3339 time (2026-11-23T10:00:00Z)", flag, v)
}
