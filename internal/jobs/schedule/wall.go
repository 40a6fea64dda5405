package schedule

import (
	"fmt"
	"strings"
	"time"
)

// TimeOfDay is a wall-clock time, minute precision, in a schedule's zone.
// It is written "HH:MM" in JSON and in the text form.
type TimeOfDay struct {
	Hour   int
	Minute int
}

// Clock returns the time of day h:m.
func Clock(h, m int) TimeOfDay { return TimeOfDay{Hour: h, Minute: m} }

func (t TimeOfDay) String() string { return fmt.Sprintf("%02d:%02d", t.Hour, t.Minute) }

func (t TimeOfDay) valid() bool {
	return t.Hour >= 0 && t.Hour < 24 && t.Minute >= 0 && t.Minute < 60
}

func (t TimeOfDay) seconds() int64 { return int64(t.Hour*3600 + t.Minute*60) }

// MarshalText writes "HH:MM".
func (t TimeOfDay) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads "HH:MM".
func (t *TimeOfDay) UnmarshalText(b []byte) error {
	v, err := ParseTimeOfDay(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseTimeOfDay reads "HH:MM" (00:00–23:59; "8:05" is accepted).
func ParseTimeOfDay(s string) (TimeOfDay, error) {
	h, m, ok := strings.Cut(s, ":")
	t := TimeOfDay{Hour: digits(h), Minute: digits(m)}
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || t.Hour < 0 || t.Minute < 0 || !t.valid() {
		return TimeOfDay{}, fmt.Errorf("%q is not a time of day; expected HH:MM from 00:00 to 23:59", s)
	}
	return t, nil
}

// digits is the value of a string of ASCII digits, -1 for anything else.
func digits(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 1e6 {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// Calendar days are counted as day numbers: days since 1970-01-01, whatever
// the zone. A schedule's arithmetic works on day numbers and wall seconds
// (day*86400 + seconds into the day, as if the zone were UTC), and only
// resolveWall turns a wall time into an instant.

const secondsPerDay = 86400

// lastDay is 9999-12-31: schedules do not fire after it, which keeps every
// duration and day number far from overflow.
var lastDay = dayNumber(9999, time.December, 31)

func dayNumber(y int, m time.Month, d int) int64 {
	return floorDiv(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix(), secondsPerDay)
}

func dateOf(day int64) (int, time.Month, int) {
	return time.Unix(day*secondsPerDay, 0).UTC().Date()
}

// localDay is the day number of t's calendar date in loc.
func localDay(t time.Time, loc *time.Location) int64 {
	return dayNumber(t.In(loc).Date())
}

func weekdayOf(day int64) time.Weekday {
	return time.Weekday(floorMod(day+4, 7)) // 1970-01-01 was a Thursday
}

// mondayOf is the day number of the Monday that begins day's week.
func mondayOf(day int64) int64 {
	return day - floorMod(int64(weekdayOf(day))+6, 7)
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// wallInstant is the instant the wall clock of loc shows tod on day.
func wallInstant(loc *time.Location, day int64, tod TimeOfDay) time.Time {
	return resolveWall(loc, day*secondsPerDay+tod.seconds())
}

// resolveWall turns wall seconds into the instant, by walking the zone's
// offset periods around it (time.Date does not promise which of two
// instants it picks on a fall-back day, nor where a gap time lands):
//
//   - a wall time that occurs once is that instant;
//   - a wall time that occurs twice (fall back) is its first occurrence;
//   - a wall time that does not occur (spring forward) is the first instant
//     after the gap, i.e. the transition itself: 02:30 on a day the clocks
//     jump from 02:00 to 03:00 is 03:00.
//
// The result never decreases as wall increases, so firings computed day by
// day stay in order.
func resolveWall(loc *time.Location, wall int64) time.Time {
	const around = 2 * secondsPerDay // offsets are within ±26 h
	t := time.Unix(wall-around, 0).In(loc)
	var u int64
	for range 64 {
		start, end := t.ZoneBounds()
		_, offset := t.Zone()
		u = wall - int64(offset)
		if !start.IsZero() && u < start.Unix() {
			// Past the previous period's end but before this one's start:
			// the wall time is in a gap.
			return start.In(loc)
		}
		if end.IsZero() || u < end.Unix() {
			return time.Unix(u, 0).In(loc)
		}
		t = end.In(loc)
	}
	return time.Unix(u, 0).In(loc) // a zone with 64 changes in four days
}
