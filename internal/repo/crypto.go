package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// Cipher names an authenticated encryption algorithm for the repository.
type Cipher string

const (
	AES256GCM         Cipher = "aes-256-gcm"
	XChaCha20Poly1305 Cipher = "xchacha20-poly1305"
)

const (
	cipherAESGCM   byte = 1
	cipherXChaCha  byte = 2
	masterKeyBytes      = 32
)

var errBadBlob = errors.New("authentication failed: data is corrupted or was written with another key")

func (c Cipher) code() (byte, error) {
	switch c {
	case AES256GCM:
		return cipherAESGCM, nil
	case XChaCha20Poly1305:
		return cipherXChaCha, nil
	}
	return 0, fmt.Errorf("unknown cipher %q (want %q or %q)", c, AES256GCM, XChaCha20Poly1305)
}

// sealer encrypts and authenticates blobs with one key. Both AEADs from the
// standard library and x/crypto are safe for concurrent use.
type sealer struct {
	code byte
	gcm  cipher.AEAD
	xcc  cipher.AEAD
}

// newSealer seals with cipher c; aesKey and xccKey are the keys of the
// two algorithms (the same key in format version 1 and for a key object's
// key-encryption key, each its own derived key since version 2).
func newSealer(key []byte, c Cipher) (*sealer, error) {
	return newSealer2(key, key, c)
}

func newSealer2(aesKey, xccKey []byte, c Cipher) (*sealer, error) {
	code, err := c.code()
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	xcc, err := chacha20poly1305.NewX(xccKey)
	if err != nil {
		return nil, fmt.Errorf("xchacha20-poly1305: %w", err)
	}
	return &sealer{code: code, gcm: gcm, xcc: xcc}, nil
}

func (s *sealer) aead(code byte) cipher.AEAD {
	switch code {
	case cipherAESGCM:
		return s.gcm
	case cipherXChaCha:
		return s.xcc
	}
	return nil
}

// seal appends the blob for plain to dst.
func (s *sealer) seal(dst, plain, ad []byte) []byte {
	a := s.aead(s.code)
	n := a.NonceSize()
	out := append(dst, s.code)
	start := len(out)
	out = append(out, make([]byte, n)...)
	rand.Read(out[start : start+n]) // never fails since Go 1.24
	return a.Seal(out, out[start:start+n], plain, ad)
}

// open authenticates and decrypts blob, appending the plaintext to dst.
func (s *sealer) open(dst, blob, ad []byte) ([]byte, error) {
	a, nonce, ct, err := s.split(blob)
	if err != nil {
		return nil, err
	}
	out, err := a.Open(dst, nonce, ct, ad)
	if err != nil {
		return nil, errBadBlob
	}
	return out, nil
}

// split parses blob into its cipher, nonce and ciphertext.
func (s *sealer) split(blob []byte) (a cipher.AEAD, nonce, ct []byte, err error) {
	if len(blob) < 1 {
		return nil, nil, nil, errBadBlob
	}
	if a = s.aead(blob[0]); a == nil {
		return nil, nil, nil, fmt.Errorf("unknown cipher code %d: %w", blob[0], errBadBlob)
	}
	n := a.NonceSize()
	if len(blob) < 1+n+a.Overhead() {
		return nil, nil, nil, errBadBlob
	}
	return a, blob[1 : 1+n], blob[1+n:], nil
}

// blobHeaderLen is the length of a blob's cipher code and nonce.
func blobHeaderLen(code byte) int { return blobOverhead(code) - 16 }

// sealAt seals in place: buf[start:] is room for the cipher code and
// the nonce (blobHeaderLen), then the plaintext; it returns buf with
// buf[start:] the blob.
func (s *sealer) sealAt(buf []byte, start int, ad []byte) []byte {
	a := s.aead(s.code)
	n := a.NonceSize()
	buf[start] = s.code
	nonce := buf[start+1 : start+1+n]
	rand.Read(nonce) // never fails since Go 1.24
	plain := buf[start+1+n:]
	return a.Seal(buf[:start+1+n], nonce, plain, ad)
}

// openInPlace is open with the plaintext written over blob's ciphertext
// (a large object is then held once, not twice).
func (s *sealer) openInPlace(blob, ad []byte) ([]byte, error) {
	a, nonce, ct, err := s.split(blob)
	if err != nil {
		return nil, err
	}
	out, err := a.Open(ct[:0], nonce, ct, ad)
	if err != nil {
		return nil, errBadBlob
	}
	return out, nil
}

// blobOverhead is the number of bytes sealing adds for cipher code.
func blobOverhead(code byte) int {
	if code == cipherXChaCha {
		return 1 + chacha20poly1305.NonceSizeX + 16
	}
	return 1 + 12 + 16
}

// keys holds the sub-keys derived from a master key.
type keys struct {
	sealer *sealer
	idKey  []byte
	macs   sync.Pool
}

// deriveKeys derives the sub-keys of format version: in version 1 both
// algorithms share one encryption key; since version 2 each has its own
// (issue 13 item 6), so that no key is ever used by two algorithms.
func deriveKeys(master []byte, c Cipher, version int) (*keys, error) {
	aesKey, xccKey, err := encryptionKeys(master, version)
	if err != nil {
		return nil, err
	}
	idKey, err := hkdfKey(master, "pgguard/v1/block-id")
	if err != nil {
		return nil, err
	}
	s, err := newSealer2(aesKey, xccKey, c)
	if err != nil {
		return nil, err
	}
	k := &keys{sealer: s, idKey: idKey}
	k.macs.New = func() any { return hmac.New(sha256.New, k.idKey) }
	return k, nil
}

// encryptionKeys are the AES-256-GCM and XChaCha20-Poly1305 keys of
// format version.
func encryptionKeys(master []byte, version int) (aesKey, xccKey []byte, err error) {
	if version < 2 {
		k, err := hkdfKey(master, "pgguard/v1/encryption")
		return k, k, err
	}
	if aesKey, err = hkdfKey(master, "pgguard/v2/encryption/"+string(AES256GCM)); err != nil {
		return nil, nil, err
	}
	xccKey, err = hkdfKey(master, "pgguard/v2/encryption/"+string(XChaCha20Poly1305))
	return aesKey, xccKey, err
}

func hkdfKey(secret []byte, info string) ([]byte, error) {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(info)), out); err != nil {
		return nil, fmt.Errorf("derive sub-key: %w", err)
	}
	return out, nil
}

// BlockID identifies a block: HMAC-SHA256 of its plaintext under the
// repository's block-id key.
type BlockID [32]byte

func (id BlockID) String() string { return fmt.Sprintf("%x", id[:]) }

// Short is the first 16 hex digits, for messages.
func (id BlockID) Short() string { return fmt.Sprintf("%x", id[:8]) }

// MarshalText and UnmarshalText make ids hex strings in JSON.
func (id BlockID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

func (id *BlockID) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("block id %q: want 64 hex digits", b)
	}
	_, err := fmt.Sscanf(string(b), "%x", (*[32]byte)(id))
	if err != nil {
		return fmt.Errorf("block id %q: %w", b, err)
	}
	return nil
}

func (k *keys) blockID(data []byte) BlockID {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(data)
	var id BlockID
	m.Sum(id[:0])
	k.macs.Put(m)
	return id
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24
	return b
}

func randomHex(n int) string { return fmt.Sprintf("%x", randomBytes(n)) }
