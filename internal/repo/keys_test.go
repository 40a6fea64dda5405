package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

func TestInitThenOpenReadsTheSameConfig(t *testing.T) {
	for _, kdf := range []KDFParams{fastKDF, {KDF: Scrypt, N: 1024, R: 8, P: 1}} {
		t.Run(string(kdf.KDF), func(t *testing.T) {
			be := storage.NewMem()
			opts := testOptions()
			opts.KDF = kdf
			r := initRepo(t, be, opts)
			r2 := reopen(t, be, Runtime{})
			if r2.Config() != r.Config() {
				t.Fatalf("config after open %+v, after init %+v", r2.Config(), r.Config())
			}
			if got := objectNames(t, be, ""); len(got) != 3 || got[0] != "config" || got[1] != "head" || !strings.HasPrefix(got[2], "keys/") {
				t.Fatalf("init wrote %v, want config, the head and one key object", got)
			}
		})
	}
}

func TestInitRefusesNonEmptyLocation(t *testing.T) {
	be := storage.NewMem()
	if err := saveBytes(context.Background(), be, "somebody/else", []byte("x")); err != nil {
		t.Fatal(err)
	}
	_, err := Init(context.Background(), be, Passphrase(testPass), testOptions())
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("init on a non-empty location: got %v, want a not-empty error", err)
	}
	if got := objectNames(t, be, ""); len(got) != 1 {
		t.Fatalf("refused init still wrote: %v", got)
	}
}

func TestWrongPassphraseIsErrWrongKeyAndWritesNothing(t *testing.T) {
	be, _ := memRepo(t)
	before := objectNames(t, be, "")
	const wrong = "Tr0ub4dor&3-secret"
	_, err := Open(context.Background(), be, Passphrase(wrong), Runtime{})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("open with a wrong passphrase: got %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), "wrong passphrase or key file for repository mem:") {
		t.Fatalf("error %q does not name the repository", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), testPass) {
		t.Fatalf("error %q leaks a passphrase", err)
	}
	if after := objectNames(t, be, ""); !slices.Equal(before, after) {
		t.Fatalf("failed open changed the repository: %v -> %v", before, after)
	}
}

func TestKeyFileSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "repo.key")
	if err := os.WriteFile(path, randomData(7, 64), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := KeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	be := storage.NewMem()
	if _, err := Init(context.Background(), be, src, testOptions()); err != nil {
		t.Fatalf("init with key file: %v", err)
	}
	if _, err := Open(context.Background(), be, src, Runtime{}); err != nil {
		t.Fatalf("open with key file: %v", err)
	}
	cases := []struct {
		name string
		src  KeySource
		want error
	}{
		{"a passphrase does not open a key-file repository", Passphrase(testPass), ErrWrongKey},
		{"another key file does not open it", KeyBytes(randomData(8, 64)), ErrWrongKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Open(context.Background(), be, c.src, Runtime{}); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := Open(context.Background(), be, KeyBytes([]byte("short")), Runtime{}); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("short key file: got %v, want a too-short error", err)
	}
}

func TestOpenEmptyLocationSaysRunInit(t *testing.T) {
	_, err := Open(context.Background(), storage.NewMem(), Passphrase(testPass), Runtime{})
	if err == nil || !strings.Contains(err.Error(), "init") {
		t.Fatalf("open of an empty location: got %v, want a hint to run init", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Options)
		ok     bool
	}{
		{"defaults are valid", func(*Options) {}, true},
		{"block size not a page multiple is rejected", func(o *Options) { o.BlockSize = 10000 }, false},
		{"one-page blocks are allowed", func(o *Options) { o.BlockSize = PageSize }, true},
		{"unknown cipher is rejected", func(o *Options) { o.Cipher = "rot13" }, false},
		{"zstd level 23 is rejected", func(o *Options) { o.CompressionLevel = 23 }, false},
		{"lz4 ignores the zstd level", func(o *Options) { o.Compression, o.CompressionLevel = CompressLZ4, 0 }, true},
		{"tiny packs are rejected", func(o *Options) { o.PackSize = 4096 }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			c.modify(&o)
			if err := o.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestTamperedConfigIsRejected(t *testing.T) {
	be, _ := memRepo(t)
	flipByte(t, be, "config", 20)
	_, err := Open(context.Background(), be, Passphrase(testPass), Runtime{})
	if err == nil || !strings.Contains(err.Error(), "config") {
		t.Fatalf("open with a tampered config: got %v, want an error naming config", err)
	}
}

func TestAddKeyOpensWithEitherSecret(t *testing.T) {
	ctx := context.Background()
	be, r := memRepo(t)
	m := writeBackup(t, r, KindFull, nil, sampleFiles()[:2])
	file := KeyBytes(randomData(99, 48))
	if _, err := r.AddKey(ctx, file, fastKDF); err != nil {
		t.Fatal(err)
	}
	for _, src := range []KeySource{Passphrase(testPass), file} {
		r2, err := Open(ctx, be, src, Runtime{})
		if err != nil {
			t.Fatalf("open with %v after AddKey: %v", src, err)
		}
		checkFiles(t, r2, m, sampleFiles()[:2])
	}
	if got := fmt.Sprintf("%v %+v %#v", file, file, file); strings.Contains(got, string(file.secret[:8])) {
		t.Fatalf("formatting a key source prints its secret: %q", got)
	}
}
