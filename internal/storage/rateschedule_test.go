package storage_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

func TestParseRateSchedule(t *testing.T) {
	day := storage.RateWindow{Start: storage.HourMinute(8, 0), End: storage.HourMinute(20, 0), BytesPerSec: 1 << 20}
	night := storage.RateWindow{Start: storage.HourMinute(22, 0), End: storage.HourMinute(6, 0), BytesPerSec: 0}
	cases := []struct {
		name string
		in   string
		want storage.RateSchedule
	}{
		{"a plain rate is the default all day", "10MiB", storage.RateSchedule{Default: 10 << 20}},
		{"unlimited by default, limited in a window", "unlimited,08:00-20:00=1MiB", storage.RateSchedule{Windows: []storage.RateWindow{day}}},
		{"a window first leaves the default unlimited", "08:00-20:00=1MiB", storage.RateSchedule{Windows: []storage.RateWindow{day}}},
		{"several windows keep their order, spaces around items are ignored", "5MiB, 08:00-20:00=1MiB ,22:00-06:00=unlimited",
			storage.RateSchedule{Default: 5 << 20, Windows: []storage.RateWindow{day, night}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storage.ParseRateSchedule(tc.in)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseRateSchedule(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
	bad := []struct {
		name, in, mention string
	}{
		{"a second plain rate is refused, naming the window form", "1MiB,2MiB", "only the first item may be a plain rate"},
		{"a bad rate names the accepted forms", "fast", "expected \"unlimited\""},
		{"a bad window names the expected form", "1MiB,08:00=1MiB", "HH:MM-HH:MM=RATE"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := storage.ParseRateSchedule(tc.in); err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("ParseRateSchedule(%q) = %v; want an error naming %q", tc.in, err, tc.mention)
			}
		})
	}
}
