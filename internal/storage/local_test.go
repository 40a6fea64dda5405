package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster/objects"
)

func TestLocalHidesTemporaryFilesAndCleansStaleOnes(t *testing.T) {
	dir := t.TempDir()
	b, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Save(ctx, "packs/ab/obj", strings.NewReader("data"), 4); err != nil {
		t.Fatalf("save: %v", err)
	}
	// Leftovers of crashed Saves: one old, one that may still be in progress.
	stale := filepath.Join(dir, "packs", "ab", ".pgguard-tmp-111")
	fresh := filepath.Join(dir, "packs", ".pgguard-tmp-222")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := os.Chtimes(stale, now.Add(-2*time.Hour), now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantListed(t, b, "", []string{"packs/ab/obj"})

	removed, err := b.RemoveStaleTemp(ctx, now, storage.StaleTempAge)
	if err != nil || removed != 1 {
		t.Fatalf("RemoveStaleTemp = %d, %v; want 1 removed", removed, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temp file was removed: %v", err)
	}
	if _, err := b.Stat(ctx, "packs/ab/obj"); err != nil {
		t.Fatalf("object lost by cleanup: %v", err)
	}
}

func TestLocalSaveLeavesNoTemporaryFileBehind(t *testing.T) {
	dir := t.TempDir()
	b, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = b.Save(ctx, "a/ok", strings.NewReader("fine"), 4)
	_ = b.Save(ctx, "a/short", strings.NewReader("abc"), 10)
	entries, err := os.ReadDir(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "ok" {
		t.Fatalf("directory holds %v, want only [ok]", names)
	}
}

func TestLocalRefusesNamesOutsideItsRoot(t *testing.T) {
	b, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".", "../escape", "/abs", "a/../b", "a//b", "a/", ".pgguard-tmp-x", "d/.pgguard-tmp-x"} {
		err := b.Save(context.Background(), name, strings.NewReader("x"), 1)
		if !storage.IsPermanent(err) {
			t.Errorf("save %q: err = %v, want a permanent invalid-name error", name, err)
		}
		if _, err := b.Stat(context.Background(), name); !storage.IsPermanent(err) {
			t.Errorf("stat %q: err = %v, want a permanent invalid-name error", name, err)
		}
	}
}

func TestLocalRefusesAnObjectInsideAnotherObjectsName(t *testing.T) {
	b, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Save(ctx, "a", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	err = b.Save(ctx, "a/b", strings.NewReader("y"), 1)
	if !storage.IsPermanent(err) || !strings.Contains(err.Error(), "name of one of its directories") {
		t.Fatalf("save a/b over object a: %v, want a permanent error explaining the clash", err)
	}
}

func TestLocalListWithAnImpossiblePrefixFindsNothing(t *testing.T) {
	parent := t.TempDir()
	b, err := storage.NewLocal(filepath.Join(parent, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	// A sibling of the root that a "../" prefix would reach.
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"../", "../s", "a//", "./"} {
		wantListed(t, b, prefix, nil)
	}
}

func TestNewLocalRequiresAnAbsolutePath(t *testing.T) {
	if _, err := storage.NewLocal("relative/repo"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("NewLocal(relative) = %v, want an error asking for an absolute path", err)
	}
}

func wantListed(t *testing.T, b storage.Backend, prefix string, want []string) {
	t.Helper()
	got := objects.Names(t, b, prefix)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("list %q = %v, want %v", prefix, got, want)
	}
}
