package chaos

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Workload is one chaosclient run inside the client namespace.
type Workload struct {
	Dir string
	cmd *exec.Cmd
	out *os.File
	// exited is closed when the process has been reaped.
	exited chan struct{}
}

// StartWorkload starts chaosclient run against c, recording into dir.
func StartWorkload(c *Cluster, dir string, idBase int64, probeTimeout time.Duration) (*Workload, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "client.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"netns", "exec", NodeNS("client"), c.Client, "run",
		"-dsn", c.DSN(), "-nodes", c.probeTargets(), "-dir", dir,
		"-clients", "3", "-interval", "20ms", "-probe", "100ms", "-probe-timeout", probeTimeout.String(),
		"-id-base", strconv.FormatInt(idBase, 10)}
	for _, r := range c.Routes() {
		args = append(args, "-route", r)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start chaosclient: %w", err)
	}
	w := &Workload{Dir: dir, cmd: cmd, out: logf, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(w.exited) }()
	return w, nil
}

// Stop asks the client to finish (SIGTERM) and waits up to 10 s, then
// kills it.
func (w *Workload) Stop() error {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
		return fmt.Errorf("chaosclient (pid %d) ignored SIGTERM for 10s and was killed", w.cmd.Process.Pid)
	}
}

// Ack is one acknowledged write.
type Ack struct {
	Client int
	ID     int64
	// Server is the node that acknowledged it: its address in records
	// of four fields (older ones), its name (cluster_name) since.
	Server string
	At     time.Time
	// TLI is the timeline the server inserted WAL on, from the same
	// transaction (0 in records older than the field).
	TLI int64
	// Sent is when the client sent the write (zero in older records).
	Sent time.Time
	// Route is the path the write took: "direct" (the multi-host
	// string), "proxy" (an agent's built-in proxy), "vip" (the virtual
	// IP).
	Route string
	// SysID is the committing server's system identifier and InRecovery
	// what pg_is_in_recovery() said, both from the same transaction
	// (empty and false in records older than the fields).
	SysID      string
	InRecovery bool
}

// Round is one probe round: which nodes could assign a transaction id.
type Round struct {
	Start, End time.Time
	Writable   []string
}

// ReadAcks parses the acks file (a torn last line is ignored).
func ReadAcks(dir string) ([]Ack, error) {
	var out []Ack
	err := eachLine(filepath.Join(dir, "acks"), func(f []string) {
		if len(f) != 4 && len(f) != 7 && len(f) != 9 {
			return
		}
		cl, e1 := strconv.Atoi(f[0])
		id, e2 := strconv.ParseInt(f[1], 10, 64)
		ns, e3 := strconv.ParseInt(f[3], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return
		}
		a := Ack{Client: cl, ID: id, Server: f[2], At: time.Unix(0, ns), Route: "direct"}
		if len(f) >= 7 {
			tli, e4 := strconv.ParseInt(f[4], 16, 64)
			sent, e5 := strconv.ParseInt(f[5], 10, 64)
			if e4 != nil || e5 != nil {
				return
			}
			a.TLI, a.Sent, a.Route = tli, time.Unix(0, sent), f[6]
		}
		if len(f) == 9 {
			rec, e6 := strconv.ParseBool(f[8])
			if e6 != nil {
				return
			}
			a.SysID, a.InRecovery = f[7], rec
		}
		out = append(out, a)
	})
	return out, err
}

// ReadRounds parses the probe file.
func ReadRounds(dir string) ([]Round, error) {
	var out []Round
	err := eachLine(filepath.Join(dir, "probe"), func(f []string) {
		if len(f) < 2 {
			return
		}
		s, e1 := strconv.ParseInt(f[0], 10, 64)
		e, e2 := strconv.ParseInt(f[1], 10, 64)
		if e1 == nil && e2 == nil {
			out = append(out, Round{Start: time.Unix(0, s), End: time.Unix(0, e), Writable: f[2:]})
		}
	})
	return out, err
}

// ReadIDs parses a dump file.
func ReadIDs(path string) (map[int64]bool, error) {
	out := map[int64]bool{}
	err := eachLine(path, func(f []string) {
		if len(f) == 1 {
			if id, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[id] = true
			}
		}
	})
	return out, err
}

// eachLine calls fn with the fields of every complete line of path; a last
// line without its newline (torn by a kill mid-write) is left out.
func eachLine(path string, fn func([]string)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if i := bytes.LastIndexByte(b, '\n'); i < len(b)-1 {
		b = b[:i+1]
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" {
			fn(strings.Fields(line))
		}
	}
	return nil
}

// Dump writes the ids stored on the node reached through dsn to path,
// reading from the client namespace.
func Dump(c *Cluster, dsn, path string) error {
	out, err := exec.Command("ip", "netns", "exec", NodeNS("client"), c.Client, "dump", "-dsn", dsn, "-out", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaosclient dump: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
