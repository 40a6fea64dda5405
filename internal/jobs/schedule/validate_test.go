package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestValidateRejectsInvalidSchedulesNamingTheField(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		s    Schedule
		want string // a fragment of the error
	}{
		{"unknown kind", Schedule{Kind: "yearly"}, `kind "yearly" is not one of`},
		{"empty kind", Schedule{}, `kind "" is not one of`},
		{"unknown zone", Schedule{Kind: Manual, Zone: "Mars/Olympus"}, `zone "Mars/Olympus" is not a known IANA time zone`},
		{"once without at", Schedule{Kind: Once}, "once schedule needs at"},
		{"immediate without at", Schedule{Kind: Immediate}, "immediate schedule needs at"},
		{"hourly without unit", Schedule{Kind: Hourly, Every: 2}, `hourly schedule needs unit "hours" or "minutes"`},
		{"hourly every 0 minutes", Schedule{Kind: Hourly, Every: 0, Unit: Minutes}, "every 0 minutes is not 1–1440"},
		{"hourly every 25 hours", Schedule{Kind: Hourly, Every: 25, Unit: Hours}, "every 25 hours is not 1–24"},
		{"hourly window_start 24:00", Schedule{Kind: Hourly, Every: 1, Unit: Hours, WindowStart: Clock(24, 0)}, "window_start 24:00 is not a time of day"},
		{"hourly window_end 20:60", Schedule{Kind: Hourly, Every: 1, Unit: Hours, WindowEnd: Clock(20, 60)}, "window_end 20:60 is not a time of day"},
		{"daily time_of_day 25:00", Schedule{Kind: Daily, TimeOfDay: Clock(25, 0)}, "time_of_day 25:00 is not a time of day"},
		{"daily every -1", Schedule{Kind: Daily, Every: -1}, "every -1 days is not 1–3660"},
		{"daily every 3 without start", Schedule{Kind: Daily, Every: 3}, "every 3 days needs start"},
		{"daily with weekdays", Schedule{Kind: Daily, Weekdays: []time.Weekday{time.Monday}}, "daily schedule does not use weekdays"},
		{"daily with a window", Schedule{Kind: Daily, WindowEnd: Clock(8, 0)}, "daily schedule does not use window_end"},
		{"manual with start", Schedule{Kind: Manual, Start: start}, "manual schedule does not use start"},
		{"once with a time of day", Schedule{Kind: Once, At: start, TimeOfDay: Clock(2, 0)}, "once schedule does not use time_of_day"},
		{"weekly without weekdays", Schedule{Kind: Weekly}, "weekly schedule needs at least one weekday"},
		{"weekly weekday 7", Schedule{Kind: Weekly, Weekdays: []time.Weekday{7}}, "weekdays: 7 is not a weekday"},
		{"weekly every 2 without start", Schedule{Kind: Weekly, Every: 2, Weekdays: []time.Weekday{time.Monday}}, "every 2 weeks needs start"},
		{"weekly every 600", Schedule{Kind: Weekly, Every: 600, Weekdays: []time.Weekday{time.Monday}, Start: start}, "every 600 weeks is not 1–520"},
		{"weekly with a weekday field", Schedule{Kind: Weekly, Weekdays: []time.Weekday{time.Monday}, Weekday: time.Friday}, "weekly schedule does not use weekday"},
		{"monthly day_of_month 32", Schedule{Kind: Monthly, DayOfMonth: 32}, "day_of_month 32 is not 1–31"},
		{"monthly day_of_month -2", Schedule{Kind: Monthly, DayOfMonth: -2}, "day_of_month -2 is not 1–31"},
		{"monthly nth 6", Schedule{Kind: Monthly, Nth: 6, Weekday: time.Monday}, "nth 6 is not 1–5"},
		{"monthly weekday 9", Schedule{Kind: Monthly, Nth: 1, Weekday: 9}, "weekday 9 is not a weekday"},
		{"monthly with neither day nor nth", Schedule{Kind: Monthly}, "monthly schedule needs day_of_month"},
		{"monthly with both day and nth", Schedule{Kind: Monthly, DayOfMonth: 1, Nth: 1}, "day_of_month or nth with weekday, not both"},
		{"monthly weekday without nth", Schedule{Kind: Monthly, DayOfMonth: 1, Weekday: time.Friday}, "does not use weekday without nth"},
		{"monthly month 13", Schedule{Kind: Monthly, DayOfMonth: 1, Months: []time.Month{13}}, "months: 13 is not a month"},
		{"monthly every", Schedule{Kind: Monthly, DayOfMonth: 1, Every: 2}, "monthly schedule does not use every"},
		{"the 31st in February and April only never fires", Schedule{Kind: Monthly, DayOfMonth: 31, Months: []time.Month{time.February, time.April}}, "day_of_month 31 never occurs in Feb, Apr"},
		{"the 30th in February only never fires", Schedule{Kind: Monthly, DayOfMonth: 30, Months: []time.Month{time.February}}, "day_of_month 30 never occurs in Feb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.s.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error containing %q", c.s, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestValidateAcceptsValidSchedules(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		s    Schedule
	}{
		{"manual with no zone is UTC", Schedule{Kind: Manual}},
		{"once", Schedule{Kind: Once, At: start, Zone: "Europe/Berlin"}},
		{"hourly all day", Schedule{Kind: Hourly, Every: 1, Unit: Hours}},
		{"daily at midnight: every 0 means 1", Schedule{Kind: Daily}},
		{"daily every 3 with start", Schedule{Kind: Daily, Every: 3, Start: start}},
		{"weekly on Sunday", Schedule{Kind: Weekly, Weekdays: []time.Weekday{time.Sunday}}},
		{"monthly on the last Sunday", Schedule{Kind: Monthly, Nth: Last, Weekday: time.Sunday}},
		{"monthly Feb 29: leap years have it", Schedule{Kind: Monthly, DayOfMonth: 29, Months: []time.Month{time.February}}},
		{"monthly on the last day", Schedule{Kind: Monthly, DayOfMonth: LastDay}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.s.Validate(); err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", c.s, err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Schedule{Kind: Weekly, Zone: "Nowhere/Land", TimeOfDay: Clock(30, 0)}.Validate()
	for _, want := range []string{"zone", "weekday", "time_of_day"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s too", err, want)
		}
	}
}
