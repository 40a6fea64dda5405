package reposettings

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgguard/pgguard/internal/badinput"
)

// RestoreCommand is a restore_command that runs this binary's wal-fetch
// with the same repository settings (see DefaultRestoreCommand).
func (s Settings) RestoreCommand() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this pgguard binary for restore_command: %w (give --restore-command)", err)
	}
	return DefaultRestoreCommand(exe, s.ConfigPath, s.RepoURL)
}

// DefaultRestoreCommand is exe's wal-fetch with the config at configPath,
// or else with the repository at repoURL. Only the config path or the
// repository URL goes into it, never a secret: the key comes from the
// config's key file or the server's environment. With the config, and
// pgguard-wal installed beside exe, the command runs pgguard-wal: the
// first call runs pgguard wal-fetch, which starts a wal-serve for the data
// directory, and pgguard-wal hands it the later calls (repoops.ServeWAL).
func DefaultRestoreCommand(exe, configPath, repoURL string) (string, error) {
	args := []string{shellQuote(exe), "wal-fetch"}
	if configPath != "" {
		abs, err := filepath.Abs(configPath)
		if err != nil {
			return "", badinput.Errorf("-c %q: %v", configPath, err)
		}
		if fast, ok := FastWALBeside(exe); ok {
			args[0] = shellQuote(fast)
		}
		args = append(args, "-c", shellQuote(abs))
	} else {
		args = append(args, "--repo", shellQuote(repoURL))
	}
	return strings.Join(append(args, "%f", "%p"), " "), nil
}

// FastWALProgram is archive_command's and restore_command's fast path
// (cmd/pgguard-wal), used when it is installed beside pgguard.
const FastWALProgram = "pgguard-wal"

// FastWALBeside returns pgguard-wal's path beside exe and whether it is
// installed there (a regular, executable file).
func FastWALBeside(exe string) (string, bool) {
	fast := filepath.Join(filepath.Dir(exe), FastWALProgram)
	st, err := os.Stat(fast)
	return fast, err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// shellQuote quotes s for sh when it has anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-:+=@,", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
