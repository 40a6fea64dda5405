package pg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pgguard/pgguard/internal/lsn"
)

// The parts of ControlFileData (src/include/catalog/pg_control.h) that
// ReadControlFile reads, for pg_control_version 1300 (PostgreSQL 13 to
// 16): the offsets of the fields on a 64-bit build, and that of the CRC,
// which covers every byte before it.
const (
	controlVersion1300   = 1300
	ctlOffSystemID       = 0
	ctlOffVersion        = 8
	ctlOffState          = 16
	ctlOffCheckpoint     = 32
	ctlOffCheckpointTLI  = 48 // checkPointCopy.ThisTimeLineID
	ctlOffMinRecoveryTLI = 144
	ctlOffCRC            = 288
)

// dbStates are PostgreSQL's DBState values, named as pg_controldata
// prints them.
var dbStates = []string{"starting up", "shut down", "shut down in recovery", "shutting down",
	"in crash recovery", "in archive recovery", "in production"}

// errControlTorn: the CRC does not match (a read met a write, or the file
// is damaged).
var errControlTorn = errors.New("pg_control does not match its CRC (read during a write, or damaged)")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ReadControlFile reads the data directory's global/pg_control itself,
// with the same fields as Controldata, without running pg_controldata:
// a switchover polls it every few milliseconds for the moment the
// shutdown checkpoint is written. The file is checked against its CRC
// (PostgreSQL writes it in one piece, but a read may meet a write); an
// error says what is wrong, and Controldata is the fallback (other
// control file versions).
func ReadControlFile(dataDir string) (Control, error) {
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return Control{}, err
	}
	defer f.Close()
	buf := make([]byte, ctlOffCRC+4)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return Control{}, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return parseControlFile(buf)
}

func parseControlFile(buf []byte) (Control, error) {
	le := binary.LittleEndian
	if len(buf) < ctlOffCRC+4 {
		return Control{}, errors.New("pg_control: short read")
	}
	if v := le.Uint32(buf[ctlOffVersion:]); v != controlVersion1300 {
		return Control{}, fmt.Errorf("pg_control version %d: only %d (PostgreSQL 13 to 16) is read directly", v, controlVersion1300)
	}
	if got, want := crc32.Checksum(buf[:ctlOffCRC], castagnoli), le.Uint32(buf[ctlOffCRC:]); got != want {
		return Control{}, fmt.Errorf("%w: CRC %08x, stored %08x", errControlTorn, got, want)
	}
	state := le.Uint32(buf[ctlOffState:])
	if int(state) >= len(dbStates) {
		return Control{}, fmt.Errorf("pg_control: unknown cluster state %d", state)
	}
	c := Control{
		State:         dbStates[state],
		SystemID:      strconv.FormatUint(le.Uint64(buf[ctlOffSystemID:]), 10),
		Timeline:      int(le.Uint32(buf[ctlOffCheckpointTLI:])),
		CheckpointLSN: lsn.LSN(le.Uint64(buf[ctlOffCheckpoint:])),
	}
	// As ParseControldata: the minimum recovery point's timeline when it
	// is newer.
	c.Timeline = max(c.Timeline, int(le.Uint32(buf[ctlOffMinRecoveryTLI:])))
	return c, nil
}
