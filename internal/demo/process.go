package demo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/procfs"
)

// The agents' processes: started detached, found again by the PIDs
// recorded, and only those signalled.

// StartNode launches the agent of node in the background, detached from
// this process (its own session), logging to the node's agent.log.
func (l Layout) StartNode(exe, node string) (int, error) {
	if _, err := l.index(node); err != nil {
		return 0, err
	}
	if pid := l.AgentPID(node); pid > 0 {
		return pid, fmt.Errorf("node %s already runs (agent pid %d)", node, pid)
	}
	logf, err := os.OpenFile(filepath.Join(l.NodeDir(node), "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "agent", "-c", l.ConfigPath(node))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start agent %s: %w", node, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it exits while we are still running (tests).
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(l.pidFile(node), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return pid, err
	}
	return pid, nil
}

func (l Layout) pidFile(node string) string { return filepath.Join(l.NodeDir(node), "agent.pid") }

// AgentPID is the recorded PID of node's agent if that process is alive.
func (l Layout) AgentPID(node string) int {
	return livePID(l.pidFile(node), "pgguard")
}

// PostmasterPID is the PID in node's postmaster.pid if it is a live postgres.
func (l Layout) PostmasterPID(node string) int {
	return livePID(filepath.Join(l.NodeDir(node), "data", "postmaster.pid"), "postgres")
}

// livePID reads the first line of file as a PID and returns it if that
// process is alive (not a zombie) and its command name starts with comm.
func livePID(file, comm string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	st, ok := procfs.ReadStat(pid)
	if !ok || !st.Live() || !strings.HasPrefix(st.Comm, comm) {
		return 0
	}
	return pid
}

// KillNode simulates the loss of node's host: SIGKILL to its agent (and so
// its embedded etcd member) and to its postmaster.
func (l Layout) KillNode(node string) error {
	if _, err := l.index(node); err != nil {
		return err
	}
	agent, pm := l.AgentPID(node), l.PostmasterPID(node)
	if agent == 0 && pm == 0 {
		return fmt.Errorf("node %s is not running", node)
	}
	if agent > 0 {
		_ = syscall.Kill(agent, syscall.SIGKILL)
	}
	if pm > 0 {
		// Every server process goes at once, as on a lost host, instead of
		// each noticing its postmaster's death later (a WAL sender could
		// still send). The postmaster leads its own process group (the
		// agent starts it so), but each of its children leads one of its
		// own (PostgreSQL's children call setsid): they are found by their
		// parent before the postmaster goes, and ended with their groups.
		children := procfs.Children(pm)
		procfs.KillGroup(pm)
		for _, c := range children {
			procfs.KillGroup(c)
		}
	}
	return nil
}

// KillAgent kills only node's agent (its embedded etcd member dies with
// it; PostgreSQL is shut down by the kernel's parent-death signal).
func (l Layout) KillAgent(node string) error {
	agent := l.AgentPID(node)
	if agent == 0 {
		return fmt.Errorf("node %s has no running agent", node)
	}
	return syscall.Kill(agent, syscall.SIGKILL)
}

// KillPostmaster kills only node's postmaster (a crash of PostgreSQL).
func (l Layout) KillPostmaster(node string) error {
	pm := l.PostmasterPID(node)
	if pm == 0 {
		return fmt.Errorf("node %s has no running postmaster", node)
	}
	return syscall.Kill(pm, syscall.SIGKILL)
}

// StopNode asks node's agent to stop (it shuts PostgreSQL down first) and
// waits; after timeout it kills what is left.
func (l Layout) StopNode(node string, timeout time.Duration) error {
	agent := l.AgentPID(node)
	if agent > 0 {
		_ = syscall.Kill(agent, syscall.SIGTERM)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && (l.AgentPID(node) > 0 || l.PostmasterPID(node) > 0) {
		time.Sleep(100 * time.Millisecond)
	}
	if l.AgentPID(node) > 0 || l.PostmasterPID(node) > 0 {
		_ = l.KillNode(node)
		return fmt.Errorf("node %s did not stop within %s and was killed", node, timeout)
	}
	return nil
}
