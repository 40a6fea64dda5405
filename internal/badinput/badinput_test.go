package badinput_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pgguard/pgguard/internal/badinput"
)

func TestIs(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"an input error is one", badinput.Errorf("--keep %d: must not be negative", -1), true},
		{"an input error wrapped with context is still one", fmt.Errorf("prune: %w", badinput.Wrap(errors.New("x"))), true},
		{"an input error joined with a failure is still one", errors.Join(errors.New("io"), badinput.Errorf("y")), true},
		{"a plain failure is not", errors.New("connection refused"), false},
		{"nil is not", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := badinput.Is(tc.err); got != tc.want {
				t.Fatalf("Is(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if badinput.Wrap(nil) != nil {
		t.Fatal("Wrap(nil) must stay nil, or a caller's success would turn into an error")
	}
	if got := badinput.Errorf("--channels %d: use 1 to 255", 0).Error(); got != "--channels 0: use 1 to 255" {
		t.Fatalf("message %q changed by the marking", got)
	}
}
