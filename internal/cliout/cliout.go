// Package cliout is how pgguard's commands talk to a terminal: a result
// as a table or as JSON (-o), an operation's checks (--check), a
// confirmation prompt, a view redrawn in place (--watch), a secret read
// from a file. The commands in cmd/pgguard decide what to print; this
// package decides how.
package cliout

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/ops"
)

// Write prints v as indented JSON for format "json", or calls table.
func Write(out io.Writer, format string, v any, table func(io.Writer) error) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return table(out)
}

// Compact is Write with one-line JSON, as the jobs commands have always
// printed it.
func Compact(out io.Writer, format string, v any, table func(io.Writer) error) error {
	if format == "json" {
		return json.NewEncoder(out).Encode(v)
	}
	return table(out)
}

// Checked answers --check with the plan (an error when a condition
// fails); without --check it only reads the plan to refuse early, and
// done is false when the operation may go on.
func Checked(out io.Writer, format string, check bool, plan func() (ops.Plan, error)) (done bool, err error) {
	p, err := plan()
	if err != nil {
		return true, err
	}
	if check {
		PrintChecks(out, format, p.Op, p.Checks)
		if !p.OK {
			return true, fmt.Errorf("%d of %d conditions fail", len(p.Failed()), len(p.Checks))
		}
		return true, nil
	}
	if err := p.Refusal(); err != nil {
		return true, err
	}
	return false, nil
}

// PrintChecks prints an operation's conditions.
func PrintChecks(out io.Writer, format, title string, checks []ha.Check) {
	p := ops.Plan{Op: title, Checks: checks, OK: len(ha.Failed(checks)) == 0}
	_ = Write(out, format, p, p.WriteTable)
}

// Confirm asks prompt on out and reads a yes from in.
func Confirm(in io.Reader, out io.Writer, prompt string) bool {
	fmt.Fprint(out, prompt)
	line, _ := bufio.NewReader(in).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}

// Confirmed asks unless yes is set, and refuses without a yes.
func Confirmed(yes bool, out io.Writer, what, prompt string) error {
	if yes || Confirm(os.Stdin, out, prompt) {
		return nil
	}
	return badinput.Errorf("%s not confirmed (use --yes in scripts)", what)
}

// Watch redraws what draw prints in place every interval until ctx ends.
func Watch(ctx context.Context, every time.Duration, out io.Writer, draw func(io.Writer) error) error {
	if every < 100*time.Millisecond {
		return badinput.Errorf("--watch %s: at least 100ms", every)
	}
	for {
		var b strings.Builder
		if err := draw(&b); err != nil {
			b.WriteString("error: " + err.Error() + "\n")
		}
		// Clear the screen and home the cursor, then draw.
		fmt.Fprintf(out, "\x1b[H\x1b[2J%s\n%s (every %s; Ctrl-C to stop)\n", b.String(), time.Now().Format("15:04:05"), every)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// SecretFile reads a secret (a password) from a file only its owner can
// read; flag names the option in the error.
func SecretFile(flag, path string) (string, error) {
	if st, err := os.Stat(path); err != nil || st.Mode().Perm()&0o077 != 0 {
		return "", badinput.Errorf("%s %s: must exist and be readable by its owner only (chmod 600)", flag, path)
	}
	b, err := os.ReadFile(path)
	return strings.TrimRight(string(b), "\r\n"), err
}
