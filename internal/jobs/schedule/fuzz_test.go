package schedule

import (
	"testing"
	"time"
)

// Zones with unusual rules: half-hour DST (Lord_Howe), a skipped day
// (Apia), transitions at midnight (Santiago), DST suspended for Ramadan
// (Casablanca), a two-hour shift (Troll), a +5:45 offset (Kathmandu).
var fuzzZones = []string{
	"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia",
	"America/Santiago", "Africa/Casablanca", "Antarctica/Troll", "Asia/Kathmandu",
}

// fuzzSchedule builds a schedule from fuzz input; many are invalid, and the
// fuzz target skips those.
func fuzzSchedule(kind uint8, every int16, minutes bool, tod1, tod2 uint16, weekdays uint8, months uint16,
	day, nth int8, weekday uint8, zone uint8, start int64) Schedule {
	s := Schedule{Kind: kinds[int(kind)%len(kinds)], Zone: fuzzZones[int(zone)%len(fuzzZones)]}
	clock := func(v uint16) TimeOfDay { return Clock(int(v/60)%24, int(v%60)) }
	startAt := time.Unix(1_600_000_000+start%(40*365*86400), 0) // 2020 ± 40 years
	switch s.Kind {
	case Immediate, Once:
		s.At = startAt
	case Hourly:
		s.Every, s.Unit = int(every), Hours
		if minutes {
			s.Unit = Minutes
		}
		s.WindowStart, s.WindowEnd, s.Start = clock(tod1), clock(tod2), startAt
	case Daily, Weekly:
		s.Every, s.TimeOfDay, s.Start = int(every), clock(tod1), startAt
		for d := range 7 {
			if s.Kind == Weekly && weekdays&(1<<d) != 0 {
				s.Weekdays = append(s.Weekdays, time.Weekday(d))
			}
		}
	case Monthly:
		s.TimeOfDay, s.Start = clock(tod1), startAt
		for m := time.January; m <= time.December; m++ {
			if months&(1<<m) != 0 {
				s.Months = append(s.Months, m)
			}
		}
		if minutes {
			s.DayOfMonth = int(day)
		} else {
			s.Nth, s.Weekday = int(nth), time.Weekday(weekday)
		}
	}
	return s
}

// FuzzNext checks, for every valid schedule: Next never panics, a
// repeating schedule always fires again, each firing is strictly after the
// instant asked, and no firing is skipped: asking from any instant between
// two firings (just before the second, or halfway) gives the second.
func FuzzNext(f *testing.F) {
	f.Add(uint8(3), int16(30), true, uint16(0), uint16(360), uint8(0), uint16(0), int8(0), int8(0), uint8(0), uint8(1), int64(0), int64(0))
	f.Add(uint8(4), int16(1), false, uint16(150), uint16(0), uint8(0), uint16(0), int8(0), int8(0), uint8(0), uint8(1), int64(0), int64(196_000_000))
	f.Add(uint8(5), int16(2), false, uint16(90), uint16(0), uint8(0x12), uint16(0), int8(0), int8(0), uint8(0), uint8(2), int64(5), int64(50))
	f.Add(uint8(6), int16(0), false, uint16(150), uint16(0), uint8(0), uint16(1<<2), int8(0), int8(5), uint8(1), uint8(0), int64(0), int64(0))
	f.Add(uint8(6), int16(0), true, uint16(1410), uint16(0), uint8(0), uint16(0), int8(31), int8(0), uint8(0), uint8(4), int64(0), int64(0))
	f.Add(uint8(3), int16(7), true, uint16(1380), uint16(120), uint8(0), uint16(0), int8(0), int8(0), uint8(0), uint8(3), int64(-1_000_000), int64(1_000_000))
	f.Fuzz(func(t *testing.T, kind uint8, every int16, minutes bool, tod1, tod2 uint16, weekdays uint8, months uint16,
		day, nth int8, weekday uint8, zone uint8, start, after int64) {
		s := fuzzSchedule(kind, every, minutes, tod1, tod2, weekdays, months, day, nth, weekday, zone, start)
		if s.Validate() != nil {
			return
		}
		at := time.Unix(1_600_000_000+after%(60*365*86400), int64(uint64(after)%1e9)) // 2020 ± 60 years
		repeating := s.Kind != Immediate && s.Kind != Once && s.Kind != Manual
		for i := 0; i < 25; i++ {
			next, ok := s.Next(at)
			if !ok {
				if repeating {
					t.Fatalf("%s (%s): no firing after %s", s, s.Format(), at)
				}
				return
			}
			if !next.After(at) {
				t.Fatalf("%s (%s): Next(%s) = %s, not after it", s, s.Format(), at, next)
			}
			for _, probe := range []time.Time{next.Add(-time.Nanosecond), at.Add(next.Sub(at) / 2)} {
				if again, _ := s.Next(probe); !again.Equal(next) {
					t.Fatalf("%s (%s): Next(%s) = %s but Next(%s) = %s: a firing was skipped or invented",
						s, s.Format(), at, next, probe, again)
				}
			}
			at = next
		}
	})
}
