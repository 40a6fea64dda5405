package schedule

import "time"

// Next returns the first firing strictly after after, and false when the
// schedule never fires again: a manual schedule, an immediate or once
// schedule whose instant is not after after, an invalid schedule, or a
// firing past 9999-12-31. The instant is in the schedule's zone.
//
// A scheduler that has fired at f asks Next(f) for the following firing;
// one that has never fired a job created at c asks Next(c.Add(-1)), so
// that an immediate job fires at c.
func (s Schedule) Next(after time.Time) (time.Time, bool) {
	loc, err := s.check()
	if err != nil {
		return time.Time{}, false
	}
	return s.next(loc, after)
}

// Between lists the firings in [from, to), in order, at most max of them
// (max <= 0 lists none).
func (s Schedule) Between(from, to time.Time, max int) []time.Time {
	loc, err := s.check()
	if err != nil || max <= 0 {
		return nil
	}
	var out []time.Time
	t := from.Add(-time.Nanosecond)
	for len(out) < max {
		f, ok := s.next(loc, t)
		if !ok || !f.Before(to) {
			break
		}
		out = append(out, f)
		t = f
	}
	return out
}

func (s Schedule) next(loc *time.Location, after time.Time) (time.Time, bool) {
	switch s.Kind {
	case Immediate, Once:
		if s.At.After(after) {
			return s.At.In(loc), true
		}
		return time.Time{}, false
	case Manual:
		return time.Time{}, false
	}
	if !s.Start.IsZero() && after.Before(s.Start) {
		after = s.Start.Add(-time.Nanosecond)
	}
	// Start one day early: a firing of the day before can land after
	// `after` when its wall time was pushed forward by a gap, or when an
	// hourly window runs past midnight.
	first := localDay(after, loc) - 1
	anchor := first // day Every is counted from; any day when Every is 1
	if !s.Start.IsZero() {
		anchor = localDay(s.Start, loc)
	}
	switch s.Kind {
	case Hourly:
		return s.nextHourly(loc, after, first)
	case Daily:
		return s.nextDaily(loc, after, first, anchor)
	case Weekly:
		return s.nextWeekly(loc, after, first, anchor)
	case Monthly:
		return s.nextMonthly(loc, after, first)
	}
	return time.Time{}, false
}

func (s Schedule) every() int64 { return int64(max(s.Every, 1)) }

// nextHourly: each day's window is [WindowStart, WindowEnd) in wall time,
// and firings are WindowStart + k*interval in real elapsed time, so a
// window that spans a DST change holds an hour more or less of firings.
func (s Schedule) nextHourly(loc *time.Location, after time.Time, first int64) (time.Time, bool) {
	step := time.Duration(s.Every) * time.Hour
	if s.Unit == Minutes {
		step = time.Duration(s.Every) * time.Minute
	}
	for day := first; day <= first+3; day++ {
		if day > lastDay {
			break
		}
		ws := wallInstant(loc, day, s.WindowStart)
		endDay := day
		if s.WindowEnd.seconds() <= s.WindowStart.seconds() {
			endDay++
		}
		we := wallInstant(loc, endDay, s.WindowEnd)
		var k time.Duration
		if !after.Before(ws) {
			k = after.Sub(ws)/step + 1
		}
		if f := ws.Add(k * step); f.Before(we) {
			return f, true
		}
	}
	return time.Time{}, false
}

func (s Schedule) nextDaily(loc *time.Location, after time.Time, first, anchor int64) (time.Time, bool) {
	n := s.every()
	day := anchor
	if first > anchor {
		day = anchor + (first-anchor+n-1)/n*n
	}
	for ; day <= lastDay; day += n {
		if f := wallInstant(loc, day, s.TimeOfDay); f.After(after) {
			return f, true
		}
	}
	return time.Time{}, false
}

func (s Schedule) nextWeekly(loc *time.Location, after time.Time, first, anchor int64) (time.Time, bool) {
	n := s.every()
	monday := mondayOf(anchor)
	var days [7]bool
	for _, d := range s.Weekdays {
		days[d] = true
	}
	day := max(first, monday)
	for day <= lastDay {
		week := (day - monday) / 7
		if week%n != 0 {
			day = monday + (week/n+1)*n*7
			continue
		}
		if days[weekdayOf(day)] {
			if f := wallInstant(loc, day, s.TimeOfDay); f.After(after) {
				return f, true
			}
		}
		day++
	}
	return time.Time{}, false
}

// nextMonthly walks month by month. A chosen day can be rare (the 5th
// Monday of February comes once in decades) but the Gregorian calendar
// repeats every 400 years, so a day Validate accepts turns up within that.
func (s Schedule) nextMonthly(loc *time.Location, after time.Time, first int64) (time.Time, bool) {
	months := s.monthSet()
	y, m, _ := dateOf(first)
	for range 12*400 + 13 {
		if y > 9999 {
			break
		}
		if months.has(m) {
			if d, ok := s.dayIn(y, m); ok {
				if f := wallInstant(loc, dayNumber(y, m, d), s.TimeOfDay); f.After(after) {
					return f, true
				}
			}
		}
		if m++; m > time.December {
			m, y = time.January, y+1
		}
	}
	return time.Time{}, false
}

// dayIn is the day of month y-m that s fires on, false if m has none.
func (s Schedule) dayIn(y int, m time.Month) (int, bool) {
	n := daysIn(y, m)
	switch {
	case s.DayOfMonth == LastDay:
		return n, true
	case s.DayOfMonth > 0:
		return s.DayOfMonth, s.DayOfMonth <= n
	case s.Nth == Last:
		wd := weekdayOf(dayNumber(y, m, n))
		return n - int(floorMod(int64(wd-s.Weekday), 7)), true
	default:
		wd := weekdayOf(dayNumber(y, m, 1))
		d := 1 + int(floorMod(int64(s.Weekday-wd), 7)) + (s.Nth-1)*7
		return d, d <= n
	}
}
