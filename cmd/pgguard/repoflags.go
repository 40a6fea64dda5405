package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/pgguard/pgguard/internal/cliout"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/spf13/cobra"
)

// repoFlags are the flags every backup and restore command shares: -c,
// -o, and the overrides of the config file.
type repoFlags struct {
	configPath string
	output     string
	reposettings.Overrides
	// boundedMemory sets the command's soft memory limit (boundMemory).
	boundedMemory bool
}

// commandMemoryLimit is the soft memory limit of the backup, restore and
// WAL archive commands (issue 16): they hold 15 to 30 MiB of live data
// whatever the size of the repository, and without a limit Go's collector
// lets the heap grow to twice its live data before it runs. With the
// binary's own pages (about 27 MiB resident) that keeps them under 64 MiB.
const commandMemoryLimit = 32 << 20

// commandGCPercent is their GOGC. A restore keeps its 20-25 MiB of
// window buffers outside the heap (package bigbuf), which the limit does
// not see; what is left in the heap is 6-7 MB of small objects, and at
// the default 100 % the heap's slack above them took a four-channel
// restore to 64.5 MiB of RSS. At 50 % it was 61 MiB, for 18 collections
// a restore of 2.7 GiB instead of 8; handing the plan's heap back to the
// kernel before the windows (restore.Run) took it to 55 MiB.
const commandGCPercent = 50

// boundMemory sets commandMemoryLimit and commandGCPercent, unless
// GOMEMLIMIT or GOGC says otherwise.
func boundMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(commandMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(commandGCPercent)
	}
}

// bindRepoFlags registers the shared flags on cmd.
func bindRepoFlags(cmd *cobra.Command, f *repoFlags) {
	d := reposettings.DefaultOverrides()
	fl := cmd.Flags()
	fl.StringVarP(&f.configPath, "config", "c", "", "node configuration (node.yaml) to take repository and postgresql settings from")
	fl.StringVar(&f.RepoURL, "repo", "", "repository location: file:///path or s3://bucket/prefix (overrides repository.url)")
	fl.StringVar(&f.ConnString, "pg", "", "PostgreSQL connection string, libpq keyword or URI form (overrides the postgresql section)")
	fl.StringVar(&f.DataDir, "pgdata", "", "PostgreSQL data directory (overrides postgresql.data_dir)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.IntVar(&f.Channels, "channels", d.Channels, "parallel workers, 1 to 255")
	fl.StringVar(&f.RateLimit, "rate-limit", "", "repository transfer limit, e.g. 10MiB, or by time of day: 'unlimited,08:00-20:00=1MiB' (BK-10)")
	fl.DurationVar(&f.Reconnect, "reconnect-timeout", d.Reconnect, "how long to wait for an unreachable repository before failing (1m to 60m)")
}

// run is the RunE of a repository command: it resolves the shared flags
// over the config and calls fn. Bad input exits 2.
func (f *repoFlags) run(fn func(ctx context.Context, s reposettings.Settings, args []string, out io.Writer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if f.output != "table" && f.output != "json" {
			return badInput("-o %q: use table or json", f.output)
		}
		if f.boundedMemory {
			boundMemory()
		}
		s, err := reposettings.Load(f.configPath, f.Overrides)
		if err == nil {
			s.Notices = os.Stderr
			err = fn(cmd.Context(), s, args, cmd.OutOrStdout())
		}
		return err
	}
}

// result prints v as JSON for -o json, else one line of text.
func (f *repoFlags) result(out io.Writer, v any, format string, args ...any) error {
	return writeOutput(out, f.output, v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, format+"\n", args...)
		return err
	})
}

var writeOutput = cliout.Write

var humanBytes = repoops.HumanBytes

// exactArgs is cobra.ExactArgs with an error that says what to pass and
// maps to exit code 2.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return badInput("%s (got %d arguments)", what, len(args))
		}
		return nil
	}
}
