package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/pgguard/pgguard/internal/lsn"
)

// BlockMap is the set of relation blocks that WAL records between two LSNs
// touched, built from pg_waldump's block references. A relation created or
// truncated in that range, or a database created in it, is marked whole:
// its files must be scanned rather than trusted to the block list.
type BlockMap struct {
	From, To lsn.LSN
	blocks   map[forkKey]map[uint32]struct{} // relation-wide block numbers
	whole    map[forkKey]bool                // Fork "" = every fork
	wholeDB  map[[2]uint32]bool              // {tablespace, database}
}

type forkKey struct {
	Tablespace, Database, RelFileNode uint32
	Fork                              string
}

// NewBlockMap returns an empty map for the range [from, to).
func NewBlockMap(from, to lsn.LSN) *BlockMap {
	return &BlockMap{From: from, To: to, blocks: map[forkKey]map[uint32]struct{}{}, whole: map[forkKey]bool{}, wholeDB: map[[2]uint32]bool{}}
}

// Add records a change to one block of a relation fork.
func (m *BlockMap) Add(tablespace, database, relfilenode uint32, fork string, block uint32) {
	k := forkKey{tablespace, database, relfilenode, fork}
	s := m.blocks[k]
	if s == nil {
		s = map[uint32]struct{}{}
		m.blocks[k] = s
	}
	s[block] = struct{}{}
}

// Changed returns the changed blocks of the segment file r as block numbers
// within that file, ascending, or whole=true when the file must be scanned.
func (m *BlockMap) Changed(r RelFile) (blocks []uint32, whole bool) {
	if m.wholeDB[[2]uint32{r.Tablespace, r.Database}] ||
		m.whole[forkKey{r.Tablespace, r.Database, r.RelFileNode, ""}] ||
		m.whole[forkKey{r.Tablespace, r.Database, r.RelFileNode, r.Fork}] {
		return nil, true
	}
	lo := uint64(r.Segment) * relSegBlocks
	for b := range m.blocks[forkKey{r.Tablespace, r.Database, r.RelFileNode, r.Fork}] {
		if uint64(b) >= lo && uint64(b) < lo+relSegBlocks {
			blocks = append(blocks, uint32(uint64(b)-lo))
		}
	}
	slices.Sort(blocks)
	return blocks, false
}

// Len is the number of distinct blocks in the map.
func (m *BlockMap) Len() int {
	n := 0
	for _, s := range m.blocks {
		n += len(s)
	}
	return n
}

var (
	// PG 15: "blkref #0: rel 1663/5/16384 fork fsm blk 2"; newer releases
	// put commas between the parts.
	blkrefRe = regexp.MustCompile(`rel (\d+)/(\d+)/(\d+),?(?: fork (\w+),?)? blk (\d+)`)
	// Storage rmgr: "CREATE base/5/16384", "TRUNCATE base/5/16384 to 3 blocks".
	smgrRe = regexp.MustCompile(`desc: (?:CREATE|TRUNCATE) (\S+)`)
	// Database rmgr: "CREATE copy dir 1663/1 to 1663/16390", "CREATE_WAL_LOG create dir 1663/16390".
	dbaseRe = regexp.MustCompile(`(?:copy dir \d+/\d+ to|create dir) (\d+)/(\d+)`)
)

// ParseWALDump reads pg_waldump output into m.
func ParseWALDump(r io.Reader, m *BlockMap) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Contains(line, []byte("rmgr: Storage")) {
			if sm := smgrRe.FindSubmatch(line); sm != nil {
				if rf, ok := ParseRelFile(string(sm[1])); ok {
					m.whole[forkKey{rf.Tablespace, rf.Database, rf.RelFileNode, ""}] = true
				}
			}
		}
		if bytes.Contains(line, []byte("rmgr: Database")) {
			if dm := dbaseRe.FindSubmatch(line); dm != nil {
				spc, _ := strconv.ParseUint(string(dm[1]), 10, 32)
				db, _ := strconv.ParseUint(string(dm[2]), 10, 32)
				m.wholeDB[[2]uint32{uint32(spc), uint32(db)}] = true
			}
		}
		if !bytes.Contains(line, []byte("blk")) {
			continue
		}
		for _, bm := range blkrefRe.FindAllSubmatch(line, -1) {
			var v [4]uint64
			for i, s := range [][]byte{bm[1], bm[2], bm[3], bm[5]} {
				v[i], _ = strconv.ParseUint(string(s), 10, 32)
			}
			fork := string(bm[4])
			if fork == "" {
				fork = "main"
			}
			m.Add(uint32(v[0]), uint32(v[1]), uint32(v[2]), fork, uint32(v[3]))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read pg_waldump output: %w", err)
	}
	return nil
}

// ErrWALUnavailable means the WAL between two backups could not be read;
// the caller falls back to scanning page LSNs.
var ErrWALUnavailable = errors.New("wal for the range is not available")

// BuildBlockMap runs pg_waldump over the segments in walDir for [from, to)
// on timeline tli. Missing or unreadable WAL yields an error wrapping
// ErrWALUnavailable together with pg_waldump's own message. runAs, when
// not nil, is the account pg_waldump runs as (see Tree.ToolCredential).
func BuildBlockMap(ctx context.Context, waldump, walDir string, tli uint32, from, to lsn.LSN, runAs *syscall.Credential) (*BlockMap, error) {
	m := NewBlockMap(from, to)
	if from >= to {
		return m, nil
	}
	cmd := exec.CommandContext(ctx, waldump, "--path="+walDir, "--timeline="+strconv.FormatUint(uint64(tli), 10),
		"--start="+from.String(), "--end="+to.String())
	if runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("run pg_waldump: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w: %w", waldump, ErrWALUnavailable, err)
	}
	perr := ParseWALDump(out, m)
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if werr != nil && !reachedEnd(stderr.String(), to) {
		return nil, fmt.Errorf("pg_waldump %s..%s in %s: %w: %s", from, to, walDir, ErrWALUnavailable, strings.TrimSpace(lastLine(stderr.String())))
	}
	if perr != nil {
		return nil, perr
	}
	return m, nil
}

// lsnInTextRe finds LSNs in pg_waldump's messages.
var lsnInTextRe = regexp.MustCompile(`\b[0-9A-F]{1,8}/[0-9A-F]{1,8}\b`)

// reachedEnd reports whether pg_waldump's failure is only its way of saying
// it stopped at the end of the range: when --end falls on a record boundary,
// pg_waldump 15 tries to read the next record, finds none, and exits with
// "error in WAL record at A: invalid record length at B" where B, the place
// it stopped, is at or after the end. Every record before the end was read.
func reachedEnd(stderr string, to lsn.LSN) bool {
	msg := lastLine(stderr)
	all := lsnInTextRe.FindAllString(msg, -1)
	if len(all) == 0 {
		return false
	}
	stoppedAt, err := lsn.Parse(all[len(all)-1])
	return err == nil && stoppedAt >= to
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// WaldumpPath finds pg_waldump next to the postgres binary running dataDir
// (from postmaster.pid and /proc), then on PATH.
func WaldumpPath(dataDir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid")); err == nil {
		pid, _, _ := strings.Cut(string(b), "\n")
		if exe, err := os.Readlink("/proc/" + strings.TrimSpace(pid) + "/exe"); err == nil {
			p := filepath.Join(filepath.Dir(exe), "pg_waldump")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	p, err := exec.LookPath("pg_waldump")
	if err != nil {
		return "", fmt.Errorf("find pg_waldump: not next to the running postgres and not on PATH: %w", err)
	}
	return p, nil
}
