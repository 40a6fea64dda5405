package schedule

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

var weekdayShort = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

var monthShort = [13]string{"", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// parseWeekday reads "mon" or "monday", any case.
func parseWeekday(s string) (time.Weekday, bool) {
	return parseName(s, time.Sunday, time.Saturday, weekdayShort[:])
}

// parseMonth reads "jan" or "january", any case.
func parseMonth(s string) (time.Month, bool) {
	return parseName(s, time.January, time.December, monthShort[:])
}

// parseName finds s, in any case, among the values first…last by their
// short name (short[v]) or their full English name (v.String()).
func parseName[T interface {
	~int
	String() string
}](s string, first, last T, short []string) (T, bool) {
	s = strings.ToLower(s)
	for v := first; v <= last; v++ {
		if s == short[v] || s == strings.ToLower(v.String()) {
			return v, true
		}
	}
	return 0, false
}

func weekdayNames(ds []time.Weekday, short bool, sep string) string {
	names := make([]string, len(ds))
	for i, d := range ds {
		switch {
		case d < time.Sunday || d > time.Saturday:
			names[i] = fmt.Sprint(int(d))
		case short:
			names[i] = weekdayShort[d]
		default:
			names[i] = d.String()[:3]
		}
	}
	return strings.Join(names, sep)
}

func monthNames(ms []time.Month, sep string) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		if m < time.January || m > time.December {
			names[i] = fmt.Sprint(int(m))
		} else {
			names[i] = m.String()[:3]
		}
	}
	return strings.Join(names, sep)
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return fmt.Sprintf("%dth", n)
}

// scheduleFields is Schedule without its JSON methods.
type scheduleFields Schedule

// scheduleJSON writes weekdays and months by name ("mon", "jan"): stored
// jobs are read by people, and Sunday being 0 would hide it behind
// omitempty.
type scheduleJSON struct {
	scheduleFields
	Weekdays []string `json:"weekdays,omitempty"`
	Months   []string `json:"months,omitempty"`
	Weekday  string   `json:"weekday,omitempty"`
}

// MarshalJSON writes s with snake_case keys, times of day as "HH:MM",
// instants as RFC 3339, and weekdays and months as "mon", "jan".
func (s Schedule) MarshalJSON() ([]byte, error) {
	w := scheduleJSON{scheduleFields: scheduleFields(s)}
	for _, d := range s.Weekdays {
		w.Weekdays = append(w.Weekdays, weekdayNames([]time.Weekday{d}, true, ""))
	}
	for _, m := range s.Months {
		w.Months = append(w.Months, strings.ToLower(monthNames([]time.Month{m}, "")))
	}
	if s.Nth != 0 || s.Weekday != time.Sunday {
		w.Weekday = weekdayNames([]time.Weekday{s.Weekday}, true, "")
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes. It does not validate.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	var w scheduleJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	v := Schedule(w.scheduleFields)
	v.Weekdays, v.Months, v.Weekday = nil, nil, time.Sunday
	for _, name := range w.Weekdays {
		d, ok := parseWeekday(name)
		if !ok {
			return fmt.Errorf("weekdays: %q is not a weekday; expected mon, tue, wed, thu, fri, sat or sun", name)
		}
		v.Weekdays = append(v.Weekdays, d)
	}
	for _, name := range w.Months {
		m, ok := parseMonth(name)
		if !ok {
			return fmt.Errorf("months: %q is not a month; expected jan, feb, … dec", name)
		}
		v.Months = append(v.Months, m)
	}
	if w.Weekday != "" {
		d, ok := parseWeekday(w.Weekday)
		if !ok {
			return fmt.Errorf("weekday: %q is not a weekday; expected mon, tue, wed, thu, fri, sat or sun", w.Weekday)
		}
		v.Weekday = d
	}
	*s = v
	return nil
}
