package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/crypto/scrypt"

	"github.com/pgguard/pgguard/internal/storage"
)

// ErrWrongKey means no key object of the repository opens with the given
// passphrase or key file.
var ErrWrongKey = errors.New("wrong passphrase or key file")

// KeySource is where the secret that unlocks a repository comes from: a
// passphrase or a key file. Its secret never appears in errors or logs.
type KeySource struct {
	kind   string // "passphrase" or "keyfile"
	secret []byte
}

// Passphrase returns a key source for a passphrase.
func Passphrase(p string) KeySource { return KeySource{kind: "passphrase", secret: []byte(p)} }

// KeyBytes returns a key source for the content of a key file.
func KeyBytes(b []byte) KeySource {
	return KeySource{kind: "keyfile", secret: append([]byte(nil), b...)}
}

// KeyFile reads a key file (at least 32 bytes, e.g. from `head -c 64
// /dev/urandom`) and returns it as a key source.
func KeyFile(path string) (KeySource, error) {
	st, err := os.Stat(path)
	if err != nil {
		return KeySource{}, fmt.Errorf("read key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return KeySource{}, fmt.Errorf("key file %s is readable or writable by group or others (mode %s): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return KeySource{}, fmt.Errorf("read key file: %w", err)
	}
	return KeyBytes(b), nil
}

// String and GoString never print the secret.
func (k KeySource) String() string { return k.kind }

func (k KeySource) GoString() string { return "repo.KeySource{" + k.kind + "}" }

func (k KeySource) validate() error {
	switch k.kind {
	case "passphrase":
		if len(k.secret) == 0 {
			return errors.New("empty passphrase: set a passphrase or use a key file")
		}
	case "keyfile":
		if len(k.secret) < 32 {
			return fmt.Errorf("key file holds %d bytes, need at least 32 random bytes", len(k.secret))
		}
	default:
		return errors.New("no passphrase or key file given")
	}
	return nil
}

// KDF names a passphrase key derivation function.
type KDF string

const (
	Argon2id KDF = "argon2id"
	Scrypt   KDF = "scrypt"
)

// KDFParams tune passphrase key derivation; they are stored in the key
// object, so changing them affects only newly created keys.
type KDFParams struct {
	KDF KDF
	// argon2id
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
	// scrypt
	N, R, P int
}

// DefaultKDFParams is argon2id with 64 MiB and 3 passes.
func DefaultKDFParams() KDFParams {
	return KDFParams{KDF: Argon2id, Time: 3, Memory: 64 * 1024, Threads: 2}
}

func (p KDFParams) validate() error {
	switch p.KDF {
	case Argon2id:
		if p.Time < 1 || p.Memory < 8*uint32(max(p.Threads, 1)) || p.Threads < 1 {
			return fmt.Errorf("argon2id parameters time=%d memory=%d threads=%d are too small", p.Time, p.Memory, p.Threads)
		}
		if p.Time > maxArgonTime || p.Memory > maxArgonMemory || p.Threads > maxArgonThreads {
			return fmt.Errorf("argon2id parameters time=%d memory=%d threads=%d exceed what pgguard opens (time %d, memory %d KiB, threads %d)", p.Time, p.Memory, p.Threads, maxArgonTime, maxArgonMemory, maxArgonThreads)
		}
	case Scrypt:
		if p.N < 2 || p.N&(p.N-1) != 0 || p.R < 1 || p.P < 1 {
			return fmt.Errorf("scrypt parameters N=%d r=%d p=%d invalid (N a power of two > 1)", p.N, p.R, p.P)
		}
		if int64(p.N)*int64(p.R)*128 > maxScryptMemory || p.P > maxScryptP {
			return fmt.Errorf("scrypt parameters N=%d r=%d p=%d exceed what pgguard opens (128*N*r up to 1 GiB, p up to %d)", p.N, p.R, p.P, maxScryptP)
		}
	default:
		return fmt.Errorf("unknown kdf %q (want %q or %q)", p.KDF, Argon2id, Scrypt)
	}
	return nil
}

// keyObject is the plaintext JSON stored at keys/<id>.
type keyObject struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Source  string    `json:"source"` // passphrase | keyfile
	KDF     string    `json:"kdf"`    // argon2id | scrypt | hkdf-sha256
	Salt    []byte    `json:"salt"`
	Time    uint32    `json:"time,omitempty"`
	Memory  uint32    `json:"memory,omitempty"`
	Threads uint8     `json:"threads,omitempty"`
	N       int       `json:"n,omitempty"`
	R       int       `json:"r,omitempty"`
	P       int       `json:"p,omitempty"`
	Data    []byte    `json:"data"` // sealed master key
}

var keyAD = []byte("pgguard key")

// KDF bounds for parameters read from a repository: a key object is not
// authenticated before its KDF runs, so whoever can write the storage could
// otherwise make every open spend any amount of memory and time.
const (
	maxArgonTime    = 16
	maxArgonMemory  = 1 << 20 // KiB: 1 GiB
	maxArgonThreads = 16
	maxScryptMemory = 1 << 30 // bytes: 128 * N * r
	maxScryptP      = 16
	maxKeyObjects   = 32
)

// checkStored refuses KDF parameters outside the bounds (too weak or too
// costly) before anything runs.
func (ko *keyObject) checkStored() error {
	if len(ko.Salt) < 16 || len(ko.Salt) > 64 {
		return fmt.Errorf("salt of %d bytes (want 16 to 64)", len(ko.Salt))
	}
	switch ko.KDF {
	case string(Argon2id):
		if ko.Time < 1 || ko.Time > maxArgonTime || ko.Threads < 1 || ko.Threads > maxArgonThreads ||
			ko.Memory < 8*uint32(ko.Threads) || ko.Memory > maxArgonMemory {
			return fmt.Errorf("argon2id time=%d memory=%dKiB threads=%d outside the bounds this pgguard runs (time 1..%d, memory up to %d KiB, threads 1..%d)",
				ko.Time, ko.Memory, ko.Threads, maxArgonTime, maxArgonMemory, maxArgonThreads)
		}
	case string(Scrypt):
		if ko.N < 2 || ko.N&(ko.N-1) != 0 || ko.R < 1 || ko.P < 1 || ko.P > maxScryptP || int64(ko.N)*int64(ko.R)*128 > maxScryptMemory {
			return fmt.Errorf("scrypt N=%d r=%d p=%d outside the bounds this pgguard runs (memory 128*N*r up to 1 GiB, p up to %d)", ko.N, ko.R, ko.P, maxScryptP)
		}
	}
	return nil
}

func (ko *keyObject) kek(src KeySource) ([]byte, error) {
	if err := ko.checkStored(); err != nil {
		return nil, err
	}
	switch ko.KDF {
	case string(Argon2id):
		return argon2.IDKey(src.secret, ko.Salt, ko.Time, ko.Memory, ko.Threads, 32), nil
	case string(Scrypt):
		k, err := scrypt.Key(src.secret, ko.Salt, ko.N, ko.R, ko.P, 32)
		if err != nil {
			return nil, fmt.Errorf("scrypt: %w", err)
		}
		return k, nil
	case "hkdf-sha256":
		k := make([]byte, 32)
		if _, err := io.ReadFull(hkdf.New(sha256.New, src.secret, ko.Salt, keyAD), k); err != nil {
			return nil, fmt.Errorf("hkdf: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("key object uses unknown kdf %q", ko.KDF)
}

func newKeyObject(src KeySource, p KDFParams, c Cipher, master []byte, now time.Time) (*keyObject, error) {
	ko := &keyObject{Version: 1, Created: now.UTC(), Source: src.kind, Salt: randomBytes(32)}
	if src.kind == "keyfile" {
		ko.KDF = "hkdf-sha256"
	} else {
		if err := p.validate(); err != nil {
			return nil, err
		}
		ko.KDF = string(p.KDF)
		ko.Time, ko.Memory, ko.Threads = p.Time, p.Memory, p.Threads
		ko.N, ko.R, ko.P = p.N, p.R, p.P
		if p.KDF == Scrypt {
			ko.Time, ko.Memory, ko.Threads = 0, 0, 0
		} else {
			ko.N, ko.R, ko.P = 0, 0, 0
		}
	}
	kek, err := ko.kek(src)
	if err != nil {
		return nil, err
	}
	s, err := newSealer(kek, c)
	if err != nil {
		return nil, err
	}
	ko.Data = s.seal(nil, master, keyAD)
	return ko, nil
}

// unlock returns the master key, or ErrWrongKey.
func (ko *keyObject) unlock(src KeySource) ([]byte, error) {
	if ko.Source != src.kind {
		return nil, ErrWrongKey
	}
	kek, err := ko.kek(src)
	if err != nil {
		return nil, err
	}
	s, err := newSealer(kek, AES256GCM) // open reads the cipher from the blob
	if err != nil {
		return nil, err
	}
	master, err := s.open(nil, ko.Data, keyAD)
	if err != nil {
		return nil, ErrWrongKey
	}
	if len(master) != masterKeyBytes {
		return nil, fmt.Errorf("key object holds a %d-byte master key, want %d", len(master), masterKeyBytes)
	}
	return master, nil
}

// openMasterKey tries every key object and returns the master key.
func openMasterKey(ctx context.Context, be storage.Backend, src KeySource) ([]byte, error) {
	var names []string
	err := be.List(ctx, "keys/", func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no key objects in %s: is this a pgguard repository (run init first)?", be.Location())
	}
	if len(names) > maxKeyObjects {
		return nil, fmt.Errorf("%s holds %d key objects, more than the %d this pgguard tries (each costs a key derivation): remove the ones no one uses", be.Location(), len(names), maxKeyObjects)
	}
	var skipped []string
	for _, name := range names {
		raw, err := loadAll(ctx, be, name)
		if err != nil {
			return nil, err
		}
		var ko keyObject
		if err := json.Unmarshal(raw, &ko); err != nil {
			return nil, fmt.Errorf("key object %s is damaged: %w", name, err)
		}
		if ko.Source == src.kind {
			if err := ko.checkStored(); err != nil {
				// Skipped, not run: another key object may open it.
				skipped = append(skipped, fmt.Sprintf("%s: %v", name, err))
				continue
			}
		}
		master, err := ko.unlock(src)
		if errors.Is(err, ErrWrongKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key object %s: %w", name, err)
		}
		return master, nil
	}
	if len(skipped) > 0 {
		return nil, fmt.Errorf("%w for repository %s (tried %d key objects; skipped, KDF parameters outside the bounds: %s)", ErrWrongKey, be.Location(), len(names)-len(skipped), strings.Join(skipped, "; "))
	}
	return nil, fmt.Errorf("%w for repository %s (tried %d key objects)", ErrWrongKey, be.Location(), len(names))
}

func loadAll(ctx context.Context, be storage.Backend, name string) ([]byte, error) {
	rc, err := be.Load(ctx, name, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

func loadRange(ctx context.Context, be storage.Backend, name string, off, n int64) ([]byte, error) {
	rc, err := be.Load(ctx, name, off, n)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("read %s at %d+%d: %w", name, off, n, err)
	}
	return b, nil
}

func saveBytes(ctx context.Context, be storage.Backend, name string, b []byte) error {
	if err := be.Save(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	return nil
}

// AddKey stores another key object for the same master key, so the
// repository opens with src as well (a second passphrase, a key file for
// automation). It returns the key object's name. p is ignored for key files.
func (r *Repository) AddKey(ctx context.Context, src KeySource, p KDFParams) (string, error) {
	if err := src.validate(); err != nil {
		return "", err
	}
	ko, err := newKeyObject(src, p, r.cfg.Cipher, r.master, r.rt.Now())
	if err != nil {
		return "", fmt.Errorf("add key: %w", err)
	}
	b, err := json.MarshalIndent(ko, "", "  ")
	if err != nil {
		return "", fmt.Errorf("add key: %w", err)
	}
	name := "keys/" + randomHex(16)
	if err := saveBytes(ctx, r.be, name, b); err != nil {
		return "", fmt.Errorf("add key: %w", err)
	}
	return name, nil
}
