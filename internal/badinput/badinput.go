// Package badinput marks the errors caused by what a person typed or
// configured, so that a front end can tell them from failures: the CLI
// exits 2 for them, an API would answer 400. It owns the classification
// only; the wording of each error stays with the package that finds it.
package badinput

import (
	"errors"
	"fmt"
)

// Error is an input a person must change before trying again.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf formats an input error.
func Errorf(format string, args ...any) error {
	return &Error{fmt.Errorf(format, args...)}
}

// Wrap marks err as an input error; nil stays nil.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	return &Error{err}
}

// Is reports whether err is, or wraps, an input error.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
