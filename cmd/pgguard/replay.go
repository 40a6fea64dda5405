package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgguard/pgguard/internal/ops"
	"github.com/spf13/cobra"
)

// newCtlReplayCommand is `ctl replay NODE`: hold a standby's replay at a
// time, pause or resume it, or withdraw the request (HA-13).
func newCtlReplayCommand(opts *ctlOptions) *cobra.Command {
	var until string
	var pause, resume, cancel bool
	cmd := &cobra.Command{
		Use:   "replay NODE --until TIME | --pause | --resume | --cancel",
		Short: "Hold a standby's replay: up to a time (then paused), paused now, resumed, or back to normal",
		Long: `Hold a standby's replay at run time (HA-13), e.g. to read a table back from a
delayed standby before the mistake that dropped it reaches it
(docs/RECOVER-FROM-A-MISTAKE.md):

  --until TIME   restart NODE replaying up to TIME (not including it) and pause there
  --pause        pause NODE's replay now
  --resume       resume it (a standby held with --until stays at its target)
  --cancel       withdraw the request: NODE goes back to normal (or delayed) replay

While a request is in force NODE is never promoted automatically nor
synchronous; the rest of the cluster is untouched.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, set := range []bool{until != "", pause, resume, cancel} {
				if set {
					n++
				}
			}
			if n != 1 {
				return badInput("give exactly one of --until TIME, --pause, --resume, --cancel")
			}
			h := ops.ReplayHold{Node: args[0], Pause: pause, Cancel: cancel, Now: time.Now()}
			if until != "" {
				t, err := parseReplayTime(until)
				if err != nil {
					return badInput("%v", err)
				}
				h.Until = t
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				what, err := o.Replay(ctx, h)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s: %s (the agent of %s carries it out; ctl status shows it)\n", h.Node, what, h.Node)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&until, "until", "", "replay up to this time and pause (RFC 3339, or '2006-01-02 15:04:05' UTC)")
	cmd.Flags().BoolVar(&pause, "pause", false, "pause replay now")
	cmd.Flags().BoolVar(&resume, "resume", false, "resume replay")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "withdraw the request")
	return cmd
}

func parseReplayTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--until %q: give an RFC 3339 time (2026-11-23T10:00:00Z) or '2026-11-23 10:00:00' (UTC)", v)
}
