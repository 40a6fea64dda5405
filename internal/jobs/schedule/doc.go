// Package schedule owns the arithmetic of job schedules (JOB-1): given a
// Schedule and an instant, when does it fire next. It is pure: no I/O
// beyond loading a zone's rules, no clock (callers pass every instant in),
// no goroutines, no state. It must never decide whether a job runs, on
// which node, or how often it already ran: that is the jobs runner's, which
// asks Next and records what it did.
//
// # Kinds
//
//   - immediate: once, at the instant the job was created (At).
//   - once: once, at At.
//   - manual: never by itself.
//   - hourly: every Every hours or minutes (Unit) inside a daily window
//     [WindowStart, WindowEnd), counting from WindowStart each day. A
//     window whose end is not after its start runs past midnight; 00:00 to
//     00:00 is all day.
//   - daily: every Every days at TimeOfDay, counting from Start's day.
//   - weekly: every Every weeks on Weekdays at TimeOfDay, counting from the
//     week (Monday to Sunday) that holds Start.
//   - monthly: in Months (none = all) at TimeOfDay, on DayOfMonth (1–31, or
//     -1 for the last day) or on the Nth (1–5, or -1 for the last) Weekday.
//     A month without the day is skipped: the 31st does not fire in April,
//     the 5th Monday does not fire in a month with four; write -1 (text
//     "last-day") to run at every month end.
//
// A repeating schedule never fires before Start. Anchor(created) sets Start
// (and an immediate schedule's At) when a job is created.
//
// # Time zones and DST
//
// Wall-clock times are in Zone (an IANA name; "" means UTC). On a day the
// clocks change:
//
//   - a wall time that does not exist (02:30 when 02:00 jumps to 03:00)
//     fires at the first instant after the gap: 03:00;
//   - a wall time that occurs twice (02:30 when 03:00 falls back to 02:00)
//     fires once, at its first occurrence (the summer-time one);
//   - an hourly window is bounded by its wall times, and its firings are
//     WindowStart + k*interval in real elapsed time: a 00:00–06:00 window
//     every 30 minutes fires 10 times on the spring-forward day and 14 on
//     the fall-back day. A window entirely inside the gap is empty.
//
// # Text form
//
// The CLI writes schedules as KIND, then "/value" and ":list" parts (in
// either order), then "@time", then ";key=value" options:
//
//	immediate
//	manual
//	once@2026-12-01T02:00               wall time in tz
//	once@2026-10-25T02:30:00+01:00      an instant (the second 02:30)
//	hourly/30m@08:00-20:00              every 30 minutes, 08:00 to 19:30
//	hourly/2h@22:00-06:00               22:00, 00:00, 02:00, 04:00
//	hourly/1h                           all day
//	daily@02:00
//	daily/3@02:00;start=2026-01-05      every third day from Jan 5
//	weekly:mon-fri@01:30
//	weekly/2:mon,thu@01:30              every other week
//	monthly/15@03:00                    the 15th of every month
//	monthly/31@03:00                    months without a 31st are skipped
//	monthly/last-day@23:00
//	monthly:jan,jul/2nd-tue@03:00       1st … 5th, or last
//	monthly/last-fri@23:30
//	monthly:jan-mar,oct/1@00:00
//	daily@02:00;tz=Europe/Berlin;start=2026-01-05T12:00
//
// Options: tz=ZONE (default UTC), start=DATE (YYYY-MM-DD,
// YYYY-MM-DDTHH:MM as a wall time in tz, or RFC 3339 with an offset;
// default: when the job is created). Weekday and month names are the
// three-letter English ones or the full names, in any case; lists take
// ranges (mon-fri, nov-feb). Format writes this form back.
//
// # JSON
//
// A Schedule marshals with snake_case keys, times of day as "HH:MM",
// instants as RFC 3339 and weekdays and months by name:
//
//	{"kind":"weekly","zone":"Europe/Berlin","every":2,"time_of_day":"01:30",
//	 "weekdays":["mon","thu"],"start":"2026-01-05T00:00:00+01:00"}
package schedule
