package pg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pgguard/pgguard/internal/lsn"
)

// CompleteShortCopies completes, in the pg_wal directory walDir, every
// short copy of a timeline's switch segment from the parent timeline's
// copy, up to the switch point only, and returns the names it completed
// (chaos finding 19).
//
// A timeline T that forked from its parent P at switch point S begins
// with a copy of P's WAL up to S, in the segment that holds S. A standby
// that follows T streams that segment again from its start into T's file
// of it, and when T's primary is lost before the standby has re-received
// up to where it had replayed P's WAL, T's file holds zeros from a page
// before S. PostgreSQL reads T's file for the whole segment, so the
// promotion's re-read of the last record PANICs ("invalid magic number
// 0000") and a restart never reaches consistency.
//
// Below S, T's WAL is P's by definition (a timeline ID names one history:
// pgguard reserves each before a promotion takes it), so the bytes P's
// copy holds there are the ones the walreceiver would have written. Only
// zero bytes are written over, only below S, and only from pages of P's
// copy whose headers name their own address: T's file then ends at S, as
// it would had the re-stream reached S, and PostgreSQL still reads T's
// file for the segment, so nothing of P beyond S (WAL T does not share)
// can be read as T's. A copy that cannot be completed so is left as it is
// and named in the error, which leaves PostgreSQL where it would be
// without this.
func CompleteShortCopies(walDir string) ([]string, error) {
	histories, err := filepath.Glob(filepath.Join(walDir, "*.history"))
	if err != nil {
		return nil, err
	}
	sort.Strings(histories)
	var done []string
	var errs []error
	for _, h := range histories {
		tli, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(h), ".history"), 16, 32)
		if err != nil {
			continue
		}
		data, err := os.ReadFile(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switches, err := ParseHistory(string(data))
		if err != nil || len(switches) == 0 {
			continue
		}
		last := switches[len(switches)-1] // the fork of tli from its parent
		name, err := completeShortCopy(walDir, uint32(tli), uint32(last.TLI), last.Switch)
		if err != nil {
			errs = append(errs, err)
		} else if name != "" {
			done = append(done, name)
		}
	}
	return done, errors.Join(errs...)
}

// completeShortCopy completes tli's file of the segment holding switchAt
// from parent's when it is a short copy (see CompleteShortCopies) and
// returns its name, else "".
func completeShortCopy(walDir string, tli, parent uint32, switchAt lsn.LSN) (string, error) {
	// The segment and page sizes come from the parent's file: the long
	// header of its first page.
	for segSize := uint64(lsn.MinSegmentSize); segSize <= lsn.MaxSegmentSize; segSize <<= 1 {
		segno := switchAt.Segment(segSize)
		parentPath := filepath.Join(walDir, lsn.SegmentName(parent, segno, segSize))
		st, err := os.Stat(parentPath)
		if err != nil || uint64(st.Size()) != segSize {
			continue
		}
		blockSize, err := pageSize(parentPath, segSize)
		if err != nil || blockSize == 0 {
			return "", err
		}
		name := lsn.SegmentName(tli, segno, segSize)
		end := uint64(switchAt) % segSize // T's copy of P ends here
		zero, err := firstZeroPage(filepath.Join(walDir, name), blockSize, end)
		if errors.Is(err, os.ErrNotExist) || err == nil && zero >= end {
			return "", nil // no copy, or one that reaches the switch point
		}
		if err != nil {
			return "", err
		}
		return name, fillFrom(filepath.Join(walDir, name), parentPath, segno*segSize, blockSize, zero, end)
	}
	return "", nil
}

// fillFrom copies bytes [from, end) of the parent's segment file into the
// same range of the short copy at path, after checking that every page of
// the range is all zeros in the copy and, in the parent's file, has a
// header whose xlp_pageaddr is that page's own address (segStart plus its
// offset). Nothing is written when a check fails.
func fillFrom(path, parentPath string, segStart, blockSize, from, end uint64) error {
	src, err := os.ReadFile(parentPath)
	if err != nil {
		return err
	}
	dst, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	have := make([]byte, end-from)
	if _, err := dst.ReadAt(have, int64(from)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for i, b := range have {
		if b != 0 {
			return fmt.Errorf("%s: byte %#x is not zero: not a short copy to complete", filepath.Base(path), from+uint64(i))
		}
	}
	for off := from; off < end; off += blockSize {
		magic := binary.LittleEndian.Uint16(src[off:])
		addr := binary.LittleEndian.Uint64(src[off+8:])
		if magic == 0 || addr != segStart+off {
			return fmt.Errorf("%s: the page at %#x holds no WAL of its own address (magic %#x, address %#x): cannot complete %s from it",
				filepath.Base(parentPath), off, magic, addr, filepath.Base(path))
		}
	}
	if _, err := dst.WriteAt(src[from:end], int64(from)); err != nil {
		return err
	}
	return dst.Sync()
}

// pageSize reads the WAL block size from the long page header at the start
// of a segment file of segSize bytes (0 when it is not one).
func pageSize(path string, segSize uint64) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [40]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	// XLogLongPageHeaderData: xlp_magic at 0, xlp_seg_size at 32,
	// xlp_xlog_blcksz at 36 (little-endian on the platforms we build for).
	if binary.LittleEndian.Uint16(h[0:]) == 0 || uint64(binary.LittleEndian.Uint32(h[32:])) != segSize {
		return 0, nil
	}
	bs := uint64(binary.LittleEndian.Uint32(h[36:]))
	if bs < 1024 || bs > 65536 || bs&(bs-1) != 0 {
		return 0, nil
	}
	return bs, nil
}

// firstZeroPage returns the offset of the first page of the file whose
// xlp_magic is zero, looking at the pages before limit only (limit when
// none is).
func firstZeroPage(path string, blockSize, limit uint64) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var magic [2]byte
	for off := uint64(0); off < limit; off += blockSize {
		if _, err := f.ReadAt(magic[:], int64(off)); err != nil {
			if errors.Is(err, io.EOF) {
				return off, nil
			}
			return 0, err
		}
		if binary.LittleEndian.Uint16(magic[:]) == 0 {
			return off, nil
		}
	}
	return limit, nil
}
