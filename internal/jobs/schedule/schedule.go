package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	// Zone rules built in, used when a host has no zoneinfo (a minimal
	// container): a job belongs to the cluster, and every node that may
	// become primary must be able to compute its firings.
	_ "time/tzdata"
)

// Kind says how a schedule repeats.
type Kind string

// The schedule kinds of JOB-1.
const (
	Immediate Kind = "immediate" // once, at the instant the job is created (At)
	Once      Kind = "once"      // once, at At
	Manual    Kind = "manual"    // never by itself; only when started by hand
	Hourly    Kind = "hourly"    // every N hours or minutes inside a daily window
	Daily     Kind = "daily"     // every N days at TimeOfDay
	Weekly    Kind = "weekly"    // every N weeks on Weekdays at TimeOfDay
	Monthly   Kind = "monthly"   // in Months on a day of the month or the n-th weekday
)

var kinds = []Kind{Immediate, Once, Manual, Hourly, Daily, Weekly, Monthly}

// Unit is the unit of an hourly schedule's interval.
type Unit string

// Units of an hourly schedule's Every.
const (
	Hours   Unit = "hours"
	Minutes Unit = "minutes"
)

// LastDay as DayOfMonth means the last day of each chosen month; Last as Nth
// means the last such weekday of the month.
const (
	LastDay = -1
	Last    = -1
)

// Upper limits of Every, so that arithmetic never overflows and a typo
// (every 3000 weeks) is caught.
const (
	maxEveryHours   = 24
	maxEveryMinutes = 24 * 60
	maxEveryDays    = 3660
	maxEveryWeeks   = 520
)

// Schedule says when a job runs by itself. The zero value is not valid; see
// the package comment for what each field means for each kind.
type Schedule struct {
	Kind Kind `json:"kind"`
	// Zone is the IANA time zone of every wall-clock time below; "" is UTC.
	Zone string `json:"zone,omitempty"`
	// At is the instant of a once schedule, and the creation instant of an
	// immediate one (Anchor sets it).
	At time.Time `json:"at,omitzero"`
	// Every is the interval: hours or minutes (hourly, with Unit), days
	// (daily) or weeks (weekly). 0 means 1 for daily and weekly.
	Every int  `json:"every,omitempty"`
	Unit  Unit `json:"unit,omitempty"`
	// WindowStart and WindowEnd bound an hourly schedule's firings each day
	// to [WindowStart, WindowEnd). End <= Start means the window ends on the
	// next day; equal means a 24-hour window (both 00:00: all day).
	WindowStart TimeOfDay `json:"window_start,omitzero"`
	WindowEnd   TimeOfDay `json:"window_end,omitzero"`
	// TimeOfDay is when daily, weekly and monthly schedules fire.
	TimeOfDay TimeOfDay `json:"time_of_day,omitzero"`
	// Weekdays of a weekly schedule.
	Weekdays []time.Weekday `json:"weekdays,omitempty"`
	// Months of a monthly schedule; empty means every month.
	Months []time.Month `json:"months,omitempty"`
	// DayOfMonth (1–31, or LastDay) of a monthly schedule. A month that lacks
	// the day (the 31st in April) is skipped: use LastDay for month ends.
	DayOfMonth int `json:"day_of_month,omitempty"`
	// Nth (1–5, or Last) and Weekday pick the n-th weekday of the month
	// instead of DayOfMonth. A month without a 5th such weekday is skipped.
	Nth     int          `json:"nth,omitempty"`
	Weekday time.Weekday `json:"weekday,omitempty"`
	// Start: a repeating schedule never fires before it, and every N days or
	// weeks are counted from its day or its week (weeks begin on Monday).
	// Required when Every > 1 for daily and weekly; Anchor sets it.
	Start time.Time `json:"start,omitzero"`
}

// Anchor fills the fields that only exist once a job is created: the
// creation instant of an immediate schedule, and the start of a repeating
// one (so it never fires before the job existed, and every N days or weeks
// count from the day it was created). Fields already set are kept.
func (s Schedule) Anchor(created time.Time) Schedule {
	switch s.Kind {
	case Immediate:
		if s.At.IsZero() {
			s.At = created
		}
	case Hourly, Daily, Weekly, Monthly:
		if s.Start.IsZero() {
			s.Start = created
		}
	}
	return s
}

// Validate reports every problem of s, each naming the field.
func (s Schedule) Validate() error {
	_, err := s.check()
	return err
}

// check validates s and returns its location, so that Next and Between load
// the zone once.
func (s Schedule) check() (*time.Location, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	loc, err := s.location()
	if err != nil {
		errs = append(errs, err)
	}
	known := false
	for _, k := range kinds {
		known = known || s.Kind == k
	}
	if !known {
		fail("kind %q is not one of immediate, once, manual, hourly, daily, weekly, monthly", s.Kind)
		return nil, errors.Join(errs...)
	}
	for _, field := range s.unusedFields() {
		fail("%s schedule does not use %s", s.Kind, field)
	}

	switch s.Kind {
	case Immediate:
		if s.At.IsZero() {
			fail("immediate schedule needs at (the instant the job was created; Anchor sets it)")
		}
	case Once:
		if s.At.IsZero() {
			fail("once schedule needs at (the instant to run)")
		}
	case Hourly:
		switch s.Unit {
		case Hours:
			if s.Every < 1 || s.Every > maxEveryHours {
				fail("hourly schedule every %d hours is not 1–%d", s.Every, maxEveryHours)
			}
		case Minutes:
			if s.Every < 1 || s.Every > maxEveryMinutes {
				fail("hourly schedule every %d minutes is not 1–%d", s.Every, maxEveryMinutes)
			}
		default:
			fail("hourly schedule needs unit %q or %q (got %q)", Hours, Minutes, s.Unit)
		}
		checkTime(fail, "window_start", s.WindowStart)
		checkTime(fail, "window_end", s.WindowEnd)
	case Daily:
		s.checkEvery(fail, "day", maxEveryDays)
		checkTime(fail, "time_of_day", s.TimeOfDay)
	case Weekly:
		s.checkEvery(fail, "week", maxEveryWeeks)
		if len(s.Weekdays) == 0 {
			fail("weekly schedule needs at least one weekday")
		}
		for _, d := range s.Weekdays {
			if d < time.Sunday || d > time.Saturday {
				fail("weekdays: %d is not a weekday (0 = Sunday … 6 = Saturday)", int(d))
			}
		}
		checkTime(fail, "time_of_day", s.TimeOfDay)
	case Monthly:
		s.checkMonthly(fail)
		checkTime(fail, "time_of_day", s.TimeOfDay)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return loc, nil
}

// checkEvery checks a daily or weekly interval (in units of unit, at most
// most; 0 reads as 1): more than one needs the start the counting begins
// from.
func (s Schedule) checkEvery(fail func(string, ...any), unit string, most int) {
	if s.Every < 0 || s.Every > most {
		fail("%s schedule every %d %ss is not 1–%d", s.Kind, s.Every, unit, most)
	} else if s.Every > 1 && s.Start.IsZero() {
		fail("%s schedule every %d %ss needs start (the %s counting begins from)", s.Kind, s.Every, unit, unit)
	}
}

func (s Schedule) checkMonthly(fail func(string, ...any)) {
	for _, m := range s.Months {
		if m < time.January || m > time.December {
			fail("months: %d is not a month (1 = January … 12 = December)", int(m))
			return
		}
	}
	switch {
	case s.DayOfMonth != 0 && s.Nth != 0:
		fail("monthly schedule takes day_of_month or nth with weekday, not both")
	case s.DayOfMonth == 0 && s.Nth == 0:
		fail("monthly schedule needs day_of_month (1–31, or -1 for the last day) or nth (1–5, or -1 for the last) with weekday")
	case s.DayOfMonth != 0:
		if s.DayOfMonth != LastDay && (s.DayOfMonth < 1 || s.DayOfMonth > 31) {
			fail("day_of_month %d is not 1–31 (or -1 for the last day)", s.DayOfMonth)
			return
		}
		// A day no chosen month ever has would make the job silently never
		// run. February counts as 29 days: leap years have it.
		longest := 0
		for _, m := range s.monthSet().list() {
			longest = max(longest, daysIn(2028, m))
		}
		if s.DayOfMonth > longest {
			fail("day_of_month %d never occurs in %s; use -1 for the last day of the month", s.DayOfMonth, monthNames(s.monthSet().list(), ", "))
		}
	default:
		if s.Nth != Last && (s.Nth < 1 || s.Nth > 5) {
			fail("nth %d is not 1–5 (or -1 for the last)", s.Nth)
		}
		if s.Weekday < time.Sunday || s.Weekday > time.Saturday {
			fail("weekday %d is not a weekday (0 = Sunday … 6 = Saturday)", int(s.Weekday))
		}
	}
}

func checkTime(fail func(string, ...any), field string, t TimeOfDay) {
	if !t.valid() {
		fail("%s %02d:%02d is not a time of day (00:00–23:59)", field, t.Hour, t.Minute)
	}
}

// unusedFields names the fields set on s that its kind ignores: a stray
// field is almost always a mistake (a weekday on a daily schedule).
func (s Schedule) unusedFields() []string {
	use := map[Kind]string{
		Immediate: "at",
		Once:      "at",
		Manual:    "",
		Hourly:    "every unit window_start window_end start",
		Daily:     "every time_of_day start",
		Weekly:    "every weekdays time_of_day start",
		Monthly:   "months day_of_month nth weekday time_of_day start",
	}[s.Kind]
	set := []struct {
		name string
		set  bool
	}{
		{"at", !s.At.IsZero()},
		{"every", s.Every != 0},
		{"unit", s.Unit != ""},
		{"window_start", s.WindowStart != TimeOfDay{}},
		{"window_end", s.WindowEnd != TimeOfDay{}},
		{"time_of_day", s.TimeOfDay != TimeOfDay{}},
		{"weekdays", len(s.Weekdays) > 0},
		{"months", len(s.Months) > 0},
		{"day_of_month", s.DayOfMonth != 0},
		{"nth", s.Nth != 0},
		{"start", !s.Start.IsZero()},
	}
	var unused []string
	for _, f := range set {
		if !f.set {
			continue
		}
		if !strings.Contains(" "+use+" ", " "+f.name+" ") {
			unused = append(unused, f.name)
		}
	}
	// Weekday's zero value is Sunday, so only another day counts as set.
	switch {
	case s.Weekday != time.Sunday && s.Kind != Monthly:
		unused = append(unused, "weekday")
	case s.Weekday != time.Sunday && s.Nth == 0:
		unused = append(unused, "weekday without nth")
	}
	return unused
}

func (s Schedule) location() (*time.Location, error) {
	if s.Zone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(s.Zone)
	if err != nil {
		return nil, fmt.Errorf("zone %q is not a known IANA time zone (e.g. \"Europe/Berlin\", \"UTC\"): %w", s.Zone, err)
	}
	return loc, nil
}

func (s Schedule) zoneName() string {
	if s.Zone == "" {
		return "UTC"
	}
	return s.Zone
}

// monthSet is a bit set of months; bit m is month m.
type monthSet uint16

func (s Schedule) monthSet() monthSet {
	if len(s.Months) == 0 {
		return 0x1FFE
	}
	var set monthSet
	for _, m := range s.Months {
		set |= 1 << uint(m&15)
	}
	return set
}

func (set monthSet) has(m time.Month) bool { return set&(1<<uint(m)) != 0 }

func (set monthSet) list() []time.Month {
	var ms []time.Month
	for m := time.January; m <= time.December; m++ {
		if set.has(m) {
			ms = append(ms, m)
		}
	}
	return ms
}
