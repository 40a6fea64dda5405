// Package lsn owns PostgreSQL write-ahead log positions: the one LSN type
// of pgguard, its text form ("16/B374D848", as PostgreSQL prints pg_lsn)
// and the WAL segment file names derived from positions.
//
// It is pure arithmetic and formatting: it must never do I/O, read a
// clock or keep state, so that the decision code in internal/ha can use
// it.
package lsn

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL write-ahead log position: a byte offset into the
// WAL stream, comparable with < across timelines.
//
// In JSON (and any other text encoding) it is its text form, as in the
// documents agents publish in the cluster store. Repository manifests
// store LSNs as JSON numbers; internal/repo encodes those itself.
type LSN uint64

// Parse reads the text form of an LSN: two hexadecimal numbers of up to
// 32 bits each, X/Y, as PostgreSQL prints them (e.g. "16/B374D848").
// Surrounding white space is ignored.
func Parse(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if ok {
		h, herr := strconv.ParseUint(hi, 16, 32)
		l, lerr := strconv.ParseUint(lo, 16, 32)
		if herr == nil && lerr == nil {
			return LSN(h<<32 | l), nil
		}
	}
	return 0, fmt.Errorf("LSN %q: want the form X/Y, two hexadecimal numbers of at most 8 digits, e.g. 0/3000060", s)
}

// String is the text form Parse reads, upper-case without leading zeros.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// MarshalText encodes l in its text form.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText decodes the text form (Parse).
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
