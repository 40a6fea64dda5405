package schedule

import (
	"testing"
	"time"
)

func BenchmarkNext(b *testing.B) {
	for _, text := range []string{
		"hourly/5m@08:00-20:00;tz=Europe/Berlin",
		"weekly/2:mon,thu@01:30;tz=America/New_York",
		"monthly:feb/5th-mon@09:00", // the search spans decades
	} {
		s, err := Parse(text, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(text, func(b *testing.B) {
			at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			for b.Loop() {
				if _, ok := s.Next(at); !ok {
					b.Fatal("no next firing")
				}
			}
		})
	}
}
