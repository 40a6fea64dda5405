// Package storage owns the byte stores that backup repositories live on: a
// local directory, an S3 bucket, an in-memory map for unit tests, and the
// wrappers (retry, rate limit) that go around any of them.
//
// A backend stores named, immutable objects. It never interprets their
// content, never encrypts or compresses (the repository does), and classifies
// its own errors so callers can decide what to retry without matching strings.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Backend is a flat namespace of immutable objects. Names use "/" as a
// separator (e.g. "packs/ab/abcdef…"); a backend maps them onto its medium.
//
// Contract, shared by every implementation and checked by the conformance
// suite in storage/storagetest:
//   - Save makes the object visible only once it is complete: a reader never
//     sees a partial object, and a crash mid-Save leaves either nothing or the
//     whole object. Saving a name that exists replaces it.
//   - Load with length <= 0 reads from offset to the end. A missing object is
//     an error for which IsNotExist is true.
//   - List calls fn for every object whose name starts with prefix, in no
//     particular order; an error from fn stops the listing and is returned.
//   - Remove of a missing object is an IsNotExist error.
//   - All methods honour ctx cancellation.
type Backend interface {
	Save(ctx context.Context, name string, r io.Reader, size int64) error
	Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (FileInfo, error)
	List(ctx context.Context, prefix string, fn func(FileInfo) error) error
	Remove(ctx context.Context, name string) error
	// Location names the store for people (a path or URL, never a secret).
	Location() string
}

// FileInfo describes one stored object.
type FileInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// Error kinds. Backends wrap their errors with one of these so that callers
// branch on behaviour (IsNotExist, IsRetryable) rather than on messages.
var (
	ErrNotExist  = errors.New("object does not exist")
	ErrPermanent = errors.New("permanent storage error")
	ErrRetryable = errors.New("transient storage error")
)

// IsNotExist reports whether err means the object is not there.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// IsPermanent reports whether retrying err cannot help (bad credentials,
// missing bucket, permission denied, invalid name).
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// IsRetryable reports whether err is transient (network, throttling, 5xx).
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }

// kindError attaches an error kind to an underlying cause while keeping both
// visible to errors.Is/As.
type kindError struct {
	kind  error
	op    string
	name  string
	cause error
}

func (e *kindError) Error() string {
	if e.cause == nil {
		return fmt.Sprintf("%s %s: %v", e.op, e.name, e.kind)
	}
	return fmt.Sprintf("%s %s: %v", e.op, e.name, e.cause)
}

func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

// NotExist, Permanent and Retryable classify cause for operation op on name.
func NotExist(op, name string, cause error) error {
	return &kindError{kind: ErrNotExist, op: op, name: name, cause: cause}
}

func Permanent(op, name string, cause error) error {
	return &kindError{kind: ErrPermanent, op: op, name: name, cause: cause}
}

func Retryable(op, name string, cause error) error {
	return &kindError{kind: ErrRetryable, op: op, name: name, cause: cause}
}
