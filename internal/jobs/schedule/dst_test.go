package schedule

import (
	"testing"
	"time"
)

// 2026 clock changes: Europe/Berlin springs forward on Mar 29 (02:00 CET →
// 03:00 CEST) and falls back on Oct 25 (03:00 CEST → 02:00 CET);
// America/New_York springs forward on Mar 8 (02:00 EST → 03:00 EDT) and
// falls back on Nov 1 (02:00 EDT → 01:00 EST).

func TestNextAcrossDSTChanges(t *testing.T) {
	runFiringCases(t, []firingCase{
		{
			name: "Berlin spring forward: daily 02:30 does not exist on Mar 29 and fires at 03:00 CEST, the end of the gap",
			text: "daily@02:30;tz=Europe/Berlin", created: "2026-03-27T12:00:00Z", n: 3,
			want: []string{"Sat 2026-03-28 02:30 +0100", "Sun 2026-03-29 03:00 +0200", "Mon 2026-03-30 02:30 +0200"},
		},
		{
			name: "Berlin fall back: daily 02:30 occurs twice on Oct 25 and fires once, at the first (CEST) occurrence",
			text: "daily@02:30;tz=Europe/Berlin", created: "2026-10-23T12:00:00Z", n: 3,
			want: []string{"Sat 2026-10-24 02:30 +0200", "Sun 2026-10-25 02:30 +0200", "Mon 2026-10-26 02:30 +0100"},
		},
		{
			name: "Berlin: a wall time outside the change hour keeps its wall time on both sides",
			text: "daily@04:00;tz=Europe/Berlin", created: "2026-03-27T12:00:00Z", n: 3,
			want: []string{"Sat 2026-03-28 04:00 +0100", "Sun 2026-03-29 04:00 +0200", "Mon 2026-03-30 04:00 +0200"},
		},
		{
			name: "New York spring forward: daily 02:30 fires at 03:00 EDT on Mar 8",
			text: "daily@02:30;tz=America/New_York", created: "2026-03-06T12:00:00Z", n: 3,
			want: []string{"Sat 2026-03-07 02:30 -0500", "Sun 2026-03-08 03:00 -0400", "Mon 2026-03-09 02:30 -0400"},
		},
		{
			name: "New York fall back: daily 01:30 fires once on Nov 1, at 01:30 EDT",
			text: "daily@01:30;tz=America/New_York", created: "2026-10-30T12:00:00Z", n: 3,
			want: []string{"Sat 2026-10-31 01:30 -0400", "Sun 2026-11-01 01:30 -0400", "Mon 2026-11-02 01:30 -0500"},
		},
		{
			name: "Berlin spring forward: every 30 min from 00:00 to 06:00 fires 10 times, the window being 5 real hours",
			text: "hourly/30m@00:00-06:00;tz=Europe/Berlin", created: "2026-03-28T12:00:00Z", n: 11,
			want: []string{
				"Sun 2026-03-29 00:00 +0100", "Sun 2026-03-29 00:30 +0100", "Sun 2026-03-29 01:00 +0100", "Sun 2026-03-29 01:30 +0100",
				"Sun 2026-03-29 03:00 +0200", "Sun 2026-03-29 03:30 +0200", "Sun 2026-03-29 04:00 +0200", "Sun 2026-03-29 04:30 +0200",
				"Sun 2026-03-29 05:00 +0200", "Sun 2026-03-29 05:30 +0200",
				"Mon 2026-03-30 00:00 +0200",
			},
		},
		{
			name: "Berlin fall back: every 30 min from 00:00 to 06:00 fires 14 times, both 02:00 and both 02:30 included",
			text: "hourly/30m@00:00-06:00;tz=Europe/Berlin", created: "2026-10-24T12:00:00Z", n: 15,
			want: []string{
				"Sun 2026-10-25 00:00 +0200", "Sun 2026-10-25 00:30 +0200", "Sun 2026-10-25 01:00 +0200", "Sun 2026-10-25 01:30 +0200",
				"Sun 2026-10-25 02:00 +0200", "Sun 2026-10-25 02:30 +0200", "Sun 2026-10-25 02:00 +0100", "Sun 2026-10-25 02:30 +0100",
				"Sun 2026-10-25 03:00 +0100", "Sun 2026-10-25 03:30 +0100", "Sun 2026-10-25 04:00 +0100", "Sun 2026-10-25 04:30 +0100",
				"Sun 2026-10-25 05:00 +0100", "Sun 2026-10-25 05:30 +0100",
				"Mon 2026-10-26 00:00 +0100",
			},
		},
		{
			name: "New York fall back: hourly from 01:00 to 04:00 counts real hours, so 01:00 fires in EDT and again in EST",
			text: "hourly/1h@01:00-04:00;tz=America/New_York", created: "2026-10-31T12:00:00Z", n: 5,
			want: []string{
				"Sun 2026-11-01 01:00 -0400", "Sun 2026-11-01 01:00 -0500", "Sun 2026-11-01 02:00 -0500", "Sun 2026-11-01 03:00 -0500",
				"Mon 2026-11-02 01:00 -0500",
			},
		},
		{
			name: "Berlin spring forward: a window starting in the gap starts at 03:00 and keeps its 05:00 end",
			text: "hourly/1h@02:30-05:00;tz=Europe/Berlin", created: "2026-03-28T12:00:00Z", n: 4,
			want: []string{"Sun 2026-03-29 03:00 +0200", "Sun 2026-03-29 04:00 +0200", "Mon 2026-03-30 02:30 +0200", "Mon 2026-03-30 03:30 +0200"},
		},
		{
			name: "Berlin spring forward: a window entirely inside the gap is empty that day",
			text: "hourly/10m@02:00-02:30;tz=Europe/Berlin", created: "2026-03-28T02:25:00Z", n: 3,
			want: []string{"Mon 2026-03-30 02:00 +0200", "Mon 2026-03-30 02:10 +0200", "Mon 2026-03-30 02:20 +0200"},
		},
		{
			name: "weekly on Sunday 02:30 fires at 03:00 CEST on the Berlin spring-forward Sunday",
			text: "weekly:sun@02:30;tz=Europe/Berlin", created: "2026-03-20T00:00:00Z", n: 3,
			want: []string{"Sun 2026-03-22 02:30 +0100", "Sun 2026-03-29 03:00 +0200", "Sun 2026-04-05 02:30 +0200"},
		},
		{
			name: "monthly on the last Sunday at 02:30 meets both Berlin changes",
			text: "monthly:mar,oct/last-sun@02:30;tz=Europe/Berlin", created: "2026-01-01T00:00:00Z", n: 2,
			want: []string{"Sun 2026-03-29 03:00 +0200", "Sun 2026-10-25 02:30 +0200"},
		},
		{
			name: "once at a wall time that occurs twice is its first occurrence",
			text: "once@2026-10-25T02:30;tz=Europe/Berlin", created: "2026-10-01T00:00:00Z", n: 2,
			want: []string{"Sun 2026-10-25 02:30 +0200"},
		},
		{
			name: "once with an explicit offset picks the second occurrence",
			text: "once@2026-10-25T02:30:00+01:00;tz=Europe/Berlin", created: "2026-10-01T00:00:00Z", n: 2,
			want: []string{"Sun 2026-10-25 02:30 +0100"},
		},
		{
			name: "daily every 2 days keeps counting calendar days across the spring-forward day",
			text: "daily/2@12:00;tz=Europe/Berlin;start=2026-03-27", created: "2026-03-01T00:00:00Z", n: 3,
			want: []string{"Fri 2026-03-27 12:00 +0100", "Sun 2026-03-29 12:00 +0200", "Tue 2026-03-31 12:00 +0200"},
		},
	})
}

// A daily schedule whose wall time lands in the gap must not fire twice or
// not at all when asked from inside the gap's neighbourhood.
func TestNextFromInsideTheGapDoesNotRepeatOrSkip(t *testing.T) {
	s := mustParse(t, "daily@02:30;tz=Europe/Berlin", instant(t, "2026-03-01T00:00:00Z"))
	gapEnd := instant(t, "2026-03-29T01:00:00Z") // 03:00 CEST
	cases := []struct {
		name  string
		after time.Time
		want  time.Time
	}{
		{"just before the gap", gapEnd.Add(-time.Minute), gapEnd},
		{"at the gap's end: the next day", gapEnd, instant(t, "2026-03-30T00:30:00Z")},
		{"just after the gap's end", gapEnd.Add(time.Second), instant(t, "2026-03-30T00:30:00Z")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := s.Next(c.after)
			if !ok || !got.Equal(c.want) {
				t.Fatalf("Next(%s) = %s, want %s", c.after, got, c.want)
			}
		})
	}
}

func TestResolveWall(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	apia, err := time.LoadLocation("Pacific/Apia")
	if err != nil {
		t.Fatal(err)
	}
	wall := func(s string) int64 {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v.Unix()
	}
	cases := []struct {
		name string
		loc  *time.Location
		wall string
		want string
	}{
		{"an ordinary wall time", berlin, "2026-06-01 12:00", "2026-06-01T10:00:00Z"},
		{"the first minute of the gap is the gap's end", berlin, "2026-03-29 02:00", "2026-03-29T01:00:00Z"},
		{"the last minute of the gap is the gap's end", berlin, "2026-03-29 02:59", "2026-03-29T01:00:00Z"},
		{"the first wall time after the gap is itself", berlin, "2026-03-29 03:00", "2026-03-29T01:00:00Z"},
		{"a repeated wall time is its first occurrence", berlin, "2026-10-25 02:00", "2026-10-25T00:00:00Z"},
		{"the wall time after the repeat is unique again", berlin, "2026-10-25 03:00", "2026-10-25T02:00:00Z"},
		{"Samoa skipped Dec 30 2011 entirely: any time that day is Dec 31 00:00", apia, "2011-12-30 12:00", "2011-12-30T10:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := resolveWall(c.loc, wall(c.wall)).UTC().Format(time.RFC3339)
			if got != c.want {
				t.Errorf("resolveWall(%s %s) = %s, want %s", c.wall, c.loc, got, c.want)
			}
		})
	}
}
