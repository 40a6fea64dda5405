package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse reads the text form described in the package comment, anchors the
// schedule at created (see Anchor) and validates it. Every error quotes the
// text and says what was expected there.
func Parse(text string, created time.Time) (Schedule, error) {
	s, err := parse(strings.TrimSpace(text))
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", text, err)
	}
	s = s.Anchor(created)
	if err := s.Validate(); err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", text, err)
	}
	return s, nil
}

const syntaxHint = "expected immediate, manual, once@DATE, hourly/30m[@08:00-20:00], daily[/N]@HH:MM, weekly[/N]:mon,thu@HH:MM or monthly[:jan,jul]/DAY@HH:MM, then optional ;tz=ZONE;start=DATE"

func parse(text string) (Schedule, error) {
	parts := strings.Split(text, ";")
	head := strings.TrimSpace(parts[0])

	// Options first: tz decides how start and once read wall times.
	var s Schedule
	s.Zone = "UTC"
	var startText string
	for _, opt := range parts[1:] {
		key, value, ok := strings.Cut(strings.TrimSpace(opt), "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok || value == "":
			return s, fmt.Errorf("option %q: expected tz=ZONE or start=DATE", opt)
		case key == "tz":
			s.Zone = value
		case key == "start":
			startText = value
		default:
			return s, fmt.Errorf("unknown option %q: expected tz=ZONE (e.g. tz=Europe/Berlin) or start=DATE (e.g. start=2026-01-05)", key)
		}
	}
	loc, err := s.location()
	if err != nil {
		return s, fmt.Errorf("tz: %w", err)
	}
	if startText != "" {
		if s.Start, err = parseInstant(startText, loc); err != nil {
			return s, fmt.Errorf("start: %w", err)
		}
	}

	spec, at, hasAt := strings.Cut(head, "@")
	kindEnd := strings.IndexAny(spec, "/:")
	if kindEnd < 0 {
		kindEnd = len(spec)
	}
	s.Kind = Kind(strings.ToLower(spec[:kindEnd]))
	// The rest is "/value" and ":list" parts, in either order.
	var slash, colon string
	var hasSlash, hasColon bool
	for rest := spec[kindEnd:]; rest != ""; {
		sep := rest[0]
		end := strings.IndexAny(rest[1:], "/:")
		if end < 0 {
			end = len(rest) - 1
		}
		value := rest[1 : 1+end]
		rest = rest[1+end:]
		if sep == '/' {
			if hasSlash {
				return s, fmt.Errorf("two /parts; expected at most one")
			}
			slash, hasSlash = value, true
		} else {
			if hasColon {
				return s, fmt.Errorf("two :lists; expected at most one")
			}
			colon, hasColon = value, true
		}
	}
	noPart := func(has bool, what, example string) error {
		if has {
			return fmt.Errorf("%s takes no %s (e.g. %q)", s.Kind, what, example)
		}
		return nil
	}
	needAt := func(example string) (TimeOfDay, error) {
		if !hasAt {
			return TimeOfDay{}, fmt.Errorf("%s needs a time of day: expected @HH:MM as in %q", s.Kind, example)
		}
		return ParseTimeOfDay(at)
	}

	switch s.Kind {
	case Immediate, Manual:
		if hasSlash || hasColon || hasAt {
			return s, fmt.Errorf("%s takes no /, : or @ part; expected just %q", s.Kind, s.Kind)
		}
	case Once:
		if hasSlash || hasColon {
			return s, fmt.Errorf("once takes no / or : part; expected once@2026-12-01T02:00")
		}
		if !hasAt {
			return s, fmt.Errorf("once needs its date and time: expected once@YYYY-MM-DDTHH:MM, e.g. once@2026-12-01T02:00")
		}
		if s.At, err = parseInstant(at, loc); err != nil {
			return s, err
		}
	case Hourly:
		if err := noPart(hasColon, ":list", "hourly/30m@08:00-20:00"); err != nil {
			return s, err
		}
		if !hasSlash {
			return s, fmt.Errorf("hourly needs an interval: expected /30m or /2h, e.g. hourly/30m@08:00-20:00")
		}
		if s.Every, s.Unit, err = parseInterval(slash); err != nil {
			return s, err
		}
		if hasAt {
			from, to, ok := strings.Cut(at, "-")
			if !ok {
				return s, fmt.Errorf("hourly window %q: expected @HH:MM-HH:MM, e.g. @08:00-20:00", at)
			}
			if s.WindowStart, err = ParseTimeOfDay(from); err != nil {
				return s, fmt.Errorf("hourly window start: %w", err)
			}
			if s.WindowEnd, err = ParseTimeOfDay(to); err != nil {
				return s, fmt.Errorf("hourly window end: %w", err)
			}
		}
	case Daily:
		if err := noPart(hasColon, ":list", "daily/2@02:00"); err != nil {
			return s, err
		}
		if hasSlash {
			if s.Every, err = parseCount(slash, "days", "daily/2@02:00"); err != nil {
				return s, err
			}
		}
		if s.TimeOfDay, err = needAt("daily@02:00"); err != nil {
			return s, err
		}
	case Weekly:
		if hasSlash {
			if s.Every, err = parseCount(slash, "weeks", "weekly/2:mon,thu@01:30"); err != nil {
				return s, err
			}
		}
		if !hasColon {
			return s, fmt.Errorf("weekly needs its weekdays: expected :mon,thu (or :mon-fri), e.g. weekly:mon,thu@01:30")
		}
		if s.Weekdays, err = parseWeekdays(colon); err != nil {
			return s, err
		}
		if s.TimeOfDay, err = needAt("weekly:sun@01:30"); err != nil {
			return s, err
		}
	case Monthly:
		if hasColon {
			if s.Months, err = parseMonths(colon); err != nil {
				return s, err
			}
		}
		if !hasSlash {
			return s, fmt.Errorf("monthly needs a day: expected /15, /last-day, /2nd-tue or /last-fri, e.g. monthly/1@03:00")
		}
		if err := s.parseMonthDay(slash); err != nil {
			return s, err
		}
		if s.TimeOfDay, err = needAt("monthly/1@03:00"); err != nil {
			return s, err
		}
	default:
		return s, fmt.Errorf("unknown kind %q; %s", s.Kind, syntaxHint)
	}
	return s, nil
}

func parseInterval(v string) (int, Unit, error) {
	fail := fmt.Errorf("interval %q: expected a number and m or h, e.g. /30m or /2h", v)
	unit := Hours
	num, ok := strings.CutSuffix(v, "h")
	if !ok {
		unit = Minutes
		if num, ok = strings.CutSuffix(v, "m"); !ok {
			return 0, "", fail
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return 0, "", fail
	}
	return n, unit, nil
}

func parseCount(v, unit, example string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("every %q: expected a whole number of %s, at least 1, e.g. %q", v, unit, example)
	}
	return n, nil
}

// parseWeekdays reads "mon,thu" and ranges "mon-fri".
func parseWeekdays(v string) ([]time.Weekday, error) {
	return parseNameList(v, parseWeekday, func(d time.Weekday) time.Weekday { return (d + 1) % 7 },
		"weekday %q: expected mon, tue, wed, thu, fri, sat or sun (lists: mon,thu; ranges: mon-fri)")
}

// parseMonths reads "jan,jul" and ranges "jan-mar".
func parseMonths(v string) ([]time.Month, error) {
	return parseNameList(v, parseMonth, func(m time.Month) time.Month { return m%12 + 1 },
		"month %q: expected jan, feb, … dec (lists: jan,jul; ranges: jan-mar)")
}

// parseNameList reads a comma-separated list of names and ranges of
// names (a range wraps around: fri-mon, nov-feb); next steps through the
// cycle, and complaint formats the error for an item it cannot read.
func parseNameList[T comparable](v string, parse func(string) (T, bool), next func(T) T, complaint string) ([]T, error) {
	var out []T
	for item := range strings.SplitSeq(v, ",") {
		from, to, isRange := strings.Cut(item, "-")
		a, ok1 := parse(from)
		b, ok2 := a, true
		if isRange {
			b, ok2 = parse(to)
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf(complaint, item)
		}
		for x := a; ; x = next(x) {
			out = append(out, x)
			if x == b {
				break
			}
		}
	}
	return out, nil
}

// parseMonthDay reads "15", "last-day", "2nd-tue", "last-fri".
func (s *Schedule) parseMonthDay(v string) error {
	fail := fmt.Errorf("monthly day %q: expected a day 1–31, last-day, or NTH-WEEKDAY such as 2nd-tue or last-fri", v)
	if v == "last-day" {
		s.DayOfMonth = LastDay
		return nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 31 {
			return fail
		}
		s.DayOfMonth = n
		return nil
	}
	nth, day, ok := strings.Cut(v, "-")
	if !ok {
		return fail
	}
	d, ok := parseWeekday(day)
	if !ok {
		return fail
	}
	s.Weekday = d
	if nth == "last" {
		s.Nth = Last
		return nil
	}
	for n := 1; n <= 5; n++ {
		if nth == ordinal(n) {
			s.Nth = n
			return nil
		}
	}
	return fail
}

// parseInstant reads a date, a wall date-time in loc, or RFC 3339 with an
// offset (for an instant the wall clock shows twice).
func parseInstant(v string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return resolveWall(loc, t.Unix()), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM (wall time in tz) or RFC 3339 with an offset", v)
}

// formatInstant writes t as a wall time in loc when that reads back to t,
// and as RFC 3339 otherwise.
func formatInstant(t time.Time, loc *time.Location) string {
	w := t.In(loc)
	wall := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, time.UTC).Unix()
	if w.Second() == 0 && w.Nanosecond() == 0 && resolveWall(loc, wall).Equal(t) {
		return w.Format("2006-01-02T15:04")
	}
	return w.Format(time.RFC3339Nano)
}

// Format writes s in the text form; Parse(s.Format(), created) gives s back
// (an immediate schedule's At comes from created).
func (s Schedule) Format() string {
	loc, err := s.location()
	if err != nil {
		loc = time.UTC
	}
	var b strings.Builder
	b.WriteString(string(s.Kind))
	switch s.Kind {
	case Once:
		b.WriteString("@" + formatInstant(s.At, loc))
	case Hourly:
		unit := "h"
		if s.Unit == Minutes {
			unit = "m"
		}
		fmt.Fprintf(&b, "/%d%s", s.Every, unit)
		if s.WindowStart != (TimeOfDay{}) || s.WindowEnd != (TimeOfDay{}) {
			fmt.Fprintf(&b, "@%s-%s", s.WindowStart, s.WindowEnd)
		}
	case Daily:
		if s.Every > 1 {
			fmt.Fprintf(&b, "/%d", s.Every)
		}
		b.WriteString("@" + s.TimeOfDay.String())
	case Weekly:
		if s.Every > 1 {
			fmt.Fprintf(&b, "/%d", s.Every)
		}
		b.WriteString(":" + weekdayNames(s.Weekdays, true, ",") + "@" + s.TimeOfDay.String())
	case Monthly:
		if len(s.Months) > 0 {
			b.WriteString(":" + strings.ToLower(monthNames(s.Months, ",")))
		}
		switch {
		case s.DayOfMonth == LastDay:
			b.WriteString("/last-day")
		case s.DayOfMonth != 0:
			fmt.Fprintf(&b, "/%d", s.DayOfMonth)
		case s.Nth == Last:
			b.WriteString("/last-" + weekdayNames([]time.Weekday{s.Weekday}, true, ""))
		default:
			b.WriteString("/" + ordinal(s.Nth) + "-" + weekdayNames([]time.Weekday{s.Weekday}, true, ""))
		}
		b.WriteString("@" + s.TimeOfDay.String())
	}
	if s.Kind != Immediate && s.Kind != Manual || s.zoneName() != "UTC" {
		b.WriteString(";tz=" + s.zoneName())
	}
	if !s.Start.IsZero() {
		b.WriteString(";start=" + formatInstant(s.Start, loc))
	}
	return b.String()
}

// String describes s for people, e.g. "every 2 h from 08:00 to 20:00
// Europe/Berlin" or "monthly on the last Friday at 23:30 UTC".
func (s Schedule) String() string {
	zone := s.zoneName()
	loc, err := s.location()
	if err != nil {
		loc = time.UTC
	}
	when := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04") + " " + zone }
	counting := ""
	if s.Every > 1 && !s.Start.IsZero() {
		counting = ", counting from " + s.Start.In(loc).Format("2006-01-02")
	}
	switch s.Kind {
	case Immediate:
		if s.At.IsZero() {
			return "immediately when created"
		}
		return "immediately (" + when(s.At) + ")"
	case Once:
		return "once at " + when(s.At)
	case Manual:
		return "manually only"
	case Hourly:
		unit := "h"
		if s.Unit == Minutes {
			unit = "min"
		}
		window := fmt.Sprintf("from %s to %s", s.WindowStart, s.WindowEnd)
		if s.WindowStart == (TimeOfDay{}) && s.WindowEnd == (TimeOfDay{}) {
			window = "all day"
		}
		return fmt.Sprintf("every %d %s %s %s", s.Every, unit, window, zone)
	case Daily:
		if s.Every > 1 {
			return fmt.Sprintf("every %d days at %s %s%s", s.Every, s.TimeOfDay, zone, counting)
		}
		return fmt.Sprintf("daily at %s %s", s.TimeOfDay, zone)
	case Weekly:
		days := weekdayNames(s.Weekdays, false, ", ")
		if s.Every > 1 {
			return fmt.Sprintf("every %d weeks on %s at %s %s%s", s.Every, days, s.TimeOfDay, zone, counting)
		}
		return fmt.Sprintf("weekly on %s at %s %s", days, s.TimeOfDay, zone)
	case Monthly:
		var day string
		switch {
		case s.DayOfMonth == LastDay:
			day = "the last day"
		case s.DayOfMonth != 0:
			day = "day " + strconv.Itoa(s.DayOfMonth)
		case s.Nth == Last:
			day = "the last " + s.Weekday.String()
		default:
			day = "the " + ordinal(s.Nth) + " " + s.Weekday.String()
		}
		months := ""
		if len(s.Months) > 0 {
			months = " in " + monthNames(s.Months, ", ")
		}
		return fmt.Sprintf("monthly%s on %s at %s %s", months, day, s.TimeOfDay, zone)
	}
	return fmt.Sprintf("invalid schedule kind %q", s.Kind)
}
