package source

import (
	"encoding/binary"

	"github.com/pgguard/pgguard/internal/lsn"
)

// PageSize is PostgreSQL's block size; only 8 kB builds are supported.
const PageSize = 8192

// relSegBlocks is RELSEG_SIZE: blocks per 1 GB relation segment file.
const relSegBlocks = 131072

// pg_checksum_page from src/include/storage/checksum_impl.h: 32 parallel
// FNV-1a-like lanes over the page read as little-endian uint32 words (with
// pd_checksum taken as zero), two rounds of zero mixing, lanes XOR-folded,
// the block number mixed in, and the result reduced to 1..65535 so that 0
// never appears as a valid checksum.
const (
	checksumLanes = 32
	fnvPrime      = 16777619
)

var checksumBaseOffsets = [checksumLanes]uint32{
	0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A,
	0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
	0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA,
	0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
	0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE,
	0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
	0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E,
	0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
}

// PageChecksum computes PostgreSQL's checksum of one 8 kB page at block
// number blkno (relation-wide, i.e. segment*131072 + block in segment). The
// page's own pd_checksum field is ignored. page must be PageSize bytes.
func PageChecksum(page []byte, blkno uint32) uint16 {
	_ = page[PageSize-1]
	sums := checksumBaseOffsets
	for i := 0; i < PageSize; i += 4 * checksumLanes {
		row := page[i : i+4*checksumLanes]
		for j := range checksumLanes {
			v := binary.LittleEndian.Uint32(row[4*j:])
			if i == 0 && j == 2 {
				v &^= 0xFFFF // pd_checksum (bytes 8–9) counts as zero
			}
			tmp := sums[j] ^ v
			sums[j] = tmp*fnvPrime ^ tmp>>17
		}
	}
	var result uint32
	for j := range checksumLanes {
		for range 2 {
			tmp := sums[j]
			sums[j] = tmp*fnvPrime ^ tmp>>17
		}
		result ^= sums[j]
	}
	result ^= blkno
	return uint16(result%65535 + 1)
}

// pageHeader is the part of PageHeaderData a backup needs.
type pageHeader struct {
	LSN      lsn.LSN
	Checksum uint16
	Upper    uint16
}

func readPageHeader(page []byte) pageHeader {
	return pageHeader{
		// pd_lsn is {xlogid, xrecoff}, two native uint32s.
		LSN:      lsn.LSN(uint64(binary.LittleEndian.Uint32(page[0:]))<<32 | uint64(binary.LittleEndian.Uint32(page[4:]))),
		Checksum: binary.LittleEndian.Uint16(page[8:]),
		Upper:    binary.LittleEndian.Uint16(page[14:]),
	}
}

// pageIsNew is PostgreSQL's PageIsNew: a page never initialised (pd_upper
// is zero). Such pages carry no checksum.
func pageIsNew(page []byte) bool { return readPageHeader(page).Upper == 0 }
