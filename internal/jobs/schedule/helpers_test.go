package schedule

import (
	"slices"
	"testing"
	"time"
)

const listLayout = "Mon 2006-01-02 15:04 -0700"

func instant(t *testing.T, rfc3339 string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		t.Fatalf("bad test instant %q: %v", rfc3339, err)
	}
	return v
}

func mustParse(t *testing.T, text string, created time.Time) Schedule {
	t.Helper()
	s, err := Parse(text, created)
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	return s
}

// firings lists up to n firings of s strictly after from, by calling Next
// the way a scheduler does, formatted in the schedule's zone.
func firings(t *testing.T, s Schedule, from time.Time, n int) []string {
	t.Helper()
	var out []string
	for at := from; len(out) < n; {
		f, ok := s.Next(at)
		if !ok {
			break
		}
		if !f.After(at) {
			t.Fatalf("%s: Next(%s) = %s, not after it", s, at, f)
		}
		out = append(out, f.Format(listLayout))
		at = f
	}
	return out
}

func diffLists(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("firings differ\n got:")
	for _, g := range got {
		t.Errorf("   %s", g)
	}
	t.Errorf(" want:")
	for _, w := range want {
		t.Errorf("   %s", w)
	}
}
