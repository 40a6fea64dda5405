package dcs

import (
	"errors"
	"fmt"
	"testing"
)

func TestChangedErrorSaysWhatChangedAndMatchesErrChanged(t *testing.T) {
	cases := []struct {
		name string
		err  *ChangedError
		want string
	}{
		{"rewritten after the read: both revisions named", &ChangedError{Key: "switchover", Read: 50, Now: 57},
			"switchover changed since it was read (written at revision 57, after revision 50): read it again and retry"},
		{"deleted after the read: the read revision named", &ChangedError{Key: "jobs/nightly", Read: 12},
			"jobs/nightly changed since it was read (deleted after revision 12): read it again and retry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := fmt.Errorf("clear: %w", tc.err)
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if !errors.Is(wrapped, ErrChanged) {
				t.Errorf("errors.Is(%v, ErrChanged) = false", wrapped)
			}
			if errors.Is(wrapped, ErrNotLeader) {
				t.Errorf("a change matches ErrNotLeader")
			}
			var ce *ChangedError
			if !errors.As(wrapped, &ce) || ce.Key != tc.err.Key {
				t.Errorf("errors.As does not find the change of %s in %v", tc.err.Key, wrapped)
			}
		})
	}
}
