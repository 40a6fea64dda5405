package lsn

import "testing"

func TestValidSegmentSize(t *testing.T) {
	for _, size := range []uint64{1 << 20, 16 << 20, 64 << 20, 1 << 30} {
		if !ValidSegmentSize(size) {
			t.Errorf("ValidSegmentSize(%d) = false, want true", size)
		}
	}
	for _, size := range []uint64{0, 1 << 19, 2 << 30, 16<<20 + 1, 3 << 20} {
		if ValidSegmentSize(size) {
			t.Errorf("ValidSegmentSize(%d) = true, want false", size)
		}
	}
}

func TestSegmentNames(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name    string
		tli     uint32
		at      LSN
		segSize uint64
		want    string
	}{
		{"first segment", 1, 0, 16 * mib, "000000010000000000000000"},
		{"start of a backup, 16 MiB segments", 2, 0x5000028, 16 * mib, "000000020000000000000005"},
		{"last byte of a segment stays in it", 1, 0x5FFFFFF, 16 * mib, "000000010000000000000005"},
		{"first byte of the next segment", 1, 0x6000000, 16 * mib, "000000010000000000000006"},
		{"log boundary, 16 MiB segments", 1, 0x1FF000000, 16 * mib, "0000000100000001000000FF"},
		{"64 MiB segments number by 64 MiB", 3, 0x16B374D848, 64 * mib, "00000003000000160000002C"},
		{"1 MiB segments", 1, 0x1234567, 1 * mib, "000000010000000000000012"},
		{"1 GiB segments", 0xA, 0xFFFFFFFFFFFFFFFF, 1 << 30, "0000000AFFFFFFFF00000003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			segno := tc.at.Segment(tc.segSize)
			got := SegmentName(tc.tli, segno, tc.segSize)
			if got != tc.want {
				t.Fatalf("SegmentName(%d, %s / %d) = %s, want %s", tc.tli, tc.at, tc.segSize, got, tc.want)
			}
			tli, back, ok := ParseSegmentName(got, tc.segSize)
			if !ok || tli != tc.tli || back != segno {
				t.Fatalf("ParseSegmentName(%s) = %d, %d, %v; want %d, %d, true", got, tli, back, ok, tc.tli, segno)
			}
		})
	}
}

func TestParseSegmentNameRefuses(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		segSize uint64
	}{
		{"history file", "00000002.history", 16 << 20},
		{"partial segment", "000000010000000000000005.partial", 16 << 20},
		{"lower case", "00000001000000000000000a", 16 << 20},
		{"segment past the end of its log for the size", "000000010000000000000100", 16 << 20},
		{"invalid segment size", "000000010000000000000005", 3 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tli, segno, ok := ParseSegmentName(tc.in, tc.segSize); ok {
				t.Fatalf("ParseSegmentName(%q, %d) = %d, %d, true; want false", tc.in, tc.segSize, tli, segno)
			}
		})
	}
}

func TestSegmentPosition(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"segment", "000000010000000200000003", "0000000200000003"},
		{"partial segment", "000000020000000200000003.partial", "0000000200000003"},
		{"backup history file", "000000010000000000000002.00000028.backup", "0000000000000002"},
		{"timeline history file", "00000002.history", ""},
		{"short", "0000000100000002", ""},
		{"lower case", "00000001000000020000000a", ""},
		{"not hexadecimal", "00000001000000020000000G", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := SegmentPosition(tc.in); got != tc.want {
				t.Fatalf("SegmentPosition(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if a, b := SegmentPosition("0000000100000000000000FF"), SegmentPosition("000000020000000100000000"); !(a < b) {
		t.Fatalf("positions %s and %s do not compare in WAL order", a, b)
	}
}
