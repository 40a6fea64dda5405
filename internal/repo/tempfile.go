package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"os"
)

// tempFile creates an unlinked file in dir: it takes no name, and its
// space is freed when it is closed or the process ends.
func tempFile(dir, what string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "pgguard-"+what+"-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file for the %s (set TMPDIR to a writable directory): %w", what, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlink temporary file %s: %w", f.Name(), err)
	}
	return f, nil
}

// scrambledFile is a temporary file whose bytes are XORed with AES-CTR
// under a key drawn for it and kept in memory only. The block index table
// holds plaintext entries (sizes, and the CRC-32C of each block's
// plaintext) that the repository stores only encrypted; on disk, and in
// whatever a deleted file leaves on it, they are noise once the process
// is gone. Packs need none of this: every byte of one is sealed already.
type scrambledFile struct {
	f     *os.File
	block cipher.Block
	iv    [aes.BlockSize]byte
	off   int64  // where Write appends
	buf   []byte // Write's scratch
}

func scrambledTempFile(dir, what string) (*scrambledFile, error) {
	f, err := tempFile(dir, what)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(randomBytes(32))
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &scrambledFile{f: f, block: block}
	copy(s.iv[:], randomBytes(aes.BlockSize))
	return s, nil
}

// xor applies the key stream at file offset off to p.
func (s *scrambledFile) xor(dst, src []byte, off int64) {
	iv := s.iv
	// The counter is the IV's low 64 bits plus the 16-byte block number.
	binary.BigEndian.PutUint64(iv[8:], binary.BigEndian.Uint64(s.iv[8:])+uint64(off/aes.BlockSize))
	ctr := cipher.NewCTR(s.block, iv[:])
	if skip := int(off % aes.BlockSize); skip > 0 {
		var pad [aes.BlockSize]byte
		ctr.XORKeyStream(pad[:skip], pad[:skip])
	}
	ctr.XORKeyStream(dst, src)
}

// Write appends p.
func (s *scrambledFile) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		if cap(s.buf) < k {
			s.buf = make([]byte, 64<<10)
		}
		s.xor(s.buf[:k], p[:k], s.off)
		w, err := s.f.Write(s.buf[:k])
		n += w
		s.off += int64(w)
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// ReadAt reads and unscrambles len(p) bytes at off.
func (s *scrambledFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.f.ReadAt(p, off)
	s.xor(p[:n], p[:n], off)
	return n, err
}

func (s *scrambledFile) Close() error { return s.f.Close() }
