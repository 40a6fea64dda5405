package storage

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseByteRate parses a transfer rate in bytes per second as people write
// it in configuration: "unlimited" or "0" (no limit), a plain number of
// bytes, or a number with a unit: KiB, MiB, GiB (powers of 1024) or kB, MB,
// GB (powers of 1000), optionally followed by "/s".
func ParseByteRate(s string) (int64, error) {
	text := strings.TrimSpace(s)
	text = strings.TrimSuffix(text, "/s")
	if strings.EqualFold(text, "unlimited") {
		return 0, nil
	}
	units := []struct {
		suffix string
		factor int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"kB", 1000}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"B", 1},
	}
	factor := int64(1)
	for _, u := range units {
		if strings.HasSuffix(text, u.suffix) {
			text, factor = strings.TrimSpace(strings.TrimSuffix(text, u.suffix)), u.factor
			break
		}
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || v < 0 || v*float64(factor) > float64(1<<62) {
		return 0, fmt.Errorf("rate %q: expected \"unlimited\" or a size per second such as 512KiB, 10MiB or 100MB", s)
	}
	return int64(v * float64(factor)), nil
}

// ParseRateWindow parses "HH:MM-HH:MM=RATE", e.g. "08:00-20:00=1MiB".
func ParseRateWindow(s string) (RateWindow, error) {
	bad := func(why string) (RateWindow, error) {
		return RateWindow{}, fmt.Errorf("rate window %q: %s; expected HH:MM-HH:MM=RATE such as 08:00-20:00=1MiB", s, why)
	}
	span, rate, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return bad("missing \"=RATE\"")
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return bad("missing \"-\" between the times")
	}
	start, err := parseTimeOfDay(from)
	if err != nil {
		return bad(err.Error())
	}
	end, err := parseTimeOfDay(to)
	if err != nil {
		return bad(err.Error())
	}
	bps, err := ParseByteRate(rate)
	if err != nil {
		return bad(err.Error())
	}
	return RateWindow{Start: start, End: end, BytesPerSec: bps}, nil
}

func parseTimeOfDay(s string) (TimeOfDay, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	h, herr := strconv.Atoi(hh)
	m, merr := strconv.Atoi(mm)
	if !ok || herr != nil || merr != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("bad time of day %q", s)
	}
	return HourMinute(h%24, m), nil
}

// ParseRateSchedule parses "RATE" or "RATE,HH:MM-HH:MM=RATE,...": the
// first item is the default (a window may come first: the default is then
// unlimited).
func ParseRateSchedule(v string) (RateSchedule, error) {
	var rs RateSchedule
	for i, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if strings.Contains(part, "=") {
			w, err := ParseRateWindow(part)
			if err != nil {
				return rs, err
			}
			rs.Windows = append(rs.Windows, w)
			continue
		}
		if i > 0 {
			return rs, fmt.Errorf("%q: only the first item may be a plain rate; windows are HH:MM-HH:MM=RATE", part)
		}
		r, err := ParseByteRate(part)
		if err != nil {
			return rs, err
		}
		rs.Default = r
	}
	return rs, nil
}
