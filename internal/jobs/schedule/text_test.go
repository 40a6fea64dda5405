package schedule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var created = time.Date(2026, 11, 23, 11, 35, 0, 0, time.UTC)

func TestParseReadsEachForm(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	cases := []struct {
		name string
		text string
		want Schedule
	}{
		{"immediate takes the creation instant", "immediate", Schedule{Kind: Immediate, Zone: "UTC", At: created}},
		{"manual", "manual", Schedule{Kind: Manual, Zone: "UTC"}},
		{"once reads a wall time in tz", "once@2026-12-01T02:00;tz=Europe/Berlin",
			Schedule{Kind: Once, Zone: "Europe/Berlin", At: time.Date(2026, 12, 1, 2, 0, 0, 0, berlin)}},
		{"hourly every 30 minutes in a window", "hourly/30m@08:00-20:00",
			Schedule{Kind: Hourly, Zone: "UTC", Every: 30, Unit: Minutes, WindowStart: Clock(8, 0), WindowEnd: Clock(20, 0), Start: created}},
		{"hourly every 2 hours all day", "hourly/2h",
			Schedule{Kind: Hourly, Zone: "UTC", Every: 2, Unit: Hours, Start: created}},
		{"daily", "daily@02:00", Schedule{Kind: Daily, Zone: "UTC", TimeOfDay: Clock(2, 0), Start: created}},
		{"daily every 3 days from a start date in tz", "daily/3@02:00;tz=Europe/Berlin;start=2026-01-05",
			Schedule{Kind: Daily, Zone: "Europe/Berlin", Every: 3, TimeOfDay: Clock(2, 0), Start: time.Date(2026, 1, 5, 0, 0, 0, 0, berlin)}},
		{"weekly every 2 weeks: /N before the :list", "weekly/2:mon,thu@01:30",
			Schedule{Kind: Weekly, Zone: "UTC", Every: 2, Weekdays: []time.Weekday{time.Monday, time.Thursday}, TimeOfDay: Clock(1, 30), Start: created}},
		{"weekly every 2 weeks: :list before /N, full names, any case", "Weekly:Monday,THU/2@01:30",
			Schedule{Kind: Weekly, Zone: "UTC", Every: 2, Weekdays: []time.Weekday{time.Monday, time.Thursday}, TimeOfDay: Clock(1, 30), Start: created}},
		{"weekly range wraps over the weekend", "weekly:sat-mon@07:00",
			Schedule{Kind: Weekly, Zone: "UTC", Weekdays: []time.Weekday{time.Saturday, time.Sunday, time.Monday}, TimeOfDay: Clock(7, 0), Start: created}},
		{"monthly nth weekday in chosen months", "monthly:jan,jul/2nd-tue@03:00",
			Schedule{Kind: Monthly, Zone: "UTC", Months: []time.Month{time.January, time.July}, Nth: 2, Weekday: time.Tuesday, TimeOfDay: Clock(3, 0), Start: created}},
		{"monthly last day", "monthly/last-day@23:00",
			Schedule{Kind: Monthly, Zone: "UTC", DayOfMonth: LastDay, TimeOfDay: Clock(23, 0), Start: created}},
		{"monthly last friday", "monthly/last-fri@23:30",
			Schedule{Kind: Monthly, Zone: "UTC", Nth: Last, Weekday: time.Friday, TimeOfDay: Clock(23, 30), Start: created}},
		{"monthly day with a month range across the year end", "monthly:nov-jan/15@03:00",
			Schedule{Kind: Monthly, Zone: "UTC", Months: []time.Month{time.November, time.December, time.January}, DayOfMonth: 15, TimeOfDay: Clock(3, 0), Start: created}},
		{"spaces around the text and options are ignored", "  daily@02:00 ; tz = Europe/Berlin ",
			Schedule{Kind: Daily, Zone: "Europe/Berlin", TimeOfDay: Clock(2, 0), Start: created}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustParse(t, c.text, created)
			if g, w := mustJSON(t, got), mustJSON(t, c.want); g != w {
				t.Errorf("Parse(%q)\n got %s\nwant %s", c.text, g, w)
			}
		})
	}
}

func TestParseErrorsSayWhatWasExpected(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"empty", "", `unknown kind ""; expected immediate, manual, once@DATE`},
		{"unknown kind", "yearly@02:00", `unknown kind "yearly"; expected`},
		{"daily without a time", "daily", "expected @HH:MM"},
		{"daily with a bad time", "daily@25:00", `"25:00" is not a time of day; expected HH:MM`},
		{"daily with a one-digit minute", "daily@2:0", "expected HH:MM"},
		{"daily every 0", "daily/0@02:00", "expected a whole number of days, at least 1"},
		{"daily with weekdays", "daily:mon@02:00", "daily takes no :list"},
		{"hourly without an interval", "hourly@08:00-20:00", "expected /30m or /2h"},
		{"hourly interval in seconds", "hourly/30s", "expected a number and m or h"},
		{"hourly window without an end", "hourly/30m@08:00", "expected @HH:MM-HH:MM"},
		{"hourly window end not a time", "hourly/30m@08:00-8pm", "hourly window end"},
		{"hourly every 90 hours", "hourly/90h", "every 90 hours is not 1–24"},
		{"weekly without weekdays", "weekly@01:30", "expected :mon,thu"},
		{"weekly with an unknown weekday", "weekly:mon,funday@01:30", `weekday "funday": expected mon, tue`},
		{"two /parts", "weekly/2/3:mon@01:30", "two /parts"},
		{"monthly without a day", "monthly@03:00", "expected /15, /last-day, /2nd-tue or /last-fri"},
		{"monthly day 32", "monthly/32@03:00", "expected a day 1–31, last-day, or NTH-WEEKDAY"},
		{"monthly 6th monday", "monthly/6th-mon@03:00", "NTH-WEEKDAY such as 2nd-tue"},
		{"monthly unknown month", "monthly:jan,foo/1@03:00", `month "foo": expected jan, feb`},
		{"monthly 31st only in February", "monthly:feb/31@03:00", "day_of_month 31 never occurs in Feb"},
		{"once without a date", "once", "expected once@YYYY-MM-DDTHH:MM"},
		{"once with a word for a date", "once@tomorrow", `"tomorrow" is not a date: expected YYYY-MM-DD`},
		{"manual with a time", "manual@02:00", `manual takes no /, : or @ part`},
		{"unknown zone", "daily@02:00;tz=Mars/Olympus", `tz: zone "Mars/Olympus" is not a known IANA time zone`},
		{"unknown option", "daily@02:00;when=now", `unknown option "when": expected tz=ZONE`},
		{"option without a value", "daily@02:00;tz", "expected tz=ZONE or start=DATE"},
		{"bad start", "daily@02:00;start=05.01.2026", `start: "05.01.2026" is not a date`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.text, created)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one containing %q", c.text, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse(%q) error %q does not contain %q", c.text, err, c.want)
			}
			if !strings.Contains(err.Error(), `schedule "`+c.text+`"`) {
				t.Errorf("Parse(%q) error %q does not quote the text", c.text, err)
			}
		})
	}
}

// roundTripTexts are valid schedules in the text form as Format writes them.
var roundTripTexts = []string{
	"immediate",
	"manual",
	"once@2026-12-01T02:00;tz=Europe/Berlin",
	"once@2026-10-25T02:30:00+01:00;tz=Europe/Berlin",
	"once@2026-12-01T02:00:30Z;tz=UTC",
	"hourly/30m@08:00-20:00;tz=UTC;start=2026-11-23T11:35",
	"hourly/2h;tz=America/New_York;start=2026-11-23T06:35",
	"daily@02:00;tz=UTC;start=2026-11-23T11:35",
	"daily/3@02:00;tz=Europe/Berlin;start=2026-01-05T00:00",
	"weekly/2:mon,thu@01:30;tz=UTC;start=2026-11-23T11:35",
	"monthly:jan,jul/2nd-tue@03:00;tz=Europe/Berlin;start=2026-11-23T12:35",
	"monthly/last-day@23:00;tz=UTC;start=2026-11-23T11:35",
	"monthly/last-fri@23:30;tz=UTC;start=2026-11-23T11:35",
	"monthly/31@03:00;tz=UTC;start=2026-11-23T11:35",
}

func TestFormatWritesWhatParseReads(t *testing.T) {
	for _, text := range roundTripTexts {
		t.Run(text, func(t *testing.T) {
			s := mustParse(t, text, created)
			if got := s.Format(); got != text {
				t.Errorf("Parse(%q).Format() = %q", text, got)
			}
			again := mustParse(t, s.Format(), created)
			if g, w := mustJSON(t, again), mustJSON(t, s); g != w {
				t.Errorf("Parse(Format()) changed the schedule\n got %s\nwant %s", g, w)
			}
		})
	}
}

func TestJSONRoundTripsAndReadsNames(t *testing.T) {
	for _, text := range roundTripTexts {
		t.Run(text, func(t *testing.T) {
			s := mustParse(t, text, created)
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var back Schedule
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if back.Format() != s.Format() || !sameFirings(s, back) {
				t.Errorf("JSON round trip changed %q into %q (%s)", s.Format(), back.Format(), b)
			}
		})
	}

	t.Run("weekly schedule is stored with names and snake_case keys", func(t *testing.T) {
		s := mustParse(t, "weekly/2:sun,thu@01:30;tz=Europe/Berlin;start=2026-01-05", created)
		want := `{"kind":"weekly","zone":"Europe/Berlin","every":2,"time_of_day":"01:30","start":"2026-01-05T00:00:00+01:00","weekdays":["sun","thu"]}`
		if got := mustJSON(t, s); got != want {
			t.Errorf("JSON\n got %s\nwant %s", got, want)
		}
	})
	t.Run("monthly nth Sunday keeps its weekday", func(t *testing.T) {
		s := mustParse(t, "monthly:jan,jul/last-sun@03:00", created)
		got := mustJSON(t, s)
		if !strings.Contains(got, `"months":["jan","jul"]`) || !strings.Contains(got, `"nth":-1`) || !strings.Contains(got, `"weekday":"sun"`) {
			t.Errorf("JSON %s lacks months, nth or weekday by name", got)
		}
	})
	for _, c := range []struct{ name, json, want string }{
		{"unknown weekday name", `{"kind":"weekly","weekdays":["mon","xyz"]}`, `weekdays: "xyz" is not a weekday`},
		{"unknown month name", `{"kind":"monthly","months":["sept"]}`, `months: "sept" is not a month`},
		{"bad time of day", `{"kind":"daily","time_of_day":"2am"}`, `"2am" is not a time of day`},
	} {
		t.Run("rejects "+c.name, func(t *testing.T) {
			var s Schedule
			err := json.Unmarshal([]byte(c.json), &s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Unmarshal(%s) = %v, want an error containing %q", c.json, err, c.want)
			}
		})
	}
}

func TestStringDescribesTheScheduleForPeople(t *testing.T) {
	cases := []struct{ text, want string }{
		{"immediate", "immediately (2026-11-23 11:35 UTC)"},
		{"manual", "manually only"},
		{"once@2026-12-01T02:00;tz=Europe/Berlin", "once at 2026-12-01 02:00 Europe/Berlin"},
		{"hourly/2h@08:00-20:00;tz=Europe/Berlin", "every 2 h from 08:00 to 20:00 Europe/Berlin"},
		{"hourly/30m", "every 30 min all day UTC"},
		{"daily@02:00", "daily at 02:00 UTC"},
		{"daily/3@02:00;start=2026-01-05", "every 3 days at 02:00 UTC, counting from 2026-01-05"},
		{"weekly:mon,thu@01:30", "weekly on Mon, Thu at 01:30 UTC"},
		{"weekly/2:mon@01:30;start=2026-01-05", "every 2 weeks on Mon at 01:30 UTC, counting from 2026-01-05"},
		{"monthly/last-fri@23:30", "monthly on the last Friday at 23:30 UTC"},
		{"monthly:jan,jul/2nd-tue@03:00;tz=Europe/Berlin", "monthly in Jan, Jul on the 2nd Tuesday at 03:00 Europe/Berlin"},
		{"monthly/last-day@23:00", "monthly on the last day at 23:00 UTC"},
		{"monthly/15@03:00", "monthly on day 15 at 03:00 UTC"},
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			if got := mustParse(t, c.text, created).String(); got != c.want {
				t.Errorf("String() = %q, want %q", got, c.want)
			}
		})
	}
}

func mustJSON(t *testing.T, s Schedule) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameFirings(a, b Schedule) bool {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(3, 0, 0)
	fa, fb := a.Between(from, to, 50), b.Between(from, to, 50)
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if !fa[i].Equal(fb[i]) {
			return false
		}
	}
	return true
}
