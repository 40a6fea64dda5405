// Package objects holds what tests of packages above internal/storage
// ask of a backend directly: the names and sizes of its objects. It depends
// on internal/storage alone, so that internal/repo's own tests can use it;
// it never writes to a backend.
package objects

import (
	"context"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

// Names lists the objects under prefix in the order the backend lists them.
func Names(t testing.TB, be storage.Backend, prefix string) []string {
	t.Helper()
	var names []string
	if err := be.List(context.Background(), prefix, func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return names
}

// Usage sums the sizes of the objects under prefix and counts them.
func Usage(t testing.TB, be storage.Backend, prefix string) (bytes int64, objects int) {
	t.Helper()
	if err := be.List(context.Background(), prefix, func(fi storage.FileInfo) error {
		bytes += fi.Size
		objects++
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return bytes, objects
}

// PackBytes is the size of a repository's packs, the data it stores.
func PackBytes(t testing.TB, be storage.Backend) int64 {
	t.Helper()
	n, _ := Usage(t, be, "packs/")
	return n
}
