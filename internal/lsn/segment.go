package lsn

import (
	"fmt"
	"strconv"
)

// The WAL segment sizes initdb accepts (--wal-segsize): a power of two
// from 1 MiB to 1 GiB.
const (
	MinSegmentSize = 1 << 20
	MaxSegmentSize = 1 << 30
)

// ValidSegmentSize reports whether PostgreSQL can have WAL segments of
// size bytes.
func ValidSegmentSize(size uint64) bool {
	return size >= MinSegmentSize && size <= MaxSegmentSize && size&(size-1) == 0
}

// Segment is the number of the WAL segment of segSize bytes that holds
// the byte at l (PostgreSQL's XLByteToSeg). segSize must be valid
// (ValidSegmentSize).
func (l LSN) Segment(segSize uint64) uint64 { return uint64(l) / segSize }

// SegmentName is the file name of WAL segment segno of timeline tli, for
// segments of segSize bytes (PostgreSQL's XLogFileName): 24 upper-case
// hexadecimal digits, timeline, log and segment within the log. segSize
// must be valid (ValidSegmentSize).
func SegmentName(tli uint32, segno, segSize uint64) string {
	perLog := uint64(1<<32) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perLog, segno%perLog)
}

// ParseSegmentName reads a WAL segment file name back into its timeline
// and segment number, for segments of segSize bytes; ok is false when
// name is not the name of such a segment (or segSize is not valid).
func ParseSegmentName(name string, segSize uint64) (tli uint32, segno uint64, ok bool) {
	if !IsSegmentName(name) || !ValidSegmentSize(segSize) {
		return 0, 0, false
	}
	t, _ := strconv.ParseUint(name[:8], 16, 32)
	log, _ := strconv.ParseUint(name[8:16], 16, 32)
	seg, _ := strconv.ParseUint(name[16:24], 16, 32)
	perLog := uint64(1<<32) / segSize
	if seg >= perLog {
		return 0, 0, false
	}
	return uint32(t), log*perLog + seg, true
}

// IsSegmentName reports whether name has the form of a WAL segment file
// name: 24 upper-case hexadecimal digits.
func IsSegmentName(name string) bool {
	return len(name) == 24 && isUpperHex(name)
}

// SegmentPosition is the log and segment part (16 hexadecimal digits) of
// a WAL segment file name, and of the .partial and .backup files named
// after a segment; "" for history files and anything else. On one
// timeline, positions compare as strings in WAL order, whatever the
// segment size.
func SegmentPosition(name string) string {
	if len(name) < 24 || !isUpperHex(name[:24]) {
		return ""
	}
	return name[8:24]
}

func isUpperHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
