package schedule

import (
	"slices"
	"testing"
	"time"
)

// Each case parses a schedule as a job created at `created` would, and
// lists its firings strictly after `from` (default: created).
type firingCase struct {
	name    string
	text    string
	created string
	from    string
	n       int
	want    []string
}

func runFiringCases(t *testing.T, cases []firingCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			created := instant(t, c.created)
			s := mustParse(t, c.text, created)
			from := created.Add(-time.Nanosecond) // as a scheduler asks for a new job
			if c.from != "" {
				from = instant(t, c.from)
			}
			diffLists(t, firings(t, s, from, c.n), c.want)
			// Between must agree with repeated Next.
			to := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
			var between []string
			for _, f := range s.Between(from.Add(time.Nanosecond), to, c.n) {
				between = append(between, f.Format(listLayout))
			}
			if !slices.Equal(between, c.want) {
				t.Errorf("Between lists %q, Next lists %q", between, c.want)
			}
		})
	}
}

func TestNextFiresEachKindAtTheRightTimes(t *testing.T) {
	runFiringCases(t, []firingCase{
		{
			name: "immediate fires once, at the instant the job is created", text: "immediate",
			created: "2026-03-01T10:17:23Z", n: 3,
			want: []string{"Sun 2026-03-01 10:17 +0000"},
		},
		{
			name: "once fires at its wall time in its zone, then never", text: "once@2026-12-01T02:00;tz=Europe/Berlin",
			created: "2026-11-23T12:00:00Z", n: 3,
			want: []string{"Tue 2026-12-01 02:00 +0100"},
		},
		{
			name: "once in the past never fires", text: "once@2026-01-01T02:00",
			created: "2026-11-23T12:00:00Z", from: "2026-11-23T12:00:00Z", n: 3,
		},
		{
			name: "manual never fires by itself", text: "manual",
			created: "2026-11-23T12:00:00Z", n: 3,
		},
		{
			name: "hourly every 30 min from 08:00 to 20:00: half hours, last at 19:30, then the next morning",
			text: "hourly/30m@08:00-20:00", created: "2026-06-10T18:10:00Z", n: 6,
			want: []string{
				"Wed 2026-06-10 18:30 +0000", "Wed 2026-06-10 19:00 +0000", "Wed 2026-06-10 19:30 +0000",
				"Thu 2026-06-11 08:00 +0000", "Thu 2026-06-11 08:30 +0000", "Thu 2026-06-11 09:00 +0000",
			},
		},
		{
			name: "hourly every 45 min counts from the window start, not from the hour",
			text: "hourly/45m@08:00-11:00", created: "2026-06-10T07:00:00Z", n: 5,
			want: []string{
				"Wed 2026-06-10 08:00 +0000", "Wed 2026-06-10 08:45 +0000", "Wed 2026-06-10 09:30 +0000",
				"Wed 2026-06-10 10:15 +0000", "Thu 2026-06-11 08:00 +0000",
			},
		},
		{
			name: "hourly window that ends before it starts runs past midnight",
			text: "hourly/2h@22:00-06:00", created: "2026-06-10T12:00:00Z", n: 6,
			want: []string{
				"Wed 2026-06-10 22:00 +0000", "Thu 2026-06-11 00:00 +0000", "Thu 2026-06-11 02:00 +0000",
				"Thu 2026-06-11 04:00 +0000", "Thu 2026-06-11 22:00 +0000", "Fri 2026-06-12 00:00 +0000",
			},
		},
		{
			name: "hourly without a window runs all day",
			text: "hourly/6h", created: "2026-06-10T05:00:00Z", n: 5,
			want: []string{
				"Wed 2026-06-10 06:00 +0000", "Wed 2026-06-10 12:00 +0000", "Wed 2026-06-10 18:00 +0000",
				"Thu 2026-06-11 00:00 +0000", "Thu 2026-06-11 06:00 +0000",
			},
		},
		{
			name: "hourly never fires before start, even inside the window",
			text: "hourly/1h@08:00-12:00;start=2026-06-10T09:30", created: "2026-06-01T00:00:00Z", n: 3,
			want: []string{"Wed 2026-06-10 10:00 +0000", "Wed 2026-06-10 11:00 +0000", "Thu 2026-06-11 08:00 +0000"},
		},
		{
			name: "daily created after its time of day first fires the next day",
			text: "daily@02:00", created: "2026-03-10T10:00:00Z", n: 3,
			want: []string{"Wed 2026-03-11 02:00 +0000", "Thu 2026-03-12 02:00 +0000", "Fri 2026-03-13 02:00 +0000"},
		},
		{
			name: "daily created before its time of day fires the same day",
			text: "daily@23:15", created: "2026-03-10T10:00:00Z", n: 2,
			want: []string{"Tue 2026-03-10 23:15 +0000", "Wed 2026-03-11 23:15 +0000"},
		},
		{
			name: "every 3 days counts from the start date, not from the day asked",
			text: "daily/3@02:00;start=2026-01-05", created: "2026-01-01T00:00:00Z", from: "2026-03-01T00:00:00Z", n: 4,
			// Mar 1 is 55 days after Jan 5; 57, 60, 63, 66 are multiples of 3.
			want: []string{"Tue 2026-03-03 02:00 +0000", "Fri 2026-03-06 02:00 +0000", "Mon 2026-03-09 02:00 +0000", "Thu 2026-03-12 02:00 +0000"},
		},
		{
			name: "every 3 days without start counts from the creation day",
			text: "daily/3@02:00", created: "2026-01-05T01:00:00Z", n: 3,
			want: []string{"Mon 2026-01-05 02:00 +0000", "Thu 2026-01-08 02:00 +0000", "Sun 2026-01-11 02:00 +0000"},
		},
		{
			name: "weekly on Monday and Thursday",
			text: "weekly:mon,thu@01:30", created: "2026-03-04T12:00:00Z", n: 4,
			want: []string{"Thu 2026-03-05 01:30 +0000", "Mon 2026-03-09 01:30 +0000", "Thu 2026-03-12 01:30 +0000", "Mon 2026-03-16 01:30 +0000"},
		},
		{
			name: "every 2 weeks counts from the Monday of the start week and skips days before start",
			text: "weekly/2:mon,thu@01:30;start=2026-01-08", created: "2026-01-01T00:00:00Z", n: 5,
			// Start is Thu Jan 8: its week began Mon Jan 5 (before start, so
			// skipped); the week of Jan 12 is an off week.
			want: []string{
				"Thu 2026-01-08 01:30 +0000", "Mon 2026-01-19 01:30 +0000", "Thu 2026-01-22 01:30 +0000",
				"Mon 2026-02-02 01:30 +0000", "Thu 2026-02-05 01:30 +0000",
			},
		},
		{
			name: "every 2 weeks starting on a Sunday: that Sunday's week is week 0, weeks run Monday to Sunday",
			text: "weekly/2:mon,sun@06:00;start=2026-01-11", created: "2026-01-01T00:00:00Z", n: 4,
			want: []string{"Sun 2026-01-11 06:00 +0000", "Mon 2026-01-19 06:00 +0000", "Sun 2026-01-25 06:00 +0000", "Mon 2026-02-02 06:00 +0000"},
		},
		{
			name: "weekly with a weekday range",
			text: "weekly:fri-mon@12:00", created: "2026-03-04T12:00:00Z", n: 5,
			want: []string{"Fri 2026-03-06 12:00 +0000", "Sat 2026-03-07 12:00 +0000", "Sun 2026-03-08 12:00 +0000", "Mon 2026-03-09 12:00 +0000", "Fri 2026-03-13 12:00 +0000"},
		},
		{
			name: "monthly on the 15th of every month",
			text: "monthly/15@03:00", created: "2026-01-20T00:00:00Z", n: 3,
			want: []string{"Sun 2026-02-15 03:00 +0000", "Sun 2026-03-15 03:00 +0000", "Wed 2026-04-15 03:00 +0000"},
		},
		{
			name: "monthly on the 2nd Tuesday of January and July",
			text: "monthly:jan,jul/2nd-tue@03:00;tz=Europe/Berlin", created: "2026-01-01T00:00:00Z", n: 4,
			want: []string{"Tue 2026-01-13 03:00 +0100", "Tue 2026-07-14 03:00 +0200", "Tue 2027-01-12 03:00 +0100", "Tue 2027-07-13 03:00 +0200"},
		},
		{
			name: "monthly on the last Friday",
			text: "monthly/last-fri@23:30", created: "2026-01-01T00:00:00Z", n: 6,
			want: []string{
				"Fri 2026-01-30 23:30 +0000", "Fri 2026-02-27 23:30 +0000", "Fri 2026-03-27 23:30 +0000",
				"Fri 2026-04-24 23:30 +0000", "Fri 2026-05-29 23:30 +0000", "Fri 2026-06-26 23:30 +0000",
			},
		},
		{
			name: "monthly in a month range",
			text: "monthly:nov-feb/1@00:00", created: "2026-03-01T00:00:00Z", n: 5,
			want: []string{"Sun 2026-11-01 00:00 +0000", "Tue 2026-12-01 00:00 +0000", "Fri 2027-01-01 00:00 +0000", "Mon 2027-02-01 00:00 +0000", "Mon 2027-11-01 00:00 +0000"},
		},
	})
}

func TestNextMonthEnds(t *testing.T) {
	runFiringCases(t, []firingCase{
		{
			name: "the 31st is skipped in months without one (February, April, June, September, November)",
			text: "monthly/31@03:00", created: "2026-01-01T00:00:00Z", n: 7,
			want: []string{
				"Sat 2026-01-31 03:00 +0000", "Tue 2026-03-31 03:00 +0000", "Sun 2026-05-31 03:00 +0000",
				"Fri 2026-07-31 03:00 +0000", "Mon 2026-08-31 03:00 +0000", "Sat 2026-10-31 03:00 +0000",
				"Thu 2026-12-31 03:00 +0000",
			},
		},
		{
			name: "last-day fires on Feb 28 and Apr 30",
			text: "monthly/last-day@23:00", created: "2026-01-01T00:00:00Z", n: 4,
			want: []string{"Sat 2026-01-31 23:00 +0000", "Sat 2026-02-28 23:00 +0000", "Tue 2026-03-31 23:00 +0000", "Thu 2026-04-30 23:00 +0000"},
		},
		{
			name: "the 30th of February only never fires but the 30th skips just February",
			text: "monthly:jan-apr/30@12:00", created: "2026-01-01T00:00:00Z", n: 4,
			want: []string{"Fri 2026-01-30 12:00 +0000", "Mon 2026-03-30 12:00 +0000", "Thu 2026-04-30 12:00 +0000", "Sat 2027-01-30 12:00 +0000"},
		},
		{
			name: "leap year: Feb 29 fires in 2028 and every fourth year after, not in 2027",
			text: "monthly:feb/29@12:00", created: "2026-01-01T00:00:00Z", n: 3,
			want: []string{"Tue 2028-02-29 12:00 +0000", "Sun 2032-02-29 12:00 +0000", "Fri 2036-02-29 12:00 +0000"},
		},
		{
			name: "leap year: the last day of February 2028 is the 29th",
			text: "monthly:feb/last-day@12:00", created: "2027-03-01T00:00:00Z", n: 2,
			want: []string{"Tue 2028-02-29 12:00 +0000", "Wed 2029-02-28 12:00 +0000"},
		},
		{
			name: "a 5th Monday that does not exist is skipped: only months with five Mondays fire",
			text: "monthly/5th-mon@09:00", created: "2026-01-01T00:00:00Z", n: 6,
			want: []string{
				"Mon 2026-03-30 09:00 +0000", "Mon 2026-06-29 09:00 +0000", "Mon 2026-08-31 09:00 +0000",
				"Mon 2026-11-30 09:00 +0000", "Mon 2027-03-29 09:00 +0000", "Mon 2027-05-31 09:00 +0000",
			},
		},
		{
			name: "a 5th Monday of February comes only in leap years starting on a Monday (2044, 2072)",
			text: "monthly:feb/5th-mon@09:00", created: "2026-01-01T00:00:00Z", n: 2,
			want: []string{"Mon 2044-02-29 09:00 +0000", "Mon 2072-02-29 09:00 +0000"},
		},
	})
}

func TestNextReturnsTimesInTheScheduleZone(t *testing.T) {
	after := instant(t, "2026-06-10T12:00:00Z")
	cases := []struct {
		name, text, want string
	}{
		{"UTC by default", "daily@02:00", "2026-06-11T02:00:00Z"},
		{"Europe/Berlin in summer is UTC+2", "daily@02:00;tz=Europe/Berlin", "2026-06-11T02:00:00+02:00"},
		{"America/New_York in summer is UTC-4", "daily@02:00;tz=America/New_York", "2026-06-11T02:00:00-04:00"},
		{"Asia/Kolkata is UTC+5:30: 20:00 there is still ahead at noon UTC", "daily@20:00;tz=Asia/Kolkata", "2026-06-10T20:00:00+05:30"},
		{"Pacific/Kiritimati is UTC+14: its next 02:00 is on the 12th", "daily@02:00;tz=Pacific/Kiritimati", "2026-06-12T02:00:00+14:00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.text, after)
			got, ok := s.Next(after)
			if !ok || got.Format(time.RFC3339) != c.want {
				t.Fatalf("Next = %s, %v; want %s", got.Format(time.RFC3339), ok, c.want)
			}
			if got.Location().String() != s.zoneName() {
				t.Errorf("Next returned a time in %s, want the schedule's zone %s", got.Location(), s.zoneName())
			}
		})
	}
}

func TestBetween(t *testing.T) {
	s := mustParse(t, "daily@02:00", instant(t, "2026-01-01T00:00:00Z"))
	from, to := instant(t, "2026-01-03T02:00:00Z"), instant(t, "2026-01-06T02:00:00Z")
	cases := []struct {
		name string
		max  int
		want int
	}{
		{"includes from, excludes to", 10, 3},
		{"stops at max", 2, 2},
		{"max 0 lists nothing", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := s.Between(from, to, c.max)
			if len(got) != c.want {
				t.Fatalf("Between = %v, want %d firings", got, c.want)
			}
			if c.want > 0 && !got[0].Equal(from) {
				t.Errorf("first firing %s, want from itself %s", got[0], from)
			}
		})
	}
	if got := (Schedule{Kind: Weekly}).Between(from, to, 10); got != nil {
		t.Errorf("an invalid schedule lists %v, want nothing", got)
	}
	if _, ok := (Schedule{Kind: Weekly}).Next(from); ok {
		t.Errorf("an invalid schedule has a next firing, want none")
	}
}

func TestNextStopsAtYear9999(t *testing.T) {
	s := mustParse(t, "daily@02:00", instant(t, "2026-01-01T00:00:00Z"))
	if f, ok := s.Next(instant(t, "9999-12-31T03:00:00Z")); ok {
		t.Errorf("Next after the last supported day = %s, want none", f)
	}
}
