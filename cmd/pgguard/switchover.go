package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/spf13/cobra"
)

type switchoverOptions struct {
	to, at        string
	check, yes    bool
	cancel        bool
	waitFor       time.Duration
	confirmReader io.Reader
}

func newCtlSwitchoverCommand(opts *ctlOptions) *cobra.Command {
	so := &switchoverOptions{confirmReader: os.Stdin}
	cmd := &cobra.Command{
		Use:   "switchover [--to NODE] [--at TIME] [--check] [--yes] [--cancel]",
		Short: "Hand the primary role to a standby with no lost write, now or at a given time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCtlSwitchover(cmd.Context(), opts, so, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&so.to, "to", "", "candidate (default: the best caught-up standby)")
	f.StringVar(&so.at, "at", "", "schedule for this time (RFC 3339, e.g. 2026-11-23T22:00:00Z)")
	f.BoolVar(&so.check, "check", false, "list every condition with pass/fail and change nothing")
	f.BoolVar(&so.yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&so.cancel, "cancel", false, "cancel a scheduled switchover")
	f.DurationVar(&so.waitFor, "wait", 60*time.Second, "how long to wait for the switchover to finish")
	return cmd
}

func runCtlSwitchover(ctx context.Context, opts *ctlOptions, so *switchoverOptions, out io.Writer) error {
	store, cfg, err := openCtlStore(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if so.cancel {
		if err := store.CancelSwitchover(sctx); err != nil {
			return err
		}
		fmt.Fprintln(out, "switchover cancelled")
		return store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: "switchover-cancel", By: operator(), Result: "ok"})
	}
	var at time.Time
	if so.at != "" {
		if at, err = time.Parse(time.RFC3339, so.at); err != nil {
			return badInput("--at %q: use RFC 3339, e.g. 2026-11-23T22:00:00Z", so.at)
		}
	}
	c, err := store.Load(sctx)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", cfg.Cluster, err)
	}
	if c.Leader == nil {
		return fmt.Errorf("cluster %s has no leader: nothing to switch over (see 'pgguard ctl status')", cfg.Cluster)
	}
	from, to := c.Leader.Name, so.to
	if to == "" {
		to = ha.BestSwitchoverCandidate(c, from)
		if to == "" {
			to = "(none)"
		}
	} else if _, known := c.Members[to]; !known && !contains(peerNames(c), to) {
		return badInput("--to %q: no such member (members: %s)", to, strings.Join(peerNames(c), ", "))
	}
	checks := ha.SwitchoverChecks(c, from, to)
	failed := ha.Failed(checks)
	if so.check || opts.output == "json" {
		printChecks(out, opts.output, fmt.Sprintf("switchover %s → %s", from, to), checks)
		if so.check {
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d conditions fail", len(failed), len(checks))
			}
			return nil
		}
	}
	if len(failed) > 0 {
		printChecks(out, "table", fmt.Sprintf("switchover %s → %s refused", from, to), failed)
		return fmt.Errorf("switchover %s → %s refused: %s", from, to, failed[0].Detail)
	}
	if !so.yes && !confirm(so.confirmReader, out, fmt.Sprintf("Switch the primary from %s to %s? [y/N] ", from, to)) {
		return badInput("switchover not confirmed (use --yes in scripts)")
	}
	if err := store.RequestSwitchover(sctx, ha.Switchover{From: from, To: to, At: at, By: operator()}); err != nil {
		return err
	}
	_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: "switchover-request", Target: to, By: operator(),
		Reason: fmt.Sprintf("switchover %s → %s", from, to), Result: "ok"})
	if !at.IsZero() {
		fmt.Fprintf(out, "switchover %s → %s scheduled for %s ('pgguard ctl switchover --cancel' to cancel)\n", from, to, at.Format(time.RFC3339))
		return nil
	}
	requested := time.Now()
	outage, err := waitSwitchover(ctx, store, from, to, requested, so.waitFor)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "switchover %s → %s done in %s; write outage %s (primary stopped → new primary promoted)\n",
		from, to, time.Since(requested).Round(time.Millisecond), outage.Round(time.Millisecond))
	return nil
}

// waitSwitchover polls until to leads and from streams from it, then reads
// the outage from the history: from the old primary's clean stop to the
// new primary's promotion.
func waitSwitchover(ctx context.Context, store *dcs.Store, from, to string, since time.Time, limit time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(limit)
	var last ha.Cluster
	for time.Now().Before(deadline) {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := store.Load(lctx)
		cancel()
		if err == nil {
			last = c
			if c.Leader != nil && c.Leader.Name == to && c.Members[from].Streaming && c.Members[from].Following == to {
				hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				events, err := store.History(hctx, since.Add(-time.Second))
				cancel()
				if err != nil {
					return 0, err
				}
				var stop, promoted time.Time
				for _, e := range events {
					if e.Node == from && e.Action == "switchover-stop" && stop.IsZero() {
						stop = e.Time
					}
					if e.Node == to && e.Action == "promote" && strings.HasPrefix(e.Result, "ok") {
						promoted = e.Time
					}
				}
				return promoted.Sub(stop), nil
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the store
	}
	leader := ""
	if last.Leader != nil {
		leader = last.Leader.Name
	}
	return 0, fmt.Errorf("switchover %s → %s not finished after %s: leader is %q, %s is %s (see 'pgguard ctl history')",
		from, to, limit, leader, from, last.Members[from].State)
}

func printChecks(out io.Writer, format, title string, checks []ha.Check) {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"operation": title, "checks": checks, "ok": len(ha.Failed(checks)) == 0})
		return
	}
	fmt.Fprintln(out, title)
	for _, c := range checks {
		mark := "pass"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(out, "  [%s] %-38s %s\n", mark, c.Name, c.Detail)
	}
}

func confirm(in io.Reader, out io.Writer, prompt string) bool {
	fmt.Fprint(out, prompt)
	line, _ := bufio.NewReader(in).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}

func peerNames(c ha.Cluster) []string {
	var out []string
	for n := range c.Members {
		out = append(out, n)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// gate prints checks and decides for an operation with --check: with
// check, the conditions are the answer (an error when any fails, nothing
// changed); without, a failed condition refuses the operation, naming it,
// and a passing set lets it go on (ok true).
func gate(out io.Writer, format, title string, checks []ha.Check, check bool) (bool, error) {
	failed := ha.Failed(checks)
	if check {
		printChecks(out, format, title, checks)
		if len(failed) > 0 {
			return false, fmt.Errorf("%d of %d conditions fail", len(failed), len(checks))
		}
		return false, nil
	}
	if len(failed) > 0 {
		printChecks(out, "table", title+" refused", checks)
		return false, usageError{fmt.Errorf("%s refused: %s: %s", title, failed[0].Name, failed[0].Detail)}
	}
	return true, nil
}
