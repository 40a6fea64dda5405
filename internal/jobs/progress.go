package jobs

import (
	"fmt"
	"time"
)

// Progress is where a running run is, as its command last reported it.
type Progress struct {
	Phase          string    `json:"phase,omitempty"`
	DoneBytes      int64     `json:"done_bytes"`
	TotalBytes     int64     `json:"total_bytes,omitempty"`
	BytesPerSecond int64     `json:"bytes_per_second,omitempty"`
	ETASeconds     int64     `json:"eta_seconds,omitempty"`
	At             time.Time `json:"at"`
}

// String is the one-line form `jobs runs` shows, with byte counts given by
// human.
func (p Progress) String(human func(int64) string) string {
	s := p.Phase
	if s != "" {
		s += " "
	}
	if p.TotalBytes > 0 {
		s += fmt.Sprintf("%d%% of %s", min(100, p.DoneBytes*100/p.TotalBytes), human(p.TotalBytes))
	} else {
		s += human(p.DoneBytes)
	}
	if p.BytesPerSecond > 0 {
		s += fmt.Sprintf(", %s/s", human(p.BytesPerSecond))
	}
	if p.ETASeconds > 0 {
		s += fmt.Sprintf(", eta %s", time.Duration(p.ETASeconds)*time.Second)
	}
	return s
}
